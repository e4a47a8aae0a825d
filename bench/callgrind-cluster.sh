#!/usr/bin/env bash
# callgrind-cluster.sh - instructions a message costs each process of both paths of
# bench-cluster: the mosquitto broker, daemons A and B, and bench-cluster itself (for
# mosquitto's path, its two libmosquitto clients; for hybrid's, its two bus clients).  All
# four run under `valgrind --tool=callgrind`; bench-cluster --pause waits after each path,
# and each process's counts are dumped there (callgrind_control), so a path's dump holds
# only what that path cost.  One round: 3 N messages a path (propagation, each acked,
# pipelined), the host-scope row between them not counted.
# Instruction counts do not depend on the machine's load (bench/README.md, bench-cluster).
#
# usage: bench/callgrind-cluster.sh [N]          (default 2000)
#   BENCH_BUILD_DIR  the release build to measure (default build-bench)
# Prints one line per path and process: "<path> <process> <instructions a message>".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
N=${1:-2000}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-callgrind-cluster.XXXXXX")
PIDS=()
log() { printf '== %s\n' "$*" >&2; }
cleanup() {
    exec 3>&- || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
    { log "valgrind is not installed"; exit 2; }
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$MOSQUITTO" ] || { log "mosquitto is not installed (scripts/bootstrap.sh bench)"; exit 2; }
. "$ROOT/bench/bench-build.sh"
. "$ROOT/bench/peers.sh"
bench_build_dir "$ROOT" "$BUILD"
meson compile -C "$BUILD" bench/bench-cluster examples/hybridd/hybridd >/dev/null

VG=(valgrind --tool=callgrind --dump-instr=no)
PORT=$(bench_free_port)
bench_mosquitto_conf "$WORK/mosquitto.conf" "$PORT"
"${VG[@]}" --callgrind-out-file="$WORK/broker.cg" "$MOSQUITTO" -c "$WORK/mosquitto.conf" \
    >"$WORK/mosquitto.log" 2>&1 &
PIDS+=($!)
for i in $(seq 500); do
    /usr/bin/python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
        "$PORT" 2>/dev/null && break
    sleep 0.05
done
for h in a b; do
    printf 'host: %s\ncluster: {broker: "mqtt://127.0.0.1:%s"}\nlog: {level: warning}\n' "$h" "$PORT" \
        >"$WORK/$h.yaml"
    "${VG[@]}" --callgrind-out-file="$WORK/$h.cg" "$BUILD/examples/hybridd/hybridd" --foreground \
        --socket "$WORK/$h.sock" --config "$WORK/$h.yaml" >"$WORK/$h.log" 2>&1 &
    PIDS+=($!)
done
for h in a b; do
    for i in $(seq 600); do [ -S "$WORK/$h.sock" ] && break; sleep 0.05; done
    [ -S "$WORK/$h.sock" ] || { log "hybridd $h did not start"; cat "$WORK/$h.log" >&2; exit 1; }
done
mkfifo "$WORK/in"
"${VG[@]}" --callgrind-out-file="$WORK/client.cg" "$BUILD/bench/bench-cluster" --port "$PORT" \
    --a "$WORK/a.sock" --b "$WORK/b.sock" --n "$N" --rounds 1 --pause <"$WORK/in" \
    >"$WORK/out" 2>"$WORK/client.log" &
PIDS+=($!)
exec 3>"$WORK/in"
NAMES=(broker a b client)
# waits for bench-cluster's line $1 (10 minutes at most: everything runs under valgrind)
waitfor() {
    for i in $(seq 6000); do
        grep -qx "$1" "$WORK/out" && return 0
        kill -0 "${PIDS[3]}" 2>/dev/null || break
        sleep 0.1
    done
    log "bench-cluster did not reach '$1'"
    cat "$WORK/client.log" >&2
    exit 1
}
# dumps every process's counts since its previous dump into <name>.cg.<k> (k = 1, 2, ...)
dump() {
    for p in "${PIDS[@]}"; do callgrind_control -d "$1" "$p" >/dev/null 2>&1; done
}
total() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }
waitfor ready
dump ready         # .1: start-up
echo go >&3
waitfor mosquitto
dump mosquitto     # .2: mosquitto's path
echo go >&3
waitfor host
dump host          # .3: the host-scope row (not counted)
echo go >&3
waitfor cluster
dump cluster       # .4: the cluster scope's path
echo go >&3
# the dumps are written when callgrind_control returns; a path is 3 N messages
for k in 2 4; do
    path=$([ $k = 2 ] && echo mosquitto || echo hybrid)
    for name in "${NAMES[@]}"; do
        f="$WORK/$name.cg.$k"
        [ -s "$f" ] || { log "no dump $f"; exit 1; }
        printf '%s %s %d\n' "$path" "$name" $(($(total "$f") / (3 * N)))
    done
done
