#!/bin/sh
# SPDX-License-Identifier: MIT
# The HTTP edge writes an answer in the turn of the loop it came in (doc/edge.md, "Keep-alive
# and the event loop"): a keep-alive request costs hybridd two changes of its epoll set (evhttp
# stops reading the connection at a request and starts again once the answer is written),
# not three (a write event turned on, then off, a loop turn later).  Counted with strace -c on
# the daemon while edge-writes.py sends requests one after the other; then the answers that
# this path writes are checked: pipelined requests, Connection: close, an answer larger than
# the client's receive buffer (written in parts).
. "$HYB_IT_DIR/lib.sh"
W="$HYB_IT_DIR/edge-writes.py"
command -v strace >/dev/null || { bad "strace is installed"; finish; }

cd "$T" || exit 1
start_daemon d "listen:
  http: 127.0.0.1:0
edge:
  anonymous: [\"/bus/org.example.edge/+/whoami\", \"/bus/org.example.big/+/big\"]
limits:
  max_body: 1M
  send_queue_bytes: 4M" || finish
port_known() { grep -q 'edge: HTTP on 127.0.0.1:[1-9]' "$T/d.log"; }
wait_until 10 port_known || { bad "the daemon logs its HTTP port" "$(cat "$T/d.log")"; finish; }
PORT=$(sed -n 's/.*edge: HTTP on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/d.log" | head -n 1)
bg probe "$HYB_PROBE" edge-server "$SOCK" e1
wait_until 10 has_line "$T/probe.out" '^ready$' || { bad "bus-probe edge-server starts" "$(cat "$T/probe.err")"; finish; }

# py DESC MODE ARGS...: edge-writes.py in the foreground
py() {
        d=$1; shift
        run "$PYTHON" "$W" "$@"
        sed 's/^/# /' "$T/out"
        [ "$RC" = 0 ] && grep -q '^ok ' "$T/out" && ok "$d" || bad "$d" "$(cat "$T/out" "$T/err" | tail -n 5)"
}

# ---- epoll_ctl per request: N requests in turn on one connection opened before strace
N=300
mkfifo "$T/go"
"$PYTHON" "$W" seq "$PORT" "$N" <"$T/go" >"$T/seq.out" 2>"$T/seq.err" &
SEQ=$!
PIDS="$PIDS $SEQ"
exec 3>"$T/go"
wait_until 30 has_line "$T/seq.out" '^ready$' || { bad "edge-writes.py seq connects" "$(cat "$T/seq.out" "$T/seq.err")"; finish; }
strace -f -c -o "$T/strace.txt" -p "$DPID" 2>"$T/strace.err" &
STR=$!
PIDS="$PIDS $STR"
attached() { grep -q "Process $DPID attached" "$T/strace.err"; }
wait_until 30 attached || { bad "strace attaches to hybridd" "$(cat "$T/strace.err")"; finish; }
echo go >&3
exec 3>&-
wait "$SEQ"
rc=$?
sed 's/^/# /' "$T/seq.out"
check "$N keep-alive requests answered in turn" [ "$rc" = 0 ]
kill -INT "$STR" 2>/dev/null
wait "$STR"
sed 's/^/#   /' "$T/strace.txt"
ctl=$(awk '$NF == "epoll_ctl" { print $4 }' "$T/strace.txt")
all=$(awk '$NF == "total" { print $4 }' "$T/strace.txt")
echo "# hybridd: ${ctl:-?} epoll_ctl, ${all:-?} system calls for $N requests"
# two per request (stop reading, read again), three when the answer waits a turn for
# its write event: the bound lies between
ctl_ok() { [ -n "$ctl" ] && [ "$ctl" -le $((N * 5 / 2)) ]; }
check "at most 2.5 epoll_ctl per keep-alive request (${ctl:-?} for $N)" ctl_ok

# ---- what the direct write must keep right
py "pipelined requests answered in order" pipeline "$PORT" 50
py "Connection: close answered, then closed" close "$PORT"
BIG=100000
serve_bg big --app org.example.big --runner r1 big "{\"big\":\"$(head -c $BIG /dev/zero | tr '\0' x)\"}" || finish
py "answers larger than the client's receive buffer, whole" big "$PORT" /bus/org.example.big/r1/big $BIG
check "the daemon still serves" kill -0 "$DPID"
stop "$DPID"
check "the daemon stops cleanly" [ "$STOP_RC" = 0 ]
finish
