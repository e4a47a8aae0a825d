#!/bin/sh
# SPDX-License-Identifier: MIT
# The source addresses of the edge's per-address bounds (doc/edge.md "Source addresses")
# through a real hybridd: an IPv6 peer counts by its /64 (a host given a /64 holds 2^64
# addresses), an IPv4-mapped one as its IPv4 address, for HTTP connections, HTTP
# connections without a request yet, and WebSocket upgrades not yet authenticated
# (edge-addr.py).  It runs in a network namespace of its own (unshare -n, as root), whose
# lo gets 2001:db8:1:2::10 and ::11 (one /64) and 2001:db8:1:3::10; skipped (77) without one.
# The comparison itself has a unit test (tests/edge/test_edge.c, test_addr_same).
if [ "${EDGE_ADDR_NETNS:-}" != 1 ]; then
        if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1 &&
                command -v ip >/dev/null 2>&1 && unshare -n true 2>/dev/null; then
                EDGE_ADDR_NETNS=1 exec unshare -n sh "$0" "$@"
        fi
        echo "1..0 # SKIP needs root, unshare and ip for a network namespace"
        exit 77
fi
. "$HYB_IT_DIR/lib.sh"
A=2001:db8:1:2::10 B=2001:db8:1:2::11 C=2001:db8:1:3::10
{ ip link set lo up && ip -6 addr add "$A/64" dev lo nodad && ip -6 addr add "$B/64" dev lo nodad &&
        ip -6 addr add "$C/64" dev lo nodad; } 2>"$T/ip.err" ||
        { echo "1..0 # SKIP no IPv6 in the namespace: $(cat "$T/ip.err")"; exit 77; }

cd "$T" || exit 1
start_daemon d "listen:
  http: '[::]:0'
edge:
  anonymous: ['/store/public/#']
  ws_plain_remote: true
auth:
  tokens: accept
  audience: hub1
limits:
  ws_preauth_per_address: 4
  auth_timeout_ms: 60000
log: {level: debug}" || finish
wait_until 30 has_line "$T/d.log" 'edge: HTTP on \[::\]:[1-9]' ||
        { bad "the daemon logs its HTTP port" "$(cat "$T/d.log")"; finish; }
PORT=$(sed -n 's/.*edge: HTTP on \[::\]:\([0-9]*\).*/\1/p' "$T/d.log" | head -n 1)
for m in http ws unsent; do
        run "$PYTHON" "$HYB_IT_DIR/edge-addr.py" "$m" "$PORT" "$A" "$B" "$C"
        sed 's/^/    /' "$T/out"
        if [ "$RC" = 0 ] && grep -q '^ok ' "$T/out"; then ok "$m: per /64, IPv4-mapped as IPv4"; else
                bad "$m: per /64, IPv4-mapped as IPv4" "$(cat "$T/out" "$T/err" | tail -n 8)"; fi
done
check "the daemon survived all of it" kill -0 "$DPID"
stop "$DPID"
finish
