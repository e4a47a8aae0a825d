#!/usr/bin/env bash
# callgrind-put.sh - instructions a put costs the daemon: hybridd (its store in memory, as
# run-remote-store.sh configures it) and redis-server (Unix socket, no persistence), each
# run twice under `valgrind --tool=callgrind` while bench-remote-store does `--rows put`
# with N1 and then N2 operations a round (each N + N/10: the timed puts and their warm-up);
# the difference of the two totals divided by the difference of the puts is the cost of
# one put, start-up and preload cancelled.
# Instruction counts do not depend on the machine's load (bench/README.md "Instructions a
# put").
#
# usage: bench/callgrind-put.sh [N1 [N2]]       (default 2000 and 8000)
#   BENCH_BUILD_DIR  the release build to measure (default build-bench; set up and built as
#                    run-remote-store.sh does when missing)
# Prints one line per daemon: "<daemon> <instructions a put>".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
N1=${1:-2000}
N2=${2:-8000}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-callgrind-put.XXXXXX")
log() { printf '== %s\n' "$*" >&2; }

command -v valgrind >/dev/null || { log "valgrind is not installed"; exit 2; }
. "$ROOT/bench/bench-build.sh"
bench_build_dir "$ROOT" "$BUILD"
meson compile -C "$BUILD" bench/bench-remote-store examples/hybridd/hybridd >/dev/null

PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_sock() {
    for _ in $(seq 1200); do [ -S "$1" ] && return 0; sleep 0.05; done
    return 1
}

cat > "$WORK/hybridd.yaml" <<CONF
store:
  durability: memory
limits:
  send_queue_bytes: 256M
log:
  level: warning
CONF

# One daemon under callgrind for N puts a round (1 round); prints its total instructions.
measure() {
    local who=$1 n=$2 sock=$WORK/$1.sock out=$WORK/$1.$2.out
    rm -f "$sock"
    case $who in
    hybridd)
        valgrind --tool=callgrind --callgrind-out-file="$out" \
            "$BUILD/examples/hybridd/hybridd" --foreground --socket "$sock" \
            --config "$WORK/hybridd.yaml" >"$WORK/$who.log" 2>&1 &
        ;;
    redis)
        valgrind --tool=callgrind --callgrind-out-file="$out" \
            redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --save '' \
            --appendonly no --daemonize no --dir "$WORK" >"$WORK/$who.log" 2>&1 &
        ;;
    esac
    PID=$!
    wait_sock "$sock" || { log "$who did not start"; cat "$WORK/$who.log" >&2; exit 1; }
    "$BUILD/bench/bench-remote-store" "--$who" "$sock" --rows put --rounds 1 --ops "$n" \
        >"$WORK/bench.log" 2>&1 || { cat "$WORK/bench.log" >&2; exit 1; }
    kill -TERM "$PID"
    wait "$PID" || true
    PID=
    sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$out"
}

for who in hybridd redis; do
    if [ "$who" = redis ] && ! command -v redis-server >/dev/null; then
        log "no redis-server: its line is left out"
        continue
    fi
    log "$who: $N1 and $N2 puts under callgrind"
    a=$(measure "$who" "$N1")
    b=$(measure "$who" "$N2")
    echo "$who $(( (b - a) / (N2 + N2 / 10 - N1 - N1 / 10) ))"
done
