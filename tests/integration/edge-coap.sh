#!/bin/sh
# SPDX-License-Identifier: MIT
# CoAP on listen.coap (doc/edge.md "CoAP") with Debian's coap-client (libcoap3-bin) against
# a real hybridd: a procedure served by bus-probe over the Unix socket (whoami tells the
# transport and principal the broker stated, hold never answers, tick fires events), the
# hosted store, Observe on /watch/ seeing writes made by `hybrid store put`, the statuses
# mapped as doc/edge.md says.  The raw-UDP bounds and hostile datagrams are edge-coap.py's.
. "$HYB_IT_DIR/lib.sh"
CC=$(command -v coap-client-notls || command -v coap-client) ||
        { bad "coap-client (libcoap3-bin) is installed"; finish; }

cd "$T" || exit 1
start_daemon d "listen:
  coap: 127.0.0.1:0
edge:
  anonymous: [\"/store/public/#\", \"/bus/org.example.edge/+/whoami\", \"/bus/org.example.edge/+/hold\",
              \"/watch/public/#\", \"/events/org.example.edge/+/tick\"]
policy:
  store:
    - {furi: \"/public/#\", allow: [read, write, delete, subscribe]}
    - {furi: \"/sensors/#\", allow: [read, write, delete, subscribe]}
limits:
  max_body: 4K
log:
  level: debug" || finish
port_known() { grep -q 'edge: CoAP on 127.0.0.1:[1-9]' "$T/d.log"; }
wait_until 10 port_known || { bad "the daemon logs its CoAP port" "$(cat "$T/d.log")"; finish; }
PORT=$(sed -n 's/.*edge: CoAP on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/d.log" | head -n 1)
U=coap://127.0.0.1:$PORT
check "a loopback listen.coap: no warning" sh -c "! grep -q 'not a loopback' '$T/d.log'"
bg probe "$HYB_PROBE" edge-server "$SOCK" e1
wait_until 10 has_line "$T/probe.out" '^ready$' || { bad "bus-probe edge-server starts" "$(cat "$T/probe.err")"; finish; }

# coap METHOD PATH [COAP-CLIENT ARGS...]: payload in $T/body, the error line (code and
# body, on coap-client's stderr) in $T/cerr; $CODE the response class.detail or 2.xx
coap() {
        m=$1 p=$2; shift 2
        timeout 60 "$CC" -B 20 -m "$m" "$@" "$U$p" >"$T/body" 2>"$T/cerr"
        CODE=$(sed -n 's/^\([45]\.[0-9][0-9]\) .*/\1/p' "$T/cerr" | head -n 1)
        [ -n "$CODE" ] || CODE=2.xx
}
# is CODE REGEX DESC: the last answer's code, and its payload (2.xx) or error body
is() {
        f=$T/body
        if [ "$2" = EMPTY ]; then # a code without payload
                if [ "$CODE" = "$1" ] && [ ! -s "$T/body" ]; then ok "$3"
                else bad "$3" "code $CODE, wanted $1 with no payload; payload: $(head -c 300 "$T/body"); stderr: $(head -c 300 "$T/cerr")"; fi
                return
        fi
        [ "$1" != 2.xx ] && f=$T/cerr
        if [ "$CODE" = "$1" ] && grep -Eq -- "$2" "$f"; then ok "$3"
        else bad "$3" "code $CODE, wanted $1; payload: $(head -c 300 "$T/body"); stderr: $(head -c 300 "$T/cerr")"; fi
}
ERR='\{"status":%s,"code":"[A-Z_]+","message":'
err() { printf "$ERR" "$1"; }

# --- calls: POST with a JSON payload, GET with Uri-Query params; the caller is "coap", anonymous
coap post /bus/org.example.edge/e1/whoami -e '{"a":[1,2]}'
is 2.xx '^\{"transport":"coap","principal":null,"params":\{"a":\[1,2\]\}\}$' "POST /bus/...: the procedure's result, transport coap, anonymous"
coap post /bus/org.example.edge/e1/whoami -t 50 -e '{"b":true}'
is 2.xx '"params":\{"b":true\}' "POST with Content-Format 50 (JSON)"
coap get '/bus/org.example.edge/e1/whoami?n=5&s=abc&q=%22x%22'
is 2.xx '"params":\{"n":5,"s":"abc","q":"x"\}' "GET /bus/...: each Uri-Query value JSON when it parses, else a string"
coap get '/bus/org.example.edge/e1/whoami?n=1&n=2'
is 4.00 "$(err 400)" "GET with a repeated Uri-Query key: 4.00"
coap post /bus/org.example.edge/e1/whoami -e 'not json'
is 4.00 "$(err 400)" "a payload that is not JSON: 4.00"
coap post /bus/org.example.edge/e1/whoami -t 0 -e '{}'
is 4.15 "$(err 415)" "a payload of another Content-Format (text/plain): 4.15"
coap put /bus/org.example.edge/e1/whoami -e '{}'
is 4.05 "$(err 405)" "PUT on /bus/: 4.05"
coap post /bus/org.example.edge/e1/nosuch -e '{}'
is 4.01 "$(err 401)" "a route edge.anonymous does not grant: 4.01"
coap post /bus/org.example.edge/e1/hold -O 65001,300 -e '{}'
is 5.04 "$(err 504)" "a call the callee does not answer by its deadline (option 65001: 300 ms): 5.04"
coap post /bus/org.example.edge/e1/hold -O 65001,abc -e '{}'
is 4.00 "$(err 400)" "a deadline that is not digits: 4.00"
coap get /nowhere/at/all
is 4.04 "$(err 404)" "an unknown route: 4.04"

# --- the store
coap put /store/public/a -e '{"x":[1,2]}'
is 2.xx EMPTY "PUT /store/public/a: 2.04 Changed"
expect "the value written over CoAP is the store's" 0 '{"x":[1,2]}' hy store get --json /public/a
coap get /store/public/a
is 2.xx '^\{"x":\[1,2\]\}$' "GET /store/public/a: the value as JSON"
hy store put /public/b 7 >/dev/null
coap get '/store/public/%23'
is 2.xx '^\{("/public/a":\{"x":\[1,2\]\},"/public/b":7|"/public/b":7,"/public/a":\{"x":\[1,2\]\})\}$' "GET of a pattern: a JSON object fURI -> value"
coap delete /store/public/a
is 2.xx EMPTY "DELETE /store/public/a: 2.02 Deleted"
coap get /store/public/a
is 4.04 "$(err 404)" "GET after the delete: 4.04"
coap get /store/public//b
is 4.00 "$(err 400)" "an invalid fURI (an empty segment): 4.00"
coap get /store/sensors/t
is 4.01 "$(err 401)" "a store path edge.anonymous does not grant: 4.01"
"$PYTHON" -c 'print("{\"k\":\"" + "y" * 3000 + "\"}", end="")' >"$T/big.json"
coap put /store/public/big -f "$T/big.json"
is 2.xx EMPTY "PUT of a 3 KB body in Block1 blocks (under limits.max_body 4K)"
# Block2: debian's coap-client (libcoap 4.3.1) follows Block2 of a separate response
# only for NON requests (libcoap issue 1595), hence -N
coap get /store/public/big -N
same_big() { [ "$(cat "$T/big.json")" = "$(cat "$T/body")" ]; } # coap-client ends with a newline
check "GET of the 3 KB value: all of it, by Block2" same_big
"$PYTHON" -c 'print("{\"k\":\"" + "z" * 5000 + "\"}", end="")' >"$T/huge.json"
coap put /store/public/huge -f "$T/huge.json"
is 4.13 "$(err 413)" "a body over limits.max_body (5 KB): 4.13"
expect "nothing was written" 1 '' hy store get /public/huge

# --- Observe: /watch/ sees writes made by another process, in order, one notification each
bg obs "$CC" -s 20 -w -B 25 -m get "$U/watch/public/w/%23"
OPID=$BPID
subscribed() { grep -q '^{}$' "$T/obs.out"; }
wait_until 20 subscribed || bad "the observation is registered ({} first)" "$(cat "$T/obs.err")"
for i in 1 2 3; do hy store put /public/w/n$i "$i" >/dev/null || bad "hybrid store put $i"; done
hy store del /public/w/n1 >/dev/null || bad "hybrid store del"
want='{}
{"furi":"/public/w/n1","value":1}
{"furi":"/public/w/n2","value":2}
{"furi":"/public/w/n3","value":3}
{"furi":"/public/w/n1","value":null}'
seen_all() { [ "$(grep -c . "$T/obs.out")" -ge 5 ]; }
wait_until 20 seen_all
check "each store change one notification, in order (a delete: value null)" \
        [ "$(grep . "$T/obs.out" | head -n 5)" = "$want" ]
kill "$OPID" 2>/dev/null
wait "$OPID" 2>/dev/null

# --- Observe /events/: the bubble's events as notifications
bg ev "$CC" -s 3 -w -B 10 -m get "$U/events/org.example.edge/e1/tick"
EPID=$BPID
ticks() { [ "$(grep -c '^{"n":[0-9]*}$' "$T/ev.out")" -ge 3 ]; }
wait_until 20 ticks
check "Observe /events/...: the events, one notification each" ticks
inorder() { grep '^{"n":' "$T/ev.out" | tr -dc '0-9\n' | sort -n -c; }
check "... in order" inorder
wait "$EPID" 2>/dev/null
coap get /events/org.example.edge/e1/tick
is 4.00 "$(err 400)" "a GET of a stream route without Observe: 4.00"

# --- the observers' sessions end with them (deregistration, or a reset seen at the next
# notification): once both clients are gone and one more change is made, every CoAP
# session of the daemon is gone
hy store put /public/w/last 1 >/dev/null
sessions_gone() {
        [ "$(grep -c 'org.hybridos.edge/coap[0-9]*: edge session' "$T/d.log")" = \
          "$(grep -c 'org.hybridos.edge/coap[0-9]* gone' "$T/d.log")" ]
}
wait_until 30 sessions_gone
check "every CoAP session is freed once its request or observation ended" sessions_gone

# --- raw UDP (edge-coap.py): hostile datagrams, the bounds per address, a slow observer;
# each mode from its own 127.0.0.x source addresses
for mode in hostile pending observers slow; do
        "$PYTHON" "$HYB_IT_DIR/edge-coap.py" "$mode" "$PORT" "$T/d.log" >"$T/py.out" 2>&1
        rc=$?
        sed 's/^/    /' "$T/py.out"
        if [ $rc = 0 ] && grep -q '^ok ' "$T/py.out" && ! grep -q '^FAIL' "$T/py.out"; then
                ok "edge-coap.py $mode"
        else
                bad "edge-coap.py $mode (exit $rc)"
        fi
done
check "the daemon survived the hostile datagrams" kill -0 "$DPID"

# --- the bounds in all, measured on a daemon of their own (the modes above left requests
# and observations under way on the first one)
start_daemon t "listen:
  coap: 127.0.0.1:0
edge:
  anonymous: [\"/store/public/#\", \"/watch/public/#\"]
policy:
  store:
    - {furi: \"/public/#\", allow: [read, write, delete, subscribe]}" || finish
tport_known() { grep -q 'edge: CoAP on 127.0.0.1:[1-9]' "$T/t.log"; }
wait_until 10 tport_known || bad "the second daemon logs its CoAP port"
TPORT=$(sed -n 's/.*edge: CoAP on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/t.log" | head -n 1)
"$PYTHON" "$HYB_IT_DIR/edge-coap.py" totals "$TPORT" >"$T/py.out" 2>&1
rc=$?
sed 's/^/    /' "$T/py.out"
if [ $rc = 0 ] && grep -q '^ok ' "$T/py.out" && ! grep -q '^FAIL' "$T/py.out"; then
        ok "edge-coap.py totals"
else
        bad "edge-coap.py totals (exit $rc)"
fi

# --- a non-loopback listen.coap is served, with a warning
start_daemon w "listen:
  coap: 0.0.0.0:0
log:
  level: info" || finish
warned() { grep -q 'warning: edge: listen.coap 0.0.0.0:0 is not a loopback address' "$T/w.log"; }
wait_until 10 warned
check "hybridd warns when listen.coap is not a loopback address" warned
finish
