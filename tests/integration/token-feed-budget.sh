#!/bin/sh
# SPDX-License-Identifier: MIT
# The bound on revocation feed entries a daemon checks from the cluster (doc/token.md
# "Between daemons"): each entry on <prefix>_hybrid/feed/<seq> costs a check on the
# daemon's loop (a signature), so a broker client flooding the feed topics could hold it.
# A daemon checks a burst, then a rate a second (1024, then 256 a second; this test sets 21
# and 0 through HYBRID_TEST_FEED_CHECKS so the count does not depend on the machine's
# speed) and drops the rest unchecked (they come again at a refetch, when they are
# retained).  100 junk messages: exactly 80 dropped unchecked; the daemon keeps serving.
. "${HYB_IT_DIR:?}/lib.sh"
cd "$T" || exit 1
H=$HYBRID

need_mosquitto
start_mosquitto || finish
"$H" token keygen "$T/hub.key" >/dev/null || bad "keygen"
# a retained junk entry D gets when its subscription is in place: its refusal says D listens
mosquitto_pub -p "$MQ_PORT" -h 127.0.0.1 -q 1 -r -t _hybrid/feed/1 -m "junk retained"
HYBRID_TEST_FEED_CHECKS=21/0
export HYBRID_TEST_FEED_CHECKS
start_daemon d "host: hostd
cluster: {broker: \"mqtt://127.0.0.1:$MQ_PORT\"}
log: {level: debug}
auth:
  tokens: accept
  audience: hostd
  issuers: {hub: $T/hub.key.pub}" || finish
unset HYBRID_TEST_FEED_CHECKS
check "D connects to the broker" wait_secs 20 grep -q "cluster: connected to" "$T/d.log"
check "D's feed subscription is in place (the retained junk refused)" \
        wait_secs 20 grep -q "revocation feed: _hybrid/feed/1 refused" "$T/d.log"

# 99 junk messages on one feed topic, then one on another: MQTT keeps one publisher's order,
# so when the last one is seen every one before it was
i=0
while [ $i -lt 99 ]; do echo "junk $i"; i=$((i + 1)); done |
        mosquitto_pub -p "$MQ_PORT" -h 127.0.0.1 -q 1 -t _hybrid/feed/50 -l
mosquitto_pub -p "$MQ_PORT" -h 127.0.0.1 -q 1 -t _hybrid/feed/77 -m "junk last"
check "D saw the last message" wait_secs 20 grep -q "_hybrid/feed/77 not checked (over the budget)" "$T/d.log"
N=$(grep -c "revocation feed: _hybrid/feed/50 not checked (over the budget)" "$T/d.log")
echo "# D dropped $((N + 1)) of 100 entries unchecked"
check "exactly 80 of 100 were dropped unchecked (of the burst of 21, one went to the retained junk)" [ "$N" = 79 ]
expect "D still serves a call" 0 '{"words":"hi"}' "$H" --bus "$SOCK" call @localhost/org.hybridos.bus/builtin echo '{"words":"hi"}'
finish
