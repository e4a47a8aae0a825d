#!/bin/sh
# SPDX-License-Identifier: MIT
# hostile-channels.sh - direct channels under a hostile local user: K connections of one
# uid open and close channels to a service without ever reading their sockets (the
# channel ends pile up unread), then a bystander of another uid opens one channel.
# hybridd runs as a uid of its own (no CAP_SYS_RESOURCE: the kernel's bound on ends in
# flight applies) with a soft RLIMIT_NOFILE of 1024 and the default limits.  Per row: the
# opens accepted from the attacker in all, the bystander's status and the ends it received
# (200 and 1 is a channel), and the daemon's warnings that the kernel refused ends.
# A benchmark, not a test (tests/bus/test_bus_channel.c checks the bounds).  Needs root.
#
# usage: bench/hostile-channels.sh [BUILD_DIR]   (default: build/)
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
PY=/usr/bin/python3
[ "$(id -u)" = 0 ] || { echo "hostile-channels.sh: needs root (three uids)" >&2; exit 1; }
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" "$ROOT" >/dev/null
meson compile -C "$BUILD" examples/hybridd/hybridd >/dev/null
HYBRIDD=$BUILD/examples/hybridd/hybridd
W=$(mktemp -d "${TMPDIR:-/tmp}/bench-hostile-channels.XXXXXX")
chmod 755 "$W"
cp "$ROOT/tests/integration/rawbus.py" "$ROOT/bench/hostile-channels.py" "$W/"
chmod 644 "$W"/*.py
DPID=""
cleanup() {
        [ -z "$DPID" ] || { kill -TERM "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null || true; }
        rm -rf "$W"
}
trap cleanup EXIT INT TERM

# row K N: K attacking connections, at most N opens each
row() {
        D=$W/run$1
        mkdir "$D"
        chmod 777 "$D"
        : >"$D/hybridd.yaml"
        chmod 644 "$D/hybridd.yaml"
        (ulimit -Sn 1024 && exec setpriv --reuid=2100000001 --regid=2100000001 --clear-groups \
                "$HYBRIDD" --foreground --socket "$D/bus.sock" --config "$D/hybridd.yaml") \
                >"$D/log" 2>&1 &
        DPID=$!
        i=0
        while [ ! -S "$D/bus.sock" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
        out=$(cd "$W" && "$PY" hostile-channels.py "$D/bus.sock" "$1" "$2" \
                setpriv --reuid=2100000002 --regid=2100000002 --clear-groups \
                "$PY" "$W/hostile-channels.py" "$D/bus.sock" bystander)
        kill -TERM "$DPID"
        wait "$DPID" || true
        DPID=""
        acc=$(printf '%s\n' "$out" | awk '/^accepted/ { print $2 }')
        by=$(printf '%s\n' "$out" | sed -n 's/^bystander \([^ ]*\) \([^ ]*\) *\(.*\)/\1 \3 \/ \2/p')
        printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$acc" "$by" \
                "$(grep -c 'too many in flight' "$D/log" || true)"
}

echo "| attacking connections | opens tried each | opens accepted | bystander status / ends | ETOOMANYREFS warnings |"
echo "|---|---|---|---|---|"
row 1 1000
row 8 1000
