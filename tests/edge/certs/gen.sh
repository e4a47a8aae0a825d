#!/bin/sh
# SPDX-License-Identifier: MIT
# Regenerates the TEST-ONLY certificates of this folder with openssl (see README.md).
# Run from this folder: sh gen.sh
set -eu
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
# the test CA, and a second CA nothing here trusts
key ca.key
openssl req -x509 -new -key ca.key -subj "/CN=libhybrid test CA" -days 36500 -sha256 \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -out ca.pem
key wrongca.key
openssl req -x509 -new -key wrongca.key -subj "/CN=libhybrid wrong CA" -days 36500 -sha256 \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -out wrongca.pem
# the server: localhost and 127.0.0.1, signed by the test CA
key server.key
printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$D/ext"
openssl req -new -key server.key -subj "/CN=localhost" -out "$D/server.csr"
openssl x509 -req -in "$D/server.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 36500 \
        -sha256 -extfile "$D/ext" -out server.pem
# the same name, validity 2000-01-01..2001-01-01 (expired), by `openssl ca`
key expired.key
openssl req -new -key expired.key -subj "/CN=localhost" -out "$D/expired.csr"
mkdir "$D/ca"; : >"$D/ca/index.txt"; echo 01 >"$D/ca/serial"
cat >"$D/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
dir = $D/ca
database = $D/ca/index.txt
serial = $D/ca/serial
new_certs_dir = $D/ca
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
[ext]
basicConstraints=CA:FALSE
subjectAltName=DNS:localhost,IP:127.0.0.1
CNF
openssl ca -batch -config "$D/ca.cnf" -cert ca.pem -keyfile ca.key -in "$D/expired.csr" \
        -startdate 20000101000000Z -enddate 20010101000000Z -extensions ext -notext \
        -out expired.pem 2>/dev/null
# the pins (sha256 of the DER SubjectPublicKeyInfo, base64, as curl's --pinnedpubkey sha256//)
pin() { openssl pkey -in "$1" -pubout -outform der | openssl dgst -sha256 -binary | openssl base64 -A; }
pin server.key >server.pin
pin wrongca.key >wrongca.pin
rm -f ca.srl
