#!/bin/sh
# hybridd out of file descriptors: accepting pauses instead of spinning (a bounded number of
# "accept:" warnings), the connected clients keep being served, and once fds are free again
# new clients get in.
. "$(dirname "$0")/lib.sh"
B=@localhost/org.hybridos.bus/builtin

# 24 fds: stdio, the listener, libevent's internals, a few clients, then EMFILE.
printf 'log: {level: warning}\n' >"$T/e.yaml"
prlimit --nofile=24:24 "$HYBRIDD" --foreground --socket "$T/e.sock" --config "$T/e.yaml" \
        >"$T/e.log" 2>&1 &
DPID=$!
PIDS="$PIDS $DPID"
SOCK="$T/e.sock"
wait_until 10 sock_or_dead "$SOCK" "$DPID" && [ -S "$SOCK" ] || { bad "daemon starts" "$(cat "$T/e.log")"; finish; }

bg keep hy --app org.example.keep --runner k listen '@*/*/*' 'X'
ready keep

# Hold 40 raw connections open for 1.5 s: more than the daemon has fds for.
"$PYTHON" - "$SOCK" >"$T/hold.out" 2>&1 <<'PY' &
import socket, sys, time
socks = []
for i in range(40):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])   # lands in the backlog even when the daemon cannot accept
    socks.append(s)
time.sleep(1.5)
PY
HOLD=$!
sleep 1
check "the daemon is alive while out of fds" kill -0 "$DPID"
wait "$HOLD"
n=$(grep -c 'accept:' "$T/e.log" || true)
check "accept errors were reported ($n lines)" [ "$n" -ge 1 ]
check "accepting paused instead of spinning (< 200 warnings, got $n)" [ "$n" -lt 200 ]
echo_ok() { [ "$(hy call $B echo '"back"' 2>/dev/null)" = '"back"' ]; }
check "once fds are free, a new client is served" wait_until 10 echo_ok
check "the client connected before the storm is still there" kill -0 "$BPID"
for p in $PIDS; do [ "$p" = "$DPID" ] || kill "$p" 2>/dev/null; done
stop "$DPID"
check "hybridd ends on SIGTERM with exit 0" [ "$STOP_RC" -eq 0 ]
finish
