#!/bin/sh
# SPDX-License-Identifier: MIT
# --token/--key and $HYBRID_TOKEN/$HYBRID_KEY on every bus and store command of `hybrid`
# (doc/hybrid.md OPTIONS, doc/token.md "Connecting with a token") against a hybridd with
# auth.tokens require: each command works with the credentials from the environment, and
# with a key that is not the token's holder prints `<what>: 401` and exits 1 (repl and run
# included); the streams (store watch, listen, monitor) whose session the daemon ends on a
# revocation exit 3 with the reason.
. "${HYB_IT_DIR:?}/lib.sh"
cd "$T" || exit 1
H=$HYBRID
BI=@localhost/org.hybridos.bus/builtin

for k in iss holder other adm; do
        "$H" token keygen "$T/$k.key" >/dev/null || bad "keygen $k"
done
"$H" token issue --key "$T/iss.key" --iss acme --sub alice --aud hub1 --holder "$T/holder.key.pub" \
        --cap '/sensors/#=read,write,delete,sub' --cap 'bus://localhost/#=call,reg,sub,pub,admin' \
        >"$T/tok" || bad "issue"
"$H" token issue --key "$T/iss.key" --iss acme --sub admin --aud hub1 --holder "$T/adm.key.pub" \
        --cap '/sensors/#=read' >"$T/adm.tok" || bad "issue adm"
start_daemon d "auth:
  tokens: require
  audience: hub1
  issuers:
    acme: $T/iss.key.pub" || finish
export HYBRID_BUS="$SOCK" HYBRID_TOKEN="$T/tok" HYBRID_KEY="$T/holder.key"

# each command with the environment's credentials
expect "store put" 0 "" "$H" store put /sensors/t 21
expect "store get" 0 "21" "$H" store get /sensors/t
expect "store del" 0 "" "$H" store del /sensors/t
"$H" store put /sensors/t 22
expect "call" 0 '{"a":1}' "$H" call "$BI" echo '{"a":1}'
run "$H" list --json
check "list" [ "$RC" = 0 ]
check "list: a JSON array" "$PYTHON" -c 'import json,sys; assert isinstance(json.load(open(sys.argv[1])), list)' "$T/out"
expect "fire" 0 '{"delivered":0,"failed":0}' "$H" fire alarm '{}'
printf '/sensors/u -> 5\n*/sensors/t\n' >"$T/prog.mm"
expect "run" 0 "==>5
==>22" "$H" run "$T/prog.mm"
expect "repl" 0 "==>22" sh -c 'printf "*/sensors/t\n" | "$0" repl' "$H"
serve_bg srv --app org.example.app --runner main ping '"pong"'
expect "call a served procedure" 0 '"pong"' "$H" call @localhost/org.example.app/main ping
LS='{"endpointName":"'$BI'","bubbleName":"RevocationApplied"}'
expect "listing another endpoint's subscribers with admin on bus://localhost/#" 0 '*' \
        "$H" call "$BI" listEventSubscribers "$LS"
expect_err "... without admin: 403" 1 '^hybrid: call: 403 ' \
        "$H" --token "$T/adm.tok" --key "$T/adm.key" call "$BI" listEventSubscribers "$LS"
expect_err "monitor without admin: 403" 1 '^hybrid: monitor: 403 ' \
        "$H" --token "$T/adm.tok" --key "$T/adm.key" monitor --count 1

# each command with a key that is not the token's holder: 401, exit 1
set -f # the globs below are arguments, not file names
for c in "store put /sensors/t 1" "store get /sensors/t" "store del /sensors/t" "store watch /sensors/#" \
        "call $BI echo {}" "list" "fire alarm {}" "serve ping {}" "listen @localhost/* *" "monitor"; do
        w=$(echo "$c" | cut -d' ' -f1)
        # shellcheck disable=SC2086
        expect_err "$c: the wrong key: 401" 1 "^hybrid: $w: 401 " "$H" --key "$T/other.key" $c
done
set +f
expect_err "run: the wrong key: 401" 1 ': 401 ' "$H" --key "$T/other.key" run "$T/prog.mm"
expect_err "repl: the wrong key: 401" 1 ': 401 ' sh -c 'printf "*/sensors/t\n" | "$0" --key "$1" repl' "$H" "$T/other.key"
expect_err "\$HYBRID_KEY of another key: 401" 1 '^hybrid: store: 401 ' env HYBRID_KEY="$T/other.key" "$H" store get /sensors/t
expect_err "--token overrides \$HYBRID_TOKEN (adm's token, holder's key): 401" 1 '^hybrid: store: 401 ' \
        "$H" --token "$T/adm.tok" store get /sensors/t
expect "--token and --key override the environment" 0 "22" "$H" --token "$T/adm.tok" --key "$T/adm.key" store get /sensors/t

# the streams whose session a revocation ends exit 3 with the reason
bg watch "$H" store watch '/sensors/#'
WP=$BPID
bg listen "$H" listen '@localhost/*' '*'
LP=$BPID
bg mon "$H" monitor
MP=$BPID
for s in watch listen mon; do
        wait_until 10 has_line "$T/$s.err" '^ready$' || bad "$s starts" "$(cat "$T/$s.err")"
done
expect "revoke the holder (adm's credentials)" 0 1 env HYBRID_TOKEN="$T/adm.tok" HYBRID_KEY="$T/adm.key" \
        "$H" token revoke --key "$T/iss.key" --holder "$T/holder.key.pub"
for s in watch:$WP listen:$LP mon:$MP; do
        n=${s%%:*} p=${s#*:}
        if wait_until 5 sh -c "! kill -0 $p"; then
                wait "$p"
                check "$n: the session ended: exit 3" [ "$?" = 3 ]
                check "$n: with the reason" grep -q '401 .*session closed: the token was revoked' "$T/$n.err"
        else
                bad "$n: the session ended" "$(cat "$T/$n.err")"
        fi
done
finish
