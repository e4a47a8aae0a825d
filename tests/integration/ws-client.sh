#!/bin/sh
# SPDX-License-Identifier: MIT
# The client side of ws:// and wss:// (doc/bus.md "Remote brokers", doc/hybrid.md) against
# a stand-in broker built on Python's `websockets` (ws-fake.py): the upgrade request of
# RFC 6455 with the subprotocol hybrid.bus.v1, one packet per binary message both ways,
# the proof bound to "ws-none", pings answered, fragments joined, close codes 1007 (a text
# message, a message that is not one packet) and 1009 (over the bound), a close frame as
# the end of the connection (exit 3), upgrade answers that break the RFC refused, and wss://
# verification (CA, pin, host name; none given is an error).
. "$(dirname "$0")/lib.sh"
CERTS=$HYB_IT_DIR/../edge/certs
"$PYTHON" -c 'import websockets, cryptography' 2>/dev/null ||
        { echo "1..0 # SKIP python3-websockets or python3-cryptography missing"; exit 77; }

"$HYBRID" token keygen "$T/holder.key" >/dev/null || { bad "token keygen"; finish; }
echo "a-token-the-stand-in-does-not-verify" >"$T/tok"
CRED="--token $T/tok --key $T/holder.key"
EP=@localhost/org.example.fake/main

# fake NAME MODE: starts ws-fake.py; sets PORT and LOG
fake() {
        "$PYTHON" "$HYB_IT_DIR/ws-fake.py" "$2" "$T/$1.port" "$T/$1.log" "$T/holder.key.pub" \
                >"$T/$1.out" 2>&1 &
        PIDS="$PIDS $!"
        wait_until 30 test -s "$T/$1.port" || { bad "stand-in $1 starts" "$(cat "$T/$1.out")"; finish; }
        PORT=$(cat "$T/$1.port")
        LOG=$T/$1.log
}
# logged N REGEX: the stand-in's log holds REGEX (waits: it logs after the client's exit)
logged() { wait_until 30 grep -Eq -- "$1" "$LOG"; }

fake ws bus
URL=ws://127.0.0.1:$PORT/bus/ws
# shellcheck disable=SC2086
expect "call over ws:// answers with the echoed body" 0 '{"a":[1,2,3]}' \
        "$HYBRID" --bus "$URL" $CRED call $EP echo '{"a":[1,2,3]}'
check "the upgrade asked for /bus/ws, version 13, a 16-byte key, hybrid.bus.v1, no extension" \
        logged '^upgrade path=/bus/ws protocol=hybrid\.bus\.v1 offered=hybrid\.bus\.v1 version=13 keylen=24 ext=none$'
check "the AUTH came as one packet in a binary message, its proof bound to ws-none" logged '^proof ws-none ok$'
check "the client ended with a normal close (1000)" logged '^closed code=1000$'
check "no message from the client broke the contract" sh -c "! grep -q FAIL '$LOG'"
# shellcheck disable=SC2086
expect "a WebSocket ping and a bus PING are answered before the result" 0 '[1]' \
        "$HYBRID" --bus "$URL" $CRED call $EP pingme '[1]'
check "... the WebSocket pong arrived" logged '^websocket pong$'
check "... the bus PONG arrived" logged '^bus pong$'
# shellcheck disable=SC2086
expect "a result split over three frames is joined" 0 '"abcdefghijklmnopqrstuvwxyz0123456789"' \
        "$HYBRID" --bus "$URL" $CRED call $EP split '"abcdefghijklmnopqrstuvwxyz0123456789"'
# a result sent one frame per byte: each frame would cost the client a buffer of its own
# shellcheck disable=SC2086
expect_err "a message in more than 1024 frames: the connection ends (exit 3)" 3 'HYB_E_CLOSED' \
        "$HYBRID" --bus "$URL" $CRED call $EP shatter "\"$(head -c 3000 /dev/zero | tr '\0' s)\""
# (its close frame, 1009, races with the stand-in still sending: the code it sees varies)
: >"$LOG"
# 600 KB each way: more than one read takes off the socket at once, so the client must
# come back for the rest itself (the bytes it holds are no longer announced by the fd)
"$PYTHON" -c 'print("\"" + "z" * 600000 + "\"", end="")' >"$T/big.json"
{ cat "$T/big.json"; echo; } >"$T/big.want" # call prints the body and a newline
# shellcheck disable=SC2086
run "$HYBRID" --bus "$URL" $CRED call $EP echo - <"$T/big.json"
check "a 600 KB body goes and comes back whole" cmp -s "$T/out" "$T/big.want"
# shellcheck disable=SC2086
expect_err "two packets in one message: the connection ends (exit 3)" 3 'HYB_E_CLOSED' \
        "$HYBRID" --bus "$URL" $CRED call $EP two 1
check "... with close code 1007" logged '^closed code=1007$'
: >"$LOG"
# shellcheck disable=SC2086
expect_err "a text message: the connection ends (exit 3)" 3 'HYB_E_CLOSED' \
        "$HYBRID" --bus "$URL" $CRED call $EP text 1
check "... with close code 1007" logged '^closed code=1007$'
: >"$LOG"
# shellcheck disable=SC2086
expect_err "a message over the bound (16 MiB + names): the connection ends (exit 3)" 3 'HYB_E_CLOSED' \
        "$HYBRID" --bus "$URL" $CRED call $EP big 1
check "... with close code 1009" logged '^closed code=1009$'
: >"$LOG"
# a hostile server announcing the largest maxBody the packet header allows (4 GiB): the
# client still takes no body over 16 MiB (doc/bus.md "Remote brokers")
WS_FAKE_MAXBODY=4294967295 fake greedy bus
G=ws://127.0.0.1:$PORT/bus/ws
# shellcheck disable=SC2086
expect "a server announcing maxBody 4 GiB still serves a call" 0 '[5]' "$HYBRID" --bus "$G" $CRED call $EP echo '[5]'
"$PYTHON" -c 'print("\"" + "q" * ((16 << 20) + 1000) + "\"", end="")' >"$T/over.json"
# shellcheck disable=SC2086
expect_err "... a body over 16 MiB is refused before it is sent (exit 1)" 1 '413 Packet Too Large' \
        "$HYBRID" --bus "$G" $CRED call $EP echo - <"$T/over.json"
check "... nothing of it reached the server" sh -c "! grep -q '^call echo \"qqq' '$LOG'"
# shellcheck disable=SC2086
expect_err "a message whose frame header announces 64 MiB: the connection ends (exit 3)" 3 'HYB_E_CLOSED' \
        "$HYBRID" --bus "$G" $CRED call $EP huge 1
# (the close frame, 1009, races with the stand-in still sending: the code it sees varies)
check "... the server saw the connection end" logged '^closed code='
# the stand-in notes what it wrote once its writing loop sees the end (it may note the close
# first)
logged '^huge sent '
HUGE=$(sed -n 's/^huge sent //p' "$LOG")
echo "# the server wrote ${HUGE:-?} bytes of the 64 MiB message before the client closed"
# the client refused the message on its header: it read no more, so the server could write
# what the sockets' buffers hold (a few MiB), never the 48 MiB it had for a client reading on
check "... the client stopped reading at the header: the server could not write its 48 MiB" \
        [ "${HUGE:-50331648}" -lt 50331648 ]
rm -f "$T/over.json"
URL=ws://127.0.0.1:$(cat "$T/ws.port")/bus/ws
LOG=$T/ws.log
: >"$LOG"
# shellcheck disable=SC2086
expect_err "the server's close frame ends the call: exit 3" 3 'HYB_E_CLOSED' \
        "$HYBRID" --bus "$URL" $CRED call $EP bye 1
check "... and the client answered the close" logged '^closed code=1001$'
: >"$LOG"
expect_err "no token for a remote broker: 401 before connecting (exit 1)" 1 \
        '^hybrid: call: 401 .*needs a token' "$HYBRID" --bus "$URL" call $EP echo 1
check "... nothing reached the stand-in" sh -c "! grep -q upgrade '$LOG'"
# shellcheck disable=SC2086
HYBRID_BUS=$URL expect "\$HYBRID_BUS names the ws:// broker" 0 '7' "$HYBRID" $CRED call $EP echo 7
# shellcheck disable=SC2086
expect "a URL without a path gets /bus/ws" 0 '8' "$HYBRID" --bus "ws://localhost:$PORT" $CRED call $EP echo 8
# shellcheck disable=SC2086
expect_err "a malformed URL is a usage error (exit 2)" 2 'bad port' \
        "$HYBRID" --bus "ws://127.0.0.1:99999/bus/ws" $CRED call $EP echo 1

# upgrade answers that break RFC 6455 or the subprotocol contract
for m in bad-accept:'wrong Sec-WebSocket-Accept' no-protocol:'did not accept the subprotocol hybrid\.bus\.v1' \
        extension:'chose an extension'; do
        fake "${m%%:*}" "${m%%:*}"
        # shellcheck disable=SC2086
        expect_err "upgrade answer ${m%%:*}: refused (exit 3)" 3 "${m#*:}" \
                "$HYBRID" --bus "ws://localhost:$PORT/bus/ws" $CRED list
done
check "the request named Host with the port" logged "^header host: localhost:$PORT$"
check "... Upgrade: websocket, Connection: Upgrade" sh -c "grep -q '^header upgrade: websocket$' '$LOG' && grep -q '^header connection: Upgrade$' '$LOG'"
check "... a Sec-WebSocket-Key of 16 random bytes" logged '^key decodes to 16 bytes$'
fake huge huge-head
# shellcheck disable=SC2086
expect_err "an answer head over 8 KiB: refused (exit 3), not buffered further" 3 'response head over 8192 bytes' \
        "$HYBRID" --bus "ws://localhost:$PORT/bus/ws" $CRED list
fake r401 refuse-401
# shellcheck disable=SC2086
expect_err "an upgrade refused with 401: exit 1, status 401" 1 '^hybrid: list: 401 ' \
        "$HYBRID" --bus "ws://localhost:$PORT/bus/ws" $CRED list

# wss:// (TLS 1.2 by Python's ssl with the test certificates)
fake wss wss
W=wss://localhost:$PORT/bus/ws
# shellcheck disable=SC2086
expect "wss:// with the test CA (--ca)" 0 '1' "$HYBRID" --bus "$W" $CRED --ca "$CERTS/ca.pem" call $EP echo 1
check "... the proof is not bound to ws-none (the TLS session's binding)" logged '^proof not-ws-none ok$'
# shellcheck disable=SC2086
expect "wss:// with the server's pinned key (--pin)" 0 '2' \
        "$HYBRID" --bus "$W" $CRED --pin "$(cat "$CERTS/server.pin")" call $EP echo 2
# shellcheck disable=SC2086
expect "wss:// with \$HYBRID_CA" 0 '3' env HYBRID_CA="$CERTS/ca.pem" "$HYBRID" --bus "$W" $CRED call $EP echo 3
PINHEX=$("$PYTHON" -c 'import base64,sys; print(base64.b64decode(open(sys.argv[1]).read()).hex())' "$CERTS/server.pin")
# shellcheck disable=SC2086
expect "wss:// with \$HYBRID_PIN in hex" 0 '4' env HYBRID_PIN="$PINHEX" "$HYBRID" --bus "$W" $CRED call $EP echo 4
# shellcheck disable=SC2086
expect_err "wss:// with another CA: refused, the reason named" 3 'certificate verification failed: .*not correctly signed' \
        "$HYBRID" --bus "$W" $CRED --ca "$CERTS/wrongca.pem" call $EP echo 1
# shellcheck disable=SC2086
expect_err "wss:// with a wrong pin: refused" 3 "not the pinned key" \
        "$HYBRID" --bus "$W" $CRED --pin "$(cat "$CERTS/wrongca.pin")" call $EP echo 1
# shellcheck disable=SC2086
expect "wss:// to 127.0.0.1: the certificate names that address (IP:127.0.0.1)" 0 '5' \
        "$HYBRID" --bus "wss://127.0.0.1:$PORT/bus/ws" $CRED --ca "$CERTS/ca.pem" call $EP echo 5
# shellcheck disable=SC2086
expect_err "wss:// with neither CA nor pin: a usage error, verification cannot be skipped" 2 \
        'cannot be verified' env -u HYBRID_CA -u HYBRID_PIN "$HYBRID" --bus "$W" $CRED call $EP echo 1
# shellcheck disable=SC2086
expect_err "a malformed pin: a usage error" 2 'bad pin' "$HYBRID" --bus "$W" $CRED --pin nothex call $EP echo 1
# shellcheck disable=SC2086
expect_err "ws:// to the TLS port: the server closes, exit 3" 3 '' \
        "$HYBRID" --bus "ws://localhost:$PORT/bus/ws" $CRED call $EP echo 1

# IPv6 (where the loopback has ::1): the bracketed address, and a certificate that does
# not name it (it names localhost and 127.0.0.1 only)
if "$PYTHON" -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; then
        WS_FAKE_HOST=::1 fake v6 wss
        # shellcheck disable=SC2086
        expect "wss://[::1] with the pinned key: IPv6 through getaddrinfo" 0 '6' \
                "$HYBRID" --bus "wss://[::1]:$PORT/bus/ws" $CRED --pin "$(cat "$CERTS/server.pin")" call $EP echo 6
        # shellcheck disable=SC2086
        expect_err "wss://[::1] with the CA: refused, the certificate does not name ::1" 3 \
                'does not name the address ::1' \
                "$HYBRID" --bus "wss://[::1]:$PORT/bus/ws" $CRED --ca "$CERTS/ca.pem" call $EP echo 1
else
        echo "# no IPv6 loopback here: the [::1] cases are skipped"
fi
finish
