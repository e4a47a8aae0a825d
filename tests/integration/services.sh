#!/bin/sh
# SPDX-License-Identifier: MIT
# The system services of issue 9 against a real hybridd (doc/hybrid-sysinfo.md,
# doc/hybrid-sensor-sim.md): sysinfo's readings are sane (uptime grows, memory total >
# free > 0, load >= 0, counters never go back) and periodic (INFO events, store values
# that change, and only those rewritten), its procedures answer, /sys/info/ is writable by
# sysinfo alone; the
# simulator's retained writes reach a subscriber, a seed gives the same readings, and an
# excursion goes above the threshold.
. "$(dirname "$0")/lib.sh"
: "${HYB_SYSINFO:?}" "${HYB_SENSOR_SIM:?}"
unset HYBRID_BUS HYBRID_DB
TAB=$(printf '\t')

start_daemon svc "log: {level: warning}" || finish
SI=@localhost/org.hybridos.sysinfo/main

# --- sysinfo: the first readings are in the store when it prints its endpoint name
bg listen hy listen "@localhost/org.hybridos.sysinfo/*" INFO --count 2
LPID=$BPID
check "listen INFO is subscribed" ready listen
bg si "$HYB_SYSINFO" --bus "$SOCK" --interval 0.3
SIPID=$BPID
wait_until 10 has_line "$T/si.out" "^$SI\$" || bad "sysinfo starts" "$(cat "$T/si.err")"
get() { hy store get "$1"; }
num_ok() { printf '%s\n' "$1" | grep -Eq '^[0-9]+(\.[0-9]+)?$'; }

U1=$(get /sys/info/uptime)
check "uptime is a number of seconds ($U1)" num_ok "$U1"
MT=$(get /sys/info/mem/total) MF=$(get /sys/info/mem/free)
check "memory total > free > 0 ($MT $MF)" awk -v t="$MT" -v f="$MF" 'BEGIN { exit !(t + 0 > f + 0 && f + 0 > 0) }'
for k in 1m 5m 15m; do
        L=$(get /sys/info/load/$k)
        check "load/$k >= 0 ($L)" awk -v l="$L" 'BEGIN { exit !(l ~ /^[0-9]+(\.[0-9]+)?$/ && l + 0 >= 0) }'
done
check "disk of / reported" sh -c "[ \"\$(\"$HYBRID\" --bus \"$SOCK\" store get /sys/info/disk/root/total)\" -gt 0 ]"
# the interfaces of /proc/net/dev, each with its counters
IF=$(awk -F: 'NR > 2 { gsub(/ /, "", $1); print $1; exit }' /proc/net/dev)
R1=$(get "/sys/info/net/$IF/rx_bytes") T1=$(get "/sys/info/net/$IF/tx_packets")
check "net/$IF counters ($R1 $T1)" sh -c "[ '$R1' -ge 0 ] && [ '$T1' -ge 0 ]"

# --- periodic: two INFO events, each the whole tree; the store value changes
check "two INFO events" wait_until 20 sh -c "[ \$(wc -l <'$T/listen.out') -ge 2 ]"
wait "$LPID" 2>/dev/null
check "INFO events carry every group" $PYTHON -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 2, lines
for ln in lines:
        ep, bubble, body = ln.split("\t", 2)
        assert bubble == "INFO", bubble
        d = json.loads(body)
        assert set(d) == {"uptime", "load", "mem", "disk", "net"}, sorted(d)
        assert d["mem"]["total"] > d["mem"]["free"] > 0
' "$T/listen.out"
changed() { [ "$(get /sys/info/uptime)" != "$U1" ]; }
check "the stored uptime changes" wait_until 20 changed
U2=$(get /sys/info/uptime)
check "uptime grows ($U1 -> $U2)" awk -v a="$U1" -v b="$U2" 'BEGIN { exit !(b + 0 > a + 0) }'
R2=$(get "/sys/info/net/$IF/rx_bytes") T2=$(get "/sys/info/net/$IF/tx_packets")
check "net/$IF counters never go back ($R1 -> $R2, $T1 -> $T2)" sh -c "[ '$R2' -ge '$R1' ] && [ '$T2' -ge '$T1' ]"

# --- procedures: one per group, and all
run hy call "$SI" memory
check "call memory: total > free > 0" $PYTHON -c '
import json, sys; d = json.load(sys.stdin); assert d["total"] > d["free"] > 0, d' <"$T/out"
run hy call "$SI" load
check "call load: 1m 5m 15m >= 0" $PYTHON -c '
import json, sys; d = json.load(sys.stdin); assert all(d[k] >= 0 for k in ("1m", "5m", "15m")), d' <"$T/out"
run hy call "$SI" all
check "call all: every group" $PYTHON -c '
import json, sys; d = json.load(sys.stdin); assert set(d) == {"uptime", "load", "mem", "disk", "net"}, d
assert d["uptime"] > 0 and d["disk"]["root"]["total"] >= d["disk"]["root"]["free"]' <"$T/out"
run hy call "$SI" network
check "call network: $IF has its counters" $PYTHON -c '
import json, sys; d = json.load(sys.stdin)[sys.argv[1]]
assert {"rx_bytes", "rx_packets", "tx_bytes", "tx_packets"} <= set(d), d' "$IF" <"$T/out"

# --- /sys/info/ is sysinfo's: its app as our (the daemon's) uid may write there, nobody
# else, and the rest of /sys/ stays read-only for it too
expect "sysinfo's app as the daemon's uid writes /sys/info/" 0 "" \
        hy --app org.hybridos.sysinfo store put /sys/info/probe 1
expect_err "another app of the same uid: 403" 1 '403' \
        hy --app org.example.other store put /sys/info/probe 2
expect_err "another app of the same uid cannot delete: 403" 1 '403' \
        hy --app org.example.other store del /sys/info/probe
expect_err "uid 65534 as org.hybridos.sysinfo: 403" 1 '403' \
        as_nobody "$HYBRID" --bus "$SOCK" --app org.hybridos.sysinfo store put /sys/info/probe 3
expect_err "sysinfo's app cannot write /sys/bus/: 403" 1 '403' \
        hy --app org.hybridos.sysinfo store put /sys/bus/endpoints 0
expect_err "sysinfo's app cannot write /sys itself: 403" 1 '403' \
        hy --app org.hybridos.sysinfo store put /sys 0
expect "the refused writes left the value" 0 "1" hy store get /sys/info/probe
stop "$SIPID"
check "sysinfo exits 0 on SIGTERM" [ "$STOP_RC" = 0 ]

# --- a second run: what the first left is deleted first (/sys/info/probe too), then each
# period writes only what changed: a total is written once, the uptime every period
bg watchsi hy store watch '/sys/info/#'
check "store watch /sys/info/# is subscribed" ready watchsi
bg si2 "$HYB_SYSINFO" --bus "$SOCK" --interval 0.2
SIPID=$BPID
wait_until 10 has_line "$T/si2.out" "^$SI\$" || bad "sysinfo starts again" "$(cat "$T/si2.err")"
expect "the old keys are gone" 1 "" hy store get /sys/info/probe
three() { [ "$(grep -c "^/sys/info/uptime$TAB[0-9]" "$T/watchsi.out")" -ge 3 ]; }
check "three periods: uptime written three times" wait_until 20 three
check "mem/total written once in those periods" \
        [ "$(grep -c "^/sys/info/mem/total$TAB[0-9]" "$T/watchsi.out")" = 1 ]
check "disk/root/total written once" \
        [ "$(grep -c "^/sys/info/disk/root/total$TAB[0-9]" "$T/watchsi.out")" = 1 ]
stop "$SIPID"

# --- the simulator: its retained writes seen by a subscriber, in write order
bg watch hy store watch '/sensors/#' --count 12
WPID=$BPID
check "store watch /sensors/# is subscribed" ready watch
expect "sensor-sim --count 2 --sensors 3" 0 "*" \
        "$HYB_SENSOR_SIM" --bus "$SOCK" --interval 10 --count 2 --sensors 3 --seed 42 --print
cp "$T/out" "$T/sim.out"
wait "$WPID" 2>/dev/null
check "12 readings printed (2 ticks x 3 rooms x temp, humidity)" [ "$(wc -l <"$T/sim.out")" = 12 ]
cut -f1 "$T/sim.out" >"$T/sim.keys"
cut -f1 "$T/watch.out" >"$T/watch.keys"
check "the subscriber saw the simulator's fURIs in write order" cmp -s "$T/sim.keys" "$T/watch.keys"
check "and the same values" awk -F"$TAB" 'NR == FNR { v[FNR] = $2; next } { if ($2 + 0 != v[FNR] + 0) exit 1 }' \
        "$T/sim.out" "$T/watch.out"
check "rooms and quantities under /sensors/<room>/<quantity>" sh -c \
        "sort -u '$T/sim.keys' | tr '\n' ' ' | grep -qx '/sensors/bedroom/humidity /sensors/bedroom/temp /sensors/hall/humidity /sensors/hall/temp /sensors/kitchen/humidity /sensors/kitchen/temp '"
check "plausible readings: temperature 15..28 C, humidity 20..80 %" awk -F"$TAB" '
        $1 ~ /temp$/ && ($2 < 15 || $2 > 28) { exit 1 }
        $1 ~ /humidity$/ && ($2 < 20 || $2 > 80) { exit 1 }' "$T/sim.out"
expect "readings are retained" 0 "$(awk -F"$TAB" '$1 == "/sensors/hall/temp" { v = $2 } END { print v }' "$T/sim.out")" \
        hy store get /sensors/hall/temp

# --- deterministic with --seed; another seed, other readings
sim() { "$HYB_SENSOR_SIM" --bus "$SOCK" --interval 10 --count 5 --sensors 4 --excursion 0 --print "$@"; }
sim --seed 7 >"$T/s7a" && sim --seed 7 >"$T/s7b" && sim --seed 8 >"$T/s8" || bad "sensor-sim runs"
check "the same seed writes the same readings" cmp -s "$T/s7a" "$T/s7b"
check "another seed other readings" sh -c "! cmp -s '$T/s7a' '$T/s8'"
check "5 ticks x 4 rooms x 2 quantities: 40 readings" [ "$(wc -l <"$T/s7a")" = 40 ]

# --- an excursion: every 3rd tick one room reads above the threshold, never otherwise
sim --seed 3 --excursion 3 --count 6 --threshold 30 >"$T/exc" 2>"$T/exc.err" ||
        bad "sensor-sim excursion runs" "$(cat "$T/exc.err")"
check "ticks 3 and 6 have one temperature above 30, the others none" awk -F"$TAB" '
        { tick = int((NR - 1) / 8) + 1 }
        $1 ~ /temp$/ && $2 > 30 { hot[tick]++ }
        END { for (t = 1; t <= 6; t++) if ((t % 3 == 0) != (hot[t] == 1)) exit 1 }' "$T/exc"
# no logd runs here: hyb_log writes each excursion's warning to stderr instead
check "each excursion logged as a warning (stderr without logd)" [ "$(grep -Ec \
        ' warning @localhost/org\.hybridos\.sensorsim/p[0-9]+ [a-z]+ reads 3[0-9]\.[0-9] C, above 30\.0 C$' \
        "$T/exc.err")" = 2 ]
expect_err "sensor-sim refuses --sensors 0 (usage, 2)" 2 'usage' "$HYB_SENSOR_SIM" --sensors 0
expect_err "sysinfo refuses --interval 0 (usage, 2)" 2 'usage' "$HYB_SYSINFO" --interval 0
# --help: the usage on stdout, exit 0 (as hybrid-logd and hybridd do), not a usage error
for p in "$HYB_SYSINFO" "$HYB_SENSOR_SIM"; do
        expect "$(basename "$p") --help exits 0" 0 "*" "$p" --help
        check "$(basename "$p") --help prints its usage on stdout" grep -q "^usage: $(basename "$p") " "$T/out"
done
finish
