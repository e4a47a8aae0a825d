#!/bin/sh
# SPDX-License-Identifier: MIT
# The HTTP edge (doc/edge.md) with curl against a real hybridd: a procedure served by
# bus-probe (whoami tells the transport and principal the broker stated, hold never answers,
# tick fires events), the hosted store.  Credentials: a token and its DPoP proof, built with
# Python `cryptography` from the scheme in doc/edge.md (edge-dpop.py), not by our library.
# Expected statuses and bodies come from doc/edge.md.  The bounds (sizes, slow clients,
# connection caps, a slow SSE client) are edge-limits.py's.
. "$HYB_IT_DIR/lib.sh"
DPOP="$HYB_IT_DIR/edge-dpop.py"
LIMITS="$HYB_IT_DIR/edge-limits.py"
command -v curl >/dev/null || { bad "curl is installed"; finish; }

cd "$T" || exit 1
for k in iss rogue holder other; do
        "$HYBRID" token keygen "$T/$k.key" >/dev/null || { bad "keygen $k"; finish; }
done
issue() { # FILE ISSUERKEY CAP...: a token of acme for holder.key, audience hub1
        f=$1 ik=$2; shift 2
        set -- $(for c in "$@"; do printf -- "--cap %s " "$c"; done)
        "$HYBRID" token issue --key "$T/$ik" --iss acme --sub alice --aud hub1 \
                --holder "$T/holder.key.pub" --ttl 3600 "$@" >"$T/$f"
}
issue good iss.key 'bus://localhost/org.example.edge/+/whoami=call' \
        'bus://localhost/org.example.edge/+/hold=call' '/sensors/#=read,write,delete,sub' \
        'bus://localhost/org.example.edge/+/tick=sub' || bad "issue good"
issue rogue rogue.key '/sensors/#=read' || bad "issue rogue"
issue narrow iss.key '/sensors/#=read' || bad "issue narrow"

start_daemon d "listen:
  http: 127.0.0.1:0
edge:
  anonymous: [\"/store/public/#\", \"/store/locked/#\", \"/bus/org.example.edge/+/whoami\", \"/watch/public/#\"]
auth:
  tokens: accept
  audience: hub1
  issuers:
    acme: $T/iss.key.pub
policy:
  store:
    - {furi: \"/public/#\", allow: [read, write, delete, subscribe]}
    - {furi: \"/sensors/#\", allow: [read, write, delete, subscribe]}
limits:
  max_body: 64K
  send_queue_bytes: 1M
log:
  level: debug" || finish
port_known() { grep -q 'edge: HTTP on 127.0.0.1:[1-9]' "$T/d.log"; }
wait_until 10 port_known || { bad "the daemon logs its HTTP port" "$(cat "$T/d.log")"; finish; }
PORT=$(sed -n 's/.*edge: HTTP on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/d.log" | head -n 1)
B=http://127.0.0.1:$PORT
bg probe "$HYB_PROBE" edge-server "$SOCK" e1
wait_until 10 has_line "$T/probe.out" '^ready$' || { bad "bus-probe edge-server starts" "$(cat "$T/probe.err")"; finish; }

# http METHOD PATH [CURL ARGS...]: status in $ST, body in $T/body
http() {
        m=$1 p=$2; shift 2
        ST=$(curl -s --path-as-is -o "$T/body" -w '%{http_code}' -X "$m" --max-time 30 "$@" "$B$p")
}
# auth METHOD PATH [TOKENFILE [KEYFILE [DPOP ARGS...]]] [-- CURL ARGS...]: with credentials
auth() {
        m=$1 p=$2 tf=${3:-good} kf=${4:-holder.key}
        shift 2; [ $# -gt 0 ] && shift; [ $# -gt 0 ] && shift
        dargs=""
        while [ $# -gt 0 ] && [ "$1" != -- ]; do dargs="$dargs $1"; shift; done
        [ "${1:-}" = -- ] && shift
        # htu: the URL without its query (RFC 9449)
        proof=$("$PYTHON" "$DPOP" "$m" "http://127.0.0.1:$PORT${p%%\?*}" "$T/$tf" "$T/$kf" $dargs)
        http "$m" "$p" -H "Authorization: Bearer $(cat "$T/$tf")" -H "DPoP: $proof" "$@"
}
# is STATUS BODY-REGEX DESC: the last answer
is() {
        if [ "$ST" = "$1" ] && grep -Eq -- "$2" "$T/body"; then ok "$3"
        else bad "$3" "status $ST, wanted $1; body: $(head -c 300 "$T/body")"; fi
}
ERR='"status":%s,"code":"[A-Z_]+","message":'
err() { printf "$ERR" "$1"; }

# --- credentials
http POST /bus/org.example.edge/e1/hold -d '{}'
is 401 "$(err 401)" "no credentials on a route not anonymous: 401 with the JSON error body"
http GET /store/sensors/t
is 401 "$(err 401)" "no credentials on /store/: 401"
http GET /store/sensors/t -H "Authorization: Bearer $(cat "$T/good")"
is 401 "$(err 401)" "a token without its DPoP proof: 401"
auth GET /store/sensors/t rogue
is 401 "$(err 401)" "a token of an unknown issuer key: 401"
auth GET /store/sensors/t good other.key
is 401 "$(err 401)" "a proof by another key than the holder's: 401"
auth GET /store/sensors/t good holder.key --tamper
is 401 "$(err 401)" "a proof altered after signing: 401"
auth GET /store/sensors/t good holder.key --iat-offset -600
is 401 "$(err 401)" "a proof outside the iat window: 401"
auth GET /store/sensors/t good holder.key --no-ath
is 401 "$(err 401)" "a proof without ath: 401"
auth GET /store/sensors/t good holder.key --typ JWT
is 401 "$(err 401)" "a proof of another typ: 401"
proof=$("$PYTHON" "$DPOP" GET "http://127.0.0.1:$PORT/store/other" "$T/good" "$T/holder.key")
http GET /store/sensors/t -H "Authorization: Bearer $(cat "$T/good")" -H "DPoP: $proof"
is 401 "$(err 401)" "a proof for another URL (htu): 401"
proof=$("$PYTHON" "$DPOP" PUT "http://127.0.0.1:$PORT/store/sensors/t" "$T/good" "$T/holder.key")
http PUT /store/sensors/t -d 21.5 -H "Authorization: Bearer $(cat "$T/good")" -H "DPoP: $proof"
is 200 '^null$' "token and proof: PUT /store/sensors/t 200"
http PUT /store/sensors/t -d 22 -H "Authorization: Bearer $(cat "$T/good")" -H "DPoP: $proof"
is 401 "$(err 401)" "the same proof again (jti replay): 401"
check "the refusals are logged with their reason" grep -q 'edge: 401 .*DPoP: this proof (jti) was used before' "$T/d.log"

# --- calls
auth POST /bus/org.example.edge/e1/whoami good holder.key -- -d '{"x":[1,2.5,"y"]}'
is 200 '^\{"transport":"http","principal":"alice","params":\{"x":\[1,2.5,"y"\]\}\}$' \
        "POST: the callee sees transport http and the token's sub"
auth GET '/bus/org.example.edge/e1/whoami?n=5&s=abc&j=%7B%22k%22%3Atrue%7D&q=%22quoted%22'
is 200 '"params":\{"n":5,"s":"abc","j":\{"k":true\},"q":"quoted"\}' \
        "GET: query values read as JSON when they parse, else strings"
http GET /bus/org.example.edge/e1/whoami
is 200 '^\{"transport":"http","principal":null,"params":\{\}\}$' "an anonymous route: served, no principal"
# The reply's own headers (Date formatted once a second, Content-Length without evhttp):
# three answers on one keep-alive connection, each with one Date (RFC 9110 IMF-fixdate, the
# clock's day) and one Content-Length equal to the bytes of its body, so the next answer
# starts right after it.
check "keep-alive answers: one IMF-fixdate Date and one Content-Length matching the body" \
        "$PYTHON" -c '
import email.utils, http.client, re, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
for i in range(3):
    c.request("POST", "/bus/org.example.edge/e1/whoami", body="{\"i\":%d}" % i)
    r = c.getresponse()
    body = r.read()
    dates, lens = r.headers.get_all("Date") or [], r.headers.get_all("Content-Length") or []
    assert r.status == 200, r.status
    assert body == b"{\"transport\":\"http\",\"principal\":null,\"params\":{\"i\":%d}}" % i, body
    assert len(dates) == 1 and len(lens) == 1, (dates, lens)
    assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT", dates[0]), dates
    assert abs(email.utils.parsedate_to_datetime(dates[0]).timestamp() - time.time()) < 86400, dates
    assert int(lens[0]) == len(body), (lens, body)
' "$PORT"
auth POST /bus/org.example.edge/e1/hold good holder.key -- -d '{}' -H 'X-Timeout-Ms: 300'
is 504 "$(err 504)" "a callee that does not answer by the deadline: 504"
# a client that leaves before its answer: the answer, when it comes, goes nowhere
N0=$(grep -c 'http[0-9]* gone' "$T/d.log")
auth POST /bus/org.example.edge/e1/hold good holder.key -- -d '{}' -H 'X-Timeout-Ms: 2000' --max-time 1
check "a client gone before the deadline gets nothing ($ST)" [ "$ST" = 000 ]
answered() { [ "$(grep -c 'http[0-9]* gone' "$T/d.log")" -gt "$N0" ]; }
wait_until 20 answered || bad "the left call's session ends at its deadline"
http GET /bus/org.example.edge/e1/whoami
is 200 '"transport":"http"' "served after a client left mid-call"
auth POST /bus/org.example.edge/e2/whoami good holder.key -- -d '{}'
is 404 "$(err 404)" "no such endpoint: 404"
auth POST /bus/org.example.edge/e1/whoami narrow holder.key -- -d '{}'
is 403 "$(err 403)" "a procedure the token does not grant: 403"
auth POST /bus/org.example.edge/e1/whoami good holder.key -- -d '{"x":'
is 400 "$(err 400)" "a body that is not JSON: 400"
auth POST /bus/org.example.edge/e1/whoami good holder.key -- -d '{}' -H 'X-Timeout-Ms: soon'
is 400 "$(err 400)" "a malformed X-Timeout-Ms: 400"
head -c 70000 /dev/zero | tr '\0' 'a' | sed 's/^/"/; s/$/"/' >"$T/big.json"
http PUT /store/public/big --data-binary @"$T/big.json"
check "a body over limits.max_body: 413 ($ST)" [ "$ST" = 413 ]
http DELETE /bus/org.example.edge/e1/whoami
is 405 "$(err 405)" "DELETE on /bus/: 405"
http GET /nowhere
is 404 "$(err 404)" "an unknown route: 404"

# --- the edge's sessions are not announced as endpoints coming and going (NewEndpoint,
# BrokenEndpoint): a listener sees the CLI's BrokenEndpoint and none of the requests'
bg broken "$HYBRID" --bus "$SOCK" listen @localhost/org.hybridos.bus/builtin BrokenEndpoint
ready broken || bad "listen BrokenEndpoint starts"
http GET /bus/org.example.edge/e1/whoami
http GET /store/public/none
hy --runner sentinel call @localhost/org.example.edge/e1 whoami >/dev/null
sentinel_gone() { grep -q 'cli/sentinel\|org.hybridos.cli/sentinel' "$T/broken.out"; }
wait_until 10 sentinel_gone || bad "the CLI's BrokenEndpoint arrives" "$(cat "$T/broken.out" "$T/broken.err")"
check "no BrokenEndpoint for the edge's sessions" sh -c "! grep -q org.hybridos.edge '$T/broken.out'"
kill "$BPID" 2>/dev/null

# --- the caller info of peers of the Unix socket
expect "unix, uid policy: transport unix, no principal" 0 '{"transport":"unix","principal":null,"params":{}}' \
        hy call @localhost/org.example.edge/e1 whoami
expect "unix, a token session: the token's sub" 0 '{"transport":"unix","principal":"alice","params":{}}' \
        "$HYBRID" --bus "$SOCK" --token "$T/good" --key "$T/holder.key" call @localhost/org.example.edge/e1 whoami

# --- listen.http in use: the daemon does not start, and leaves no socket behind
printf 'listen:\n  http: 127.0.0.1:%s\n' "$PORT" >"$T/d2.yaml"
run "$HYBRIDD" --foreground --socket "$T/d2.sock" --config "$T/d2.yaml"
check "listen.http in use: hybridd exits non-zero ($RC)" [ "$RC" != 0 ]
check "listen.http in use: it says so" grep -q 'listen.http: cannot listen on 127.0.0.1:.*in use' "$T/err"
check "listen.http in use: no Unix socket left" [ ! -e "$T/d2.sock" ]

# --- the store
http PUT /store/public/a -d '{"v":[1,2]}'
is 200 '^null$' "anonymous PUT under /store/public/"
http GET /store/public/a
is 200 '^\{"v":\[1,2\]\}$' "GET reads the value back as JSON"
http PUT /store/public/b -d '"text"'
http GET '/store/public/%23'
is 200 '^\{"/public/a":\{"v":\[1,2\]\},"/public/b":"text"\}$' "a pattern: a JSON object of fURI to value"
http GET /store/public/none
is 404 "$(err 404)" "nothing there: 404"
http DELETE /store/public/a
is 200 '^null$' "DELETE"
http GET /store/public/a
is 404 "$(err 404)" "gone after DELETE: 404"
http PUT /store/locked/x -d 1
is 403 "$(err 403)" "an anonymous route policy.store does not grant: 403"
auth GET /store/sensors/t
is 200 '^21\.5$' "token: reads what its capabilities grant"
auth GET /store/other
is 403 "$(err 403)" "token: a fURI its capabilities do not cover: 403"
http PUT /store/public/x -d '{"a":'
is 400 "$(err 400)" "a PUT body that is not JSON: 400"
http GET '/store/public/a%00b'
is 400 "$(err 400)" "a NUL in the path: 400"
http GET '/store/public//x'
is 400 "$(err 400)" "an invalid fURI (empty segment): 400"

# --- no traversal: decoded once, dot segments resolved by the fURI rules before any check
http GET '/store/public/../sensors/t'
is 401 "$(err 401)" "/store/public/../sensors/t is /sensors/t: not anonymous, 401"
http GET '/store/public/%2E%2E/sensors/t'
is 401 "$(err 401)" "%2E%2E is .. after the one decoding: 401"
auth GET '/store/sensors/../other'
is 403 "$(err 403)" "token: /sensors/../other is /other, which it may not read: 403"
http PUT '/store/public%2Fc' -d 3
is 200 '^null$' "%2F is a / after the one decoding: /public/c"
http GET '/store/public/c'
is 200 '^3$' "read back at /public/c"
http GET '/store/public/%252Fc'
is 404 "$(err 404)" "%252F decodes once, to the literal %2F: no such key"
http GET '/bus/org.example.edge/../e1/whoami'
is 404 "$(err 404)" "/bus/ names are bus names: .. is no app, 404"

# --- Server-Sent Events
bg watch curl -s -N --max-time 30 "$B/watch/public/%23"
WPID=$BPID
has_open() { grep -q '^event: open' "$T/watch.out"; }
wait_until 10 has_open || bad "the watch stream opens"
http PUT /store/public/w -d '{"n":1}'
http DELETE /store/public/w
has_delete() { grep -q '^event: delete' "$T/watch.out"; }
wait_until 10 has_delete
check "watch: event write with the fURI and value" grep -q '^data: {"furi":"/public/w","value":{"n":1}}$' "$T/watch.out"
check "watch: event delete" grep -q '^data: {"furi":"/public/w","value":null}$' "$T/watch.out"
kill "$WPID" 2>/dev/null; wait "$WPID" 2>/dev/null
U=/events/org.example.edge/e1/tick
proof=$("$PYTHON" "$DPOP" GET "http://127.0.0.1:$PORT$U" "$T/good" "$T/holder.key")
curl -s -N --max-time 2 -H "Authorization: Bearer $(cat "$T/good")" -H "DPoP: $proof" "$B$U" >"$T/events.out"
check "events: the bubble's events stream as SSE" grep -q '^event: tick$' "$T/events.out"
check "events: their JSON as data" grep -Eq '^data: \{"n":[0-9]+\}$' "$T/events.out"
http GET /events/org.example.edge/e1/tick
is 401 "$(err 401)" "events without credentials (not anonymous): 401"
# a stream ends when its token expires: the last message says so
"$HYBRID" token issue --key "$T/iss.key" --iss acme --sub bob --aud hub1 --holder "$T/holder.key.pub" \
        --ttl 2 --cap 'bus://localhost/org.example.edge/+/tick=sub' >"$T/short" || bad "issue short"
proof=$("$PYTHON" "$DPOP" GET "http://127.0.0.1:$PORT$U" "$T/short" "$T/holder.key")
curl -s -N --max-time 30 -H "Authorization: Bearer $(cat "$T/short")" -H "DPoP: $proof" "$B$U" >"$T/short.out"
check "a stream whose token expires ends (event: error, 401)" \
        sh -c "grep -A1 '^event: error' '$T/short.out' | grep -q '\"status\":401'"
check "... after its events" grep -q '^event: tick$' "$T/short.out"

# --- bounds and hardening
for m in headers malformed framing unsent per-address total slow; do
        run "$PYTHON" "$LIMITS" "$m" "$PORT"
        sed 's/^/    /' "$T/out"
        if [ "$RC" = 0 ] && grep -q '^ok ' "$T/out"; then ok "limits: $m"; else bad "limits: $m" "$(cat "$T/out" "$T/err" | tail -n 8)"; fi
done
run "$PYTHON" "$LIMITS" slow-sse "$PORT" '/watch/public/big/%23' 600
sed 's/^/    /' "$T/out"
if [ "$RC" = 0 ] && grep -q '^ok ' "$T/out"; then ok "limits: a slow SSE client"; else bad "limits: a slow SSE client" "$(cat "$T/out" "$T/err" | tail -n 8)"; fi
check "the daemon survived all of it" kill -0 "$DPID"
http GET /bus/org.example.edge/e1/whoami
is 200 '"transport":"http"' "and still serves"

# --- SIGHUP reloads edge.anonymous; listen.http waits for a restart
# (the route is served just before: the edge remembers the last route's verdict, and a
# reload must not reuse it)
http GET /store/locked/x
is 403 "$(err 403)" "a route of edge.anonymous passes without credentials (then policy.store: 403)"
sed -i 's|"/store/locked/#", ||; s|http: 127.0.0.1:0|http: 127.0.0.1:1|' "$T/d.yaml"
kill -HUP "$DPID"
reloaded() { grep -q 'configuration reloaded' "$T/d.log"; }
wait_until 10 reloaded || bad "reload"
http GET /store/locked/x
is 401 "$(err 401)" "a route dropped from edge.anonymous by a reload: 401"
check "listen.http changed: logged as ignored until restart" \
        grep -q 'reload: listen.http changed: ignored until restart' "$T/d.log"
http GET /store/public/c
is 200 '^3$' "and the edge keeps serving on its address"
# --- the same routes over listen.https (doc/edge-tls.md): the proof names https://, the
# callee is told transport https; plain HTTP keeps its own listener
CERTS=$HYB_IT_DIR/../edge/certs
for f in ca.pem server.pem server.key; do cp "$CERTS/$f" "$T/$f"; done
printf 'listen:\n  https: 127.0.0.1:0\ntls: {cert: %s, key: %s}\nedge:\n  anonymous: ["/bus/org.example.edge/+/whoami"]\nauth:\n  tokens: accept\n  audience: hub1\n  issuers:\n    acme: %s\n' \
        "$T/server.pem" "$T/server.key" "$T/iss.key.pub" >"$T/tls.yaml"
"$HYBRIDD" --foreground --socket "$T/tls.sock" --config "$T/tls.yaml" >"$T/tls.log" 2>&1 &
TPID=$!
PIDS="$PIDS $TPID"
tls_port() { grep -q 'listening on https://127.0.0.1:[0-9]' "$T/tls.log"; }
if wait_until 30 tls_port; then
        TPORT=$(grep -o 'listening on https://127.0.0.1:[0-9]*' "$T/tls.log" | sed 's/.*://')
        "$HYB_PROBE" edge-server "$T/tls.sock" e1 >"$T/tprobe.out" 2>"$T/tprobe.err" &
        PIDS="$PIDS $!"
        wait_until 10 has_line "$T/tprobe.out" '^ready$' || bad "bus-probe on the https daemon"
        TU=https://localhost:$TPORT
        ST=$(curl -s --cacert "$T/ca.pem" -o "$T/body" -w '%{http_code}' --max-time 30 "$TU/bus/org.example.edge/e1/whoami")
        is 200 '^\{"transport":"https","principal":null,"params":\{\}\}$' "https: an anonymous call, transport https"
        W=/bus/org.example.edge/e1/whoami
        proof=$("$PYTHON" "$DPOP" POST "$TU$W" "$T/good" "$T/holder.key")
        ST=$(curl -s --cacert "$T/ca.pem" -o "$T/body" -w '%{http_code}' --max-time 30 -X POST -d '{"a":1}' \
                -H "Authorization: Bearer $(cat "$T/good")" -H "DPoP: $proof" "$TU$W")
        is 200 '^\{"transport":"https","principal":"alice","params":\{"a":1\}\}$' "https: token and proof (htu https://...)"
        proof=$("$PYTHON" "$DPOP" POST "http://localhost:$TPORT$W" "$T/good" "$T/holder.key")
        ST=$(curl -s --cacert "$T/ca.pem" -o "$T/body" -w '%{http_code}' --max-time 30 -X POST -d '{}' \
                -H "Authorization: Bearer $(cat "$T/good")" -H "DPoP: $proof" "$TU$W")
        is 401 "$(err 401)" "https: a proof naming http:// is not good for https://"
else
        bad "the https daemon starts" "$(cat "$T/tls.log")"
fi

# --- the daemon stops with a call and a stream in flight: both end, the daemon exits 0
H=/bus/org.example.edge/e1/hold
N0=$(grep -c 'edge session of alice' "$T/d.log")
proof=$("$PYTHON" "$DPOP" POST "http://127.0.0.1:$PORT$H" "$T/good" "$T/holder.key")
bg held curl -s --max-time 30 -X POST -H 'X-Timeout-Ms: 20000' -H "Authorization: Bearer $(cat "$T/good")" \
        -H "DPoP: $proof" -d '{}' "$B$H"
HPID=$BPID
bg stream curl -s -N --max-time 30 "$B/watch/public/%23"
SPID=$BPID
stream_open() { grep -q '^event: open' "$T/stream.out"; }
wait_until 10 stream_open || bad "a stream is open before the stop"
# the held call's session exists (its CALL is queued with it): it is in flight
call_held() { [ "$(grep -c 'edge session of alice' "$T/d.log")" -gt "$N0" ]; }
wait_until 10 call_held || bad "the held call is in flight before the stop"
stop "$DPID"
check "SIGTERM with a call and a stream in flight: hybridd exits 0 ($STOP_RC)" [ "$STOP_RC" = 0 ]
wait "$SPID" "$HPID" 2>/dev/null
finish
