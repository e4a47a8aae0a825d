#!/bin/sh
# SPDX-License-Identifier: MIT
# The cluster scope //... of a program without a daemon (doc/cluster.md "Programs without a
# daemon"): `hybrid --db FILE --cluster URL` (or $HYBRID_CLUSTER) against a real mosquitto
# on a free loopback port, seen by mosquitto_pub/mosquitto_sub and by a hybridd with
# cluster:.  Expected values come from doc/cluster.md (the mapping, the errors, the bounds).
# $1: cluster-embed-probe (the bounds through the public API).
. "$HYB_IT_DIR/lib.sh"
PROBE=$1

need_mosquitto
start_mosquitto || finish
URL="mqtt://127.0.0.1:$MQ_PORT"
DB="$T/e.db"
# (a function: not for bg, whose BPID must be the CLI itself)
e() { "$HYBRID" --db "$DB" --cluster "$URL" "$@"; }
sub1() { mosquitto_sub -h 127.0.0.1 -p "$MQ_PORT" -C 1 -W 10 -v "$@"; }
pub() { mosquitto_pub -h 127.0.0.1 -p "$MQ_PORT" -q 1 "$@"; }

# --- no broker named: the error says what to set
expect_err "without --cluster or \$HYBRID_CLUSTER, //... names what to set" 1 \
        'HYB_E_SCOPE .*HYBRID_CLUSTER=mqtt://HOST:PORT.*--cluster' \
        env -u HYBRID_CLUSTER "$HYBRID" --db "$DB" store get //a/b
expect_err "a bad cluster URL is a usage error" 2 "unknown option 'bogus'" \
        "$HYBRID" --db "$DB" --cluster "$URL?bogus=1" store get //a/b

# --- writes: retained JSON on the topic, seen by a plain MQTT client
expect "put //a/b 5" 0 "" e store put //a/b 5
run sub1 -t a/b
check "mosquitto_sub -C 1 -t a/b sees 5, retained" [ "$(cat "$T/out")" = "a/b 5" ]
expect "put //a/s 'on' (a str)" 0 "" e store put //a/s "'on'"
run sub1 -t a/s
check "... published as the JSON \"on\"" [ "$(cat "$T/out")" = 'a/s "on"' ]
expect "put //a/r [t=>21.5]" 0 "" e store put //a/r "[t=>21.5]"
run sub1 -t a/r
check "... published as the JSON {\"t\":21.5}" [ "$(cat "$T/out")" = 'a/r {"t":21.5}' ]
expect "a segment MQTT cannot carry raw is percent-encoded" 0 "" e store put '//a/b%20c' 1
run sub1 -t 'a/b%20c'
check "... topic a/b%20c" [ "$(cat "$T/out")" = "a/b%20c 1" ]
expect_err "//_hybrid/... is reserved (403)" 1 "403 .*reserved" e store put //_hybrid/x 1
expect_err "a pattern write is refused" 2 "single fURIs" e store put '//a/+' 1
expect "with a prefix (?prefix=site1/)" 0 "" \
        "$HYBRID" --db "$DB" --cluster "$URL?prefix=site1/" store put //p/x 3
run sub1 -t site1/p/x
check "... the topic is site1/p/x" [ "$(cat "$T/out")" = "site1/p/x 3" ]
expect "an option value %-encoded (?prefix=s%2F)" 0 "" \
        "$HYBRID" --db "$DB" --cluster "$URL?prefix=s%2F" store put //pp/x 4
run sub1 -t s/pp/x
check "... the topic is s/pp/x" [ "$(cat "$T/out")" = "s/pp/x 4" ]
expect_err "a bad %-escape is a usage error" 2 "bad %-escape" \
        "$HYBRID" --db "$DB" --cluster "$URL?prefix=s%2" store put //pp/x 4

printf '//rp/x -> 42\n' | e repl >"$T/repl.out" 2>&1
run sub1 -t rp/x
check "an mm-ADT program in 'hybrid repl' writes //rp/x: topic rp/x" [ "$(cat "$T/out")" = "rp/x 42" ]

# --- reads: the broker's retained messages, with $HYBRID_CLUSTER this time
pub -r -t sensors/t -m 21.5
pub -r -t sensors/word -m hot
pub -r -t sensors/rec -m '{"t":21.5,"unit":"C"}'
pub -r -t 'sensors/b c' -m 1
pub -r -t 'Sensors/t' -m 2
export HYBRID_CLUSTER="$URL"
expect "mosquitto_pub -r -t sensors/t -m 21.5 reads back 21.5" 0 "21.5" \
        "$HYBRID" --db "$DB" store get //sensors/t
expect "a payload that is not JSON reads as a str" 0 "'hot'" \
        "$HYBRID" --db "$DB" store get //sensors/word
expect "a JSON object reads as a rec" 0 "[t=>21.5,unit=>'C']" \
        "$HYBRID" --db "$DB" store get //sensors/rec
expect "an absent key: nothing (exit 1)" 1 "" "$HYBRID" --db "$DB" store get //sensors/none
printf '//sensors/rec\t[t=>21.5,unit=>'"'"'C'"'"']\n//sensors/t\t21.5\n//sensors/word\t'"'"'hot'"'"'\n' >"$T/pat.want"
run "$HYBRID" --db "$DB" store get '//sensors/#'
check "a pattern read gives the visible keys in key order (not 'sensors/b c', 'Sensors/t')" \
        cmp -s "$T/pat.want" "$T/out"
expect "a read of the branch //sensors/+/ is one rec of fURI => value" 0 \
        "[//sensors/rec=>[t=>21.5,unit=>'C'],//sensors/t=>21.5,//sensors/word=>'hot']" \
        "$HYBRID" --db "$DB" store get //sensors/+/
unset HYBRID_CLUSTER

# --- watch: the MQTT subscription, delivered in order; deletes and transient writes
bg w "$HYBRID" --db "$DB" --cluster "$URL?client_id=ce-w" store watch '//a/#'
check "watch //a/# is ready (after the SUBACK)" ready w
# an empty message on its marker topic (any broker client may send one) changes nothing
# (it made the sanitizer run stop on memcpy from NULL)
pub -t _hybrid/sync/ce-w -n
pub -t a/x -m '{"n":1}'
expect "a transient write (plain publish)" 0 "" e store put --transient //a/y 7
expect "delete //a/b" 0 "" e store del //a/b
lines() { [ "$(wc -l <"$T/$1.out")" -ge "$2" ]; }
check "the watch got three messages" wait_until 15 lines w 3
printf '//a/x\t[n=>1]\n//a/y\t7\n//a/b\tnoobj\n' >"$T/w.want"
check "... a mosquitto_pub, the transient write, the delete, in order" cmp -s "$T/w.want" "$T/w.out"
[ -s "$T/w.out" ] && ! cmp -s "$T/w.want" "$T/w.out" && sed 's/^/    # /' "$T/w.out"
expect "the deleted key reads as nothing" 1 "" e store get //a/b
expect "the transient write is not retained" 1 "" e store get //a/y
mosquitto_sub -h 127.0.0.1 -p "$MQ_PORT" -t a/b --retained-only -W 2 >"$T/ret.out" 2>/dev/null
check "the broker retains nothing on a/b after the delete (empty retained message)" \
        [ ! -s "$T/ret.out" ]
bg w2 "$HYBRID" --db "$DB" --cluster "$URL" store watch --replay '//a/#'
check "watch --replay //a/# is ready" ready w2
check "... and first gets the retained values" wait_until 10 has_line "$T/w2.out" '^//a/s	'"'on'"
stop "$BPID"

# --- a daemon with cluster: and a program without one see each other's writes
start_daemon d "host: hostd
cluster: {broker: \"$URL\"}" || finish
SD=$SOCK
dconnected() { grep -q "cluster: connected to" "$T/d.log"; }
check "the daemon connects to the broker" wait_until 15 dconnected
bg dw "$HYBRID" --bus "$SD" store watch '//shared/#'
check "the daemon's subscriber is ready" ready dw
expect "the program without a daemon writes //shared/e 1" 0 "" e store put //shared/e 1
check "the daemon's subscriber gets it" wait_until 15 has_line "$T/dw.out" '^//shared/e	1$'
expect "the daemon reads it" 0 "1" "$HYBRID" --bus "$SD" store get //shared/e
bg ew "$HYBRID" --db "$DB" --cluster "$URL" store watch '//shared/#'
check "the program's subscriber is ready" ready ew
expect "a peer of the daemon writes //shared/d 2" 0 "" "$HYBRID" --bus "$SD" store put //shared/d 2
check "the program's subscriber gets it" wait_until 15 has_line "$T/ew.out" '^//shared/d	2$'
expect "the program reads it" 0 "2" e store get //shared/d
stop "$BPID"

# --- bounds: mirrored values, subscriptions, pending messages, pending reads
head -c 2097152 /dev/zero | tr '\0' 7 >"$T/big"
pub -r -t big/x -f "$T/big"
pub -r -t big/y -m 1
run "$HYBRID" --db "$DB" --cluster "$URL" store get '//big/#'
check "a retained message over 1 MiB is neither taken nor kept: //big/# is big/y only" \
        [ "$RC" -eq 0 -a "$(cat "$T/out")" = "$(printf '//big/y\t1')" ]
for i in 1 2 3 4 5; do pub -r -t "m/k$i" -m "$i"; done
run "$HYBRID" --db "$DB" --cluster "$URL?mirror_max_keys=3" store get '//m/#'
check "mirror_max_keys=3: a pattern read over 5 retained keys gives 3" [ "$(wc -l <"$T/out")" -eq 3 ]
"$PROBE" subs "$URL" >"$T/subs.out" 2>&1
SRC=$?
sed 's/^/    /' "$T/subs.out"
check "max_subscriptions (the probe)" [ $SRC -eq 0 -a "$(grep -c '^ok ' "$T/subs.out")" -eq 3 ]
"$PROBE" pending "$URL" >"$T/pending.out" 2>&1
sed 's/^/    /' "$T/pending.out"
check "max_pending_messages (the probe)" \
        [ "$(grep -c '^ok ' "$T/pending.out")" -eq 5 -a "$(grep -c FAIL "$T/pending.out")" -eq 0 ]

"$PROBE" big "$URL" >"$T/big.out" 2>&1
sed 's/^/    /' "$T/big.out"
check "a write over 1 MiB is refused, one of 1 MiB is taken (the probe)" \
        [ "$(grep -c '^ok ' "$T/big.out")" -eq 2 -a "$(grep -c FAIL "$T/big.out")" -eq 0 ]
mosquitto_sub -h 127.0.0.1 -p "$MQ_PORT" -t bigw/x --retained-only -W 2 >"$T/bigw.out" 2>/dev/null
check "... the broker retains nothing on bigw/x (the refused write was not published)" \
        [ ! -s "$T/bigw.out" ]

"$PROBE" unsub-race "$URL" >"$T/ur.out" 2>&1
sed 's/^/    /' "$T/ur.out"
check "a read covered by a subscription another thread drops meanwhile still gives the value (the probe)" \
        [ "$(grep -c '^ok ' "$T/ur.out")" -eq 2 -a "$(grep -c FAIL "$T/ur.out")" -eq 0 ]

# --- the broker restarts: libmosquitto's thread reconnects and subscribes again
bg rw "$HYBRID" --db "$DB" --cluster "$URL" store watch '//re/#'
check "watch //re/# is ready" ready rw
RW=$BPID
pub -t re/a -m 1
pub -r -t re/kept -m 5
check "it gets re/a and the retained re/kept before the restart" \
        wait_until 15 has_line "$T/rw.out" '^//re/kept	5$'
stop_mosquitto
start_mosquitto || finish # without persistence: the broker lost re/kept
# published again until the watch has it: it reconnects within its backoff (1 to 2 s)
resubscribed() { pub -t re/b -m 2; has_line "$T/rw.out" '^//re/b	2$'; }
check "after the restart the watch gets re/b (reconnected, subscribed again)" \
        wait_until 20 resubscribed
check "... and the delete of re/kept, which the broker no longer retains (resynchronised)" \
        wait_until 15 has_line "$T/rw.out" '^//re/kept	noobj$'
stop "$RW"

"$PROBE" threads "$URL" >"$T/threads.out" 2>&1
sed 's/^/    /' "$T/threads.out"
check "4 threads at once on one backend (the probe)" \
        [ "$(grep -c '^ok ' "$T/threads.out")" -eq 3 -a "$(grep -c FAIL "$T/threads.out")" -eq 0 ]

# --- a broker that never answers, and a broker that is down: clear errors, no hang
"$PYTHON" "$HYB_IT_DIR/mqtt-silent.py" "$T/silent.port" "$T/silent.subs" &
PIDS="$PIDS $!"
check "the silent stand-in listens" wait_until 10 test -s "$T/silent.port"
SURL="mqtt://127.0.0.1:$(cat "$T/silent.port")"
"$PROBE" reads "$SURL" "$T/silent.subs" >"$T/reads.out" 2>&1
sed 's/^/    /' "$T/reads.out"
check "max_pending_reads and the read deadline (the probe)" \
        [ "$(grep -c '^ok ' "$T/reads.out")" -eq 3 -a "$(grep -c FAIL "$T/reads.out")" -eq 0 ]
expect_err "a write the broker does not acknowledge fails at timeout_ms (504)" 1 \
        '504 .*did not acknowledge the publication within 1000 ms' \
        timeout 60 "$HYBRID" --db "$DB" --cluster "$SURL?timeout_ms=1000" store put //a/b 1
# a TCP listener that never says a word: the TLS handshake of mqtts:// never ends; the read
# fails at timeout_ms and the program then exits (its libmosquitto thread is not waited for
# forever)
"$PYTHON" -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
held = []
s.settimeout(1)
end = time.time() + 60
while time.time() < end:
    try:
        held.append(s.accept()[0])
    except socket.timeout:
        pass
' "$T/mute.port" &
PIDS="$PIDS $!"
check "the mute listener listens" wait_until 10 test -s "$T/mute.port"
expect_err "mqtts:// to a listener that never answers the TLS handshake: 503, and the program exits" \
        1 "503 cannot reach the MQTT broker mqtts://127.0.0.1:$(cat "$T/mute.port")" \
        timeout 60 "$HYBRID" --db "$DB" --cluster "mqtts://127.0.0.1:$(cat "$T/mute.port")?timeout_ms=1000" \
        store get //a/b
stop_mosquitto
expect_err "the broker down: 503 naming the broker" 1 \
        "503 cannot reach the MQTT broker $URL" \
        timeout 60 "$HYBRID" --db "$DB" --cluster "$URL" store put //a/b 1
expect_err "... a read too" 1 "503 cannot reach the MQTT broker $URL" \
        timeout 60 "$HYBRID" --db "$DB" --cluster "$URL" store get //a/b
expect "the host scope still works without the broker" 0 "" e store put /h/x 1

finish
