#!/bin/sh
# SPDX-License-Identifier: MIT
# The revocation feed in a real hybridd (auth.tokens: require), doc/token.md "Revocation feed":
# `hybrid token revoke` by jti, by holder key and by minimum epoch while the token's session is
# open: the session ends within 1 s (a `listen` exits 3 with the reason; generous bound: 1 s
# plus slack for a loaded machine) and a new connect with that token is refused with 401; the
# event RevocationApplied announces each entry; the feed survives a restart of hybridd; a
# forged entry and a rollback are ignored and a gap refused, each logged, the daemon serving on.
. "${HYB_IT_DIR:?}/lib.sh"
cd "$T" || exit 1
H=$HYBRID
ENTRY="$PYTHON $HYB_IT_DIR/token-feed-entry.py"
BI=@localhost/org.hybridos.bus/builtin

for k in hub lab mallory admin guest alice guest2 labber; do
        kid=$("$H" token keygen "$T/$k.key") || bad "keygen $k"
        eval "KID_$k=\$kid"
done
CONF="auth:
  tokens: require
  audience: hub-a
  issuers:
    hub: $T/hub.key.pub
    lab: $T/lab.key.pub
store:
  path: $T/store.db"
start_daemon d "$CONF" || finish

# issue KEY ISS SUB HOLDER CAP... > FILE
issue() {
        k=$1 i=$2 s=$3 h=$4; shift 4
        caps=""
        for c in "$@"; do caps="$caps --cap $c"; done
        # shellcheck disable=SC2086
        "$H" token issue --key "$T/$k.key" --iss "$i" --sub "$s" --aud hub-a --holder "$T/$h.key.pub" \
                --dlg 1 $caps
}
issue hub hub admin admin '/#=read,write,delete' 'bus://localhost/#=sub' >admin.tok
issue hub hub guest guest '/sensors/#=read,sub' 'bus://localhost/#=sub' >guest.tok
issue hub hub alice alice '/sensors/#=read,sub' 'bus://localhost/#=sub' >alice.tok
"$H" token attenuate --key alice.key --holder guest2.key.pub --cap '/sensors/#=read,sub' --cap 'bus://localhost/#=sub' "$(cat alice.tok)" >guest2.tok
issue lab lab labber labber '/sensors/#=read,sub' 'bus://localhost/#=sub' >labber.tok
jti_of() { "$H" token inspect "$(cat "$1")" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["blocks"][0]["claims"]["jti"])'; }

# As the admin (any valid token: revoke and feed need no capability of their own).
A() { HYBRID_TOKEN=$T/admin.tok HYBRID_KEY=$T/admin.key "$H" --bus "$SOCK" "$@"; }
# As a token holder: TOKEN KEY CMD...
as() { tk=$1 ky=$2; shift 2; "$H" --bus "$SOCK" --token "$T/$tk.tok" --key "$T/$ky.key" "$@"; }
# A stream held open by a session: NAME TOKEN KEY; waits for it to be listening
session() {
        bg "$1" "$H" --bus "$SOCK" --token "$T/$2.tok" --key "$T/$3.key" listen "$BI" RevocationApplied
        eval "PID_$1=\$BPID"
        wait_until 10 has_line "$T/$1.err" '^ready$' || bad "session $1 opens" "$(cat "$T/$1.err")"
}
gone() { ! kill -0 "$1" 2>/dev/null; }
# ended NAME DESC: the session's stream exited within 1 s + slack, status 3, saying why
ended() {
        eval "p=\$PID_$1"
        if wait_until 3 gone "$p"; then
                wait "$p"
                rc=$?
                check "$2: the session ended, exit 3" [ "$rc" = 3 ]
                check "$2: with the reason" grep -q 'revoked' "$T/$1.err"
        else
                bad "$2: the session ended within 1 s (+ slack)" "still running: $(cat "$T/$1.err")"
        fi
}
still() { eval "p=\$PID_$1"; check "$2" kill -0 "$p"; }

expect "an empty feed lists nothing" 0 "" A token feed
expect "the guest reads under its token" 1 "*" as guest guest store get /sensors/none
check "... refused for a lack of the value, not credentials" sh -c '! grep -q 401 "$1"' - "$T/err"

# --- by jti
session g guest guest
session a alice alice
session w admin admin
expect "revoke --jti prints the entry's seq" 0 1 A token revoke --key "$T/hub.key" --jti "$(jti_of guest.tok)"
ended g "revoke by jti"
still a "the other sessions stay"
check "the admin's stream saw RevocationApplied seq 1" wait_until 3 has_line "$T/w.out" '"seq":1'
expect_err "a new connect with the revoked token: 401" 1 '401' as guest guest store get /sensors/x
check "the daemon logs why" grep -q 'revoked' "$T/d.log"

# --- by holder key: the attenuated token held by guest2 ends, alice's own token stays
session g2 guest2 guest2
expect "revoke --holder" 0 2 A token revoke --key "$T/hub.key" --holder "$T/guest2.key.pub"
ended g2 "revoke by holder key"
still a "alice's session (held by her own key) stays"
expect_err "guest2 cannot reconnect: 401" 1 '401' as guest2 guest2 store get /sensors/x

# --- by minimum epoch: every token of issuer lab below epoch 1 (all of them: epo 0)
session l labber labber
expect "revoke --min-epoch, signed by lab, recorded in an identity log" 0 3 A token revoke --key "$T/lab.key" --min-epoch 1 --log "$T/id.db"
ended l "revoke by min epoch"
still a "hub's tokens are not lab's: alice stays"
expect_err "labber cannot reconnect: 401" 1 '401' as labber labber store get /sensors/x
expect "the identity log's revoke row verifies" 0 "*" "$H" token log --verify --trust lab="$T/lab.key.pub" "$T/id.db"
check "... and names the epoch floor and the feed entry" grep -q '^1 [0-9]* revoke min_epo=1 .* feed seq 3$' "$T/out"

# --- the feed as the CLI lists it
run A token feed
check "feed lists 3 entries" [ "$(wc -l <"$T/out")" = 3 ]
check "entry 1 names the jti" grep -q "^1 hub jti=$(jti_of guest.tok)\$" "$T/out"
check "entry 2 names guest2's key" grep -q "^2 hub holder=$KID_guest2\$" "$T/out"
check "entry 3 is lab's min epoch" grep -q '^3 lab min_epo=1$' "$T/out"
run A --json token feed
check "--json: an array with the entries' texts" "$PYTHON" -c '
import json, sys
a = json.load(open(sys.argv[1]))
assert [e["seq"] for e in a] == [1, 2, 3], a
assert all(e["entry"].count(".") == 2 for e in a)
assert a[2]["content"]["iss"] == "lab" and a[2]["content"]["min_epo"] == 1
' "$T/out"

# --- forgery, rollback, replay, gap: ignored or refused, logged, the daemon serves on
expect_err "an entry signed by an untrusted key: 401" 1 '401' A token revoke --key "$T/mallory.key" --jti "$(jti_of alice.tok)"
check "... logged" grep -q 'revocation entry from uid .* refused' "$T/d.log"
still a "... alice's session stays"
ROLL=$($ENTRY "$T/hub.key" 2 "$(jti_of alice.tok)")
expect "a validly signed rollback (seq 2 again) is ignored" 0 '*' A call "$BI" deliverRevocation "{\"entry\":\"$ROLL\"}"
check "... answered ignored" grep -q '"result":"ignored"' "$T/out"
check "... logged" grep -q 'revocation entry 2 .* ignored' "$T/d.log"
still a "... alice's session stays"
FIRST=$(A --json token feed | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)[0]["entry"])')
expect "a replay of entry 1 is ignored" 0 '*' A call "$BI" deliverRevocation "{\"entry\":\"$FIRST\"}"
check "... answered ignored" grep -q '"result":"ignored"' "$T/out"
GAP=$($ENTRY "$T/hub.key" 6 "$(jti_of alice.tok)")
expect_err "an entry after a gap (6 on head 3) is refused: 409" 1 '409' A call "$BI" deliverRevocation "{\"entry\":\"$GAP\"}"
check "... logged" grep -q 'revocation entry 6 .* refused: a gap after 3' "$T/d.log"
still a "... alice's session stays"
NEXT=$($ENTRY "$T/hub.key" 4 never-issued)
expect "the missing entry 4, made by another implementation, applies" 0 '*' A call "$BI" deliverRevocation "{\"entry\":\"$NEXT\"}"
check "... answered applied" grep -q '"result":"applied","seq":4' "$T/out"
expect "the daemon serves on: the admin reads" 1 "*" A store get /sensors/none
check "... refused for a lack of the value, not credentials" sh -c '! grep -q 401 "$1"' - "$T/err"
expect_err "peers cannot write the feed's store branch, whatever their token" 1 '403.*read-only' A store put /sys/token/feed/5 x
expect_err "... nor delete it" 1 '403' A store del /sys/token/feed/1

# --- a restart: the feed comes back from the store
stop "$DPID"
start_daemon d2 "$CONF" || finish
SOCK=$T/d2.sock
run A token feed
check "after a restart the feed still has 4 entries" [ "$(wc -l <"$T/out")" = 4 ]
expect_err "the jti revoked before the restart: 401" 1 '401' as guest guest store get /sensors/x
expect_err "the holder revoked before the restart: 401" 1 '401' as guest2 guest2 store get /sensors/x
expect_err "lab's epoch floor before the restart: 401" 1 '401' as labber labber store get /sensors/x
expect "alice still connects" 1 "*" as alice alice store get /sensors/none
check "... refused for a lack of the value, not credentials" sh -c '! grep -q 401 "$1"' - "$T/err"
expect "revoke continues the sequence" 0 5 A token revoke --key "$T/hub.key" --jti "$(jti_of alice.tok)"
expect_err "usage: no handle" 2 'jti' "$H" token revoke --key "$T/hub.key"
expect_err "usage: two handles" 2 'jti' "$H" token revoke --key "$T/hub.key" --jti x --min-epoch 2
expect_err "usage: --min-epoch 0" 2 'min-epoch' "$H" token revoke --key "$T/hub.key" --min-epoch 0
finish
