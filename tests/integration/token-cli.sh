#!/bin/sh
# SPDX-License-Identifier: MIT
# `hybrid token keygen|issue|attenuate|inspect|verify` end to end, no daemon: the
# commands, options and exit statuses of doc/token.md (0 valid and allowed, 1 not, 2 usage).
. "${HYB_IT_DIR:?}/lib.sh"
cd "$T" || exit 1
H=$HYBRID

# keys
for k in issuer alice guest mallory; do
        run "$H" token keygen "$T/$k.key"
        check "keygen $k exits 0" [ "$RC" = 0 ]
        check "keygen $k prints a 43-character kid" [ "$(OUT | tr -d '\n' | wc -c)" = 43 ]
        eval "KID_$k=\$(OUT)"
done

run "$H" token issue --key issuer.key --iss hub --sub alice --aud hub-a,hub-b --holder alice.key.pub \
        --cap '/sensors/#=read,sub' --cap '/home/+/temp=read,write' --cap 'bus://hub/org.example/r1/#=call' \
        --ttl 600 --dlg 1
check "issue exits 0" [ "$RC" = 0 ]
TOK=$(OUT)
check "issue prints one block of three parts on one line" \
        sh -c '[ "$(printf %s "$1" | tr -cd . | wc -c)" = 2 ] && [ "$(printf %s "$1" | tr -cd "~" | wc -c)" = 0 ] && [ "$(printf "%s\n" "$1" | wc -l)" = 1 ]' - "$TOK"
NOW=$(date +%s)

V() { "$H" token verify --trust hub=issuer.key.pub "$@"; }
run V --aud hub-a "$TOK"
check "verify: valid token exits 0" [ "$RC" = 0 ]
check "verify prints sub" grep -q '"sub":"alice"' "$T/out"
check "verify prints the holder kid" grep -q "\"holder\":\"$KID_alice\"" "$T/out"
check "verify prints the cap" grep -q '"resource":"/home/+/temp","actions":\["read","write"\]' "$T/out"
expect "verify for the other audience" 0 "*" V --aud hub-b "$TOK"
expect "--check allowed" 0 "*" V --aud hub-a --check '/sensors/kitchen/temp=read' "$TOK"
expect "--check two actions of one cap" 0 "*" V --aud hub-a --check '/home/attic/temp=read,write' "$TOK"
expect "--check a pattern within a grant" 0 "*" V --aud hub-a --check '/sensors/#=sub' "$TOK"
expect "--check bus name, lower-cased" 0 "*" V --aud hub-a --check 'bus://HUB/org.example/r1/Ping=call' "$TOK"
expect "--check several, all allowed" 0 "*" V --aud hub-a --check '/sensors/a=read' --check '/home/x/temp=write' "$TOK"
expect_err "--check an action not granted" 1 'not allowed' V --aud hub-a --check '/sensors/a=write' "$TOK"
expect_err "--check one of several denied" 1 'not allowed' V --aud hub-a --check '/sensors/a=read' --check '/home/x/humidity=read' "$TOK"
expect_err "--check a pattern wider than the grant" 1 'not allowed' V --aud hub-a --check '/home/#=read' "$TOK"
expect_err "--check home//temp" 1 'not allowed' V --aud hub-a --check '/home//temp=read' "$TOK"
expect_err "--check home/%2F/temp" 1 'not allowed' V --aud hub-a --check '/home/%2F/temp=read' "$TOK"
expect_err "--check home/../admin" 1 'not allowed' V --aud hub-a --check '/home/x/../../admin=read' "$TOK"
expect_err "wrong audience" 1 'UNAUTHORIZED' V --aud hub-c "$TOK"
expect_err "expired (--at past exp + leeway)" 1 'expired' V --aud hub-a --at $((NOW + 600 + 61)) "$TOK"
expect "within the 60 s leeway" 0 "*" V --aud hub-a --at $((NOW + 600 + 30)) "$TOK"
expect_err "not yet valid (--at before iat/nbf - leeway)" 1 'UNAUTHORIZED' V --aud hub-a --at $((NOW - 3600)) "$TOK"
expect_err "issuer trusted with another key" 1 'UNAUTHORIZED' "$H" token verify --trust hub=mallory.key.pub --aud hub-a "$TOK"
expect_err "issuer not trusted at all" 1 'UNAUTHORIZED' "$H" token verify --trust other=issuer.key.pub --aud hub-a "$TOK"
expect_err "not a token" 1 'UNAUTHORIZED' V --aud hub-a not-a-token
BAD=$(printf %s "$TOK" | awk -F. '{ p = $2; c = substr(p, 10, 1); r = (c == "A") ? "B" : "A"; printf "%s.%s%s%s.%s", $1, substr(p, 1, 9), r, substr(p, 11), $3 }')
expect_err "one payload character changed" 1 'UNAUTHORIZED' V --aud hub-a "$BAD"
expect_err "no --trust: usage" 2 'trust' "$H" token verify --aud hub-a "$TOK"
expect_err "no --aud: usage" 2 'aud' V "$TOK"
expect_err "bad --check: usage" 2 'check' V --aud hub-a --check '/a=fly' "$TOK"
expect_err "bad --at: usage" 2 'at' V --aud hub-a --at soon "$TOK"
expect_err "no TOKEN: usage" 2 'TOKEN' V --aud hub-a
expect_err "option of another subcommand: usage" 2 'dlg' V --aud hub-a --dlg 1 "$TOK"

# attenuate: alice hands guest a read-only view of /sensors
GNOW=$(date +%s)
run sh -c 'printf "%s\n" "$1" | "$2" token attenuate --key alice.key --holder guest.key.pub --cap "/sensors/#=read" --ttl 300 -' - "$TOK" "$H"
check "attenuate from stdin exits 0" [ "$RC" = 0 ]
GUEST=$(OUT)
check "attenuate adds one block" [ "$(printf %s "$GUEST" | tr -cd '~' | wc -c)" = 1 ]
run V --aud hub-a "$GUEST"
check "attenuated token verifies" [ "$RC" = 0 ]
check "its holder is guest" grep -q "\"holder\":\"$KID_guest\"" "$T/out"
# its own ttl counts from the attenuation (a loaded machine may take seconds to get there)
GEXP=$(sed -n 's/.*"exp":\([0-9]*\).*/\1/p' "$T/out")
check "guest exp is the attenuation time + 300 s" \
        sh -c '[ "$1" -ge "$2" ] && [ "$1" -le "$3" ]' - "$GEXP" $((GNOW + 300)) $(($(date +%s) + 300))
expect "guest may read /sensors" 0 "*" V --aud hub-a --check '/sensors/kitchen/temp=read' "$GUEST"
expect_err "guest may not subscribe" 1 'not allowed' V --aud hub-a --check '/sensors/kitchen/temp=sub' "$GUEST"
expect_err "guest may not write /home" 1 'not allowed' V --aud hub-a --check '/home/x/temp=write' "$GUEST"
expect_err "guest token expires with its own ttl" 1 'expired' V --aud hub-a --at $((GEXP + 61)) "$GUEST"
expect "guest token within its leeway" 0 "*" V --aud hub-a --at $((GEXP + 30)) "$GUEST"
run "$H" token attenuate --key alice.key --holder guest.key.pub --cap '#=read,write,admin' --aud hub-a,hub-z "$TOK"
WIDE=$(OUT)
expect_err "a wider child grants nothing new" 1 'not allowed' V --aud hub-a --check '/sensors/a=admin' "$WIDE"
expect_err "a wider child audience is not honoured" 1 'UNAUTHORIZED' V --aud hub-z "$WIDE"
expect "the narrow audience still verifies" 0 "*" V --aud hub-a --check '/home/x/temp=write' "$WIDE"
expect_err "attenuate with a key that is not the holder's" 1 'holder' "$H" token attenuate --key mallory.key --holder guest.key.pub "$TOK"
expect_err "no delegation left (dlg 1 used)" 1 'delegation' "$H" token attenuate --key guest.key --holder mallory.key.pub "$GUEST"
expect_err "attenuate needs --holder" 2 'holder' "$H" token attenuate --key alice.key "$TOK"
expect_err "attenuate with a public key to sign" 1 'public key' "$H" token attenuate --key alice.key.pub --holder guest.key.pub "$TOK"

# inspect
run "$H" token inspect "$GUEST"
check "inspect exits 0" [ "$RC" = 0 ]
check "inspect says unverified" grep -q '"verified":false' "$T/out"
check "inspect shows both blocks" [ "$(grep -o '"header"' "$T/out" | wc -l)" = 2 ]
check "inspect shows the attenuation typ" grep -q '"typ":"hyb-att+jwt"' "$T/out"
expect_err "inspect of garbage" 1 'UNAUTHORIZED' "$H" token inspect 'a.b'

# issue errors
expect_err "issue without --cap: usage" 2 'cap' "$H" token issue --key issuer.key --iss hub --sub a --aud x --holder alice.key.pub
expect_err "issue with an invalid pattern: usage" 2 'canonical' "$H" token issue --key issuer.key --iss hub --sub a --aud x --holder alice.key.pub --cap '/a//b=read'
expect_err "issue with --dlg 4: usage" 2 'dlg' "$H" token issue --key issuer.key --iss hub --sub a --aud x --holder alice.key.pub --cap '/a=read' --dlg 4
expect_err "issue with a missing key file" 1 'nope' "$H" token issue --key nope.key --iss hub --sub a --aud x --holder alice.key.pub --cap '/a=read'
finish
