#!/bin/sh
# SPDX-License-Identifier: MIT
# auth.feed_peers (doc/token.md "Between daemons", doc/config.md "auth"): outside a
# cluster, a daemon whose feed has a gap asks its feed peers (listRevocations) for the
# missing entries by itself.  Hub A requires tokens; hub B lists a socket that does not
# exist and then A (with a token of its own).  An entry delivered to B past its head is
# refused 409 as before, and B then fetches 1..N from A: its feed equals A's and the
# guest's session the entries touch on B ends.  B down while A gets another entry
# catches up when it starts.  A configuration error in feed_peers stops hybridd.
. "${HYB_IT_DIR:?}/lib.sh"
cd "$T" || exit 1
H=$HYBRID
BI=@localhost/org.hybridos.bus/builtin

for k in hub admin guest g2 g4 feeder; do
        "$H" token keygen "$T/$k.key" >/dev/null || bad "keygen $k"
done
issue() { # SUB CAP
        "$H" token issue --key "$T/hub.key" --iss hub --sub "$1" --aud hub-a,hub-b \
                --holder "$T/$1.key.pub" --cap "$2" --cap 'bus://localhost/#=sub' >"$T/$1.tok"
}
issue admin '/#=read,write'
issue guest '/sensors/#=read,sub'
issue g2 '/sensors/#=read'
issue g4 '/sensors/#=read'
issue feeder '/nothing=read'
A() { s=$1; shift; HYBRID_TOKEN=$T/admin.tok HYBRID_KEY=$T/admin.key "$H" --bus "$s" "$@"; }
as() { s=$1 who=$2; shift 2; "$H" --bus "$s" --token "$T/$who.tok" --key "$T/$who.key" "$@"; }
conf() { # AUDIENCE [EXTRA]
        printf 'auth:\n  tokens: require\n  audience: %s\n  issuers:\n    hub: %s\n%s\n' "$1" "$T/hub.key.pub" "${2:-}"
}
PEERS="  feed_peers:
    - $T/nothing-here.sock
    - {bus: $T/a.sock, token: $T/feeder.tok, key: $T/feeder.key}"
feed_is() { [ "$(A "$1" token feed 2>/dev/null)" = "$2" ]; }

start_daemon a "$(conf hub-a)" || finish
SA=$SOCK DA=$DPID
start_daemon b "$(conf hub-b "$PEERS")
store: {path: $T/b.db}" || finish
SB=$SOCK DB=$DPID

expect "B: the admin writes" 0 "" A "$SB" store put /sensors/t 7
bg w "$H" --bus "$SB" --token "$T/guest.tok" --key "$T/guest.key" store watch '/sensors/#'
WPID=$BPID
check "the guest's watch on B is ready" ready w
expect "A: revoke g2's key (entry 1)" 0 1 A "$SA" token revoke --key "$T/hub.key" --holder "$T/g2.key.pub"
expect "A: revoke the guest's key (entry 2)" 0 2 A "$SA" token revoke --key "$T/hub.key" --holder "$T/guest.key.pub"
expect "A: revoke a jti (entry 3)" 0 3 A "$SA" token revoke --key "$T/hub.key" --jti some-token
FA=$(A "$SA" token feed)
E3=$(A "$SA" --json token feed | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)[2]["entry"])')
check "B's feed is still empty" feed_is "$SB" ""
expect_err "B: entry 3 on an empty feed is a gap: 409 as before" 1 '409 .*deliver entry 1 first' \
        A "$SB" call "$BI" deliverRevocation "{\"entry\":\"$E3\"}"
# A requires tokens: B's fetch gets through with the token of its feed_peers entry only
check "B fetches 1..3 from A by itself" wait_secs 20 feed_is "$SB" "$FA"
check "... logged, naming A" grep -q "revocation feed: 3 entries fetched from $T/a.sock, head 3" "$T/b.log"
check "... after the socket that does not exist failed (logged)" grep -q "revocation feed: fetching after 0: $T/nothing-here.sock: connect" "$T/b.log"
check "the guest's session on B ends" wait_secs 20 sh -c "! kill -0 $WPID"
kill -0 "$WPID" 2>/dev/null && kill -TERM "$WPID"
wait "$WPID"
check "... exit 3" [ "$?" = 3 ]
expect_err "B: g2 is refused: 401" 1 '401' as "$SB" g2 store get /sensors/t

# B down while A gets entry 4; B asks at its start
stop "$DB"
expect "A: revoke g4's key (entry 4) while B is down" 0 4 A "$SA" token revoke --key "$T/hub.key" --holder "$T/g4.key.pub"
FA=$(A "$SA" token feed)
start_daemon b "$(conf hub-b "$PEERS")
store: {path: $T/b.db}" || finish
SB=$SOCK DB=$DPID
check "B, restarted, fetches entry 4 at its start" wait_secs 20 feed_is "$SB" "$FA"
expect_err "B: g4 is refused: 401" 1 '401' as "$SB" g4 store get /sensors/t

# the bound of one fetch: 500 entries.  A gets 501 more (5..505, signed with Python
# `cryptography`, pushed); entry 505 delivered to B makes the gap: B's first fetch takes
# 500 of them (5..504), the next one the last.
"$PYTHON" "$HYB_IT_DIR/token-feed-entry.py" "$T/hub.key" --range 5 505 >"$T/many.json"
run A "$SA" token feed --push "$T/many.json"
check "A takes entries 5..505" [ "$RC.$(tail -n 1 "$T/out")" = "0.505 applied" ]
E505=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))[-1]["entry"])' "$T/many.json")
expect_err "B: entry 505 on a feed at 4 is a gap: 409" 1 '409 .*deliver entry 5 first' \
        A "$SB" call "$BI" deliverRevocation "{\"entry\":\"$E505\"}"
FA=$(A "$SA" token feed)
check "B catches up to 505" wait_secs 25 feed_is "$SB" "$FA"
check "... a first fetch of 500 entries (the bound)" grep -q "revocation feed: 500 entries fetched from $T/a.sock, head 504" "$T/b.log"
check "... then one of the last entry" grep -q "revocation feed: 1 entries fetched from $T/a.sock, head 505" "$T/b.log"

# configuration errors name the key
printf '%s\n' "$(conf hub-c "  feed_peers:
    - {bus: $T/a.sock, token: $T/feeder.tok}")" >"$T/c1.yaml"
expect_err "a token without its key: a configuration error" 2 'feed_peers.*token needs its holder key' \
        "$HYBRIDD" --foreground --socket "$T/c.sock" --config "$T/c1.yaml"
printf '%s\n' "$(conf hub-c "  feed_peers:
    - {bus: $T/a.sock, token: $T/missing.tok, key: $T/feeder.key}")" >"$T/c2.yaml"
expect_err "a token file that cannot be read: a configuration error" 2 'feed_peers.*cannot read the token' \
        "$HYBRIDD" --foreground --socket "$T/c.sock" --config "$T/c2.yaml"
printf '%s\n' "$(conf hub-c "  feed_peers:
    - {token: $T/feeder.tok, key: $T/feeder.key}")" >"$T/c3.yaml"
expect_err "a peer without bus: a configuration error" 2 'feed_peers.*needs bus' \
        "$HYBRIDD" --foreground --socket "$T/c.sock" --config "$T/c3.yaml"
check "A still serves" kill -0 "$DA"
check "B still serves" kill -0 "$DB"
finish
