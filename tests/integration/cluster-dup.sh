#!/bin/sh
# SPDX-License-Identifier: MIT
# No duplicate delivery to local subscribers (doc/cluster.md "Duplicates"): MQTT's QoS 1
# sends a message again when its PUBACK was lost with the connection.  A mosquitto broker,
# hosts a and b, each behind a proxy (mqtt-cut.py) that cuts its connection once, between a
# PUBLISH and its PUBACK:
#   1. broker -> b: b took the transient write, its PUBACK is lost; the broker sends it
#      again (DUP) on b's next connection.  b's subscriber gets it once.
#   2. a -> broker: the broker took a's transient write, its PUBACK is lost; a sends it
#      again on its next connection and the broker forwards both copies to b.  b's
#      subscriber gets it once.
#   3. a plain MQTT client's messages (no sequence property) are delivered as they come.
# Skipped (77) when mosquitto or mosquitto-clients are not installed.
. "$HYB_IT_DIR/lib.sh"

need_mosquitto
start_mosquitto || finish

# proxy NAME MODE TOPIC: mqtt-cut.py in the background; sets PROXY_PORT
proxy() {
        bg "$1" "$PYTHON" "$HYB_IT_DIR/mqtt-cut.py" "$MQ_PORT" "$2" "$3"
        wait_until 20 has_line "$T/$1.out" '^port ' || { bad "proxy $1 starts" "$(cat "$T/$1.err")"; finish; }
        PROXY_PORT=$(awk '/^port / { print $2; exit }' "$T/$1.out")
}
proxy pa pub dup/p
PA=$PROXY_PORT
proxy pb sub dup/s
PB=$PROXY_PORT

start_daemon a "host: a
cluster: {broker: \"mqtt://127.0.0.1:$PA\"}" || finish
SA=$SOCK
start_daemon b "host: b
cluster: {broker: \"mqtt://127.0.0.1:$PB\"}" || finish
SB=$SOCK
connects() { [ "$(grep -c 'cluster: connected to' "$T/$1.log")" -ge "$2" ]; }
check "a connects to the broker (through its proxy)" wait_until 20 connects a 1
check "b connects to the broker (through its proxy)" wait_until 20 connects b 1

SOCK=$SB
bg w hy store watch '//dup/#'
check "b's watch //dup/# is ready" ready w
lines() { [ "$(wc -l <"$T/$1.out")" -ge "$2" ]; }
ha() { "$HYBRID" --bus "$SA" "$@"; }

# 1. the broker sends b's message again
expect "a writes //dup/s 1 (transient)" 0 "" ha store put //dup/s 1 --transient
check "b's proxy cut b's connection before its PUBACK" wait_until 20 has_line "$T/pb.out" '^cut$'
check "b connects again" wait_until 20 connects b 2
check "the broker sent the message again (DUP)" wait_until 20 has_line "$T/pb.out" '^redelivered$'
expect "a writes //dup/s 2 (transient)" 0 "" ha store put //dup/s 2 --transient
check "b's subscriber gets the later write" wait_until 20 has_line "$T/w.out" "^//dup/s	2\$"

# 2. a sends its message again
expect "a writes //dup/p 3 (transient, answered once the broker took it)" 0 "" \
        ha store put //dup/p 3 --transient
check "a's proxy cut a's connection before the broker's PUBACK" has_line "$T/pa.out" '^cut$'
check "a sent the message again (DUP)" has_line "$T/pa.out" '^resent$'
expect "a writes //dup/p 4 (transient)" 0 "" ha store put //dup/p 4 --transient
check "b's subscriber gets the later write" wait_until 20 has_line "$T/w.out" "^//dup/p	4\$"

# 3. a plain client's messages, which carry no sequence: each one delivered
mosquitto_pub -p "$MQ_PORT" -h 127.0.0.1 -q 1 -t dup/m -m 5 || bad "mosquitto_pub dup/m 5"
mosquitto_pub -p "$MQ_PORT" -h 127.0.0.1 -q 1 -t dup/m -m 5 || bad "mosquitto_pub dup/m 5 again"
mosquitto_pub -p "$MQ_PORT" -h 127.0.0.1 -q 1 -t dup/m -m '"end"' || bad "mosquitto_pub dup/m end"
check "b's subscriber gets the plain client's messages" wait_until 20 has_line "$T/w.out" "^//dup/m	'end'\$"

printf '//dup/s\t1\n//dup/s\t2\n//dup/p\t3\n//dup/p\t4\n//dup/m\t5\n//dup/m\t5\n//dup/m\t'"'"'end'"'"'\n' >"$T/w.want"
check "b's subscriber got every write once, in order (and each plain message)" cmp -s "$T/w.want" "$T/w.out"
cmp -s "$T/w.want" "$T/w.out" || sed 's/^/    # got: /' "$T/w.out"
finish
