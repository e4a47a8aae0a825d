#!/bin/sh
# SPDX-License-Identifier: MIT
# Endpoint names in the CLI against a real hybridd (doc/hybrid.md): `list <endpoint>` of an
# endpoint that is not there exits 1 with 404; a malformed name is refused (exit 2) with
# the part that is wrong and the form @host/app/runner; `listen 'bad name' '*'` is refused
# at once instead of waiting; $HYBRID_BUS is honoured by hyb_bus_connect(NULL, ...).
. "$(dirname "$0")/lib.sh"
B=@localhost/org.hybridos.bus/builtin

start_daemon names "log: {level: warning}" || finish

# --- list <endpoint>
expect_err "list of an absent endpoint: exit 1, 404" 1 '^hybrid: list: 404 ' \
        hy list @localhost/org.example.absent/main
[ -s "$T/out" ] && bad "list of an absent endpoint prints nothing on stdout" "$(cat "$T/out")" ||
        ok "list of an absent endpoint prints nothing on stdout"
expect_err "list --json of an absent endpoint: JSON error with status 404" 1 '"status":404' \
        hy --json list @localhost/org.example.absent/main
expect_err "list of a name without runner: exit 2, names the part and the form" 2 \
        "^hybrid: list: 406 .*runner part is missing.*@host/app/runner" hy list @localhost/org.example
expect_err "list of a name without '@': exit 2" 2 "^hybrid: list: 406 .*must start with '@'" \
        hy list localhost/org.example/main
serve_bg srv getX '{"x": 1}' --runner srv
run hy list @localhost/org.hybridos.cli/srv
# (an administrator also sees "  (uid U, pid P)" after the name)
if [ "$RC" = 0 ] && head -n 1 "$T/out" | grep -Eq '^@localhost/org.hybridos.cli/srv( |$)' &&
        grep -q '^  procedure getX ' "$T/out"; then
        ok "list of a present endpoint prints it with its procedure"
else
        bad "list of a present endpoint prints it with its procedure" "exit $RC: $(cat "$T/out" "$T/err")"
fi
run hy list @LOCALHOST/ORG.HYBRIDOS.CLI/SRV
[ "$RC" = 0 ] && grep -Eq '^@localhost/org.hybridos.cli/srv( |$)' "$T/out" &&
        ok "list compares endpoint names case-insensitively" ||
        bad "list compares endpoint names case-insensitively" "exit $RC: $(cat "$T/out" "$T/err")"
run hy list '@localhost/org.hybridos.*'
if [ "$RC" = 0 ] && grep -Eq '^@localhost/org.hybridos.cli/srv( |$)' "$T/out" && grep -Eq "^$B( |\$)" "$T/out"; then
        ok "list of a glob prints every endpoint it matches"
else
        bad "list of a glob prints every endpoint it matches" "exit $RC: $(cat "$T/out" "$T/err")"
fi
run hy --json list @localhost/org.hybridos.cli/srv
[ "$RC" = 0 ] && $PYTHON -c '
import json, sys
a = json.load(open(sys.argv[1]))
assert [e["endpointName"] for e in a] == ["@localhost/org.hybridos.cli/srv"], a
assert a[0]["procedures"][0]["procedureName"].endswith("/getX"), a
' "$T/out" && ok "list --json of one endpoint" || bad "list --json of one endpoint" "$(cat "$T/out" "$T/err")"
stop "$BPID"

# --- listen refuses a malformed glob at once (it would match nothing and wait forever)
run timeout 5 "$HYBRID" --bus "$SOCK" listen 'bad name' '*'
if [ "$RC" = 2 ] && grep -q "^hybrid: listen: 406 .*@host/app/runner" "$T/err" && ! grep -q '^ready$' "$T/err"; then
        ok "listen 'bad name' '*' is refused with exit 2 and the form"
else
        bad "listen 'bad name' '*' is refused with exit 2 and the form" "exit $RC: $(cat "$T/err")"
fi
run timeout 5 "$HYBRID" --bus "$SOCK" listen '@localhost/org.example/x/y' '*'
[ "$RC" = 2 ] && ok "listen with a part too many: exit 2" || bad "listen with a part too many: exit 2" "exit $RC: $(cat "$T/err")"
# a well-formed glob still subscribes
bg lg hy listen '@localhost/*' 'TICK' --count 1
check "listen '@localhost/*' TICK subscribes (ready)" ready lg
expect "fire reaches it" 0 '{"delivered":1,"failed":0}' hy --runner ticker fire TICK '1'
wait "$BPID"
expect "listen printed the event" 0 "@localhost/org.hybridos.cli/ticker	TICK	1" cat "$T/lg.out"

# --- $HYBRID_BUS in the library: hyb_bus_connect(NULL, ...) connects there
HYBRID_BUS="$SOCK" XDG_RUNTIME_DIR="$T/no-runtime" "$HYB_PROBE" echo-server - envr >"$T/probe.out" 2>"$T/probe.err" &
PPID_=$!
PIDS="$PIDS $PPID_"
if wait_until 10 has_line "$T/probe.out" '^ready$'; then
        ok "a client connecting with path NULL and \$HYBRID_BUS set reaches that daemon"
        expect "and serves calls there" 0 '{"v":1}' hy call @localhost/org.example.echo/envr echo '{"v":1}'
else
        bad "a client connecting with path NULL and \$HYBRID_BUS set reaches that daemon" "$(cat "$T/probe.err")"
fi
stop "$PPID_"
run env HYBRID_BUS= XDG_RUNTIME_DIR="$T/no-runtime" "$HYB_PROBE" echo-server - envr2
[ "$RC" = 3 ] && grep -q "$T/no-runtime/hybrid/bus.sock" "$T/out" "$T/err" &&
        ok "an empty \$HYBRID_BUS falls back to the default socket" ||
        bad "an empty \$HYBRID_BUS falls back to the default socket" "exit $RC: $(cat "$T/out" "$T/err")"

finish
