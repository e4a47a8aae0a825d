#!/bin/sh
# SPDX-License-Identifier: MIT
# The WebSocket listener /bus/ws (doc/edge.md "WebSocket") against a real hybridd, driven by
# Debian's Python `websockets` speaking our packets (edge-ws.py), the token proof built from
# the documented bytes with the binding "ws-none": calls both ways with a Unix peer
# (bus-probe edge-server, the CLI), events, 401 / 403 / 504, the hostile cases (refused
# upgrades, text, unmasked and oversized frames, packets that are not one packet), the
# bounds (pre-auth connections per address, the handshake timeout, connections in all,
# memory per idle session), plain ws:// refused on a non-loopback listen.http, and
# auth.tokens off refusing every session.  The daemon keeps serving others throughout.
. "$HYB_IT_DIR/lib.sh"
WS="$HYB_IT_DIR/edge-ws.py"
"$PYTHON" -c 'import websockets, cryptography' 2>/dev/null || { echo "# skipped: python3-websockets"; exit 77; }

cd "$T" || exit 1
for k in iss rogue holder; do
        "$HYBRID" token keygen "$T/$k.key" >/dev/null || { bad "keygen $k"; finish; }
done
CAPS="--cap bus://localhost/org.example.edge/e1/whoami=call --cap bus://localhost/org.example.edge/e1/hold=call \
--cap bus://localhost/org.example.edge/e1/tick=sub --cap bus://localhost/org.example.ws/#=reg,pub --cap /ws/#=read"
"$HYBRID" token issue --key "$T/iss.key" --iss acme --sub alice --aud hub1 \
        --holder "$T/holder.key.pub" --ttl 3600 $CAPS >"$T/good" || bad "issue good"
"$HYBRID" token issue --key "$T/rogue.key" --iss acme --sub alice --aud hub1 \
        --holder "$T/holder.key.pub" --ttl 3600 $CAPS >"$T/rogue" || bad "issue rogue"

# http_port NAME: the port daemon NAME logged for listen.http
http_port() {
        wait_until 10 has_line "$T/$1.log" 'edge: HTTP on [0-9.]*:[1-9]' ||
                { bad "daemon $1 logs its HTTP port" "$(cat "$T/$1.log")"; finish; }
        sed -n 's/.*edge: HTTP on [0-9.]*:\([0-9]*\).*/\1/p' "$T/$1.log" | head -n 1
}
# ws NAME MODE ARGS...: edge-ws.py against $URL; its lines are this test's
ws() {
        d=$1; shift
        t0=$(date +%s); run "$PYTHON" "$WS" "$@"; echo "# $d: $(($(date +%s) - t0)) s"
        sed 's/^/# /' "$T/out"
        [ "$RC" = 0 ] && ok "$d" || bad "$d" "$(grep -v '^ok' "$T/out" | head -n 20; tail -n 5 "$T/err")"
}
serving() { "$HYBRID" --bus "$SOCK" call "@localhost/org.example.edge/e1" whoami '{}' >/dev/null 2>&1; }

AUTHCFG="auth:
  tokens: accept
  audience: hub1
  issuers:
    acme: $T/iss.key.pub"
start_daemon d "listen:
  http: 127.0.0.1:0
$AUTHCFG
limits:
  max_body: 64K
  send_queue_bytes: 256K
  auth_timeout_ms: 2000
  ws_preauth_per_address: 4
  ws_max_per_address: 200
log:
  level: debug" || finish
D1=$DPID
PORT=$(http_port d)
URL=ws://127.0.0.1:$PORT/bus/ws
bg probe "$HYB_PROBE" edge-server "$SOCK" e1
wait_until 10 has_line "$T/probe.out" '^ready$' || { bad "bus-probe edge-server starts" "$(cat "$T/probe.err")"; finish; }
bg probe2 "$HYB_PROBE" edge-server "$SOCK" e2
wait_until 10 has_line "$T/probe2.out" '^ready$' || { bad "bus-probe edge-server e2 starts" "$(cat "$T/probe2.err")"; finish; }

"$HYBRID" --bus "$SOCK" store put /ws/hello 5 >/dev/null || bad "store put /ws/hello"
# a request to /bus/ws held half-sent for the whole run: the HTTP slow-client bound ends it
"$PYTHON" "$WS" slowloris "$URL" "$T" >"$T/loris.out" 2>&1 &
LORIS=$!
ws "ws: handshake, calls both ways, events, 401/403/504" basic "$URL" "$T" "$HYBRID" "$SOCK"
check "a ws session's refused token: the peer's address and the reason in the log" \
        grep -q "auth refused for remote peer 127.0.0.1:[0-9]* (ws): 401 token: " "$T/d.log"
ws "ws: hostile upgrades and frames" hostile "$URL" "$T"
check "the daemon keeps serving after the hostile cases" serving
ws "ws: pre-auth connections per address, handshake timeout" preauth "$URL" "$T" 4
check "the daemon keeps serving after the pre-auth flood" serving
if [ "${HYB_IT_SANITIZED:-0}" = 1 ]; then
        echo "# memory per idle session: not measured under the sanitizers (their redzones and quarantine)"
else
        ws "ws: memory per idle session" idle "$URL" "$T" 100 "$D1"
fi
ws "ws: a client that pings and never reads is not read" pingflood "$URL" "$T" "$D1"
# a message in 100 000 fragments of 1 byte (each a buffer of its own in the daemon): 1009
ws "ws: a message in too many fragments is refused" fragments "$URL" "$T" "$D1" 100000
# a client that sends calls and never reads: the slow-reader bound of a Unix peer
"$HYBRID" --bus "$SOCK" store put /ws/big "'$(head -c 60000 /dev/zero | tr '\0' x)'" >/dev/null || bad "store put /ws/big"
ws "ws: a client that does not read is dropped" slow "$URL" "$T"
check "the slow reader is named in the log with limits.send_queue_bytes" \
        grep -Eq "send_queue_bytes.*slow reader|slow reader.*send_queue_bytes" "$T/d.log"
check "the daemon keeps serving after the slow reader" serving
wait "$LORIS"
LRC=$?
sed 's/^/# /' "$T/loris.out"
check "ws: a half-sent upgrade request is ended while others are served" [ "$LRC" = 0 ]
stop "$D1"

# wss:// (listen.https with the test CA): the proof bound to the TLS exporter; and the cap
# on WebSocket connections in all
CERTS=$HYB_IT_DIR/../edge/certs
for f in ca.pem server.pem server.key; do cp "$CERTS/$f" "$T/$f"; done
start_daemon d2 "listen:
  http: 127.0.0.1:0
  https: 127.0.0.1:0
tls: {cert: $T/server.pem, key: $T/server.key}
$AUTHCFG
limits:
  ws_max_connections: 4
  ws_max_per_address: 2" || finish
PORT=$(http_port d2)
wait_until 10 has_line "$T/d2.log" 'listening on https://127.0.0.1:[0-9]' || bad "https port" "$(cat "$T/d2.log")"
SPORT=$(grep -o 'listening on https://127.0.0.1:[0-9]*' "$T/d2.log" | sed 's/.*://' | head -n 1)
bg probe3 "$HYB_PROBE" edge-server "$SOCK" e1
wait_until 10 has_line "$T/probe3.out" '^ready$' || bad "bus-probe on d2" "$(cat "$T/probe3.err")"
if "$PYTHON" -c 'import OpenSSL' 2>/dev/null; then
        ws "wss: tls-exporter channel binding (pyOpenSSL)" wss "wss://localhost:$SPORT/bus/ws" "$T" "$T/ca.pem"
else
        bad "wss test needs python3-openssl (scripts/bootstrap.sh)"
fi
ws "ws: limits.ws_max_per_address and ws_max_connections" total "ws://127.0.0.1:$PORT/bus/ws" "$T" 2 4
stop "$DPID"

# plain ws:// on a non-loopback listen.http: 403 naming the key, unless edge.ws_plain_remote
start_daemon d3 "listen:
  http: 0.0.0.0:0
$AUTHCFG" || finish
PORT=$(http_port d3)
st=$(curl -s -o "$T/body" -w '%{http_code}' --max-time 30 -H 'Upgrade: websocket' -H 'Connection: Upgrade' \
        -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
        -H 'Sec-WebSocket-Protocol: hybrid.bus.v1' "http://127.0.0.1:$PORT/bus/ws")
check "ws:// on 0.0.0.0 without edge.ws_plain_remote: 403" [ "$st" = 403 ]
check "the 403 names edge.ws_plain_remote" grep -q "edge.ws_plain_remote" "$T/body"
# edge.ws_plain_remote: true, by a reload (SIGHUP) of the same daemon
printf 'edge:\n  ws_plain_remote: true\n' >>"$T/d3.yaml"
kill -HUP "$DPID"
wait_until 10 has_line "$T/d3.log" 'configuration reloaded' || bad "d3 reloads" "$(tail -n 5 "$T/d3.log")"
ws "ws:// on 0.0.0.0 with edge.ws_plain_remote: true (reloaded) is served" basic-auth "ws://127.0.0.1:$PORT/bus/ws" "$T"
stop "$DPID"

# auth.tokens off: every WebSocket session is refused 401
start_daemon d5 "listen:
  http: 127.0.0.1:0" || finish
PORT=$(http_port d5)
st=$(curl -s -o "$T/body" -w '%{http_code}' --max-time 30 -H 'Upgrade: websocket' -H 'Connection: Upgrade' \
        -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
        -H 'Sec-WebSocket-Protocol: hybrid.bus.v1' "http://127.0.0.1:$PORT/bus/ws")
check "auth.tokens off: the upgrade is refused 401" [ "$st" = 401 ]
stop "$DPID"
finish
