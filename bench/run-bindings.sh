#!/usr/bin/env bash
# run-bindings.sh - the bindings beside C and beside the D-Bus and MQTT client libraries users
# would otherwise pick (bench/README.md, "bench-bindings"): echo call RTT and event delivery
# rate from C, Python, Node and Lua through a real hybridd, and the same echo from dbus-python
# through dbus-broker (dbus-daemon when dbus-broker cannot be started) and from paho-mqtt
# through mosquitto.  Every echo is served in C (bench-bindings).
#
# usage: bench/run-bindings.sh [--quick] [--rounds N] [--calls N] [--events N] [--pin] [--verbose]
#   (no option)  5 rounds of 5 000 calls and a 20 000-event burst per client, ~1-2 minutes
#   --quick      3 rounds of 1 000 calls and 5 000 events, ~20 s
#   --pin        every broker (hybridd, dbus-broker, mosquitto) on cpu 0, every service and
#                client on cpu 1 (taskset): the same placement for every row and round
# Builds build-bench (release) with its bindings, starts every daemon privately in a fresh
# directory under $TMPDIR (removed at the end), stops them by PID.  Table on stdout, progress
# on stderr.  Peers that are not installed (python3-dbus, dbus-broker, mosquitto, paho) leave
# their rows out.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
PY=/usr/bin/python3
. "$ROOT/bench/peers.sh"
MQTT_PORT=${BENCH_MQTT_PORT:-$(bench_free_port)}   # loopback only; the kernel picks one
ROUNDS=5 CALLS=5000 EVENTS=20000 VERBOSE= PIN=
while [ $# -gt 0 ]; do
    case $1 in
    --quick) ROUNDS=3 CALLS=1000 EVENTS=5000 ;;
    --rounds) ROUNDS=$2; shift ;;
    --calls) CALLS=$2; shift ;;
    --events) EVENTS=$2; shift ;;
    --verbose) VERBOSE=--verbose ;;  # every round's figure, one RESULT line per client
    --pin) PIN=1 ;;
    *) echo "usage: $0 [--quick] [--rounds N] [--calls N] [--events N] [--pin] [--verbose]" >&2; exit 2 ;;
    esac
    shift
done
log() { printf '== %s\n' "$*" >&2; }
# --pin: brokers ($ON_B) on cpu 0, services and clients ($ON_P) on cpu 1
ON_B=() ON_P=()
if [ -n "$PIN" ]; then
    if ! command -v taskset >/dev/null || [ "$(nproc)" -lt 2 ]; then
        echo "$0: --pin needs taskset and 2 cpus" >&2
        exit 2
    fi
    ON_B=(taskset -c 0) ON_P=(taskset -c 1)
    export BENCH_PINNED="brokers on cpu 0, services and clients on cpu 1"
fi

. "$ROOT/bench/bench-build.sh"
bench_build_dir "$ROOT" "$BUILD"
ninja -C "$BUILD" build.ninja >/dev/null 2>&1 || true
if ! out=$(meson compile -C "$BUILD" 2>&1); then
    printf '%s\n' "$out" >&2
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-bindings.XXXXXX")
PIDS=(); PGIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for g in "${PGIDS[@]:-}"; do [ -n "$g" ] && kill -- "-$g" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
wait_for() { for _ in $(seq 200); do eval "$1" && return 0; sleep 0.05; done; return 1; }

BB=$BUILD/bench/bench-bindings
. "$ROOT/bench/bindings/echo-env.sh"
bindings_env "$ROOT" "$BUILD"

# ---- hybridd and the C echo service
start_echo "$WORK" "$BUILD" || exit 1

# ---- D-Bus: dbus-broker as run-bus.sh starts it (socket-activated dbus-broker-launch in a
# private mount namespace whose /run/systemd/journal/socket is a sink), else dbus-daemon
DBUS_KIND=none DBUS_ADDR=
if "$PY" -c "import dbus" 2>/dev/null &&
   grep -q HAVE_SDBUS "$BUILD/build.ninja"; then
    cat > "$WORK/dbus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$WORK/dbus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF
    cat > "$WORK/journal-sink.py" <<'EOF'
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
s.bind(sys.argv[1])
while True:
    s.recv(65536)
EOF
    bus_up() { busctl --address="unix:path=$WORK/dbus.sock" call org.freedesktop.DBus \
                   /org/freedesktop/DBus org.freedesktop.DBus GetId >/dev/null 2>&1; }
    if command -v dbus-broker-launch >/dev/null && command -v unshare >/dev/null &&
       [ "$(id -u)" = 0 ] && [ -d /run/systemd ]; then
        "${ON_B[@]}" setsid unshare -m --propagation private /bin/sh -c "
            mount -t tmpfs bench-run /run/systemd || exit 1
            '$PY' '$WORK/journal-sink.py' /run/systemd/journal/socket &
            sleep 0.3
            exec systemd-socket-activate -E DBUS_SESSION_BUS_ADDRESS=unix:path=$WORK/dbus.sock \
                 -l '$WORK/dbus.sock' dbus-broker-launch --scope user --config-file='$WORK/dbus.conf'
        " >"$WORK/dbus-broker.log" 2>&1 &
        PGIDS+=($!)
        wait_for bus_up && DBUS_KIND=dbus-broker
    fi
    if [ "$DBUS_KIND" = none ] && command -v dbus-daemon >/dev/null; then
        log "dbus-broker could not be started (needs root, unshare, systemd-socket-activate): dbus-daemon instead"
        rm -f "$WORK/dbus.sock"
        "${ON_B[@]}" dbus-daemon --config-file="$WORK/dbus.conf" --nofork >"$WORK/dbus-daemon.log" 2>&1 &
        PIDS+=($!)
        wait_for bus_up && DBUS_KIND=dbus-daemon
    fi
    if [ "$DBUS_KIND" != none ]; then
        DBUS_ADDR=unix:path=$WORK/dbus.sock
        "${ON_P[@]}" "$BB" dbus-serve "$DBUS_ADDR" >"$WORK/dbus-serve.out" 2>&1 &
        PIDS+=($!)
        wait_for 'grep -q READY "$WORK/dbus-serve.out"' || { cat "$WORK/dbus-serve.out" >&2; DBUS_KIND=none; }
    fi
else
    log "no python3-dbus or no sd-bus in the build: the D-Bus row is left out"
fi

# ---- MQTT: mosquitto on loopback TCP (paho-mqtt 1.6 has no Unix socket transport)
MQTT=0
if "$PY" -c 'import paho.mqtt.client' 2>/dev/null && command -v mosquitto >/dev/null &&
   grep -q HAVE_MOSQUITTO "$BUILD/build.ninja"; then
    cat > "$WORK/mosquitto.conf" <<EOF
user $(id -un)
allow_anonymous true
persistence false
set_tcp_nodelay true
log_dest none
listener $MQTT_PORT 127.0.0.1
EOF
    "${ON_B[@]}" mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
    PIDS+=($!)
    if wait_for "$PY -c 'import socket; socket.create_connection((\"127.0.0.1\", $MQTT_PORT)).close()' 2>/dev/null"; then
        "${ON_P[@]}" "$BB" mqtt-serve 127.0.0.1 "$MQTT_PORT" >"$WORK/mqtt-serve.out" 2>&1 &
        PIDS+=($!)
        wait_for 'grep -q READY "$WORK/mqtt-serve.out"' && MQTT=1
    fi
    [ "$MQTT" = 1 ] || log "mosquitto or the MQTT echo did not start: the MQTT row is left out"
else
    log "no paho-mqtt, mosquitto or libmosquitto: the MQTT row is left out"
fi

# ---- the clients, alternating: forward in odd rounds, backward in even ones
CLIENTS=(c cbroker python)
[ -n "${HYBRID_NODE_ADDON:-}" ] && command -v node >/dev/null && CLIENTS+=(node)
[ -f "$BUILD/bindings/lua/hybrid_core.so" ] && command -v lua5.4 >/dev/null && CLIENTS+=(lua)
[ "$DBUS_KIND" != none ] && CLIENTS+=(dbus)
[ "$MQTT" = 1 ] && CLIENTS+=(mqtt)
client() {
    case $1 in
    c) "${ON_P[@]}" "$BB" client "$WORK/bus.sock" "$EP" "$CALLS" "$EVENTS" ;;
    cbroker) "${ON_P[@]}" "$BB" client "$WORK/bus.sock" "$EP" "$CALLS" 0 --no-direct ;;
    python) "${ON_P[@]}" "$PY" "$ROOT/bench/bindings/client.py" hybrid "$WORK/bus.sock" "$EP" "$CALLS" "$EVENTS" ;;
    node) "${ON_P[@]}" node "$ROOT/bench/bindings/client.js" "$WORK/bus.sock" "$EP" "$CALLS" "$EVENTS" ;;
    lua) "${ON_P[@]}" lua5.4 "$ROOT/bench/bindings/client.lua" "$WORK/bus.sock" "$EP" "$CALLS" "$EVENTS" ;;
    dbus) "${ON_P[@]}" "$PY" "$ROOT/bench/bindings/client.py" dbus "$DBUS_ADDR" "$CALLS" ;;
    mqtt) "${ON_P[@]}" "$PY" "$ROOT/bench/bindings/client.py" mqtt 127.0.0.1 "$MQTT_PORT" "$CALLS" ;;
    esac
}
log "clients: ${CLIENTS[*]}; $ROUNDS rounds of $CALLS calls and $EVENTS events; D-Bus: $DBUS_KIND"
: >"$WORK/results"
for r in $(seq "$ROUNDS"); do
    order=("${CLIENTS[@]}")
    if [ $((r % 2)) = 0 ]; then
        order=(); for ((i = ${#CLIENTS[@]} - 1; i >= 0; i--)); do order+=("${CLIENTS[i]}"); done
    fi
    for c in "${order[@]}"; do
        if ! out=$(client "$c" 2>"$WORK/client.err"); then
            log "round $r: client $c failed: $(head -c 400 "$WORK/client.err")"
            exit 1
        fi
        printf '%s\n' "$out" | sed -n "s/^RESULT \([a-z_0-9]*\)=\(.*\)$/$r $c \1 \2/p" >>"$WORK/results"
    done
    log "round $r of $ROUNDS done"
done
"$PY" "$ROOT/bench/bindings/table.py" "$WORK/results" "$ROUNDS" "$DBUS_KIND" $VERBOSE
