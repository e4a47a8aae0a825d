#!/bin/sh
# SPDX-License-Identifier: MIT
# HYBRID_CLUSTER_TRACE (bench/README.md, bench-cluster): a daemon started with it notes each
# cluster write a peer makes (`W <ns> <fURI> <value>`) and each delivery of a cluster value
# to a peer's subscription (`D <ns> <fURI> <value>`) in that file; one without it notes
# nothing.  Also: keys longer than the daemon's short-text buffers (256 bytes) map and are
# delivered whole.  A mosquitto broker on a free loopback port, hosts a (traced) and b.
. "$HYB_IT_DIR/lib.sh"

need_mosquitto
start_mosquitto || finish
PORT=$MQ_PORT
URL="mqtt://127.0.0.1:$PORT"
connected() { grep -q "cluster: connected to" "$T/$1.log"; }

HYBRID_CLUSTER_TRACE="$T/a.trace"
export HYBRID_CLUSTER_TRACE
start_daemon a "host: hosta
cluster: {broker: \"$URL\"}" || finish
SA=$SOCK
unset HYBRID_CLUSTER_TRACE
start_daemon b "host: hostb
cluster: {broker: \"$URL\"}" || finish
SB=$SOCK
check "A connects to the broker" wait_until 10 connected a
check "B connects to the broker" wait_until 10 connected b
check "A's log says its cluster traffic is noted, and where" \
        grep -q "HYBRID_CLUSTER_TRACE: every cluster write and delivery is noted in $T/a.trace" "$T/a.log"
check "B's log says nothing of a trace" sh -c "! grep -q HYBRID_CLUSTER_TRACE '$T/b.log'"

SOCK=$SA
bg wa hy store watch '//trace/#'
check "A's subscription to //trace/# is ready" ready wa
SOCK=$SB
bg wb hy store watch '//trace/#'
check "B's subscription to //trace/# is ready" ready wb

K150=$(printf 'k%.0s' $(seq 150))
LONG=$K150/$K150
expect "A writes //trace/x 7" 0 "" "$HYBRID" --bus "$SA" store put //trace/x 7
expect "A writes //trace/k.../k... (a fURI of 309 bytes) 8" 0 "" "$HYBRID" --bus "$SA" store put "//trace/$LONG" 8
lines() { [ "$(wc -l <"$T/$1.out")" -ge "$2" ]; }
check "B's subscriber got both writes" wait_until 10 lines wb 2
check "A's subscriber got both writes" wait_until 10 lines wa 2
printf '//trace/x\t7\n//trace/%s\t8\n' "$LONG" >"$T/want"
check "B's subscriber has the fURIs whole, in order" cmp -s "$T/want" "$T/wb.out"
check "A's subscriber has the fURIs whole, in order" cmp -s "$T/want" "$T/wa.out"

has_trace() { grep -qE "^$1 [0-9]+ $2 $3\$" "$T/a.trace"; }
check "A noted its write of //trace/x: W <ns> //trace/x 7" wait_until 10 has_trace W //trace/x 7
check "A noted the delivery to its subscriber: D <ns> //trace/x 7" wait_until 10 has_trace D //trace/x 7
check "A noted the long key's write whole" wait_until 10 has_trace W "//trace/$LONG" 8
check "A noted the long key's delivery whole" wait_until 10 has_trace D "//trace/$LONG" 8
stamp() { awk -v k="$1" -v f="$2" '$1 == k && $3 == f { print $2; exit }' "$T/a.trace"; }
W=$(stamp W //trace/x) D=$(stamp D //trace/x)
check "the delivery's stamp is not before the write's ($W <= $D)" \
        "$PYTHON" -c 'import sys; sys.exit(0 if int(sys.argv[1]) <= int(sys.argv[2]) else 1)' "$W" "$D"
check "A noted four lines, nothing else" [ "$(wc -l <"$T/a.trace")" -eq 4 ]
check "B, without the variable, noted nothing anywhere" sh -c "! ls '$T' | grep -q '^b.*trace'"
# a replay's values are deliveries too (in key order: k... before x)
expect "a replay of //trace/# on A gives both values" 0 "//trace/$LONG	8
//trace/x	7" timeout 10 "$HYBRID" --bus "$SA" store watch '//trace/#' --replay --count 2
four_d() { [ "$(grep -c '^D ' "$T/a.trace")" -eq 4 ]; }
check "A noted the replay's two deliveries: four D lines" wait_until 10 four_d

# a trace file that cannot be opened: the daemon says so and does not start
HYBRID_CLUSTER_TRACE="$T/no/such/dir/c.trace" "$HYBRIDD" --foreground --socket "$T/c.sock" \
        --config "$T/b.yaml" >"$T/c.log" 2>&1 &
CPID=$!
PIDS="$PIDS $CPID"
gone() { ! kill -0 "$CPID" 2>/dev/null; }
check "a daemon whose trace file cannot be opened stops" wait_until 10 gone
check "... and names HYBRID_CLUSTER_TRACE and the file in its log" \
        grep -q "HYBRID_CLUSTER_TRACE $T/no/such/dir/c.trace" "$T/c.log"
finish
