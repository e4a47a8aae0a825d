#!/bin/sh
# SPDX-License-Identifier: MIT
# Remote sessions are charged to their token's principal (issuer and sub), not all to the
# uid 65534 (doc/edge.md "Limits"): one principal holding all of its
# limits.uid_max_connections leaves another principal served, WebSocket and HTTP alike.
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

run "$PYTHON" "$HYB_IT_DIR/edge-principal.py" "ws://127.0.0.1:$PORT/bus/ws" "$T" 4
sed 's/^/# /' "$T/out"
[ "$RC" = 0 ] && ok "ws: one principal's sessions do not starve another's" ||
        bad "ws: one principal's sessions do not starve another's" "$(grep -v '^ok' "$T/out" | head -n 20; tail -n 5 "$T/err")"
check "the refusal names the principal's uid_max_connections" \
        grep -q "quota uid_max_connections of the token's principal exceeded" "$T/d.log"
stop "$DPID"
finish
