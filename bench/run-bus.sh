#!/usr/bin/env bash
# run-bus.sh - build libhybrid optimised (build-bench, buildtype=release) and, when ANCHORS=DIR
# names a directory of peer programs (the "anchors": small C programs measuring a raw Unix
# socket, a libevent relay, sd-bus and mosquitto; not part of this repository), build them,
# start the peer daemons privately and run bench-bus.
#
# usage: bench/run-bus.sh [--quick] [any other bench-bus option, e.g. --rounds 3 --verbose]
#   (no option)  the full run: 5 rounds, ~3-4 minutes
#   --quick      smoke run, ~20 s
# Without ANCHORS=DIR only our own rows are measured.  Each daemon gets
# its own config and sockets in a fresh directory under $TMPDIR (default /tmp), removed at the
# end, and is stopped by PID.  The table goes to stdout; progress to stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
ANCHORS=${ANCHORS:-}
MQTT_PORT=${BENCH_MQTT_PORT:-18839}   # loopback only; the anchors' own run script uses 18830
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-bus.XXXXXX")
log() { printf '== %s\n' "$*" >&2; }

. "$ROOT/bench/bench-build.sh"
bench_build_dir "$ROOT" "$BUILD"
ninja -C "$BUILD" build.ninja >/dev/null 2>&1 || true     # pick up a changed bench/meson.build
if ! out=$(meson compile -C "$BUILD" bench/bench-bus examples/hybridd/hybridd 2>&1); then
    printf '%s\n' "$out" >&2
    exit 1
fi

# Many sockets: 1 000 idle clients per daemon, plus the helpers.
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"

PIDS=(); PGIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for g in "${PGIDS[@]:-}"; do [ -n "$g" ] && kill -- "-$g" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

ARGS=(--hybridd "$BUILD/examples/hybridd/hybridd" --work "$WORK")
if [ -n "$ANCHORS" ] && [ -d "$ANCHORS" ]; then
    # ---- the anchors, built the way their own run script builds them, into the build dir
    BIN=$BUILD/anchors
    mkdir -p "$BIN"
    CFLAGS=(-O2 -Wall -Wextra -I"$ANCHORS")
    log "building the anchors into $BIN"
    gcc "${CFLAGS[@]}" -o "$BIN/uds_pingpong" "$ANCHORS/uds_pingpong.c"
    gcc "${CFLAGS[@]}" -o "$BIN/evrelay_bench" "$ANCHORS/evrelay_bench.c" -levent
    gcc "${CFLAGS[@]}" -o "$BIN/journal_sink" "$ANCHORS/journal_sink.c"
    HAVE_SDBUS=0; HAVE_MOSQ=0
    if pkg-config --exists libsystemd; then
        gcc "${CFLAGS[@]}" -o "$BIN/sdbus_bench" "$ANCHORS/sdbus_bench.c" $(pkg-config --cflags --libs libsystemd)
        HAVE_SDBUS=1
    fi
    if [ -f /usr/include/mosquitto.h ]; then
        gcc "${CFLAGS[@]}" -o "$BIN/mosq_bench" "$ANCHORS/mosq_bench.c" -lmosquitto
        HAVE_MOSQ=1
    fi
    ARGS+=(--anchors "$BIN")

    # ---- the peer daemons (launched as the anchors' run script does, limits raised for 1 000 idle clients)
    wait_sock() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.05; done; return 1; }
    wait_bus() {
        for _ in $(seq 100); do
            busctl --address="$1" call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
                GetId >/dev/null 2>&1 && return 0
            sleep 0.1
        done
        return 1
    }
    cat > "$WORK/dbus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$WORK/dbus-daemon.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
    <allow own="*"/>
  </policy>
  <limit name="max_completed_connections">4000</limit>
  <limit name="max_connections_per_user">4000</limit>
</busconfig>
EOF
    if [ "$HAVE_SDBUS" = 1 ] && command -v dbus-daemon >/dev/null; then
        dbus-daemon --config-file="$WORK/dbus.conf" --nofork >"$WORK/dbus-daemon.log" 2>&1 &
        pid=$!; PIDS+=("$pid")
        if wait_sock "$WORK/dbus-daemon.sock" && wait_bus "unix:path=$WORK/dbus-daemon.sock"; then
            ARGS+=(--dbus-daemon "unix:path=$WORK/dbus-daemon.sock" --dbus-daemon-pid "$pid")
        else
            log "dbus-daemon did not start; its column stays empty"
        fi
    fi
    if [ "$HAVE_SDBUS" = 1 ] && command -v dbus-broker-launch >/dev/null && command -v unshare >/dev/null; then
        setsid unshare -m --propagation private /bin/sh -c "
            mount -t tmpfs bench-run /run/systemd || exit 1
            '$BIN/journal_sink' /run/systemd/journal/socket &
            sleep 0.2
            exec systemd-socket-activate -E DBUS_SESSION_BUS_ADDRESS=unix:path=$WORK/dbus-broker.sock \
                 -l '$WORK/dbus-broker.sock' dbus-broker-launch --scope user --config-file='$WORK/dbus.conf'
        " >"$WORK/dbus-broker.log" 2>&1 &
        pgid=$!; PGIDS+=("$pgid")
        if wait_sock "$WORK/dbus-broker.sock" && wait_bus "unix:path=$WORK/dbus-broker.sock"; then
            # the broker proper is the dbus-broker child of dbus-broker-launch, in our group
            bpid=$(pgrep -g "$pgid" -x dbus-broker | head -n1 || true)
            ARGS+=(--dbus-broker "unix:path=$WORK/dbus-broker.sock" --dbus-broker-pid "${bpid:-0}")
        else
            log "dbus-broker did not start; its column stays empty"
        fi
    fi
    # the sd-bus echo servers the sdbus_bench clients call
    for tag in dbus-daemon dbus-broker; do
        if [ -S "$WORK/$tag.sock" ]; then
            "$BIN/sdbus_bench" server "unix:path=$WORK/$tag.sock" >"$WORK/server-$tag.log" 2>&1 &
            PIDS+=($!)
            for _ in $(seq 50); do grep -q READY "$WORK/server-$tag.log" && break; sleep 0.1; done
        fi
    done
    cat > "$WORK/mosquitto.conf" <<EOF
user $(id -un)
per_listener_settings false
allow_anonymous true
persistence false
set_tcp_nodelay true
max_queued_messages 0
log_dest none
listener 0 $WORK/mosquitto.sock
listener $MQTT_PORT 127.0.0.1
EOF
    if [ "$HAVE_MOSQ" = 1 ] && command -v mosquitto >/dev/null; then
        mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
        pid=$!; PIDS+=("$pid")
        if wait_sock "$WORK/mosquitto.sock"; then
            ARGS+=(--mosquitto "$WORK/mosquitto.sock" --mosquitto-pid "$pid" --mosquitto-port "$MQTT_PORT")
        else
            log "mosquitto did not start; its column stays empty"
        fi
    fi
else
    log "no anchors at $ANCHORS: measuring our own rows only"
fi

# not exec: the trap must stop the daemons afterwards
"$BUILD/bench/bench-bus" "${ARGS[@]}" "$@"
