#!/usr/bin/env bash
# run-cluster.sh - build libhybrid optimised (build-bench, buildtype=release), start a private
# mosquitto broker on a free loopback port and two hybridd (hosts a and b) bridged to it, and
# run bench-cluster: the cluster scope //... from a client of A to a subscriber at B beside
# two plain libmosquitto clients, in the same run, through the same broker.  The daemons
# note their cluster writes and deliveries (HYBRID_CLUSTER_TRACE) for the daemon-to-daemon
# rows.
#
# usage: bench/run-cluster.sh [--quick] [bench-cluster options, e.g. --n 2000 --rounds 5]
#   (no option)  1000 messages x 3 rounds
#   --quick      200 messages x 1 round (a smoke run)
#   --placement same|apart   (first) pins with taskset: `same` puts the broker, both daemons
#                and bench-cluster on CPU 0; `apart` the broker on CPU 1, the rest on CPU 0,
#                so each side's publisher and subscriber (mosquitto's two clients inside
#                bench-cluster, hybrid's daemons A and B) reach the broker across CPUs
#                alike (bench/README.md, "Placement")
# The daemons and the broker get a fresh directory under $TMPDIR (default /tmp), removed at
# the end, and are stopped by PID.  The table goes to stdout; progress to stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-cluster.XXXXXX")
PIDS=()
log() { printf '== %s\n' "$*" >&2; }
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

ARGS=()
PIN_M=() PIN_D=() PIN_B=()
if [ "${1:-}" = --placement ]; then
    case "${2:-}" in
    same) PIN_M=(taskset -c 0) PIN_D=(taskset -c 0) PIN_B=(taskset -c 0) ;;
    apart) PIN_M=(taskset -c 1) PIN_D=(taskset -c 0) PIN_B=(taskset -c 0) ;;
    *) log "--placement: same or apart"; exit 2 ;;
    esac
    shift 2
fi
if [ "${1:-}" = --quick ]; then
    shift
    ARGS=(--n 200 --rounds 1)
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$MOSQUITTO" ] || { log "mosquitto is not installed (scripts/bootstrap.sh bench)"; exit 1; }

. "$ROOT/bench/bench-build.sh"
. "$ROOT/bench/peers.sh"
bench_build_dir "$ROOT" "$BUILD"
ninja -C "$BUILD" build.ninja >/dev/null 2>&1 || true
if ! out=$(meson compile -C "$BUILD" bench/bench-cluster examples/hybridd/hybridd 2>&1); then
    printf '%s\n' "$out" >&2
    exit 1
fi

PORT=$(bench_free_port)
bench_mosquitto_conf "$WORK/mosquitto.conf" "$PORT"
"${PIN_M[@]}" "$MOSQUITTO" -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
PIDS+=($!)
for h in a b; do
    printf 'host: %s\ncluster: {broker: "mqtt://127.0.0.1:%s"}\nlog: {level: warning}\n' "$h" "$PORT" \
        >"$WORK/$h.yaml"
done
for i in $(seq 250); do
    /usr/bin/python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
        "$PORT" 2>/dev/null && break
    sleep 0.02
done
for h in a b; do
    HYBRID_CLUSTER_TRACE="$WORK/$h.trace" "${PIN_D[@]}" "$BUILD/examples/hybridd/hybridd" --foreground --socket "$WORK/$h.sock" --config "$WORK/$h.yaml" \
        >"$WORK/$h.log" 2>&1 &
    PIDS+=($!)
done
for h in a b; do
    for i in $(seq 250); do [ -S "$WORK/$h.sock" ] && break; sleep 0.02; done
    [ -S "$WORK/$h.sock" ] || { log "hybridd $h did not start"; cat "$WORK/$h.log" >&2; exit 1; }
done
log "mosquitto on 127.0.0.1:$PORT, hybridd a and b bridged to it"
"${PIN_B[@]}" "$BUILD/bench/bench-cluster" --port "$PORT" --a "$WORK/a.sock" --b "$WORK/b.sock" \
    --trace-a "$WORK/a.trace" --trace-b "$WORK/b.trace" "${ARGS[@]}" "$@"
