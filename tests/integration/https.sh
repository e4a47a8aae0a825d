#!/bin/sh
# SPDX-License-Identifier: MIT
# hybridd's https listener (doc/edge-tls.md): listen.https with tls: {cert, key} of the
# test-only certificates (tests/edge/certs/README.md) answers curl --cacert through evhttp
# (until routes exist, 404 with a JSON body), with TLS 1.2 and an ECDHE AEAD suite as
# `openssl s_client` shows; TLS 1.1, CBC suites, plain HTTP and a wrong CA are refused and
# the daemon serves on; configuration mistakes are errors with their line and column.
. "$(dirname "$0")/lib.sh"
CERTS=$HYB_IT_DIR/../edge/certs
for f in ca.pem server.pem server.key wrongca.pem wrongca.key; do cp "$CERTS/$f" "$T/$f"; done
command -v curl >/dev/null && command -v openssl >/dev/null || { echo "1..0 # SKIP curl or openssl missing"; exit 77; }

start_daemon tls "listen:
  https: 127.0.0.1:0
tls: {cert: $T/server.pem, key: $T/server.key}
log: {level: debug}" || finish
port_known() { grep -q 'listening on https://127.0.0.1:[0-9]' "$T/tls.log"; }
check "the log names the https address" wait_until 30 port_known
PORT=$(grep -o 'listening on https://127.0.0.1:[0-9]*' "$T/tls.log" | sed 's/.*://')
URL=https://localhost:$PORT

# curl, verifying the server against the test CA: evhttp answers through the TLS layer
expect "curl --cacert: 404 from the generic callback" 0 404 \
        curl -sS --max-time 60 --cacert "$T/ca.pem" -o "$T/body" -w '%{http_code}' "$URL/no/route/here"
check "its body is the JSON error" grep -q '^{"status":404,"code":"HYB_E_NOT_FOUND","message":"no route for /no/route/here"}$' "$T/body"
# HTTP/1.0: evhttp closes the connection after the answer, which still arrives whole
expect "HTTP/1.0 (connection closed by the server after the answer)" 0 404 \
        curl -sS --max-time 60 --http1.0 --cacert "$T/ca.pem" -o "$T/body" -w '%{http_code}' "$URL/x"
check "its body arrived whole" grep -q '"message":"no route for /x"}$' "$T/body"
# keep-alive: two requests on one connection
run curl -sS --max-time 60 --cacert "$T/ca.pem" -o /dev/null -o /dev/null -w '%{num_connects}\n' "$URL/a" "$URL/b"
check "two requests, one TLS connection" [ "$RC" = 0 ] && [ "$(sed -n 2p "$T/out")" = 0 ]
expect "another CA: curl refuses the server (exit 60)" 60 "*" \
        curl -sS --max-time 60 --cacert "$T/wrongca.pem" -o /dev/null "$URL/"

# openssl s_client: the protocol, the suite, the verification
run openssl s_client -connect "127.0.0.1:$PORT" -servername localhost -CAfile "$T/ca.pem" </dev/null
check "s_client: TLSv1.2" grep -Eq '^ *Protocol *: TLSv1\.2$' "$T/out"
check "s_client: an ECDHE suite with AES-GCM or ChaCha20-Poly1305" \
        grep -Eq '^ *Cipher *: ECDHE-ECDSA-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305)$' "$T/out"
check "s_client: verify return code 0" grep -Eq '^ *Verify return code: 0 \(ok\)' "$T/out"
run openssl s_client -connect "127.0.0.1:$PORT" -tls1_2 -cipher 'ECDHE-ECDSA-AES128-SHA:AES128-SHA' </dev/null
check "a CBC suite is refused" grep -q 'alert handshake failure\|no shared cipher\|ssl_choose_client_version\|handshake failure' "$T/err"
run openssl s_client -connect "127.0.0.1:$PORT" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' </dev/null
check "TLS 1.1 is refused" [ "$RC" != 0 ] && ! grep -Eq '^ *Protocol *: TLSv1\.1$' "$T/out"
# plain HTTP on the TLS port: a handshake failure for that connection, nothing more
run curl -sS --max-time 60 -o /dev/null "http://127.0.0.1:$PORT/"
check "plain HTTP on the https port gets no answer" [ "$RC" != 0 ]
check "... and the daemon logs why (debug)" \
        wait_until 30 has_line "$T/tls.log" 'debug: https: 127\.0\.0\.1:[0-9]*: TLS handshake: '
check "the refused certificate (another CA) was logged with the client's alert" \
        has_line "$T/tls.log" 'debug: https: 127\.0\.0\.1:[0-9]*: TLS handshake: .*alert' 
expect "the daemon serves on" 0 404 \
        curl -sS --max-time 60 --cacert "$T/ca.pem" -o /dev/null -w '%{http_code}' "$URL/again"
check "hybridd is alive" kill -0 "$DPID"
# the port is taken: a second daemon cannot listen (exit 3) and says why
printf 'listen:\n  https: 127.0.0.1:%s\ntls: {cert: %s, key: %s}\n' "$PORT" "$T/server.pem" "$T/server.key" >"$T/dup.yaml"
expect_err "a taken https port: exit 3" 3 'cannot listen on https 127\.0\.0\.1:[0-9]+' \
        "$HYBRIDD" --foreground --socket "$T/dup.sock" --config "$T/dup.yaml"
check "and its Unix socket did not appear" [ ! -e "$T/dup.sock" ]
# a reload with another address and certificate file: logged, ignored until restart
cp "$T/server.pem" "$T/server2.pem"
printf 'listen:\n  https: 127.0.0.1:1\ntls: {cert: %s, key: %s}\nlog: {level: debug}\n' "$T/server2.pem" "$T/server.key" >"$T/tls.yaml"
kill -HUP "$DPID"
check "reload: listen.https change ignored until restart" \
        wait_until 30 has_line "$T/tls.log" 'reload: listen.https changed: ignored until restart'
check "reload: tls change ignored until restart" \
        wait_until 30 has_line "$T/tls.log" 'reload: tls changed: ignored until restart'
expect "the listener of the start serves on" 0 404 \
        curl -sS --max-time 60 --cacert "$T/ca.pem" -o /dev/null -w '%{http_code}' "$URL/after-reload"
stop "$DPID"
check "SIGTERM: clean exit" [ "$STOP_RC" = 0 ]

# configuration errors: key path, line and column
cfg() { printf '%s\n' "$1" >"$T/bad.yaml"; run "$HYBRIDD" --foreground --socket "$T/bad.sock" --config "$T/bad.yaml"; }
cfg "listen:
  https: 127.0.0.1:8443
tls:
  cert: $T/server.pem
  key: $T/wrongca.key"
check "a key that is not the certificate's: exit 2" [ "$RC" = 2 ]
check "... named at tls.key 5:8" grep -q 'tls\.key: .*is not the key of the certificate.* at 5:8' "$T/err"
cfg "tls:
  cert: $T/missing.pem
  key: $T/server.key"
check "a missing certificate: exit 2 at tls.cert 2:9" sh -c "[ $RC = 2 ] && grep -q 'tls\.cert: cannot read certificate .*missing\.pem: No such file or directory at 2:9' '$T/err'"
cfg "tls: {cert: $T/server.pem}"
check "a tls block without its key" grep -q 'tls: needs both cert and key at 1:6' "$T/err"
cfg "listen: {https: 127.0.0.1:8443}"
check "listen.https without tls" grep -q 'listen\.https: needs tls: {cert: FILE, key: FILE} at 1:17' "$T/err"
for a in 127.0.0.1 127.0.0.1:65536 ::1:8443 '[::1' ':8443' 'host:80a'; do
        cfg "listen: {https: '$a'}
tls: {cert: $T/server.pem, key: $T/server.key}"
        check "listen.https '$a' is refused" grep -q "listen\.https: expected HOST:PORT.* at 1:17" "$T/err"
done
# (without tls: the one complaint left is the missing tls block)
for a in '[::1]:0' 'localhost:8443' '0.0.0.0:65535'; do
        cfg "listen: {https: '$a'}"
        check "'$a' is a valid address" grep -q 'listen\.https: needs tls' "$T/err"
done
finish
