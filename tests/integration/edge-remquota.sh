#!/bin/sh
# SPDX-License-Identifier: MIT
# Fair shares of the remote peers (doc/edge.md "Limits"), each against a real hybridd:
# remote sessions are charged to their token's principal (issuer and sub), not all to the
# uid 65534, so one principal holding all of its limits.uid_max_connections (WebSocket and
# HTTP sessions) or uid_max_registrations leaves another
# principal served; a few source addresses holding the whole budget of sessions not yet
# authenticated do not keep a newcomer from another address out.
. "$HYB_IT_DIR/lib.sh"
"$PYTHON" -c 'import websockets, cryptography' 2>/dev/null || { echo "# skipped: python3-websockets"; exit 77; }

cd "$T" || exit 1
for k in iss iss2 holder; do
        "$HYBRID" token keygen "$T/$k.key" >/dev/null || { bad "keygen $k"; finish; }
done
CAPS="--cap bus://localhost/org.example.ws/#=reg,pub --cap /public/#=read,sub"
"$HYBRID" token issue --key "$T/iss.key" --iss acme --sub alice --aud hub1 \
        --holder "$T/holder.key.pub" --ttl 3600 $CAPS >"$T/good" || bad "issue alice"
"$HYBRID" token issue --key "$T/iss.key" --iss acme --sub bob --aud hub1 \
        --holder "$T/holder.key.pub" --ttl 3600 $CAPS >"$T/bob" || bad "issue bob"
"$HYBRID" token issue --key "$T/iss2.key" --iss other --sub alice --aud hub1 \
        --holder "$T/holder.key.pub" --ttl 3600 $CAPS >"$T/alice-other" || bad "issue alice of other"
cp "$T/good" "$T/rogue"

start_daemon d "listen:
  http: 127.0.0.1:0
auth:
  tokens: accept
  audience: hub1
  issuers:
    acme: $T/iss.key.pub
    other: $T/iss2.key.pub
limits:
  uid_max_connections: 4
  uid_max_registrations: 8
log:
  level: debug" || finish
wait_until 10 has_line "$T/d.log" 'edge: HTTP on [0-9.]*:[1-9]' ||
        { bad "daemon logs its HTTP port" "$(cat "$T/d.log")"; finish; }
PORT=$(sed -n 's/.*edge: HTTP on [0-9.]*:\([0-9]*\).*/\1/p' "$T/d.log" | head -n 1)

run "$PYTHON" "$HYB_IT_DIR/edge-remquota.py" principal "ws://127.0.0.1:$PORT/bus/ws" "$T" 4
sed 's/^/# /' "$T/out"
[ "$RC" = 0 ] && ok "ws: one principal's sessions do not starve another's" ||
        bad "ws: one principal's sessions do not starve another's" "$(grep -v '^ok' "$T/out" | head -n 20; tail -n 5 "$T/err")"
run "$PYTHON" "$HYB_IT_DIR/edge-remquota.py" regs "ws://127.0.0.1:$PORT/bus/ws" "$T" 8
sed 's/^/# /' "$T/out"
[ "$RC" = 0 ] && ok "ws: one principal's registrations do not starve another's" ||
        bad "ws: one principal's registrations do not starve another's" "$(grep -v '^ok' "$T/out" | head -n 20; tail -n 5 "$T/err")"
check "the refusal names the principal's uid_max_connections" \
        grep -q "quota uid_max_connections of the token's principal exceeded" "$T/d.log"

# HTTP (DPoP proofs by edge-dpop.py): alice's 4 streams hold her 4 sessions; her next
# request is 429, bob is served
B=http://127.0.0.1:$PORT
# proof TOKENFILE METHOD PATH: a DPoP proof for the request
proof() { "$PYTHON" "$HYB_IT_DIR/edge-dpop.py" "$2" "$B$3" "$1" "$T/holder.key"; }
for sn in 1 2 3 4; do
        p=$(proof "$T/good" GET "/watch/public/%23")
        bg "sse$sn" curl -s -N --max-time 60 -H "Authorization: Bearer $(cat "$T/good")" \
                -H "DPoP: $p" "$B/watch/public/%23"
        wait_until 20 has_line "$T/sse$sn.out" '^event: open' ||
                bad "alice's stream $sn opens" "$(cat "$T/sse$sn.out" "$T/sse$sn.err")"
done
# get TOKENFILE: the status of GET /store/public/none with the token
get() {
        curl -s -o "$T/get.out" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $(cat "$1")" \
                -H "DPoP: $(proof "$1" GET /store/public/none)" "$B/store/public/none"
}
st=$(get "$T/good")
check "http: alice's request while her 4 sessions stream: 429 (got $st)" [ "$st" = 429 ]
st=$(get "$T/bob")
check "http: bob is served meanwhile: 404, nothing stored (got $st)" [ "$st" = 404 ]
stop "$DPID"

# the budget of sessions not yet authenticated: 8, held by 127.0.0.2 and .3 with 4 each;
# auth_timeout_ms long, so the handshake timeout frees nothing while the test runs
start_daemon d2 "listen:
  http: 127.0.0.1:0
auth:
  tokens: accept
  audience: hub1
  issuers:
    acme: $T/iss.key.pub
limits:
  uid_max_unauth_connections: 8
  ws_preauth_per_address: 4
  auth_timeout_ms: 120000
log:
  level: debug" || finish
wait_until 10 has_line "$T/d2.log" 'edge: HTTP on [0-9.]*:[1-9]' ||
        { bad "daemon d2 logs its HTTP port" "$(cat "$T/d2.log")"; finish; }
PORT=$(sed -n 's/.*edge: HTTP on [0-9.]*:\([0-9]*\).*/\1/p' "$T/d2.log" | head -n 1)
run "$PYTHON" "$HYB_IT_DIR/edge-remquota.py" preauth "ws://127.0.0.1:$PORT/bus/ws" "$T" 8 4
sed 's/^/# /' "$T/out"
[ "$RC" = 0 ] && ok "ws: hosts holding the pre-auth budget do not keep a newcomer out" ||
        bad "ws: hosts holding the pre-auth budget do not keep a newcomer out" "$(grep -v '^ok' "$T/out" | head -n 20; tail -n 5 "$T/err")"
check "the eviction is logged" grep -q "the oldest of 4 not yet authenticated from its address" "$T/d2.log"
stop "$DPID"
finish
