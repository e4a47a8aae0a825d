#!/bin/sh
# SPDX-License-Identifier: MIT
# Failure modes with real processes (doc/protocol.md): a callee that never answers (504 at
# the broker's deadline, nothing left pending), a callee killed mid-call (502 at once),
# A -> B -> A nested synchronous calls, 10 000 calls from 50 concurrent clients with
# none lost, and a subscriber that stops reading (bounded broker memory, an explicit
# disconnect + BrokenEndpoint, the other subscribers unaffected).
. "$(dirname "$0")/lib.sh"
B=@localhost/org.hybridos.bus/builtin

start_daemon f "limits: {max_pending_calls: 4, max_body: 64K, send_queue_bytes: 1M}
log: {level: warning}" || finish

# --- a callee that never answers
serve_bg late getX '{"late":true}' --runner late --delay 600000
expect_err "never answered: exit 1 with 504 at the deadline" 1 '^hybrid: call: 504 ' \
        hy call @localhost/org.hybridos.cli/late getX '{}' --timeout 300
# Twice max_pending_calls timeouts on ONE connection: a leaked pending entry would make
# the later ones 429 instead of 504.
expect "10 timeouts on one connection (max_pending_calls 4) are all 504; then echo works" 0 \
        "504 10 other 0 echo 200" "$HYB_PROBE" timeouts "$SOCK" @localhost/org.hybridos.cli/late getX 10 100
expect "the late callee and the builtin still answer listProcedures" 0 '*' \
        hy call $B listProcedures '{"endpointName":"@localhost/org.hybridos.cli/late"}'
check "listProcedures lists getX" grep -qi 'getX' "$T/out"
stop "$BPID"
check "serve with cancelled calls pending ends with exit 0" [ "$STOP_RC" -eq 0 ]

# --- a callee killed mid-call: 502 at once, long before the 60 s deadline
serve_bg doomed getX '{}' --runner doomed --delay 600000
DOOMED=$BPID
bg caller hy call @localhost/org.hybridos.cli/doomed getX '{}' --timeout 60000
CALLER=$BPID
sleep 0.3
kill -KILL "$DOOMED"
i=0
while kill -0 "$CALLER" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
if kill -0 "$CALLER" 2>/dev/null; then
        bad "callee killed mid-call: caller answered at once" "still waiting after 5 s of a 60 s deadline"
        kill "$CALLER"
else
        wait "$CALLER"; rc=$?
        check "callee killed mid-call: exit 1" [ "$rc" -eq 1 ]
        check "callee killed mid-call: 502 on stderr" grep -q '^hybrid: call: 502 ' "$T/caller.err"
fi

# --- A -> B -> A nested synchronous calls
bg nb "$HYB_PROBE" nested-b "$SOCK"
NB=$BPID
wait_until 10 has_line "$T/nb.out" ready
expect "A calls B whose handler calls A: no deadlock" 0 '{"via":"b","inner":{"pong":true}}' \
        "$HYB_PROBE" nested-a "$SOCK"
stop "$NB"

# --- 10 000 calls from 50 concurrent clients, routed through a callee
bg echo "$HYB_PROBE" echo-server "$SOCK" main
ECHO=$BPID
wait_until 10 has_line "$T/echo.out" ready
expect "10 000 calls from 50 clients: every reply matches its call" 0 "ok 10000 lost 0 wrong 0" \
        "$HYB_PROBE" load "$SOCK" @localhost/org.example.echo/main echo 50 200
[ "$RC" -eq 0 ] || head -5 "$T/err"
expect "the same load through the builtin echo" 0 "ok 10000 lost 0 wrong 0" \
        "$HYB_PROBE" load "$SOCK" $B echo 50 200
stop "$ECHO"

# --- a subscriber that stops reading
bg broken hy listen $B BrokenEndpoint
BROKEN=$BPID
ready broken
bg good "$HYB_PROBE" count "$SOCK" '@localhost/org.example.flood/*' BIG 2000
GOOD=$BPID
bg stall "$PYTHON" "$HYB_IT_DIR/rawbus.py" stall "$SOCK" '@localhost/org.example.flood/*' 'BIG' 6
STALL=$BPID
wait_until 10 has_line "$T/good.out" ready
wait_until 10 has_line "$T/stall.out" subscribed
rss0=$(vmrss "$DPID")
# 2000 events x 16 KiB = 32 MiB for the stalled peer, whose queue is bounded by 1 MiB.
run "$HYB_PROBE" flood "$SOCK" BIG 2000 16384
check "flood fired every event" grep -q 'errors 0' "$T/out"
rss1=$(vmrss "$DPID")
echo "# broker VmRSS ${rss0} KiB before, ${rss1} KiB after 32 MiB to a stalled subscriber"
check "broker memory stays bounded (grew < 16 MiB)" [ $((rss1 - rss0)) -lt 16384 ]
wait "$GOOD"; rc=$?
check "the reading subscriber got all 2000 events in order" [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || cat "$T/good.out" "$T/good.err"
check "BrokenEndpoint reported the stalled subscriber" wait_until 10 grep -q \
        'org.example.slow/stalled' "$T/broken.out"
wait "$STALL"; rc=$?
check "the stalled subscriber found itself disconnected" [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || cat "$T/stall.out" "$T/stall.err"
grep '^info' "$T/stall.out"
expect "the broker keeps serving" 0 '"after"' hy call $B echo '"after"'
stop "$BROKEN"
finish
