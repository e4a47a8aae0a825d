#!/bin/sh
# SPDX-License-Identifier: MIT
# The HTTP edge keeps a request's session for the principal's next request (doc/edge.md
# "Sessions"), within its bound, against a real hybridd and curl:
# - anonymous requests one after the other are made by one session (the log says it is kept);
# - a request whose call failed (504) and a stream (SSE) do not leave their session behind;
# - EDGE_IDLE_SESSIONS (32): 40 requests held at once by bus-probe's `hold` (from two source
#   addresses: 32 connections of one address is the HTTP cap), then released together: 32
#   sessions are kept, 8 closed; counted in the broker's endpoints and its log, never timed;
# - past the bound the session kept longest goes: a token's session kept, then 32 anonymous
#   ones, and the token's session is no longer there (hybrid list).
. "$HYB_IT_DIR/lib.sh"
command -v curl >/dev/null || { bad "curl is installed"; finish; }

DPOP="$HYB_IT_DIR/edge-dpop.py"
cd "$T" || exit 1
for k in iss holder; do
        "$HYBRID" token keygen "$T/$k.key" >/dev/null || { bad "keygen $k"; finish; }
done
"$HYBRID" token issue --key "$T/iss.key" --iss acme --sub alice --aud hub1 --holder "$T/holder.key.pub" \
        --ttl 3600 --cap 'bus://localhost/org.example.edge/+/whoami=call' >"$T/good" || bad "issue"
start_daemon d "listen:
  http: 127.0.0.1:0
edge:
  anonymous: [\"/bus/org.example.edge/+/hold\", \"/bus/org.example.edge/+/whoami\", \"/watch/public/#\"]
auth:
  tokens: accept
  audience: hub1
  issuers:
    acme: $T/iss.key.pub
policy:
  store:
    - {furi: \"/public/#\", allow: [read, subscribe]}
log:
  level: debug" || finish
port_known() { grep -q 'edge: HTTP on 127.0.0.1:[1-9]' "$T/d.log"; }
wait_until 30 port_known || { bad "the daemon logs its HTTP port" "$(cat "$T/d.log")"; finish; }
PORT=$(sed -n 's/.*edge: HTTP on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/d.log" | head -n 1)
B=http://127.0.0.1:$PORT
bg probe "$HYB_PROBE" edge-server "$SOCK" e1
wait_until 30 has_line "$T/probe.out" '^ready$' || { bad "bus-probe edge-server starts" "$(cat "$T/probe.err")"; finish; }
EP=@localhost/org.example.edge/e1
new() { grep -c 'edge session of the anonymous principal$' "$T/d.log"; }
kept() { grep -c 'edge session of the anonymous principal kept from a former request' "$T/d.log"; }
gone() { grep -c 'org.hybridos.edge/http[0-9]* gone' "$T/d.log"; }
sessions() { hy list 2>/dev/null | grep -c 'org.hybridos.edge/http'; }

for i in 1 2 3; do
        ST=$(curl -s -o "$T/w$i" -w '%{http_code}' --max-time 30 -X POST -d '{}' "$B/bus/org.example.edge/e1/whoami")
        [ "$ST" = 200 ] || bad "whoami $i: 200" "$ST $(cat "$T/w$i")"
done
check "three anonymous requests in a row: one session made" [ "$(new)" = 1 ]
check "... kept for the two others" [ "$(kept)" = 2 ]
check "... and still there between requests" [ "$(sessions)" = 1 ]

# a failed call does not leave its session (the kept one made it: it goes)
G0=$(gone)
ST=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -X POST -H 'X-Timeout-Ms: 200' -d '{}' "$B/bus/org.example.edge/e1/hold")
check "a call past its deadline: 504" [ "$ST" = 504 ]
closed_one() { [ "$(gone)" -gt "$G0" ]; }
wait_until 30 closed_one && ok "... and its session is closed" || bad "the 504's session is closed"
check "... none is left" [ "$(sessions)" = 0 ]
# a stream's session is its own and goes with it
curl -s -N --max-time 2 "$B/watch/public/%23" >"$T/stream.out"
check "a stream opened" grep -q '^event: open' "$T/stream.out"
wait_until 30 sh -c "[ \$(hy list 2>/dev/null | grep -c 'org.hybridos.edge/http') = 0 ]" &&
        ok "the stream's session went with it" || bad "the stream's session went with it" "$(hy list)"

# a token's session, kept
U=/bus/org.example.edge/e1/whoami
proof=$("$PYTHON" "$DPOP" POST "$B$U" "$T/good" "$T/holder.key")
ST=$(curl -s -o "$T/tok.out" -w '%{http_code}' --max-time 30 -X POST -d '{}' \
        -H "Authorization: Bearer $(cat "$T/good")" -H "DPoP: $proof" "$B$U")
check "a request with a token: 200" [ "$ST" = 200 ]
ALICE=$(sed -n 's/.*\(org.hybridos.edge\/http[0-9]*\): edge session of alice$/\1/p' "$T/d.log" | head -n 1)
check "... its session ($ALICE) is kept" [ -n "$ALICE" ] && [ "$(sessions)" = 1 ]

# the bound: 40 held at once, released together
hy call "$EP" release >/dev/null
N0=$(new)
for i in $(seq 1 40); do
        src=127.0.0.1; [ "$i" -gt 20 ] && src=127.0.0.2
        bg "h$i" curl -s -w ' %{http_code}\n' --max-time 120 --interface "$src" -X POST \
                -H 'X-Timeout-Ms: 100000' -d '{}' "$B/bus/org.example.edge/e1/hold"
done
all_held() { [ "$(hy call "$EP" held)" = 40 ]; }
wait_until 60 all_held || bad "40 requests held at once" "$(hy call "$EP" held) held; $(cat "$T"/h*.out | sort | uniq -c)"
check "... each by a session of its own" [ "$(($(new) - N0))" = 40 ]
G0=$(gone)
check "all released" [ "$(hy call "$EP" release)" = 40 ]
answered() { [ "$(cat "$T"/h*.out | grep -c ' 200$')" = 40 ]; }
wait_until 60 answered || bad "the 40 are answered 200" "$(cat "$T"/h*.out | sort | uniq -c)"
nine_gone() { [ "$(gone)" -ge "$((G0 + 9))" ]; }
wait_until 30 nine_gone || bad "9 sessions closed past the bound (8 anonymous, alice's)"
check "32 sessions kept (EDGE_IDLE_SESSIONS), no more" [ "$(sessions)" = 32 ]
check "... 9 closed, no more" [ "$(gone)" = "$((G0 + 9))" ]
check "... the one kept longest first: alice's" grep -q "$ALICE gone" "$T/d.log"
ST=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -X POST -d '{}' "$B/bus/org.example.edge/e1/whoami")
check "served on after that" [ "$ST" = 200 ]
stop "$DPID"
check "the daemon stops with sessions kept: exit 0" [ "$STOP_RC" = 0 ]
finish
