#!/bin/sh
# SPDX-License-Identifier: MIT
# Credentials over plain CoAP (doc/edge.md "CoAP credentials") against a real hybridd: the
# token uploaded to /authz-info, then requests carrying its hash and a proof, signed by
# edge-coap-auth.py with Python `cryptography` from the doc's scheme (not by our library);
# a procedure served by bus-probe (whoami tells the transport and principal, hold never
# answers), the hosted store, Observe.  The bounds: tokens kept per address and in all,
# pending requests with credentials per address.
. "$HYB_IT_DIR/lib.sh"
PY="$HYB_IT_DIR/edge-coap-auth.py"

cd "$T" || exit 1
for k in iss holder holder2 other; do
        "$HYBRID" token keygen "$T/$k.key" >/dev/null || { bad "keygen $k"; finish; }
done
issue() { # FILE TTL DLG CAP...: a token of acme for holder.key, audience hub1
        f=$1 ttl=$2 dlg=$3; shift 3
        set -- $(for c in "$@"; do printf -- "--cap %s " "$c"; done)
        "$HYBRID" token issue --key "$T/iss.key" --iss acme --sub alice --aud hub1 \
                --holder "$T/holder.key.pub" --ttl "$ttl" --dlg "$dlg" "$@" >"$T/$f"
}
issue good 3600 1 'bus://localhost/org.example.edge/+/whoami=call' \
        'bus://localhost/org.example.edge/+/hold=call' '/sensors/#=read,write,delete,sub' ||
        bad "issue good"
issue narrow 3600 0 '/sensors/#=read' || bad "issue narrow"
issue expired 1 0 '/sensors/#=read' || bad "issue expired"
"$HYBRID" token attenuate --key "$T/holder.key" --holder "$T/holder2.key.pub" \
        --cap 'bus://localhost/org.example.edge/+/whoami=call' - <"$T/good" >"$T/att" ||
        bad "attenuate good"
i=0
while [ $i -lt 34 ]; do
        issue "bulk$i" 3600 0 '/sensors/#=read' || bad "issue bulk$i"
        i=$((i + 1))
done

# coapd NAME: a daemon with listen.coap on a free port; its port in $PORT
coapd() {
        start_daemon "$1" "listen:
  coap: 127.0.0.1:0
edge:
  anonymous: [\"/store/public/#\", \"/watch/public/#\"]
auth:
  tokens: accept
  audience: hub1
  issuers:
    acme: $T/iss.key.pub
policy:
  store:
    - {furi: \"/public/#\", allow: [read, write, delete, subscribe]}
log:
  level: debug" || finish
        known() { grep -q 'edge: CoAP on 127.0.0.1:[1-9]' "$T/$1.log"; }
        wait_until 10 known "$1" || { bad "the daemon logs its CoAP port" "$(cat "$T/$1.log")"; finish; }
        PORT=$(sed -n 's/.*edge: CoAP on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/$1.log" | head -n 1)
}
runpy() { # MODE: edge-coap-auth.py MODE against $PORT
        "$PYTHON" "$PY" "$1" "$PORT" "$T" >"$T/py.out" 2>&1
        rc=$?
        sed 's/^/    /' "$T/py.out"
        if [ $rc = 0 ] && grep -q '^ok ' "$T/py.out" && ! grep -q '^FAIL' "$T/py.out"; then
                ok "edge-coap-auth.py $1"
        else
                bad "edge-coap-auth.py $1 (exit $rc)"
        fi
}

coapd d
bg probe "$HYB_PROBE" edge-server "$SOCK" e1
wait_until 10 has_line "$T/probe.out" '^ready$' || { bad "bus-probe edge-server starts" "$(cat "$T/probe.err")"; finish; }
runpy main
logged() { grep -q 'edge: CoAP 4.01 token .* of alice: .*used before' "$T/d.log"; }
check "the daemon logs why a replayed proof was refused" logged
expired() { grep -q 'edge: CoAP 4.01 token upload: .*expired' "$T/d.log"; }
check "the daemon logs the expired token's upload as expired" expired
runpy pending
issue rev 3600 0 '/sensors/#=read' || bad "issue rev"
runpy revoke-before
JTI=$("$HYBRID" token inspect "$(cat "$T/rev")" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["blocks"][0]["claims"]["jti"])')
"$HYBRID" --bus "$SOCK" token revoke --key "$T/iss.key" --jti "$JTI" >"$T/rev.out" 2>&1 ||
        bad "hybrid token revoke --jti" "$(cat "$T/rev.out")"
runpy revoke-after
issue short 8 0 '/sensors/#=read,sub' || bad "issue short"
runpy expiry
check "the daemon survived" kill -0 "$DPID"
# the bound of tokens kept, on a daemon of its own (the modes above uploaded some)
coapd t
runpy tokens
# requests waiting for their check, on a daemon whose verifications a FIFO holds back
mkfifo "$T/gate" || { bad "mkfifo"; finish; }
export HYBRID_TEST_VERIFY_GATE="$T/gate"
coapd g
unset HYBRID_TEST_VERIFY_GATE
runpy held
check "the daemon survived" kill -0 "$DPID"
finish
