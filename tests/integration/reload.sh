#!/bin/sh
# SPDX-License-Identifier: MIT
# hybridd as a system daemon (doc/hybridd.md "Signals" and "Service manager"): SIGHUP reads the
# configuration file again and applies limits, policies and new boot data in place, a
# connection opened before it stays open and meets the new limits, a file that does not load
# is logged and changes nothing, settings read only at the start are reported as ignored,
# SIGHUP never ends the daemon, and a NOTIFY_SOCKET listener gets READY=1, RELOADING=1 and
# STOPPING=1.  Expected values come from doc/hybridd.md and doc/config.md.
. "$HYB_IT_DIR/lib.sh"
unset HYBRID_BUS

# The service manager's side of sd_notify: one line per datagram (its newlines as spaces),
# until STOPPING=1.
cat >"$T/notify.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
with open(sys.argv[2], "w") as out:
    while True:
        msg = s.recv(4096).decode()
        out.write(msg.replace("\n", " ") + "\n")
        out.flush()
        if "STOPPING=1" in msg.split("\n"):
            break
PY
"$PYTHON" "$T/notify.py" "$T/notify.sock" "$T/notify.out" 2>"$T/notify.err" &
NPID=$!
PIDS="$PIDS $NPID"
wait_until 10 test -S "$T/notify.sock" || bad "notify listener starts" "$(cat "$T/notify.err")"

CONF=$T/d.yaml
NOTIFY_SOCKET=$T/notify.sock
export NOTIFY_SOCKET
start_daemon d "limits:
  max_body: 64K
policy:
  store:
    - {furi: \"/#\", allow: [read, write, delete, subscribe]}
boot:
  data:
    /config/a: \"'first'\"
log:
  level: info" || exit 1
unset NOTIFY_SOCKET
LOG=$T/d.log
n_lines() { grep -c -- "$2" "$1" 2>/dev/null || true; }
# hup N: sends SIGHUP and waits for the Nth "reloading" line to be followed by its outcome
hup() {
        kill -HUP "$DPID"
        wait_until 10 sh -c "[ \$(grep -c 'configuration reloaded\|reload failed' '$LOG') -ge $1 ]"
}
has_notify() { grep -qx -- "$1" "$T/notify.out"; }

check "READY=1 on the NOTIFY_SOCKET once listening" wait_until 10 has_notify "READY=1"
expect "a write allowed by the first policy.store" 0 "" hy store put /p/x 1
expect "boot data of the start" 0 "'first'" hy store get /config/a

# --- a good reload while a connection is open
"$PYTHON" "$HYB_IT_DIR/reload-peer.py" "$SOCK" "$T/go" "$T/done" >"$T/peer.out" 2>"$T/peer.err" &
PEER=$!
PIDS="$PIDS $PEER"
check "the peer's 3000-byte body passes under max_body 64K" \
        wait_until 10 has_line "$T/peer.out" '^before 200$'
# the old process keeps one connection; uid_max_connections 1 leaves it alone and refuses
# the next one (doc/config.md "Reload")
printf '%s\n' "limits:
  max_body: 2K
  uid_max_connections: 1
policy:
  apps:
    \"$(id -u)\": [org.hybridos.cli, org.example.*]
  store:
    - {furi: \"/#\", allow: [read]}
boot:
  data:
    /config/a: \"'second'\"
    /config/b: \"'added'\"
log:
  level: info" >"$CONF"
check "SIGHUP reloads" hup 1
check "... logged as reloaded" grep -q 'info: configuration reloaded$' "$LOG"
check "the daemon is alive after SIGHUP" kill -0 "$DPID"
check "RELOADING=1 then READY=1 on the NOTIFY_SOCKET" \
        wait_until 10 sh -c "grep -n . '$T/notify.out' | grep -A1 ':RELOADING=1 MONOTONIC_USEC=[0-9]* *\$' | grep -q ':READY=1'"
touch "$T/go"
check "the connection open before the reload meets the new max_body (413) and stays open (200)" \
        wait_until 10 has_line "$T/peer.out" '^after 413 200$'
expect_err "a lowered uid_max_connections refuses the next connection (429), not the open one" 3 \
        "429.*uid_max_connections|uid_max_connections.*429" hy store get /config/a
touch "$T/done"
wait "$PEER"
check "the peer ran to its end" [ $? -eq 0 ]
# its connection is gone once the broker saw it close: the one allowed connection is free
get_b() { [ "$(hy store get /config/b 2>/dev/null)" = "'added'" ]; }
check "a boot.data key added by the reload is written" wait_until 10 get_b
expect "a boot.data key already set keeps its value" 0 "'first'" hy store get /config/a
expect_err "the new policy.store takes effect (read only: a write is 403)" 1 \
        "403 policy.store denies write of /p/x" hy store put /p/x 2
expect "... and reads are still allowed" 0 "1" hy store get /p/x
expect_err "the new policy.apps takes effect: an app name outside it is refused" 3 \
        "403" hy --app org.other.tool store get /p/x
expect "... and one inside it is accepted" 0 "1" hy --app org.example.tool store get /p/x

# --- bad files: logged with the file and position, the configuration in force stays whole
bad_reload() { # DESC YAML POSITION-REGEX N
        printf "$2\n" >"$CONF"
        hup "$4"
        if ! grep -Eq "error: reload failed, the configuration in force stays: $CONF: .*$3" "$LOG"; then
                bad "$1: logged with file and position" "$(tail -n 3 "$LOG")"
        else
                ok "$1: logged with file and position"
        fi
}
bad_reload "unknown key" 'limits:\n  max_body: 64K\n  bogus: 1' 'limits\.bogus: unknown key at 3:3$' 2
bad_reload "bad value" 'limits:\n  max_body: lots' 'limits\.max_body: .* at 2:13$' 3
bad_reload "syntax error" 'limits:\n  max_body: "64K' 'YAML syntax error: .* at 3:1$' 4
check "the daemon is alive after bad reloads" kill -0 "$DPID"
# the old max_body (2K) and policy (read only) are still in force: none of 64K applied
"$PYTHON" "$HYB_IT_DIR/reload-peer.py" "$SOCK" "$T/go" "$T/done" >"$T/peer2.out" 2>"$T/peer2.err" &
PEER=$!
PIDS="$PIDS $PEER"
check "after a bad reload the old max_body still holds (413)" \
        wait_until 10 has_line "$T/peer2.out" '^before 413$'
wait "$PEER"
expect_err "after a bad reload the old policy.store still holds" 1 "403 policy.store" \
        hy store put /p/x 3

# --- settings read at the start only: reported, not applied
printf '%s\n' "host: elsewhere
listen:
  unix: $T/other.sock
store:
  path: $T/other.db
limits:
  max_body: 64K" >"$CONF"
check "a reload changing restart-only settings succeeds" hup 5
check "host is reported as ignored until restart" \
        grep -q 'warning: reload: host changed: ignored until restart$' "$LOG"
check "store.path is reported as ignored until restart" \
        grep -q 'warning: reload: store.path changed: ignored until restart$' "$LOG"
check "the store was not reopened" [ ! -e "$T/other.db" ]
check "the socket stays where it was" [ -S "$SOCK" ] && [ ! -e "$T/other.sock" ]
expect "the store in force is still served (policy.store gone: writes allowed)" 0 "" \
        hy store put /p/x 4

# --- SIGHUP never ends the daemon: a burst of them (the kernel merges a signal sent again
# while pending, so there may be fewer reloads than signals, but at least one)
for i in 1 2 3 4 5; do kill -HUP "$DPID"; done
check "a burst of SIGHUPs is handled" \
        wait_until 20 sh -c "[ \$(grep -c 'configuration reloaded\|reload failed' '$LOG') -ge 6 ]"
check "the daemon is alive after a burst of SIGHUPs" kill -0 "$DPID"
expect "and serves" 0 "4" hy store get /p/x

# --- STOPPING=1 on shutdown
stop "$DPID"
check "SIGTERM after reloads: exit 0" [ "$STOP_RC" -eq 0 ]
check "STOPPING=1 on the NOTIFY_SOCKET at shutdown" \
        wait_until 10 grep -q '^STOPPING=1' "$T/notify.out"
wait "$NPID"

finish
