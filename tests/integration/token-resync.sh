#!/bin/sh
# SPDX-License-Identifier: MIT
# A revocation feed with a gap is resynced (doc/token.md "Revocation feed", "Resync"): two
# hybridd trust the same issuer; hub A has entries 1..3, hub B none.  Entry 3 delivered to
# B directly is refused (409, logged: the gap); `hybrid token feed --push` with A's
# `token feed --json` delivers 1..3 to B in order, after which B refuses the revoked
# token (401) and closes the open session it touches (exit 3), and a second push changes
# nothing.  A pushed file holding a forged entry is refused (401) and B's feed stays.
. "${HYB_IT_DIR:?}/lib.sh"
cd "$T" || exit 1
H=$HYBRID
BI=@localhost/org.hybridos.bus/builtin

for k in hub mallory admin guest g2 g3; do
        "$H" token keygen "$T/$k.key" >/dev/null || bad "keygen $k"
done
conf() {
        printf 'auth:\n  tokens: require\n  audience: %s\n  issuers:\n    hub: %s\n' "$1" "$T/hub.key.pub"
}
issue() { # SUB HOLDER CAP
        "$H" token issue --key "$T/hub.key" --iss hub --sub "$1" --aud hub-a,hub-b \
                --holder "$T/$2.key.pub" --cap "$3" --cap 'bus://localhost/#=sub' >"$T/$1.tok"
}
issue admin admin '/#=read,write'
issue guest guest '/sensors/#=read,sub'
issue g2 g2 '/sensors/#=read'
issue g3 g3 '/sensors/#=read'
A() { s=$1; shift; HYBRID_TOKEN=$T/admin.tok HYBRID_KEY=$T/admin.key "$H" --bus "$s" "$@"; }
as() { s=$1 who=$2; shift 2; "$H" --bus "$s" --token "$T/$who.tok" --key "$T/$who.key" "$@"; }

start_daemon a "$(conf hub-a)" || finish
SA=$SOCK
DA=$DPID
start_daemon b "$(conf hub-b)" || finish
SB=$SOCK

# the guest holds a session on B while A learns of three revocations
bg w "$H" --bus "$SB" --token "$T/guest.tok" --key "$T/guest.key" store watch '/sensors/#'
WPID=$BPID
wait_until 10 has_line "$T/w.err" '^ready$' || bad "the guest's watch on B starts" "$(cat "$T/w.err")"
expect "A: revoke g2's key" 0 1 A "$SA" token revoke --key "$T/hub.key" --holder "$T/g2.key.pub"
expect "A: revoke the guest's key" 0 2 A "$SA" token revoke --key "$T/hub.key" --holder "$T/guest.key.pub"
expect "A: revoke g3's key" 0 3 A "$SA" token revoke --key "$T/hub.key" --holder "$T/g3.key.pub"
A "$SA" --json token feed >"$T/feed-a.json" || bad "A's feed as JSON"
E3=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))[2]["entry"])' "$T/feed-a.json")

expect_err "B: entry 3 on an empty feed is a gap: 409 naming entry 1" 1 '409 .*deliver entry 1 first' \
        A "$SB" call "$BI" deliverRevocation "{\"entry\":\"$E3\"}"
check "B: the gap is logged" grep -q 'revocation entry 3 .* refused: a gap after 0' "$T/b.log"
expect "B: the admin writes" 0 "" A "$SB" store put /sensors/t 7
expect "B: before the resync the guest still reads" 0 "7" as "$SB" guest store get /sensors/t
check "B: ... and its watch runs" kill -0 "$WPID"

# a forged entry in the file: refused, nothing of B's feed changes
"$PYTHON" - "$T/feed-a.json" "$T/forged.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))
e = a[0]["entry"].split(".")
e[2] = ("B" if e[2][0] != "B" else "C") + e[2][1:]
a[0]["entry"] = ".".join(e)
json.dump(a, open(sys.argv[2], "w"))
PY
expect_err "push of a forged entry: 401" 1 '401' A "$SB" token feed --push "$T/forged.json"
expect "... B's feed is still empty" 0 "" A "$SB" token feed

expect "B resynced from A's feed: 1..3 applied in order" 0 "1 applied
2 applied
3 applied" A "$SB" token feed --push "$T/feed-a.json"
expect "B's feed now equals A's" 0 "$(A "$SA" token feed)" A "$SB" token feed
check "the guest's session on B ends (exit 3, revoked)" wait_until 5 sh -c "! kill -0 $WPID"
wait "$WPID"
check "... exit 3" [ "$?" = 3 ]
check "... with the reason" grep -q 'revoked' "$T/w.err"
expect_err "B: the guest's new connect is refused: 401" 1 '401' as "$SB" guest store get /sensors/t
expect_err "B: g3 (entry 3, the one that made the gap) too: 401" 1 '401' as "$SB" g3 store get /sensors/t
expect "a second push (stdin) delivers nothing" 0 "" sh -c "HYBRID_TOKEN=$T/admin.tok HYBRID_KEY=$T/admin.key \"\$0\" --bus $SB token feed --push - <$T/feed-a.json" "$H"
echo '{"x":1}' >"$T/notfeed.json"
expect_err "--push of an object: 1" 1 'not a JSON array' A "$SB" token feed --push "$T/notfeed.json"
check "A still serves" kill -0 "$DA"
finish
