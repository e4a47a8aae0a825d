#!/bin/sh
# SPDX-License-Identifier: MIT
# `hybrid token keygen FILE` end to end (doc/token.md): FILE is a PKCS#8 private key of
# mode 0600, FILE.pub its SubjectPublicKeyInfo; stdout is the kid, the RFC 7638
# thumbprint, which Python computes here from FILE.pub on its own; OpenSSL and Python
# `cryptography` read both files; usage errors exit 2 and write nothing.
# Usage: cli-token-keygen.sh <path of the built hybrid binary>
set -u
HYBRID=${1:?usage: cli-token-keygen.sh HYBRID}
PYTHON=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/hyb-keygen.XXXXXX")
trap 'rm -rf "$T"' EXIT
NPASS=0
NFAIL=0
ok() { NPASS=$((NPASS + 1)); echo "ok - $1"; }
bad() { NFAIL=$((NFAIL + 1)); echo "FAIL - $1"; [ -s "$T/err" ] && sed 's/^/    | /' "$T/err"; }
check() { d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
mode() { stat -c %a "$1"; }

# The thumbprint of a public key file, from the canonical JSON (RFC 7638 section 3.2).
thumbprint() {
        "$PYTHON" - "$1" <<'PY'
import base64, hashlib, sys
from cryptography.hazmat.primitives import serialization
k = serialization.load_pem_public_key(open(sys.argv[1], "rb").read()).public_numbers()
b = lambda n: base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()
print(base64.urlsafe_b64encode(hashlib.sha256(
    ('{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' % (b(k.x), b(k.y))).encode()
).digest()).rstrip(b"=").decode())
PY
}
# Python's public key of the private file equals the public file.
same_pair() {
        "$PYTHON" - "$1" "$2" <<'PY'
import sys
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import ec
priv = s.load_pem_private_key(open(sys.argv[1], "rb").read(), password=None)
pub = s.load_pem_public_key(open(sys.argv[2], "rb").read())
assert isinstance(priv.curve, ec.SECP256R1)
f = lambda k: k.public_bytes(s.Encoding.DER, s.PublicFormat.SubjectPublicKeyInfo)
sys.exit(0 if f(priv.public_key()) == f(pub) else 1)
PY
}

umask 000
"$HYBRID" token keygen "$T/dev" >"$T/out" 2>"$T/err"
check "keygen exits 0" [ $? = 0 ]
kid=$(cat "$T/out")
check "prints one line, 43 base64url characters" \
        sh -c '[ "$(wc -l <"$1")" = 1 ] && grep -Eqx "[A-Za-z0-9_-]{43}" "$1"' sh "$T/out"
check "the kid is the RFC 7638 thumbprint of FILE.pub" [ "$kid" = "$(thumbprint "$T/dev.pub")" ]
check "FILE has mode 0600 (umask 000)" [ "$(mode "$T/dev")" = 600 ]
check "FILE.pub has mode 0644 (umask 000)" [ "$(mode "$T/dev.pub")" = 644 ]
check "FILE is PKCS#8 PEM" [ "$(head -1 "$T/dev")" = "-----BEGIN PRIVATE KEY-----" ]
check "FILE.pub is SPKI PEM" [ "$(head -1 "$T/dev.pub")" = "-----BEGIN PUBLIC KEY-----" ]
check "OpenSSL reads FILE as a P-256 key" \
        sh -c 'openssl pkey -in "$1" -noout -text 2>/dev/null | grep -q "NIST CURVE: P-256"' sh "$T/dev"
check "OpenSSL reads FILE.pub" openssl pkey -pubin -in "$T/dev.pub" -noout
check "Python reads both, and they are one key pair" same_pair "$T/dev" "$T/dev.pub"
umask 022

"$HYBRID" token keygen "$T/dev2" >"$T/out2" 2>"$T/err"
check "a second key has another kid" [ "$(cat "$T/out2")" != "$kid" ]
check "under umask 022 FILE is 0600" [ "$(mode "$T/dev2")" = 600 ]
check "under umask 022 FILE.pub is 0644" [ "$(mode "$T/dev2.pub")" = 644 ]

# an existing file: replaced, its narrower mode kept
printf 'old\n' >"$T/ro"
chmod 400 "$T/ro"
"$HYBRID" token keygen "$T/ro" >"$T/out" 2>"$T/err"
check "keygen over an existing 0400 file keeps 0400" [ "$(mode "$T/ro")" = 400 ]
check "and replaces its contents" [ "$(head -1 "$T/ro")" = "-----BEGIN PRIVATE KEY-----" ]

"$HYBRID" --json token keygen "$T/j" >"$T/out" 2>"$T/err"
check "--json prints kid, key and pub" "$PYTHON" -c '
import json, sys
d = json.loads(open(sys.argv[1]).read())
assert d == {"kid": d["kid"], "key": sys.argv[2], "pub": sys.argv[2] + ".pub"}, d
assert len(d["kid"]) == 43' "$T/out" "$T/j"

# usage errors: exit 2, nothing on stdout, nothing written
usage() {
        d=$1; shift
        "$HYBRID" "$@" >"$T/out" 2>"$T/err"
        rc=$?
        if [ $rc = 2 ] && [ ! -s "$T/out" ] && [ ! -e "$T/u" ] && [ ! -e "$T/u.pub" ] &&
                grep -q usage "$T/err"; then
                ok "$d"
        else
                bad "$d (exit $rc)"
        fi
}
usage "token alone" token
usage "keygen without FILE" token keygen
usage "keygen with two files" token keygen "$T/u" "$T/v"
usage "unknown subcommand" token frobnicate "$T/u"
usage "unknown option" token keygen --frob "$T/u"
usage "an option keygen does not take" token keygen --bus /x "$T/u"
"$HYBRID" token keygn "$T/u" >"$T/out" 2>"$T/err"
check "a typo gets a suggestion" grep -q "did you mean 'keygen'" "$T/err"

"$HYBRID" token keygen "$T/no/such/dir/k" >"$T/out" 2>"$T/err"
rc=$?
check "an unwritable place: exit 1, named on stderr" \
        sh -c '[ "$1" = 1 ] && grep -q "no/such/dir/k" "$2"' sh $rc "$T/err"

echo "$NPASS passed, $NFAIL failed"
[ "$NFAIL" = 0 ]
