#!/bin/sh
# SPDX-License-Identifier: MIT
# Direct channels with a real hybridd (doc/protocol.md "Direct channels"): channel.py opens
# one between two raw peers and checks the two ends (one each, joined, none kept by the
# daemon: /proc/PID/fd), the close frames on SIGHUP (reload), on `hybrid monitor` attaching
# and on the caller leaving; here, the HTTP edge's session (no Unix peer) is refused, and
# the daemon goes on serving.  Expected statuses and messages come from doc/protocol.md.
. "$HYB_IT_DIR/lib.sh"
command -v curl >/dev/null || { bad "curl is installed"; finish; }

start_daemon d "listen:
  http: 127.0.0.1:0
edge:
  anonymous: [\"/bus/org.hybridos.bus/builtin/openChannel\"]
policy:
  admins: [$(id -u)]
log:
  level: debug" || finish
port_known() { grep -q 'edge: HTTP on 127.0.0.1:[1-9]' "$T/d.log"; }
wait_until 10 port_known || { bad "the daemon logs its HTTP port" "$(cat "$T/d.log")"; finish; }
PORT=$(sed -n 's/.*edge: HTTP on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/d.log" | head -n 1)

pycases "channel.py: open, ends, reload, monitor, caller gone" channel.py "$SOCK" "$DPID" "$HYBRID"

# An edge session is no Unix peer: refused, with the reason
ST=$(curl -s -o "$T/body" -w '%{http_code}' -X POST --max-time 30 \
        -d '{"endpoint":"@localhost/org.test.svc/main"}' \
        "http://127.0.0.1:$PORT/bus/org.hybridos.bus/builtin/openChannel")
if [ "${ST#5}" != "$ST" ] && grep -q 'direct channels need a local Unix connection' "$T/body"; then
        ok "an HTTP edge session gets no channel ($ST)"
else
        bad "an HTTP edge session gets no channel" "status $ST: $(cat "$T/body")"
fi
check "hybridd still serves" sh -c "[ \"\$(\"$HYBRID\" --bus '$SOCK' call @localhost/org.hybridos.bus/builtin echo 1)\" = 1 ]"
stop "$DPID"
check "hybridd stops cleanly" [ "$STOP_RC" = 0 ]
finish
