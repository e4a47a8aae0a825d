#!/usr/bin/env bash
# run-remote-store.sh - build libhybrid optimised (build-bench, buildtype=release), start
# hybridd (its store in memory), redis-server and mosquitto privately and run
# bench-remote-store against them; then bench-store's in-memory get row (the embedded store).
#
# usage: bench/run-remote-store.sh [--quick] [any other bench-remote-store option]
#   (no option)  the full run: 5 rounds, ~1 minute
#   --quick      smoke run, ~10 s
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

# not exec: the trap must stop the daemons afterwards
"$BUILD/bench/bench-remote-store" "${ARGS[@]}" "$@"

# The embedded store's row of issue 8, in the same run (bench/run-store.sh has every row).
quick=()
for a in "$@"; do [ "$a" = --quick ] && quick=(--quick); done
echo
"$BUILD/bench/bench-store" "${quick[@]}" --rows mem-get --keys 100000
