#!/bin/sh
# SPDX-License-Identifier: MIT
# `hybrid token log`: the hash-chained identity log in SQLite.  Rows appended with
# `log add` verify; any rewrite of history made with the sqlite3 tool (a changed
# column, a deleted or inserted row, rows re-chained without the issuer's key) makes
# `log --verify` exit 1 naming the row; usage errors exit 2.
. "${HYB_IT_DIR:?}/lib.sh"
cd "$T" || exit 1
H=$HYBRID

for k in issuer other device; do
        run "$H" token keygen "$T/$k.key"
        check "keygen $k" [ "$RC" = 0 ]
done
KID=$("$H" token keygen "$T/rot.key")

expect "enroll is row 1" 0 1 "$H" token log add --key issuer.key --kind enroll --subject device-1 --detail "key $KID" id.db
expect "grant is row 2" 0 2 "$H" token log add --key issuer.key --kind grant --subject device-1 --detail '/sensors/#=read' id.db
expect "rotate is row 3" 0 3 "$H" token log add --key issuer.key --kind rotate --subject device-1 id.db
expect "revoke is row 4" 0 4 "$H" token log add --key issuer.key --kind revoke --subject device-1 id.db
V() { "$H" token log --verify --trust hub=issuer.key.pub "$@"; }
expect "--verify a good log" 0 "*" V id.db
check "it lists the 4 rows" [ "$(wc -l <"$T/out")" = 4 ]
check "row 2 names its kind, subject and detail" grep -q '^2 [0-9]* grant device-1 .* /sensors/#=read$' "$T/out"
run "$H" --json token log id.db
check "--json: row 1 has an empty prev" grep -q '"seq":1,.*"prev":""' "$T/out"
check "--json: row 2's prev is row 1's hash" \
        sh -c 'h1=$(sed -n 1p "$1" | sed "s/.*\"hash\":\"\([^\"]*\)\".*/\1/"); sed -n 2p "$1" | grep -q "\"prev\":\"$h1\""' - "$T/out"

tamper() { cp id.db t.db && sqlite3 t.db "$1"; }
tamper "UPDATE identity_log SET subject = 'device-2' WHERE seq = 2"
expect_err "a changed subject" 1 'row 2' V t.db
tamper "UPDATE identity_log SET kind = 'grant' WHERE seq = 4"
expect_err "a changed kind" 1 'row 4' V t.db
tamper "UPDATE identity_log SET at = at + 1 WHERE seq = 1"
expect_err "a changed time" 1 'row 1' V t.db
tamper "UPDATE identity_log SET at = at + 0.5 WHERE seq = 3"
expect_err "a time made a real (the same integer part)" 1 'row 3' V t.db
tamper "DELETE FROM identity_log WHERE seq = 2"
expect_err "a deleted row" 1 'row 3' V t.db
tamper "DELETE FROM identity_log WHERE seq = 2; UPDATE identity_log SET seq = seq - 1 WHERE seq > 2"
expect_err "a deleted row, the rest renumbered" 1 'row 2' V t.db
tamper "UPDATE identity_log SET seq = 9 WHERE seq = 1; UPDATE identity_log SET seq = 1 WHERE seq = 2; UPDATE identity_log SET seq = 2 WHERE seq = 9"
expect_err "two rows swapped" 1 'row 1' V t.db
# Rows re-signed by another key: a log rewritten by someone without the issuer's key.
cp id.db t.db
"$H" token log add --key other.key --kind grant --subject device-1 --detail '/#=admin' t.db >/dev/null
expect_err "a row appended with another key" 1 'row 5.*untrusted' V t.db
expect "the same row verifies when that key is trusted too" 0 "*" "$H" token log --verify --trust hub=issuer.key.pub --trust other=other.key.pub t.db
rm -f o.db
"$H" token log add --key other.key --kind enroll --subject device-1 --detail "key $KID" o.db >/dev/null
"$H" token log add --key other.key --kind grant --subject device-1 --detail '/#=admin' o.db >/dev/null
expect_err "a whole history written by another key" 1 'row 1.*untrusted' V o.db
# Copy a genuine row's hash and signature onto other content.
tamper "UPDATE identity_log SET detail = (SELECT detail FROM identity_log WHERE seq = 2), hash = (SELECT hash FROM identity_log WHERE seq = 2), sig = (SELECT sig FROM identity_log WHERE seq = 2) WHERE seq = 3"
expect_err "a row given another row's hash and signature" 1 'row 3' V t.db
tamper "UPDATE identity_log SET sig = (SELECT sig FROM identity_log WHERE seq = 1) WHERE seq = 2"
expect_err "a row with another row's signature" 1 'row 2.*signature' V t.db
expect "the untouched log still verifies" 0 "*" V id.db

# --log on issue: a grant row signed by the same issuer, naming the principal and the jti
run "$H" token issue --key issuer.key --iss hub --sub alice --aud hub-a --holder device.key.pub \
        --cap '/sensors/#=read' --log il.db
check "issue --log prints the token" sh -c '[ "$1" = 0 ] && [ "$(tr -cd . <"$2" | wc -c)" = 2 ]' - "$RC" "$T/out"
TOK=$(cat "$T/out")
JTI=$("$H" token inspect "$TOK" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["blocks"][0]["claims"]["jti"])')
expect "the grant row verifies" 0 "*" "$H" token log --verify --trust hub=issuer.key.pub il.db
check "... row 1 is a grant of alice naming the jti" grep -q "^1 [0-9]* grant alice .* jti=$JTI holder=device.key.pub exp=" "$T/out"
expect_err "issue --log into a file that is no log: exit 1" 1 'log' "$H" token issue --key issuer.key --iss hub --sub a --aud x --holder device.key.pub --cap '/a=read' --log issuer.key
check "... and no token printed" [ ! -s "$T/out" ]

expect_err "no FILE: usage" 2 'FILE' "$H" token log
expect_err "--verify without --trust: usage" 2 'trust' "$H" token log --verify id.db
expect_err "--trust without --verify: usage" 2 'trust' "$H" token log --trust hub=issuer.key.pub id.db
expect_err "an unknown kind: usage" 2 'kind' "$H" token log add --key issuer.key --kind promote --subject x id.db
expect_err "no --subject: usage" 2 'subject' "$H" token log add --key issuer.key --kind grant id.db
expect_err "add with a public key" 1 'private' "$H" token log add --key issuer.key.pub --kind grant --subject x id.db
expect_err "not a log" 1 'HYB_E_DATABASE' "$H" token log --verify --trust hub=issuer.key.pub issuer.key
expect_err "a missing file" 1 'HYB_E_DATABASE' "$H" token log missing.db
expect "a failed add left the log as it was" 0 "*" V id.db
check "still 4 rows" [ "$(wc -l <"$T/out")" = 4 ]
# The newest rows removed (doc/token.md "Identity log", "What --verify detects"): each add
# writes the head to the witness FILE.head, which --verify compares; --head SEQ:HASH is a
# head remembered elsewhere.
rm -f w.db w.db.head
for i in 1 2 3 4; do "$H" token log add --key issuer.key --kind grant --subject d$i w.db >/dev/null; done
check "add writes the witness w.db.head" [ -s w.db.head ]
HEAD4=$("$H" --json token log w.db | sed -n 4p | sed 's/.*"seq":\([0-9]*\),.*"hash":"\([^"]*\)".*/\1:\2/')
check "... naming row 4 and its hash" [ "$(cat w.db.head)" = "$HEAD4" ]
expect "--verify --head of the last row" 0 "*" V --head "$HEAD4" w.db
sqlite3 w.db "DELETE FROM identity_log WHERE seq >= 3"
expect_err "the last two rows deleted with sqlite3: exit 1, the witness names row 4" 1 \
        'ends at row 2 but its witness .*w.db.head names row 4: its newest rows were removed' V w.db
check "... and nothing listed" [ ! -s "$T/out" ]
"$H" token log add --key issuer.key --kind revoke --subject other w.db >/dev/null
expect "rows deleted and another appended (a new witness): the chain verifies" 0 "*" V w.db
expect_err "... but not against the remembered head of row 4" 1 \
        'ends at row 3 but the head given names row 4' V --head "$HEAD4" w.db
HEAD3="3:${HEAD4#*:}"
expect_err "... nor row 3 under another row's hash" 1 'row 3 is not the row the head given names' V --head "$HEAD3" w.db
expect_err "--head that is not SEQ:HASH: usage" 2 'SEQ:HASH' V --head 4:nothash w.db
expect_err "--head without --verify: usage" 2 'head' "$H" token log --head "$HEAD4" w.db
expect_err "--head on add: usage" 2 'head' "$H" token log add --key issuer.key --kind grant --subject x --head "$HEAD4" w.db
finish
