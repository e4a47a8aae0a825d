#!/usr/bin/env bash
# callgrind-bindings.sh - instructions one echo call costs each client of run-bindings.sh
# (C, Python, Node, Lua): hybridd and the C echo service run as usual, each client runs
# twice under `valgrind --tool=callgrind` with N1 and then N2 calls (each N + N/10 with the
# warm-up); the difference of the two totals divided by the difference of the calls is what
# one call costs the client process (all its threads: Node's compiler threads count too),
# start-up cancelled.  Instruction counts do not depend on the machine's load, where the
# RTTs of run-bindings.sh do (bench/README.md "Instructions a binding call").
#
# usage: bench/callgrind-bindings.sh [N1 [N2]]   (default 1000 and 4000)
#   BENCH_BUILD_DIR  the release build to measure (default build-bench, set up as
#                    run-bindings.sh does)
# Prints one line per client: "<client> <instructions a call>".  Clients whose runtime or
# module is missing are left out.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
N1=${1:-1000}
N2=${2:-4000}
PY=/usr/bin/python3
log() { printf '== %s\n' "$*" >&2; }

command -v valgrind >/dev/null || { log "valgrind is not installed"; exit 2; }
[ "$N2" -gt "$N1" ] || { log "N2 must be larger than N1"; exit 2; }
. "$ROOT/bench/bench-build.sh"
bench_build_dir "$ROOT" "$BUILD"
if ! out=$(meson compile -C "$BUILD" 2>&1); then
    printf '%s\n' "$out" >&2
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-callgrind-bindings.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
wait_for() { for _ in $(seq 400); do eval "$1" && return 0; sleep 0.05; done; return 1; }

BB=$BUILD/bench/bench-bindings
. "$ROOT/bench/bindings/echo-env.sh"
bindings_env "$ROOT" "$BUILD"
ON_B=() ON_P=()
start_echo "$WORK" "$BUILD" || exit 1

CLIENTS=(c)
"$PY" -c 'import cffi' 2>/dev/null && CLIENTS+=(python)
[ -n "${HYBRID_NODE_ADDON:-}" ] && command -v node >/dev/null && CLIENTS+=(node)
[ -f "$BUILD/bindings/lua/hybrid_core.so" ] && command -v lua5.4 >/dev/null && CLIENTS+=(lua)
client() { # client NAME CALLS: runs it under callgrind, prints its instruction total
    local out=$WORK/cg.$1.$2 cmd
    case $1 in
    c) cmd=("$BB" client "$WORK/bus.sock" "$EP" "$2" 10) ;;
    python) cmd=("$PY" "$ROOT/bench/bindings/client.py" hybrid "$WORK/bus.sock" "$EP" "$2" 10) ;;
    node) cmd=(node "$ROOT/bench/bindings/client.js" "$WORK/bus.sock" "$EP" "$2" 10) ;;
    lua) cmd=(lua5.4 "$ROOT/bench/bindings/client.lua" "$WORK/bus.sock" "$EP" "$2" 10) ;;
    esac
    if ! valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}" >"$out.stdout" 2>"$out.err"; then
        log "client $1 failed: $(tail -c 400 "$out.err")"
        return 1
    fi
    sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p' "$out.err" | head -n1
}
log "clients: ${CLIENTS[*]}; $N1 and $N2 calls each under callgrind"
for c in "${CLIENTS[@]}"; do
    a=$(client "$c" "$N1") b=$(client "$c" "$N2")
    # each run makes N + N/10 calls (client.* warm up with a tenth)
    echo "$c $(( (b - a) / ((N2 + N2 / 10) - (N1 + N1 / 10)) ))"
done
