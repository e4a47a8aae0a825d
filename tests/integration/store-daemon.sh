#!/bin/sh
# SPDX-License-Identifier: MIT
# hybridd hosts the store (issue 8; doc/hybrid.md "Which store a command uses"): writes seen by
# another process's subscription in write order, transient writes crossing processes, retained
# data there after a restart, the which-store rule of `hybrid store`, `repl` and `run`, a slow
# store subscriber cut off while writers go on, and policy.store allowing and denying.
. "$(dirname "$0")/lib.sh"
TAB=$(printf '\t')
unset HYBRID_BUS HYBRID_DB
export XDG_RUNTIME_DIR="$T/rt" XDG_DATA_HOME="$T/data"
mkdir -p "$T/rt"

CONF="store:
  path: $T/s1.db
  durability: full"
start_daemon s1 "$CONF" || finish

# --- one client's writes reach another's subscription, in write order
bg w1 hy store watch '/o/#'
W1=$BPID
check "watch is subscribed (ready on stderr)" ready w1
want=""
for i in 1 2 3 4 5 6 7 8 9 10; do
        hy store put /o/x "$i" || bad "put /o/x $i"
        want="$want/o/x$TAB$i
"
done
hy store del /o/x
want="$want/o/x${TAB}noobj"
lines10() { [ "$(wc -l <"$T/w1.out")" -ge 11 ]; }
wait_until 10 lines10
check "the watcher saw 10 writes and the delete, in write order" \
        [ "$(cat "$T/w1.out")" = "$want" ]

# --- a transient write crosses processes and is not stored
bg w2 hy store watch '/t/#' --count 1
W2=$BPID
check "second watch ready" ready w2
expect "put --transient succeeds" 0 "" hy store put --transient /t/a "'hey'"
wait "$W2"
check "the other process got the transient write" [ "$(cat "$T/w2.out")" = "/t/a$TAB'hey'" ]
expect "the transient write is not stored" 1 "" hy store get /t/a

# --- retained data is there after a restart; the watcher exits 3 when the daemon goes
expect "put /keep/a" 0 "" hy store put /keep/a 42
expect "put /keep/b" 0 "" hy store put /keep/b "'x'"
stop "$DPID"
check "hybridd stopped cleanly" [ "$STOP_RC" -eq 0 ]
wait "$W1"
check "a watch exits 3 when the daemon closes" [ $? -eq 3 ]
start_daemon s1 "$CONF" || finish
expect "retained value after restart" 0 "42" hy store get /keep/a
expect "a pattern read through the daemon names each match" 0 "/keep/a${TAB}42
/keep/b$TAB'x'" hy store get '/keep/+'
expect "a branch read through the daemon" 0 "[/keep/a=>42,/keep/b=>'x']" hy store get '/keep/+/'
expect "watch --replay --count 2 through the daemon: the stored values, then exit 0" 0 \
        "/keep/a${TAB}42
/keep/b$TAB'x'" timeout 10 "$HYBRID" --bus "$SOCK" store watch '/keep/+' --replay --count 2
# a replay whose page is larger than what the daemon batches for one sendmsg (64 KiB): every
# key comes once with its value (the batch and a 5-piece message overflowed the daemon's
# iovec array: a value went missing from the stream and the client dropped the connection)
"$PYTHON" -c "print('[' + ','.join(\"k%04d=>'value-number-%04d'\" % (i, i) for i in range(1000)) + ']')" >"$T/many.val"
"$PYTHON" -c "print('\n'.join(\"/many/k%04d\t'value-number-%04d'\" % (i, i) for i in range(1000)))" >"$T/many.want"
expect "a branch write of 1000 keys" 0 "" hy store put /many/ "$(cat "$T/many.val")"
run timeout 20 "$HYBRID" --bus "$SOCK" store watch '/many/+' --replay --count 1000
check "watch --replay of 1000 keys (a page of 100 KB) exits 0" [ "$RC" -eq 0 ]
sort "$T/out" >"$T/many.got"
check "... with every key once and its value" cmp -s "$T/many.want" "$T/many.got"
expect_err "a write under /sys/ is refused 403" 1 "^hybrid: store: 403 " hy store put /sys/x 1
run "$HYBRID" --bus "$SOCK" store get /sys/bus/connections
check "/sys/bus counters are read through the store" grep -Eqx '[1-9][0-9]*' "$T/out"
# a process writing the daemon's database file directly is seen by the daemon's subscribers
bg w4 hy store watch '/ext/#' --count 1
W4=$BPID
check "watch /ext/# ready" ready w4
expect "a direct write to the daemon's database file" 0 "" "$HYBRID" --db "$T/s1.db" store put /ext/a 9
wait "$W4"
check "the daemon's subscriber got the other process's write" [ "$(cat "$T/w4.out")" = "/ext/a${TAB}9" ]
# repl and run use the daemon's store by the same rule
expect "the repl reads and writes the daemon's store" 0 "==>42
==>5" sh -c "printf '*/keep/a\n/r -> 5\n' | '$HYBRID' --bus '$SOCK' repl"
expect "another process sees the repl's write" 0 "5" hy store get /r
printf '*/r\n' >"$T/p.mm"
expect "run reads the daemon's store" 0 "==>5" hy run "$T/p.mm"
expect_err "run with --bus to no daemon: exit 3" 3 "no daemon answers at" \
        "$HYBRID" --bus "$T/none.sock" run "$T/p.mm"
stop "$DPID"

# --- which store: --db, else --bus (exit 3 when nobody answers), else the default socket,
# else the default database, said once on stderr
expect_err "--bus to no daemon: exit 3, never another store" 3 "no daemon answers at" \
        "$HYBRID" --bus "$T/none.sock" store get /keep/a
expect_err "\$HYBRID_BUS to no daemon: exit 3" 3 "no daemon answers at" \
        env HYBRID_BUS="$T/none.sock" "$HYBRID" store get /keep/a
expect "--db wins over --bus" 1 "" "$HYBRID" --db "$T/other.db" --bus "$T/none.sock" store get /keep/a
mkdir -p "$T/rt/hybrid"
start_daemon dflt "store: {}" || finish
mv "$T/dflt.sock" "$T/rt/hybrid/bus.sock"
expect "rule 3: put reaches the daemon at the default socket" 0 "" "$HYBRID" store put /d/x 7
check "... and says so once on stderr" \
        [ "$(grep -c "^hybrid: using the store of the daemon at $T/rt/hybrid/bus.sock" "$T/err")" -eq 1 ]
expect "the daemon holds it" 0 "7" "$HYBRID" --bus "$T/rt/hybrid/bus.sock" store get /d/x
stop "$DPID"
expect "rule 3 without a daemon: the default database" 1 "" "$HYBRID" store get /d/x
check "... said once on stderr" \
        [ "$(grep -c "^hybrid: using the database $T/data/hybrid/store.db" "$T/err")" -eq 1 ]
check "... which now exists" [ -f "$T/data/hybrid/store.db" ]

# --- a slow store subscriber is cut off (507, its own queue); the writer goes on
start_daemon slow "limits: {max_body: 60K, max_frame: 128K, send_queue_bytes: 256K}" || finish
bg stall "$PYTHON" "$HYB_IT_DIR/rawbus.py" storestall "$SOCK" '/big/#' 4
STALL=$BPID
wait_until 10 has_line "$T/stall.out" subscribed
BIG=$("$PYTHON" -c "print(\"'\" + 'a' * 30000 + \"'\")")
n=0
for i in $(seq 1 40); do
        hy store put /big/v "$BIG" && n=$((n + 1))
done
check "the writer was never refused (40 writes of 30 KB)" [ "$n" -eq 40 ]
wait "$STALL"
check "the stalled store subscriber was disconnected" grep -q "^ok stalled store subscriber disconnected" "$T/stall.out"
check "the daemon logged the cut-off with the quota" grep -q "quota send_queue_bytes exceeded" "$T/slow.log"
expect "the daemon still serves" 0 "$BIG" hy store get /big/v
stop "$DPID"

# --- a replay larger than the subscriber's send queue comes in pages as it reads: it is not
# cut off, every key comes once and the writes made meanwhile after the whole replay, in
# write order; a replaying subscriber that does not read while writes pile up for it is cut
# off all the same (they count as its queue)
start_daemon replay "limits: {max_body: 60K, max_frame: 128K, send_queue_bytes: 256K}
store:
  limits: {max_read_keys: 50}" || finish
rawbus "a replay of 3000 keys (570 KB) to a subscriber that reads late" replaypage "$SOCK" 3000 1
rawbus "held writes count as the replaying subscriber's queue" replayheld "$SOCK" 3000 20
# (a C client reads as fast as the daemon sends: a Python one would be the bottleneck, and a
# reader that falls behind waits for its queue to drain, whatever the share)
run "$HYB_PROBE" replay-fair "$SOCK" '/rp/#' 3000 40
sed 's/^/    /' "$T/out" "$T/err"
check "replays share the pages by peer: one ends before another peer's 40 are half done" \
        [ "$RC" -eq 0 ]
check "the daemon logged the cut-off with the quota" grep -q "quota send_queue_bytes exceeded" "$T/replay.log"
stop "$DPID"

# --- policy.store: allow and deny, pattern within pattern
U=$(id -u)
start_daemon acl "policy:
  store:
    - {uid: $U, app: org.test.reader, furi: /a/+/t, allow: [read, subscribe]}
    - {uid: $U, app: org.test.writer, furi: /a/#, allow: [read, write, delete]}" || finish
expect "the writer may write /a/b/t" 0 "" hy --app org.test.writer store put /a/b/t 1
expect_err "the writer may not write /b" 1 "^hybrid: store: 403 " hy --app org.test.writer store put /b 1
expect "the reader reads /a/b/t" 0 "1" hy --app org.test.reader store get /a/b/t
expect_err "the reader may not write" 1 "^hybrid: store: 403 " hy --app org.test.reader store put /a/b/t 2
expect_err "subscribing to /a/# with a right to /a/+/t only is refused" 1 "^hybrid: store: 403 " \
        hy --app org.test.reader store watch '/a/#'
bg w3 hy --app org.test.reader store watch '/a/+/t' --count 1
W3=$BPID
check "subscribing to /a/+/t is allowed" ready w3
expect "the writer writes /a/c/t" 0 "" hy --app org.test.writer store put /a/c/t 5
wait "$W3"
check "the reader's watch got it" [ "$(cat "$T/w3.out")" = "/a/c/t${TAB}5" ]
expect_err "another app may do nothing" 1 "^hybrid: store: 403 " hy --app org.test.other store get /a/b/t
stop "$DPID"

# --- a stream whose daemon shuts down exits 3 with the daemon's reason (cli conventions)
start_daemon down "log: {level: warning}" || finish
bg wd hy store watch '/d/#'
WD=$BPID
bg ld hy listen '@localhost/*/*' 'X'
LD=$BPID
ready wd
ready ld
stop "$DPID"
wait "$WD"; rc=$?
check "store watch ends with exit 3 when the daemon stops (got $rc)" [ "$rc" -eq 3 ]
check "... saying why: $(cat "$T/wd.err" | tail -1)" \
        grep -q '^hybrid: store: 503 .*shutting down' "$T/wd.err"
wait "$LD"; rc=$?
check "listen ends with exit 3 when the daemon stops (got $rc)" [ "$rc" -eq 3 ]
check "... saying why: $(cat "$T/ld.err" | tail -1)" \
        grep -q '^hybrid: listen: 503 .*shutting down' "$T/ld.err"
finish
