#!/bin/sh
# SPDX-License-Identifier: MIT
# Fair shares of the remote peers (doc/edge.md "Limits"), each against a real hybridd:
# remote sessions are charged to their token's principal (issuer and sub), not all to the
# uid 65534, so one principal holding all of its limits.uid_max_connections leaves another
# principal served; a few source addresses holding the whole budget of sessions not yet
# authenticated do not keep a newcomer from another address out.
. "$HYB_IT_DIR/lib.sh"
"$PYTHON" -c 'import websockets, cryptography' 2>/dev/null || { echo "# skipped: python3-websockets"; exit 77; }

cd "$T" || exit 1
for k in iss iss2 holder; do
        "$HYBRID" token keygen "$T/$k.key" >/dev/null || { bad "keygen $k"; finish; }
done
CAPS="--cap bus://localhost/org.example.ws/#=reg,pub --cap /public/#=read"
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
log:
  level: debug" || finish
wait_until 10 has_line "$T/d.log" 'edge: HTTP on [0-9.]*:[1-9]' ||
        { bad "daemon logs its HTTP port" "$(cat "$T/d.log")"; finish; }
PORT=$(sed -n 's/.*edge: HTTP on [0-9.]*:\([0-9]*\).*/\1/p' "$T/d.log" | head -n 1)

run "$PYTHON" "$HYB_IT_DIR/edge-remquota.py" principal "ws://127.0.0.1:$PORT/bus/ws" "$T" 4
sed 's/^/# /' "$T/out"
[ "$RC" = 0 ] && ok "ws: one principal's sessions do not starve another's" ||
        bad "ws: one principal's sessions do not starve another's" "$(grep -v '^ok' "$T/out" | head -n 20; tail -n 5 "$T/err")"
check "the refusal names the principal's uid_max_connections" \
        grep -q "quota uid_max_connections of the token's principal exceeded" "$T/d.log"
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
