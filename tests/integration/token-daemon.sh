#!/bin/sh
# SPDX-License-Identifier: MIT
# Security tokens against a real hybridd (doc/token.md "Handshake", "What each operation
# needs"; doc/config.md `auth`): the connect-level attacks, each refused with one uniform
# 401 while the reason goes to the daemon's log and the daemon keeps serving others; the
# per-operation 403s of bus and store operations; a session closed at its token's exp;
# auth.tokens require (root refused without a token) and accept (token-less peers keep the
# uid policy).  The proofs of token-proof.py are built with Python `cryptography` from the
# documented bytes, independently of our client library.
. "$HYB_IT_DIR/lib.sh"
PROOF="$HYB_IT_DIR/token-proof.py"

hy() { "$HYBRID" --bus "$SOCK" "$@"; }
# tok TOKENFILE KEYFILE ARGS...: the CLI with those credentials (files in $T)
tok() { tf=$1 kf=$2; shift 2; "$HYBRID" --bus "$SOCK" --token "$T/$tf" --key "$T/$kf" "$@"; }
# uniform DESC: the last refusal the peer saw says only 401, and the log names the reason
logged() { grep -q -- "auth refused for uid [0-9]* pid [0-9]*: 401 .*$1" "$T/d.log"; }
serving() { hy store get /sensors/t >/dev/null 2>&1; }

cd "$T" || exit 1
for k in iss rogue holder other guest; do
        "$HYBRID" token keygen "$T/$k.key" >/dev/null || { bad "keygen $k"; finish; }
done
issue() { # FILE TTL CAP... : a token of acme for the holder key, audience hub1
        f=$1 ttl=$2; shift 2
        set -- $(for c in "$@"; do printf -- "--cap %s " "$c"; done)
        "$HYBRID" token issue --key "$T/iss.key" --iss acme --sub alice --aud hub1 \
                --holder "$T/holder.key.pub" --ttl "$ttl" --dlg 1 "$@" >"$T/$f"
}
CAPS="/sensors/#=read,sub bus://localhost/org.example.app/+=reg,pub \
bus://localhost/org.hybridos.cli/+/ping=call /home/+/temp=sub,read"
issue good 3600 $CAPS || bad "issue"
"$HYBRID" token issue --key "$T/iss.key" --iss acme --sub alice --aud elsewhere \
        --holder "$T/holder.key.pub" --cap '/sensors/#=read' >"$T/aud"
"$HYBRID" token issue --key "$T/rogue.key" --iss acme --sub alice --aud hub1 \
        --holder "$T/holder.key.pub" --cap '/sensors/#=read' >"$T/rogue"
issue short 1 '/sensors/#=read'

start_daemon d "auth:
  tokens: accept
  audience: hub1
  issuers:
    acme: $T/iss.key.pub
limits:
  auth_timeout_ms: 1000
log:
  level: debug" || finish
hy store put /sensors/t 21 >/dev/null
hy store put /home/x/temp 5 >/dev/null

# accept: a good token reads what it grants; a token-less peer keeps the uid policy (root: all)
expect "good token: store get" 0 "21" tok good holder.key store get /sensors/t
check "... the library announced the token ahead of its AUTH" grep -q 'token announced, being verified (2 checks)' "$T/d.log"
expect "accept: no token, uid policy" 0 "" hy store put /other/x 1
expect "accept: no token reads back" 0 "1" hy store get /other/x

# connect-level attacks: uniform 401, reason logged, the daemon keeps serving
sleep 2 # the 1-second token is past its exp now
expect_err "expired token: 401" 1 '^hybrid: store: 401 .*: unauthorized$' tok short holder.key store get /sensors/t
check "expired: reason logged" logged "expired"
expect_err "wrong audience: 401" 1 '^hybrid: store: 401 .*: unauthorized$' tok aud holder.key store get /sensors/t
check "wrong audience: reason logged" logged "aud"
expect_err "unknown issuer key (kid): 401" 1 '^hybrid: store: 401 .*: unauthorized$' tok rogue holder.key store get /sensors/t
check "unknown kid: reason logged" logged "token: "
expect_err "proof by the wrong key: 401" 1 '^hybrid: store: 401 .*: unauthorized$' tok good other.key store get /sensors/t
check "wrong key: reason logged" logged "proof of possession"
check "the daemon keeps serving" serving
run "$PYTHON" "$PROOF" good "$SOCK" "$T/good" "$T/holder.key"
check "proof built from the documented bytes (python cryptography): 200" [ "$RC" = 0 ]
[ "$RC" = 0 ] || bad "python good" "$(cat "$T/out" "$T/err")"
run "$PYTHON" "$PROOF" wrongkey "$SOCK" "$T/good" "$T/holder.key" "$T/other.key"
check "python: proof by another key: 401" [ "$RC" = 0 ]
# the token announced ahead of its AUTH (doc/protocol.md "Handshake"): the same token
# with its proof gets in (whether its checks ran before the AUTH came or not); another
# token in the AUTH, a forged one, one with a bad signature (its block checked in two
# parts), a second announcement, an AUTH without token or with a proof over other bytes:
# 401, reasons logged
issue good2 3600 '/sensors/#=read' || bad "issue good2"
run "$PYTHON" "$PROOF" early "$SOCK" "$T/good" "$T/holder.key" "$T/good2" "$T/rogue"
check "python: announced tokens (8 cases)" [ "$RC" = 0 ]
[ "$RC" = 0 ] || bad "early" "$(cat "$T/out" "$T/err")"
check "announced: another token in the AUTH logged" logged "the token differs from the one announced"
check "announced: a second announcement logged" logged "unexpected token announcement"
check "announced: no token in the AUTH logged" logged "a token was announced, the AUTH has none"
check "announced: the bad signature logged" logged "token: .*signature"
run "$PYTHON" "$PROOF" replay "$SOCK" "$T/good" "$T/holder.key"
check "challenge replay (other connection, twice, used nonce)" [ "$RC" = 0 ]
[ "$RC" = 0 ] || bad "replay" "$(cat "$T/out")"
run "$PYTHON" "$PROOF" late "$SOCK" "$T/good" "$T/holder.key" 2
check "challenge answered late (after auth_timeout_ms): closed" [ "$RC" = 0 ]
[ "$RC" = 0 ] || bad "late" "$(cat "$T/out")"
run "$PYTHON" "$PROOF" oversized "$SOCK" "$T/good" "$T/holder.key"
check "oversized token and auth packet: 401" [ "$RC" = 0 ]
[ "$RC" = 0 ] || bad "oversized" "$(cat "$T/out")"
check "oversized: reason logged" logged "auth packet too large"
# wrong channel binding: a proof bound to uid 0 presented by uid 65534
mkdir -p "$T/nb" && cp "$PROOF" "$HYB_IT_DIR/rawbus.py" "$T/good" "$T/holder.key" "$T/nb/" &&
        chmod -R a+rX "$T/nb"
run as_nobody "$PYTHON" "$T/nb/token-proof.py" binding "$SOCK" "$T/nb/good" "$T/nb/holder.key" 0
check "wrong channel binding (uid 0's proof from uid 65534): 401" [ "$RC" = 0 ]
[ "$RC" = 0 ] || bad "binding" "$(cat "$T/out" "$T/err")"
check "wrong binding: reason logged" logged "uid 65534"
check "the daemon still serves after the attacks" serving

# attenuation cannot escalate: a broader cap in the child grants nothing more
"$HYBRID" token attenuate --key "$T/holder.key" --holder "$T/guest.key.pub" \
        --cap '/#=read,write,delete' "$(cat "$T/good")" >"$T/esc" 2>"$T/err"
if [ -s "$T/esc" ]; then
        expect_err "attenuated escalation: no write" 1 '^hybrid: store: 403 ' \
                tok esc guest.key store put /sensors/t 99
        expect_err "attenuated escalation: no read outside" 1 '^hybrid: store: 403 ' \
                tok esc guest.key store get /other/x
else
        ok "attenuate refuses a broader cap: $(head -c 100 "$T/err")"
fi
"$HYBRID" token attenuate --key "$T/holder.key" --holder "$T/guest.key.pub" \
        --cap '/sensors/#=read' "$(cat "$T/good")" >"$T/guest"
expect "attenuated token: read within" 0 "21" tok guest guest.key store get /sensors/t
expect_err "attenuated token shown with the parent's holder key: 401" 1 '^hybrid: store: 401 ' \
        tok guest holder.key store get /sensors/t

# per-operation 403s (the session stays)
expect_err "store write not granted: 403" 1 '^hybrid: store: 403 ' tok good holder.key store put /sensors/t 5
expect_err "store delete not granted: 403" 1 '^hybrid: store: 403 ' tok good holder.key store del /sensors/t
expect_err "store read outside the grant: 403" 1 '^hybrid: store: 403 ' tok good holder.key store get /other/x
expect_err "subscribe home/# with a grant of home/+/temp: 403" 1 '403' \
        tok good holder.key store watch '/home/#' --count 1
expect "read /home/x/temp within /home/+/temp" 0 "5" tok good holder.key store get /home/x/temp
expect_err "connect as an endpoint the token does not cover: 401" 1 '401' \
        "$HYBRID" --bus "$SOCK" --token "$T/good" --key "$T/holder.key" --app org.example.other \
        call @localhost/org.hybridos.bus/builtin echo '{}'
expect_err "register outside the grant: 403" 1 '403' tok good holder.key serve ping '{}'
"$HYBRID" --bus "$SOCK" --app org.example.app --runner main serve ping '"pong"' >"$T/srv.out" 2>"$T/srv.err" &
SPID=$!
PIDS="$PIDS $SPID"
wait_until 10 has_line "$T/srv.out" '^@' || bad "server starts" "$(cat "$T/srv.err")"
expect_err "call not granted: 403" 1 '^hybrid: call: 403 ' \
        tok good holder.key call @localhost/org.example.app/main ping
expect "call without a token (uid policy)" 0 '"pong"' hy call @localhost/org.example.app/main ping
expect_err "fire of an event not granted: 403" 1 '403' tok good holder.key fire alarm '{}'
expect_err "monitor without admin: 403" 1 '403' tok good holder.key monitor --count 1
run "$HYBRID" --bus "$SOCK" --token "$T/good" --key "$T/holder.key" --app org.example.app \
        --runner main2 list --json
check "list as a token peer works" [ "$RC" = 0 ]
expect "the endpoint the token covers serves" 0 "*" "$HYBRID" --bus "$SOCK" --token "$T/good" \
        --key "$T/holder.key" --app org.example.app --runner main3 call @localhost/org.hybridos.bus/builtin echo '{}'

# a session is closed at its token's exp: the stream exits 3 with the reason
issue ttl3 3 '/sensors/#=read,sub'
bg w "$HYBRID" --bus "$SOCK" --token "$T/ttl3" --key "$T/holder.key" store watch '/sensors/#'
WPID=$BPID
ready w || bad "watch with a 3-second token starts" "$(cat "$T/w.err")"
wait_until 30 sh -c "! kill -0 $WPID" || bad "the session is closed after the token's exp"
wait "$WPID"
WRC=$?
check "expired session: the stream exits 3" [ "$WRC" = 3 ]
check "expired session: the stream says why" grep -q 'expired' "$T/w.err"
check "expired session: logged" grep -q 'session closed, the token expired' "$T/d.log"
kill -TERM "$SPID" 2>/dev/null
stop "$DPID"

# require: every peer without a valid token is refused, root included
start_daemon r "auth:
  tokens: require
  audience: hub1
  issuers:
    acme: $T/iss.key.pub
boot:
  data:
    /sensors/t: '7'" || finish
expect_err "require: root without a token: 401" 1 '^hybrid: store: 401 ' hy store get /sensors/t
check "require: reason logged" grep -q '401 no token' "$T/r.log"
expect "require: a good token" 0 "7" tok good holder.key store get /sensors/t
run "$PYTHON" "$PROOF" good "$SOCK" "$T/good" "$T/holder.key"
check "require: python-built proof accepted" [ "$RC" = 0 ]
stop "$DPID"
finish
