#!/bin/sh
# SPDX-License-Identifier: MIT
# The revocation feed between daemons of a cluster (doc/token.md "Between daemons",
# doc/cluster.md "Topics"): two hybridd share a mosquitto; an entry applied on A is
# published retained on _hybrid/feed/<seq>, B applies it by itself and closes the guest's
# session it touches; B down while A gets entries 2..4 catches up when it starts again; a
# third daemon that joins late gets the whole feed, also when the broker sends it in
# reverse and it is longer than what a daemon keeps aside; junk, forged, untrusted and misplaced
# entries on the feed topics are refused and logged (10 lines, then one a second), A puts
# back a retained entry overwritten with junk, and the feed keeps working afterwards.
. "${HYB_IT_DIR:?}/lib.sh"
cd "$T" || exit 1
H=$HYBRID

need_mosquitto
start_mosquitto || finish
PORT=$MQ_PORT
URL="mqtt://127.0.0.1:$PORT"
mpub() { mosquitto_pub -p "$PORT" -h 127.0.0.1 -q 1 "$@"; }
retained() { # TOPIC: the broker's retained payload of TOPIC
        mosquitto_sub -p "$PORT" -h 127.0.0.1 -t "$1" --retained-only -C 1 -W 3 2>/dev/null
}

for k in hub mallory admin guest g2 g3 g4 g5; do
        "$H" token keygen "$T/$k.key" >/dev/null || bad "keygen $k"
done
conf() { # HOST [EXTRA]
        printf 'host: %s\ncluster: {broker: "%s"}\nauth:\n  tokens: require\n  audience: hub\n  issuers:\n    hub: %s\n%s\n' \
                "$1" "$URL" "$T/hub.key.pub" "${2:-}"
}
issue() { # SUB CAP
        "$H" token issue --key "$T/hub.key" --iss hub --sub "$1" --aud hub \
                --holder "$T/$1.key.pub" --cap "$2" --cap 'bus://localhost/#=sub' >"$T/$1.tok"
}
issue admin '/#=read,write'
for g in guest g2 g3 g4 g5; do issue $g '/sensors/#=read,sub'; done
A() { s=$1; shift; HYBRID_TOKEN=$T/admin.tok HYBRID_KEY=$T/admin.key "$H" --bus "$s" "$@"; }
as() { s=$1 who=$2; shift 2; "$H" --bus "$s" --token "$T/$who.tok" --key "$T/$who.key" "$@"; }
connected() { grep -q "cluster: connected to" "$T/$1.log"; }
feed_is() { [ "$(A "$1" token feed 2>/dev/null)" = "$2" ]; }

start_daemon a "$(conf hosta)" || finish
SA=$SOCK DA=$DPID
start_daemon b "$(conf hostb "store: {path: $T/b.db}")" || finish
SB=$SOCK DB=$DPID
check "A connects to the broker" wait_secs 20 connected a
check "B connects to the broker" wait_secs 20 connected b

# --- revoke on A: B applies it by itself and ends the guest's session there
expect "B: the admin writes" 0 "" A "$SB" store put /sensors/t 7
bg w "$H" --bus "$SB" --token "$T/guest.tok" --key "$T/guest.key" store watch '/sensors/#'
WPID=$BPID
check "the guest's watch on B is ready" ready w
T0=$(date +%s%N)
expect "A: revoke the guest's key (entry 1)" 0 1 A "$SA" token revoke --key "$T/hub.key" --holder "$T/guest.key.pub"
check "B: the guest's session ends without anyone delivering to B" wait_secs 20 sh -c "! kill -0 $WPID"
T1=$(date +%s%N)
echo "# the guest's session on B ended $(((T1 - T0) / 1000000)) ms after the revoke command on A started"
kill -0 "$WPID" 2>/dev/null && kill -TERM "$WPID"
wait "$WPID"
check "... exit 3" [ "$?" = 3 ]
check "... with the reason" grep -q 'revoked' "$T/w.err"
check "B logs the entry as applied from the feed topic" grep -q 'revocation entry 1 applied from _hybrid/feed/1' "$T/b.log"
expect_err "B: the guest's new connect is refused: 401" 1 '401' as "$SB" guest store get /sensors/t
check "the entry is retained on _hybrid/feed/1" [ "$(retained _hybrid/feed/1)" = "$(A "$SA" --json token feed | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)[0]["entry"])')" ]

# --- B down while A gets entries 2..4; B catches up by itself when it starts again
stop "$DB"
for i in 2 3 4; do
        g=g$i
        expect "A: revoke $g (entry $i) while B is down" 0 $i A "$SA" token revoke --key "$T/hub.key" --holder "$T/$g.key.pub"
done
FA=$(A "$SA" token feed)
start_daemon b "$(conf hostb "store: {path: $T/b.db}")" || finish
SB=$SOCK DB=$DPID
check "B, restarted, catches up to A's feed (1..4)" wait_secs 20 feed_is "$SB" "$FA"
for g in g2 g3 g4; do
        expect_err "B: $g (revoked while B was down) is refused: 401" 1 '401' as "$SB" $g store get /sensors/t
done
expect "B: g5 still reads" 0 7 as "$SB" g5 store get /sensors/t

# --- a daemon joining late takes the whole feed from the retained entries
start_daemon c "$(conf hostc)" || finish
SC=$SOCK DC=$DPID
check "C (no store, new) gets A's feed 1..4" wait_secs 20 feed_is "$SC" "$FA"

# --- hostile publications on the feed topics
E2=$(A "$SA" --json token feed | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)[1]["entry"])')
mpub -r -t _hybrid/feed/2 -m 'not an entry'
check "A refuses junk on _hybrid/feed/2 and logs it" wait_secs 10 grep -q 'revocation feed: _hybrid/feed/2 refused' "$T/a.log"
check "A puts its entry 2 back as the retained message" wait_secs 10 sh -c "[ \"\$(mosquitto_sub -p $PORT -h 127.0.0.1 -t _hybrid/feed/2 --retained-only -C 1 -W 3 2>/dev/null)\" = '$E2' ]"
FORGED=$(printf '%s' "$E2" | "$PYTHON" -c 'import sys; e=sys.stdin.read().split("."); e[2]=("B" if e[2][0]!="B" else "C")+e[2][1:]; print(".".join(e))')
"$PYTHON" "$HYB_IT_DIR/token-feed-entry.py" "$T/mallory.key" 5 some-jti >"$T/m5"
mpub -t _hybrid/feed/5 -m "$(cat "$T/m5")"
mpub -t _hybrid/feed/7 -m "$FORGED"
mpub -t _hybrid/feed/9 -m "$E2"
mpub -t _hybrid/feed/x -m "$E2"
check "B logs the entry signed by an untrusted key as refused" wait_secs 10 grep -q '_hybrid/feed/5 refused: entry signed by an unknown kid' "$T/b.log"
check "B logs the forged entry as refused" wait_secs 10 grep -q '_hybrid/feed/7 refused: entry: bad signature' "$T/b.log"
check "B logs entry 2 on the topic of 9 as refused" wait_secs 10 grep -q '_hybrid/feed/9 refused: it holds an entry of another seq' "$T/b.log"
check "B logs a topic that names no seq" wait_secs 10 grep -q '_hybrid/feed/x refused: not a topic' "$T/b.log"
expect "B's feed is unchanged" 0 "$FA" A "$SB" token feed
# a flood: 300 junk messages cost 10 lines, then at most a line a second, in the log
i=0
while [ $i -lt 300 ]; do echo "junk $i"; i=$((i + 1)); done | mosquitto_pub -p "$PORT" -h 127.0.0.1 -q 1 -t _hybrid/feed/6 -l
# one more junk message now and then until a line is logged again: it counts the others
poke() { mpub -t _hybrid/feed/8 -m junk; grep -q 'feed/8 refused: .*more refused, not logged' "$T/b.log"; }
check "B logs again, counting the lines it did not log" wait_secs 30 poke
NL=$(grep -c 'revocation feed: _hybrid/feed/[68] refused' "$T/b.log")
# each logged line counts what was refused unlogged since the one before; a loaded B may
# log a line in the middle of the flood (a line a second), so the counts are summed.  The
# poke that ended the wait was sent after the flood's publisher had every PUBACK, so the
# broker queued it to B behind all 300: every flood message is in a line or in a count.
NU=$(sed -n 's/.*feed\/[68] refused: .*(and \([0-9]*\) more refused, not logged).*/\1/p' "$T/b.log" |
        awk '{ n += $1 } END { print n + 0 }')
echo "# B logged $NL lines for 300+ junk messages and counted $NU it did not log"
check "... in far fewer lines than messages" [ "$NL" -lt 60 ]
check "... and lines and counts cover the flood" [ $((NL + NU)) -ge 300 ]

# --- the feed still works: entry 5 on A reaches B and C
bg w5 "$H" --bus "$SC" --token "$T/g5.tok" --key "$T/g5.key" store watch '/sensors/#'
W5=$BPID
check "g5's watch on C is ready" ready w5
expect "A: revoke g5 (entry 5)" 0 5 A "$SA" token revoke --key "$T/hub.key" --holder "$T/g5.key.pub"
FA=$(A "$SA" token feed)
check "B gets entry 5" wait_secs 20 feed_is "$SB" "$FA"
check "C gets entry 5" wait_secs 20 feed_is "$SC" "$FA"
check "g5's session on C ends" wait_secs 20 sh -c "! kill -0 $W5"
expect_err "B: g5 is refused: 401" 1 '401' as "$SB" g5 store get /sensors/t
# --- a longer feed than a daemon keeps aside (256 entries past its head): A gets entries
# 6..300 (signed with Python `cryptography`, pushed); B and C follow.
"$PYTHON" "$HYB_IT_DIR/token-feed-entry.py" "$T/hub.key" --range 6 300 >"$T/many.json"
run A "$SA" token feed --push "$T/many.json"
check "A takes entries 6..300" [ "$RC.$(tail -n 1 "$T/out")" = "0.300 applied" ]
FA=$(A "$SA" token feed)
check "B follows to 300" wait_secs 30 feed_is "$SB" "$FA"
check "C follows to 300" wait_secs 30 feed_is "$SC" "$FA"

# --- entries in the worst order: the 300 entries published retained in reverse under
# another prefix; E (that prefix) keeps aside at most 256 past its head, so with the
# broker's order reversed it cannot take all from one burst and asks the broker again.
A "$SA" --json token feed >"$T/feed-a.json" || bad "A's feed as JSON"
"$PYTHON" - "$PORT" "$T/feed-a.json" <<'PY' 2>"$T/pub.err" || bad "publishing the reversed feed" "$(tail -5 "$T/pub.err")"
import json, sys
import paho.mqtt.client as mqtt
entries = {e["seq"]: e["entry"] for e in json.load(open(sys.argv[2]))}
c = mqtt.Client(client_id="feed-reverse", protocol=mqtt.MQTTv311)
c.connect("127.0.0.1", int(sys.argv[1]))
c.loop_start()
infos = [c.publish("rev/_hybrid/feed/%d" % seq, entries[seq], qos=1, retain=True)
         for seq in sorted(entries, reverse=True)]
for i in infos:
    i.wait_for_publish()
c.loop_stop()
c.disconnect()
PY
start_daemon e "host: hoste
cluster: {broker: \"$URL\", prefix: rev/}
auth:
  tokens: require
  audience: hub
  issuers:
    hub: $T/hub.key.pub" || finish
SE=$SOCK DE=$DPID
check "E takes all 300 from entries sent in reverse" wait_secs 30 feed_is "$SE" "$FA"
# (how often it asked depends on the broker's order and on timing: shown, not asserted)
echo "# E asked the broker again $(grep -c 'asking the broker for the entries again' "$T/e.log") time(s)"
for d in "$DA" "$DB" "$DC" "$DE"; do check "daemon $d still serves" kill -0 "$d"; done
finish
