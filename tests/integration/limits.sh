#!/bin/sh
# SPDX-License-Identifier: MIT
# Every config key of doc/protocol.md with its effect, bad values refused with line:column,
# and every limit: max_body / max_frame (413), max_pending_calls (429), max_connections,
# max_endpoints, max_subscriptions, auth_timeout_ms (a silent connection is closed),
# ping_after_s / drop_after_s (a peer that never answers PING is dropped with
# BrokenEndpoint notResponding); malformed, truncated and oversized raw frames.
. "$(dirname "$0")/lib.sh"
B=@localhost/org.hybridos.bus/builtin
TAB=$(printf '\t')
RAW="$PYTHON $HYB_IT_DIR/rawbus.py"

# --- bad configurations: exit 2 (hybridd's usage/config status) with line:column
while IFS="$TAB" read -r yaml pos; do
        case "$yaml" in ''|'#'*) continue ;; esac
        printf "$(printf '%s' "$yaml" | sed 's/%/%%/g')\n" >"$T/bad.yaml"
        expect_err "bad config '$yaml' is refused at $pos" 2 " at $pos$" \
                "$HYBRIDD" --foreground --socket "$T/bad.sock" --config "$T/bad.yaml"
done <"$HYB_IT_DIR/config-cases.txt"
check "no socket was left by refused configs" [ ! -e "$T/bad.sock" ]

# --- every key accepted in one file; listen.unix is used when --socket is absent
cat >"$T/all.yaml" <<YAML
host: gateway-1.example.com
listen:
  unix: $T/all.sock
limits:
  max_body: 64K
  max_frame: 96K
  max_pending_calls: 3
  send_queue_bytes: 1M
  max_connections: 6
  max_endpoints: 5
  max_subscriptions: 3
  auth_timeout_ms: 400
  ping_after_s: 1
  drop_after_s: 2
policy:
  admins: [65534]
  apps:
    "65534": ["org.example.*", "com.vendor.tool"]
    "0": ["*"]
log:
  level: debug
  syslog: false
YAML
"$HYBRIDD" --foreground --config "$T/all.yaml" >"$T/all.log" 2>&1 &
DPID=$!
PIDS="$PIDS $DPID"
SOCK=$T/all.sock
check "listen.unix: the daemon listens where the config says" wait_until 10 test -S "$SOCK"

# policy.admins / policy.apps for uid 65534
run as_nobody "$HYBRID" --bus "$SOCK" --app org.example.ok call $B echo 7
check "policy.apps: uid 65534 may claim org.example.*" [ "$RC" -eq 0 ]
expect_err "policy.apps: uid 65534 may not claim org.other.app (403, exit 1)" 1 \
        '^hybrid: call: 403 ' as_nobody "$HYBRID" --bus "$SOCK" --app org.other.app call $B echo 7
expect "policy.apps: the default app name is not in its list either" 1 '' \
        as_nobody "$HYBRID" --bus "$SOCK" call $B echo 7
# (monitor --count 1 needs a packet to end: make one)
bg nmon as_nobody "$HYBRID" --bus "$SOCK" --app com.vendor.tool monitor --count 1
check "policy.admins: uid 65534 may monitor" ready nmon
hy --app org.example.x call $B echo 1 >/dev/null
wait "$BPID"; check "the admin's monitor saw a packet and ended" [ $? -eq 0 ]

# max_body 64K: exactly 64 KiB passes, one more byte is 413
"$PYTHON" -c "import sys; sys.stdout.write('\"' + 'b' * (65536 - 2) + '\"')" >"$T/64k.json"
run sh -c "\"$HYBRID\" --bus '$SOCK' call $B echo - <'$T/64k.json'"
check "max_body: a body of exactly max_body passes" [ "$RC" -eq 0 ] && [ "$(wc -c <"$T/out")" -eq 65537 ]
"$PYTHON" -c "import sys; sys.stdout.write('\"' + 'b' * (65536 - 1) + '\"')" >"$T/64k.json"
expect_err "max_body: one byte more is 413 (exit 1)" 1 '^hybrid: call: 413 ' \
        sh -c "\"$HYBRID\" --bus '$SOCK' call $B echo - <'$T/64k.json'"
# raw frames: malformed, truncated, oversized (max_frame 96K), bad names, bad JSON
run $RAW malformed "$SOCK" 65536 98304
check "raw frames: every malformed/truncated/oversized case handled" [ "$RC" -eq 0 ]
grep '^FAIL' "$T/out" | sed 's/^/    | /'
grep -c '^ok' "$T/out" | sed 's/^/# raw cases passed: /'

# max_pending_calls 3: the 4th concurrent call is 429 at once
serve_bg slow getX '{}' --app org.example.slow --runner s --delay 600000
SLOW=$BPID
run $RAW pending "$SOCK" @localhost/org.example.slow/s getX 3
check "max_pending_calls: 429 for the call beyond the limit" [ "$RC" -eq 0 ]
grep '^FAIL' "$T/out" | sed 's/^/    | /'

# max_subscriptions 3
run $RAW subs "$SOCK" 3
check "max_subscriptions: 429 for the 4th subscription" [ "$RC" -eq 0 ]
grep '^FAIL' "$T/out" | sed 's/^/    | /'

# auth_timeout_ms 400: a silent connection is closed (well within 3 s)
run $RAW silent "$SOCK" 3
check "auth_timeout_ms: a silent connection is closed" [ "$RC" -eq 0 ]
grep '^FAIL' "$T/out" | sed 's/^/    | /'

# ping_after_s 1 / drop_after_s 2: a peer that never answers PING is dropped
bg brk hy listen $B BrokenEndpoint
BRK=$BPID
ready brk
run $RAW mute "$SOCK" org.example.mute m 6
check "drop_after_s: the mute peer was pinged and dropped" [ "$RC" -eq 0 ]
grep '^FAIL' "$T/out" | sed 's/^/    | /'
check "BrokenEndpoint notResponding for the mute peer" wait_until 5 grep -q \
        '@localhost/org.example.mute/m.*notResponding' "$T/brk.out"
check "a listener that answers pings (library) outlived drop_after_s" kill -0 "$BRK"
stop "$BRK"

for p in $PIDS; do [ "$p" = "$DPID" ] || kill "$p" 2>/dev/null; done
check "log.level debug: the daemon logged debug lines" grep -qi 'debug' "$T/all.log"
stop "$DPID"
check "hybridd with every key ends on SIGTERM with exit 0" [ "$STOP_RC" -eq 0 ]

# max_endpoints 5 / max_connections 6 on a daemon of its own with the default liveness
# times: under load, the 1 s / 2 s ping settings above could drop a peer mid-count.
start_daemon cap "$(printf 'limits:\n  max_connections: 6\n  max_endpoints: 5\n')" || finish
for n in 1 2 3 4 5; do
        bg e$n hy --app org.example.e --runner e$n listen '@*/*/*' 'X'
done
ready e1; ready e2; ready e3; ready e4; ready e5
expect_err "max_endpoints: the 6th endpoint is refused with 503" 3 '503' hy call $B echo 1
kill "$BPID"; wait "$BPID" 2>/dev/null
# The broker sees the close asynchronously (on its next loop turn): poll, do not race it.
echo_ok() { [ "$(hy call $B echo 1 2>/dev/null)" = 1 ]; }
check "max_endpoints: after one left, a new endpoint is accepted" wait_until 5 echo_ok
# 4 endpoints are connected: max_connections 6 leaves room for exactly 2 more connections
# (retried while the probe connections above may still be counted; a broker that accepts
# more than 2, or refuses without the 503 packet, fails every try)
maxconn_ok() { run $RAW maxconn "$SOCK" 2; [ "$RC" -eq 0 ]; }
check "max_connections: the connection beyond the limit is refused" wait_until 5 maxconn_ok
grep '^FAIL' "$T/out" | sed 's/^/    | /'
for p in $PIDS; do [ "$p" = "$DPID" ] || kill "$p" 2>/dev/null; done
stop "$DPID"
finish
