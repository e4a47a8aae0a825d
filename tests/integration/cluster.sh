#!/bin/sh
# SPDX-License-Identifier: MIT
# The cluster scope //... over MQTT (doc/cluster.md): a mosquitto broker on a free loopback
# port with persistence in the temp dir, and hybridd instances with different host names.
# Expected values come from doc/cluster.md (the mapping, the mirror, the queue, the bounds).
. "$HYB_IT_DIR/lib.sh"

need_mosquitto
start_mosquitto persist || finish
PORT=$MQ_PORT

URL="mqtt://127.0.0.1:$PORT"
connected() { grep -q "cluster: connected to" "$T/$1.log"; }
connects() { grep -c "cluster: connected to" "$T/$1.log"; }

start_daemon a "host: hosta
store: {path: $T/a.db}
cluster: {broker: \"$URL\"}" || finish
SA=$SOCK PA=$DPID
start_daemon b "host: hostb
cluster: {broker: \"$URL\"}
store: {limits: {max_read_keys: 1}}
policy:
  store:
    - {uid: 0, furi: \"//+/#\", allow: [read, write, delete, subscribe]}
    - {uid: 0, furi: \"/#\", allow: [read, write, delete, subscribe]}
    - {uid: 65534, furi: \"//public/#\", allow: [read, subscribe]}" || finish
SB=$SOCK PB=$DPID
check "A connects to the broker" wait_until 10 connected a
check "B connects to the broker" wait_until 10 connected b
check "each host has its own client id" grep -q "as hybrid-hostb" "$T/b.log"

ha() { "$HYBRID" --bus "$SA" "$@"; }
hb() { "$HYBRID" --bus "$SB" "$@"; }

# --- a write on A is read and delivered on B, in order
SOCK=$SB
bg wb "$HYBRID" --bus "$SB" store watch '//kitchen/#'
check "B's subscription to //kitchen/# is ready (after the SUBACK)" ready wb
expect "A writes //kitchen/temp 21" 0 "" ha store put //kitchen/temp 21
expect "A writes //kitchen/temp 22" 0 "" ha store put //kitchen/temp 22
expect "A writes //kitchen/light 'on'" 0 "" ha store put //kitchen/light "'on'"
expect "A publishes a transient //kitchen/door 'open'" 0 "" ha store put --transient //kitchen/door "'open'"
lines() { [ "$(wc -l <"$T/$1.out")" -ge "$2" ]; }
check "B's subscriber got the four writes" wait_until 10 lines wb 4
printf '//kitchen/temp\t21\n//kitchen/temp\t22\n//kitchen/light\t'"'"'on'"'"'\n//kitchen/door\t'"'"'open'"'"'\n' >"$T/wb.want"
check "... in the order A made them" cmp -s "$T/wb.want" "$T/wb.out"
[ -s "$T/wb.out" ] && ! cmp -s "$T/wb.want" "$T/wb.out" && cat "$T/wb.out" | sed 's/^/    # /'
expect "B reads //kitchen/temp from its mirror: 22" 0 "22" hb store get //kitchen/temp
expect "B reads //kitchen/light: 'on'" 0 "'on'" hb store get //kitchen/light
expect "a transient write is not retained" 1 "" hb store get //kitchen/door
expect "A reads its own write back: 22" 0 "22" ha store get //kitchen/temp
# pipelined: 300 writes of a peer of A in one go, every one answered, delivered once in order
"$PYTHON" "$HYB_IT_DIR/cluster-pipe.py" "$SA" "$SB" 300 >"$T/pipe.out" 2>&1
PIPE_RC=$?
sed 's/^/    /' "$T/pipe.out"
check "300 pipelined cluster writes: answered, delivered once each in order" \
        [ $PIPE_RC -eq 0 -a "$(grep -c '^ok ' "$T/pipe.out")" -eq 5 ]
"$PYTHON" "$HYB_IT_DIR/cluster-big.py" "$SA" >"$T/big.out" 2>&1
sed 's/^/    /' "$T/big.out"
check "a cluster write over 1 MiB of JSON is refused 413, one of 1 MiB taken (cluster-big.py)" \
        [ "$(grep -c '^ok ' "$T/big.out")" -eq 2 -a "$(grep -c FAIL "$T/big.out")" -eq 0 ]
mosquitto_sub -h 127.0.0.1 -p "$PORT" -t bigd/x --retained-only -W 2 >"$T/bigx.out" 2>/dev/null
check "... the refused value was not published: the broker retains nothing on bigd/x" \
        [ ! -s "$T/bigx.out" ]

# --- the mapping, seen by plain MQTT clients
mosquitto_sub -p "$PORT" -h 127.0.0.1 -t 'kitchen/#' -v --retained-only -W 5 >"$T/sub.out" 2>/dev/null
sort "$T/sub.out" >"$T/sub.sorted"
printf 'kitchen/light "on"\nkitchen/temp 22\n' >"$T/sub.want"
check "mosquitto_sub -t 'kitchen/#' -v shows the values as JSON" cmp -s "$T/sub.want" "$T/sub.sorted"
mosquitto_pub -p "$PORT" -h 127.0.0.1 -r -q 1 -t sensors/t -m 21.5
expect "mosquitto_pub -r -t sensors/t -m 21.5 reads on B as 21.5 (outside the mirror)" 0 "21.5" \
        hb store get //sensors/t
check "the read outside the mirror is noted in B's log" \
        grep -q "read of //sensors/t is outside the mirror" "$T/b.log"
mosquitto_pub -p "$PORT" -h 127.0.0.1 -r -q 1 -t sensors/word -m hot
expect "a payload that is not JSON reads as a str of its text" 0 "'hot'" hb store get //sensors/word
mosquitto_pub -p "$PORT" -h 127.0.0.1 -r -q 1 -t sensors/rec -m '{"t":21.5,"unit":"C"}'
expect "a JSON object reads as a rec" 0 "[t=>21.5,unit=>'C']" hb store get //sensors/rec
expect "an absent key reads as nothing after the deadline" 1 "" hb store get //sensors/none
check "... and the deadline is noted in the log" \
        grep -q "read of //sensors/none: no retained message within" "$T/b.log"
mosquitto_pub -p "$PORT" -h 127.0.0.1 -r -q 1 -t 'Kitchen/temp' -m 99
mosquitto_pub -p "$PORT" -h 127.0.0.1 -r -q 1 -t 'kitchen.example/temp' -m 98
mosquitto_pub -p "$PORT" -h 127.0.0.1 -r -q 1 -t 'kitchen/' -m 97
mosquitto_pub -p "$PORT" -h 127.0.0.1 -r -q 1 -t 'kitchen//temp' -m 96
mosquitto_pub -p "$PORT" -h 127.0.0.1 -r -q 1 -t '$SYS/x' -m 95 2>/dev/null
expect "_hybrid/ is reserved: a write of //_hybrid/x is refused" 1 "" ha store put //_hybrid/x 1
expect "a pattern read sees only visible topics" 0 "//kitchen/light	'on'
//kitchen/temp	22" hb store get '//kitchen/#'
expect "A deletes //kitchen/light" 0 "" ha store del //kitchen/light
check "B's subscriber sees the delete" wait_until 10 has_line "$T/wb.out" "//kitchen/light	noobj"
expect "B no longer reads //kitchen/light" 1 "" hb store get //kitchen/light
mosquitto_sub -p "$PORT" -h 127.0.0.1 -t 'kitchen/light' --retained-only -W 2 >"$T/del.out" 2>/dev/null
check "the delete is an empty retained message: the broker keeps nothing" [ ! -s "$T/del.out" ]

expect "a pattern read //+/temp sees //kitchen/temp, not Kitchen/temp nor kitchen.example/temp" 0 \
        "//kitchen/temp	22" hb store get '//+/temp'
# the one percent-encoding rule: the topic is the fURI's canonical text
expect "A writes //kitchen/a b (a space)" 0 "" ha store put '//kitchen/a b' 1
expect "A writes //kitchen/%2B (a literal +)" 0 "" ha store put '//kitchen/%2B' 2
expect "the space travels as %20 in the topic" 0 "kitchen/a%20b 1" \
        mosquitto_sub -p "$PORT" -h 127.0.0.1 -t 'kitchen/a%20b' -v -C 1 -W 5
expect "the literal + travels as %2B, not as a wildcard" 0 "kitchen/%2B 2" \
        mosquitto_sub -p "$PORT" -h 127.0.0.1 -t 'kitchen/%2B' -v -C 1 -W 5
expect "and reads back on B" 0 "2" hb store get '//kitchen/%2B'
# a cluster subscription's replay comes from B's mirror in pages, as the host store's
# (store.limits.max_read_keys 1 on B: a page a key)
expect "watch --replay //kitchen/# on B replays the mirror in key order" 0 "//kitchen/%2B	2
//kitchen/a%20b	1
//kitchen/temp	22" timeout 10 "$HYBRID" --bus "$SB" store watch '//kitchen/#' --replay --count 3

# --- access: the store's policy governs //... like any fURI
expect_err "a peer without rights to //sensors/# is refused 403" 1 "403|denies" \
        as_nobody "$HYBRID" --bus "$SB" store get //sensors/t
expect_err "nor may it write there" 1 "403|denies" \
        as_nobody "$HYBRID" --bus "$SB" store put //sensors/t 1
mosquitto_pub -p "$PORT" -h 127.0.0.1 -r -q 1 -t public/x -m 5
expect "it reads //public/x, which policy.store allows" 0 "5" \
        as_nobody "$HYBRID" --bus "$SB" store get //public/x

# a token session: the token's capabilities decide, as for any fURI
"$HYBRID" token keygen "$T/iss.key" >/dev/null && "$HYBRID" token keygen "$T/holder.key" >/dev/null &&
        "$HYBRID" token issue --key "$T/iss.key" --iss acme --sub alice --aud hostf \
                --holder "$T/holder.key.pub" --cap '//public/#=read,sub' >"$T/pub.tok" ||
        bad "a token for //public/# is issued"
start_daemon f "host: hostf
cluster: {broker: \"$URL\"}
auth:
  tokens: require
  audience: hostf
  issuers:
    acme: $T/iss.key.pub" || finish
SF=$SOCK
tf() { "$HYBRID" --bus "$SF" --token "$T/pub.tok" --key "$T/holder.key" "$@"; }
expect "a token for //public/# reads //public/x" 0 "5" tf store get //public/x
expect_err "the same token is refused //sensors/t: 403" 1 "403.*token does not allow read of //sensors/t" \
        tf store get //sensors/t
expect_err "and a write of //public/x: 403" 1 "403.*token does not allow write" \
        tf store put //public/x 6

# --- the broker restarts with its persistence: nothing retained is lost
retained() {
        mosquitto_sub -p "$PORT" -h 127.0.0.1 -t '#' -v --retained-only -W 3 2>/dev/null | sort
}
retained >"$T/before.out"
check "the broker holds the retained values before its restart" grep -q '^kitchen/temp 22$' "$T/before.out"
stop_mosquitto
check "A notices the broker is gone" wait_until 10 grep -q "connection to .* lost" "$T/a.log"
start_mosquitto || finish
check "A reconnects by itself" wait_until 10 sh -c "[ \$(grep -c 'cluster: connected to' '$T/a.log') -ge 2 ]"
check "B reconnects by itself" wait_until 10 sh -c "[ \$(grep -c 'cluster: connected to' '$T/b.log') -ge 2 ]"
retained >"$T/after.out"
check "every retained value survived the restart" cmp -s "$T/before.out" "$T/after.out"
[ -s "$T/after.out" ] && ! cmp -s "$T/before.out" "$T/after.out" && diff "$T/before.out" "$T/after.out" | sed 's/^/    # /'
expect "B still reads //kitchen/temp 22" 0 "22" hb store get //kitchen/temp

# --- the broker stopped for 5 s while A writes at QoS 1: B gets every write, in order, once
bg wq "$HYBRID" --bus "$SB" store watch '//queue/#'
check "B's subscription to //queue/# is ready" ready wq
expect "a first write before the outage" 0 "" ha store put //queue/n 0
check "... reaches B" wait_until 10 lines wq 1
stop_mosquitto
check "A notices the outage" wait_until 10 sh -c "[ \$(grep -c 'connection to .* lost' '$T/a.log') -ge 2 ]"
ok_all=1
i=1
while [ $i -le 20 ]; do
        ha store put //queue/n $i >/dev/null 2>"$T/qerr" || { ok_all=0; cat "$T/qerr"; }
        i=$((i + 1))
done
check "A accepts 20 writes while the broker is down (queued)" [ $ok_all = 1 ]
sleep 5 # the outage lasts 5 s (no result depends on this wait)
start_mosquitto || finish
check "B gets the 21 writes after the reconnection" wait_until 20 lines wq 21
seq 0 20 | sed 's|^|//queue/n	|' >"$T/wq.want"
check "... in order, none twice" cmp -s "$T/wq.want" "$T/wq.out"
[ -s "$T/wq.out" ] && ! cmp -s "$T/wq.want" "$T/wq.out" && sed 's/^/    # /' "$T/wq.out"
expect "B reads the last one" 0 "20" hb store get //queue/n

# --- the bounds: queued writes, reads waiting for the broker, mirrored values
DEAD=$(free_port) # nothing listens there: the broker is unreachable
start_daemon c "host: hostc
store: {path: $T/c.db}
cluster: {broker: \"mqtt://127.0.0.1:$DEAD\", queue_max: 4, max_pending_reads: 4, read_timeout_ms: 60000}" || finish
SC=$SOCK PC=$DPID
hc() { "$HYBRID" --bus "$SC" "$@"; }
expect "queued write 1 of queue_max 4" 0 "" hc store put //bound/q 1
expect "queued write 2" 0 "" hc store put //bound/q 2
expect_err "a 3rd write of the same uid is refused 507 (half of queue_max)" 1 \
        "uid [0-9]+ has half of cluster.queue_max \\(4\\)" hc store put //bound/q 9
expect "another uid's write 3 is queued" 0 "" as_nobody "$HYBRID" --bus "$SC" store put //bound/q 3
expect "and its write 4" 0 "" as_nobody "$HYBRID" --bus "$SC" store put //bound/q 4
expect_err "a 5th write while the broker is unreachable is refused 507 (queue_max in all)" 1 \
        "queue_max \\(4\\) writes already wait" as_nobody "$HYBRID" --bus "$SC" store put //bound/q 5
SOCK=$SC
waiting() { [ "$(grep -c 'is outside the mirror' "$T/c.log")" -ge "$1" ]; }
bg r1 "$HYBRID" --bus "$SC" store get //bound/r1
R1=$BPID
bg r2 "$HYBRID" --bus "$SC" store get //bound/r2
R2=$BPID
check "two reads of one uid wait for the broker" wait_until 10 waiting 2
expect_err "a third read of that uid is refused 429 (half of max_pending_reads 4)" 1 \
        "reads of this uid" hc store get //bound/r3
bg n1 as_nobody "$HYBRID" --bus "$SC" store get //bound/n1
N1=$BPID
bg n2 as_nobody "$HYBRID" --bus "$SC" store get //bound/n2
N2=$BPID
check "another uid's two reads wait too" wait_until 10 waiting 4
expect_err "one more read is refused 429 (max_pending_reads 4 in all)" 1 \
        "max_pending_reads reads already wait" as_nobody "$HYBRID" --bus "$SC" store get //bound/n3
kill "$R1" "$R2" "$N1" "$N2" 2>/dev/null
# The queue is kept in the host store: C restarted, now with the broker, publishes it in order.
bg bound "$PYTHON" "$HYB_IT_DIR/mqtt-collect.py" "$PORT" bound/q 4
SUBPID=$BPID
check "a plain MQTT subscriber to bound/q is ready" ready bound
stop "$PC"
start_daemon c2 "host: hostc
store: {path: $T/c.db}
cluster: {broker: \"$URL\"}" || finish
wait "$SUBPID"
printf 'bound/q 1\nbound/q 2\nbound/q 3\nbound/q 4\n' >"$T/bound.want"
check "writes queued before a restart are published after it, in order" cmp -s "$T/bound.want" "$T/bound.out"
check "C2's log says queued writes were waiting" grep -q "4 writes queued before the restart" "$T/c2.log"

i=1
while [ $i -le 5 ]; do
        mosquitto_pub -p "$PORT" -h 127.0.0.1 -r -q 1 -t "mirror/k$i" -m $i
        i=$((i + 1))
done
start_daemon d "host: hostd
cluster: {broker: \"$URL\", mirror_max_keys: 3}" || finish
SD=$SOCK
bg wd "$HYBRID" --bus "$SD" store watch '//mirror/#'
check "D's subscription to //mirror/# is ready" ready wd
full() { grep -q "the mirror holds cluster.mirror_max_keys (3) values" "$T/d.log"; }
check "D mirrors at most mirror_max_keys values and says so" wait_until 10 full
"$HYBRID" --bus "$SD" store get '//mirror/#' >"$T/mirror.out" 2>/dev/null
check "a read of //mirror/# on D gives the 3 mirrored values" [ "$(wc -l <"$T/mirror.out")" -eq 3 ]

start_daemon e "host: hoste" || finish
expect_err "a daemon without cluster: refuses //... as its host store does" 2 \
        "not a host-scope fURI \\(cluster scope\\)" "$HYBRID" --bus "$SOCK" store get //kitchen/temp

finish
