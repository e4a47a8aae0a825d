#!/bin/sh
# SPDX-License-Identifier: MIT
# examples/hybridd.yaml, the example /etc/hybrid/hybridd.yaml: every key hybridd accepts
# (each limit of the table in lib/broker/config.h, each key the loader's tables in
# lib/broker/config-load.c, config-boot.c, config-auth.c, config-tls.c and config-cluster.c take) is in it, hybridd loads it as is (only
# the paths moved into the test's directory), its boot data and program run without an
# error, and the program raises /alerts/... when a /sensors/.../temp reading crosses the
# threshold, and only then; the simulator's warning about it reaches hybrid-logd.
. "$(dirname "$0")/lib.sh"
: "${HYB_SRC:?}" "${HYB_SENSOR_SIM:?}" "${HYB_LOGD:?}"
unset HYBRID_BUS HYBRID_DB
EX=$HYB_SRC/examples/hybridd.yaml
check "examples/hybridd.yaml exists" test -f "$EX"

# The keys: the X-macro rows of the limits, the {"key", handler} rows of the loader.
grep -oE '^[[:space:]]*X\([a-z_]+,' "$HYB_SRC/lib/broker/config.h" | sed 's/.*X(//; s/,//' >"$T/limits"
grep -ohE '\{ "[a-z_]+", [a-z_]+ \}' "$HYB_SRC/lib/broker/config-load.c" \
        "$HYB_SRC/lib/broker/config-boot.c" "$HYB_SRC/lib/broker/config-auth.c" \
        "$HYB_SRC/lib/broker/config-tls.c" "$HYB_SRC/lib/broker/config-cluster.c" | sed 's/{ "//; s/".*//' >"$T/loader"
check "found the limits table ($(wc -l <"$T/limits") keys)" [ "$(wc -l <"$T/limits")" -ge 20 ]
check "found the loader's keys ($(wc -l <"$T/loader") keys)" [ "$(wc -l <"$T/loader")" -ge 20 ]
for k in limits host listen policy log store boot; do
        grep -qx "$k" "$T/loader" || grep -qx "$k" "$T/limits" || bad "the loader has no key $k: extraction broken"
done
missing=""
for k in $(sort -u "$T/limits" "$T/loader"); do
        # a key as YAML writes it: at a line start, after a space, `{`, `-` or `#`
        grep -Eq "(^|[[:space:]{#-])$k:" "$EX" || missing="$missing $k"
done
check "every key is in the example${missing:+ (missing:$missing)}" [ -z "$missing" ]
check "every line that sets a key has a comment near it" awk '
        /^[[:space:]]*#/ { c = NR } /#/ { c = NR }
        /^[a-z]/ && NR - c > 1 { print "line " NR " has no comment above: " $0; bad = 1 }
        END { exit bad }' "$EX"

# It loads as is: only the store file moves to the test's directory (the socket is --socket).
sed "s|/var/lib/hybrid/|$T/|" "$EX" >"$T/ex.yaml"
check "only the store path was changed" sh -c "diff '$EX' '$T/ex.yaml' | grep -c '^>' | grep -qx 1"
"$HYBRIDD" --foreground --socket "$T/ex.sock" --config "$T/ex.yaml" >"$T/ex.log" 2>&1 &
DPID=$!
PIDS="$PIDS $DPID"
SOCK=$T/ex.sock
wait_until 10 sock_or_dead "$SOCK" "$DPID"
check "hybridd starts on the example file" test -S "$SOCK"
check "its boot ran without an error" grep -q 'boot: 1 data entries, 1 programs, 0 errors' "$T/ex.log"
check "no error or warning logged" sh -c "! grep -E ': (error|warning):' '$T/ex.log'"
check "the store is the file it names" test -f "$T/store.db"
expect "boot data: the threshold" 0 "30.0" hy store get /config/alerts/temp_above

# The boot program: a reading above the threshold raises an alert, one below does not.
bg alerts hy store watch '/alerts/#' --count 1
APID=$BPID
check "watch /alerts/# is subscribed" ready alerts
expect "a reading below the threshold" 0 "" hy store put /sensors/cellar/temp 29.9
expect "a reading above it" 0 "" hy store put /sensors/attic/temp 31.5
wait "$APID" 2>/dev/null
expect "the alert raised for the hot reading" 0 "/alerts/sensors/attic/temp	31.5" cat "$T/alerts.out"
expect "no alert for the cool one" 1 "" hy store get /alerts/sensors/cellar/temp
# the simulator's excursion (every tick here, one room) raises one too, and logs a warning
bg logd "$HYB_LOGD" --bus "$SOCK"
wait_until 10 has_line "$T/logd.out" '^@localhost/org.hybridos.logd/main$' ||
        bad "hybrid-logd starts" "$(cat "$T/logd.err")"
expect "sensor-sim with an excursion each tick" 0 "*" \
        "$HYB_SENSOR_SIM" --bus "$SOCK" --count 1 --sensors 1 --excursion 1 --print
hot=$(awk -F'\t' '$1 == "/sensors/kitchen/temp" { print $2 }' "$T/out")
check "the simulated excursion is above 30 ($hot)" awk -v v="$hot" 'BEGIN { exit !(v + 0 > 30) }'
expect "its alert" 0 "$hot" hy store get /alerts/sensors/kitchen/temp
logged() { hy log --from org.hybridos.sensorsim --level warning | grep -q " kitchen reads $hot C, above 30.0 C\$"; }
check "and its warning is in the log" wait_until 10 logged
stop "$DPID"
check "hybridd exits 0 on SIGTERM" [ "$STOP_RC" = 0 ]
finish
