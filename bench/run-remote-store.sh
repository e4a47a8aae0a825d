#!/usr/bin/env bash
# run-remote-store.sh - build libhybrid optimised (build-bench, buildtype=release), start
# hybridd (its store in memory), redis-server and mosquitto privately and run
# bench-remote-store against them; then bench-store's in-memory get row (the embedded store).
#
# usage: bench/run-remote-store.sh [--quick] [--placement LIST] [any other bench-remote-store
#                                   option, e.g. --rows delivery,put --verbose]
#   (no option)  the full run: 5 rounds, ~1 minute
#   --quick      smoke run, ~10 s
#   --placement  where the daemons and the benchmark run, one table per item of LIST
#                (comma-separated; default free):
#                  free   wherever the kernel puts them (as before)
#                  same   all on one CPU (taskset): each request and answer hands over
#                         between processes on that CPU
#                  apart  the benchmark on one CPU, the three daemons on another: each request
#                         and answer wakes the other CPU
#                On a VM whose idle vCPUs halt, free placement lands a client/daemon pair in
#                one of these two states more or less at random and keeps it for the round,
#                for every peer alike: `same` and `apart` compare like with like
#                (bench/README.md "Placement").  In free placement bench-remote-store
#                idles before every measured row (--settle, default 100 ms) so that no row
#                starts in the state the previous one left; same and apart run with
#                --settle 0 unless --settle is given.  --cpu-report shows which placement
#                each row got.
# redis-server listens on a Unix socket only (--port 0), without persistence; mosquitto on a
# Unix listener, configured as bench/run-bus.sh configures it.  Both get a fresh directory
# under $TMPDIR (default /tmp), removed at the end, and are stopped by PID.  A peer that is not
# installed (scripts/bootstrap.sh bench installs them) leaves its column empty.
# The table goes to stdout; progress to stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-remote-store.XXXXXX")
log() { printf '== %s\n' "$*" >&2; }

. "$ROOT/bench/bench-build.sh"
bench_build_dir "$ROOT" "$BUILD"
ninja -C "$BUILD" build.ninja >/dev/null 2>&1 || true     # pick up a changed bench/meson.build
if ! out=$(meson compile -C "$BUILD" bench/bench-remote-store bench/bench-store \
              examples/hybridd/hybridd 2>&1); then
    printf '%s\n' "$out" >&2
    exit 1
fi

PLACEMENTS=free
BENCH_ARGS=()
while [ $# -gt 0 ]; do
    case $1 in
    --placement) PLACEMENTS=${2:?--placement wants free, same, apart or a list of them}; shift 2 ;;
    --placement=*) PLACEMENTS=${1#--placement=}; shift ;;
    *) BENCH_ARGS+=("$1"); shift ;;
    esac
done
IFS=, read -r -a PLACE <<<"$PLACEMENTS"
# The idle pause before every row (--settle) is for free placement, where the state a row
# starts in decides its placement; pinned, the runner keeps the rows back to back as before
# (unless --settle is given).
SETTLE_GIVEN=
for a in "${BENCH_ARGS[@]:-}"; do case $a in --settle | --settle=*) SETTLE_GIVEN=1 ;; esac; done
for p in "${PLACE[@]}"; do
    case $p in free | same | apart) ;; *) log "--placement: '$p' is not free, same or apart"; exit 2 ;; esac
done

# The first two CPUs this script may run on (Cpus_allowed_list: "0-3,6" style ranges).
CPUS=()
for range in $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status | tr ',' ' '); do
    lo=${range%-*}; hi=${range#*-}
    for ((c = lo; c <= hi && ${#CPUS[@]} < 2; c++)); do CPUS+=("$c"); done
done

PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_sock() {
    for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.05; done
    return 1
}

ARGS=()
if [ -f "$ROOT/include/hybrid/bus-store.h" ]; then
    # The daemon's store in memory, as redis keeps its data; room for the preload's queue.
    cat > "$WORK/hybridd.yaml" <<CONF
store:
  durability: memory
limits:
  send_queue_bytes: 256M
log:
  level: warning
CONF
    "$BUILD/examples/hybridd/hybridd" --foreground --socket "$WORK/hybridd.sock" \
        --config "$WORK/hybridd.yaml" >"$WORK/hybridd.log" 2>&1 &
    PIDS+=($!)
    if wait_sock "$WORK/hybridd.sock"; then
        ARGS+=(--hybridd "$WORK/hybridd.sock")
    else
        log "hybridd did not start (see its log below); its column stays empty"
        cat "$WORK/hybridd.log" >&2
    fi
else
    log "no daemon-hosted store in this tree (hybrid/bus-store.h): the hybridd column stays empty"
fi
if command -v redis-server >/dev/null; then
    redis-server --port 0 --unixsocket "$WORK/redis.sock" --unixsocketperm 700 \
        --save '' --appendonly no --daemonize no --dir "$WORK" \
        --logfile "$WORK/redis.log" &
    PIDS+=($!)
    if wait_sock "$WORK/redis.sock"; then
        ARGS+=(--redis "$WORK/redis.sock")
    else
        log "redis-server did not start; its column stays empty"
    fi
else
    log "no redis-server (scripts/bootstrap.sh bench): its column stays empty"
fi
if command -v mosquitto >/dev/null; then
    cat > "$WORK/mosquitto.conf" <<CONF
user $(id -un)
per_listener_settings false
allow_anonymous true
persistence false
set_tcp_nodelay true
max_queued_messages 0
log_dest none
listener 0 $WORK/mosquitto.sock
CONF
    mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
    PIDS+=($!)
    if wait_sock "$WORK/mosquitto.sock"; then
        ARGS+=(--mosquitto "$WORK/mosquitto.sock")
    else
        log "mosquitto did not start; its column stays empty"
    fi
else
    log "no mosquitto (scripts/bootstrap.sh bench): its column stays empty"
fi

# Pins every thread of the daemons (taskset -a) and returns the benchmark's CPU list.
place() {
    local daemons bench pid
    case $1 in
    free) # every CPU this script may use
          daemons=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status); bench=$daemons ;;
    same) daemons=${CPUS[0]}; bench=${CPUS[0]} ;;
    apart) daemons=${CPUS[1]}; bench=${CPUS[0]} ;;
    esac
    for pid in "${PIDS[@]}"; do
        taskset -a -p -c "$daemons" "$pid" >/dev/null ||
            log "taskset: could not place PID $pid on CPU $daemons"
    done
    PLACE_BENCH=$bench
    PLACE_TEXT="$1: benchmark on CPU $bench, daemons on CPU $daemons"
}

# not exec: the trap must stop the daemons afterwards
for p in "${PLACE[@]}"; do
    if [ "$p" = apart ] && [ ${#CPUS[@]} -lt 2 ]; then
        log "placement apart needs two CPUs: skipped"
        continue
    fi
    place "$p"
    if [ "${#PLACE[@]}" -gt 1 ] || [ "$p" != free ]; then
        printf '\nplacement %s\n' "$PLACE_TEXT"
    fi
    settle=()
    [ "$p" != free ] && [ -z "$SETTLE_GIVEN" ] && settle=(--settle 0)
    taskset -c "$PLACE_BENCH" "$BUILD/bench/bench-remote-store" "${ARGS[@]}" "${settle[@]}" \
        "${BENCH_ARGS[@]}"
done
place free

# The embedded store's row of issue 8, in the same run (bench/run-store.sh has every row).
quick=()
for a in "${BENCH_ARGS[@]}"; do [ "$a" = --quick ] && quick=(--quick); done
echo
"$BUILD/bench/bench-store" "${quick[@]}" --rows mem-get --keys 100000
