#!/bin/sh
# SPDX-License-Identifier: MIT
# What a cluster message costs the daemons, and the publications held for the end of a read
# (doc/cluster.md, "Cost on the wire").  A mosquitto broker on a free loopback port, hosts
# a and b.
#  - B's write system calls, counted by the kernel (/proc/PID/io syscw, not a timing)
#    while a peer of A writes N values of the cluster scope in one go (cluster-pipe.py)
#    and a peer of B subscribes: per message delivered, its PUBACK and libmosquitto's
#    one-byte wake-up write, no more (the mirror's deliveries are made by the daemon's own
#    thread: no eventfd write to wake it, nor a read to clear it);
#  - a cluster write followed, in the same read, by frames that publish nothing still
#    leaves by itself: answered, delivered (cluster-held.py).
. "$HYB_IT_DIR/lib.sh"

need_mosquitto
start_mosquitto || finish
PORT=$MQ_PORT
URL="mqtt://127.0.0.1:$PORT"
connected() { grep -q "cluster: connected to" "$T/$1.log"; }

start_daemon a "host: hosta
cluster: {broker: \"$URL\"}" || finish
SA=$SOCK PA=$DPID
start_daemon b "host: hostb
cluster: {broker: \"$URL\"}" || finish
SB=$SOCK PB=$DPID
check "A connects to the broker" wait_until 10 connected a
check "B connects to the broker" wait_until 10 connected b

# syscw PID: the write system calls PID made so far
syscw() { awk '/^syscw:/ { print $2 }' "/proc/$1/io"; }
N=300
W0=$(syscw "$PB")
"$PYTHON" "$HYB_IT_DIR/cluster-pipe.py" "$SA" "$SB" $N >"$T/pipe.out" 2>&1
PIPE_RC=$?
sed 's/^/    /' "$T/pipe.out"
check "$N pipelined cluster writes: answered, delivered once each in order" \
        [ $PIPE_RC -eq 0 -a "$(grep -c '^ok ' "$T/pipe.out")" -eq 5 ]
W1=$(syscw "$PB")
WB=$((W1 - W0))
# N + 1 messages: two writes each (PUBACK, libmosquitto's wake-up byte) and a few for the
# subscription; a third per message (an eventfd) would be over 3 N
check "B made at most 2.5 writes a message ($WB for $((N + 1)) messages)" [ "$WB" -le $((N * 5 / 2)) ]
"$PYTHON" "$HYB_IT_DIR/cluster-held.py" "$SA" "$SB" >"$T/held.out" 2>&1
HELD_RC=$?
sed 's/^/    /' "$T/held.out"
check "a cluster write read with frames that publish nothing is answered and delivered" \
        [ $HELD_RC -eq 0 -a "$(grep -c '^ok ' "$T/held.out")" -eq 7 ]
finish
