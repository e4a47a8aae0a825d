#!/bin/sh
# SPDX-License-Identifier: MIT
# Every token-level attack case of doc/token.md against one real hybridd with
# auth.tokens require: token-attacks.py builds each bad token with Python `cryptography`
# (issuer keys made by OpenSSL, PKCS#8 and SEC1) and asserts the uniform 401, the reason in
# the daemon's log and a good token still served after each.  Then the escalation tokens
# it leaves (a child block asking for more than its parent) are tried through the CLI:
# accepted at connect, but they grant nothing beyond the parent (403).
. "$HYB_IT_DIR/lib.sh"

cd "$T" || exit 1
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/acme.key" 2>"$T/err" &&
        openssl ecparam -name prime256v1 -genkey -noout -out "$T/beta.key" 2>>"$T/err" &&
        openssl pkey -in "$T/acme.key" -pubout -out "$T/acme.pub" 2>>"$T/err" &&
        openssl pkey -in "$T/beta.key" -pubout -out "$T/beta.pub" 2>>"$T/err" ||
        { bad "openssl makes the issuer keys" "$(cat "$T/err")"; finish; }

start_daemon d "auth:
  tokens: require
  audience: hub1
  issuers:
    acme: $T/acme.pub
    beta: $T/beta.pub
boot:
  data:
    /sensors/t: '21'
    /other/x: '1'
log:
  level: debug" || finish

mkdir -p "$T/esc"
"$PYTHON" "$HYB_IT_DIR/token-attacks.py" "$SOCK" "$T/d.log" "$T/acme.key" "$T/beta.key" hub1 \
        "$T/esc" >"$T/py.out" 2>"$T/py.err"
RC=$?
if [ "$RC" = 77 ]; then
        cat "$T/py.out"
        exit 77
fi
NPASS=$((NPASS + $(grep -c '^ok ' "$T/py.out")))
sed -n 's/^ok /ok - /p; s/^FAIL /FAIL - /p' "$T/py.out"
NFAIL=$((NFAIL + $(grep -c '^FAIL ' "$T/py.out")))
check "token-attacks.py ran to the end" [ "$RC" = 0 -o "$(grep -c '^FAIL ' "$T/py.out")" != 0 ]
[ "$RC" = 0 ] || [ "$(grep -c '^FAIL ' "$T/py.out")" != 0 ] || bad "python" "$(tail -20 "$T/py.err")"
printf '%s attack checks passed in python\n' "$(grep -c '^ok ' "$T/py.out")"

# escalation by attenuation: the child's broader cap or extra action has no effect
tok() { tf=$1; shift; "$HYBRID" --bus "$SOCK" --token "$T/esc/$tf" --key "$T/esc/guest.key" "$@"; }
expect "escalation tokens connect and read what the parent grants" 0 "21" \
        tok esc-extra-action.tok store get /sensors/t
expect_err "an extra action in the child (write): 403" 1 '^hybrid: store: 403 ' \
        tok esc-extra-action.tok store put /sensors/t 99
expect_err "a broader resource in the child (/#): 403 outside the parent's" 1 '^hybrid: store: 403 ' \
        tok esc-broader-cap.tok store get /other/x
expect "nothing was written" 0 "21" tok esc-broader-cap.tok store get /sensors/t
# the CLI's reason for a token that quotes control characters stays one plain line
run "$HYBRID" token verify --trust acme="$T/acme.pub" --aud hub1 "$(cat "$T/esc/inject.tok")"
check "token verify of a token with a newline in a claim name: exit 1" [ "$RC" = 1 ]
check "... its reason is one line on stderr" [ "$(wc -l <"$T/err")" = 1 ]
check "... naming the claim" grep -q '^hybrid: token verify: .*unexpected claim x\\x0ahybridd' "$T/err"
check "... without control characters" sh -c '! LC_ALL=C grep -q "$(printf "\033")" "$1"' - "$T/err"
check "the daemon still runs" kill -0 "$DPID"
stop "$DPID"
finish
