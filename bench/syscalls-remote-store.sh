#!/usr/bin/env bash
# syscalls-remote-store.sh - system calls and context switches a get or a put costs each
# side: our client + hybridd and hiredis + redis-server, with the benchmark and the
# daemon on one CPU (same) and on two (apart).  `perf stat` counts the benchmark's and the
# daemon's (every thread) system calls (raw_syscalls:sys_enter, and recvfrom and poll
# alone) and context switches while bench-remote-store does `--rows get` or `--rows put`
# with N1 and then N2 operations (each N + N/10 warm-up, 1 000 keys preloaded); the
# difference of the two counts over the difference of the operations is the cost of one
# more operation, start-up and preload cancelled (as callgrind-put.sh does for
# instructions).  Counts of a spinning wait depend on how long the answer takes, so they
# are read with the p50 of the same run (bench/README.md "Where a call waits").
#
# usage: bench/syscalls-remote-store.sh [N1 [N2]]      (default 2000 and 12000)
#   BENCH_BUILD_DIR  the release build to measure (default build-bench)
# Needs perf (linux-perf) with access to tracepoints (root, or perf_event_paranoid <= 1).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
N1=${1:-2000}
N2=${2:-12000}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-syscalls.XXXXXX")
log() { printf '== %s\n' "$*" >&2; }

command -v perf >/dev/null || { log "perf is not installed"; exit 2; }
command -v redis-server >/dev/null || { log "redis-server is not installed"; exit 2; }
. "$ROOT/bench/bench-build.sh"
bench_build_dir "$ROOT" "$BUILD"
meson compile -C "$BUILD" bench/bench-remote-store examples/hybridd/hybridd >/dev/null

PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_sock() {
    for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done
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
"$BUILD/examples/hybridd/hybridd" --foreground --socket "$WORK/hybridd.sock" \
    --config "$WORK/hybridd.yaml" >"$WORK/hybridd.log" 2>&1 &
HPID=$!
PIDS+=("$HPID")
redis-server --port 0 --unixsocket "$WORK/redis.sock" --unixsocketperm 700 --save '' \
    --appendonly no --daemonize no --dir "$WORK" --logfile "$WORK/redis.log" &
RPID=$!
PIDS+=("$RPID")
wait_sock "$WORK/hybridd.sock" || { log "hybridd did not start"; cat "$WORK/hybridd.log" >&2; exit 1; }
wait_sock "$WORK/redis.sock" || { log "redis-server did not start"; exit 1; }

CPUS=()
for range in $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status | tr ',' ' '); do
    lo=${range%-*}; hi=${range#*-}
    for ((c = lo; c <= hi && ${#CPUS[@]} < 2; c++)); do CPUS+=("$c"); done
done
[ ${#CPUS[@]} -ge 2 ] || { log "needs two CPUs"; exit 2; }

EVENTS=raw_syscalls:sys_enter,syscalls:sys_enter_recvfrom,syscalls:sys_enter_poll,context-switches

# One run: prints "<client counts...> <daemon counts...> <p50>" (counts in EVENTS order).
run() {
    local peer=$1 row=$2 n=$3 dpid sock col perfpid
    case $peer in
    hybridd) dpid=$HPID; sock=(--hybridd "$WORK/hybridd.sock"); col=4 ;;
    redis) dpid=$RPID; sock=(--redis "$WORK/redis.sock"); col=6 ;; # after "not measured"
    esac
    perf stat -x, -e "$EVENTS" -p "$dpid" -o "$WORK/daemon.stat" &
    perfpid=$!
    sleep 0.5 # perf attached (its counts start at zero either way)
    taskset -c "${CPUS[0]}" perf stat -x, -e "$EVENTS" -o "$WORK/client.stat" \
        "$BUILD/bench/bench-remote-store" --rows "$row" --rounds 1 --ops "$n" --keys 1000 \
        "${sock[@]}" >"$WORK/out.txt"
    kill -INT "$perfpid"
    wait "$perfpid" || true
    echo "$(awk -F, '/^[0-9]/{printf "%s ", $1}' "$WORK/client.stat")" \
         "$(awk -F, '/^[0-9]/{printf "%s ", $1}' "$WORK/daemon.stat")" \
         "$(awk -v c=$col '$1 == "'"$row"'" && $2 == "p50" {print $c}' "$WORK/out.txt")"
}

printf '%-6s %-8s %-4s %5s | %-32s | %-32s\n' placement peer row p50 \
    "client: syscalls recv poll cs" "daemon: syscalls recv poll cs"
for placement in same apart; do
    if [ "$placement" = same ]; then dcpu=${CPUS[0]}; else dcpu=${CPUS[1]}; fi
    taskset -a -p -c "$dcpu" "$HPID" >/dev/null
    taskset -a -p -c "$dcpu" "$RPID" >/dev/null
    for peer in hybridd redis; do
        for row in get put; do
            read -r -a a <<<"$(run "$peer" "$row" "$N1")"
            read -r -a b <<<"$(run "$peer" "$row" "$N2")"
            ops=$(((N2 + N2 / 10) - (N1 + N1 / 10)))
            per=()
            for i in 0 1 2 3 4 5 6 7; do
                per+=("$(awk -v x="${a[$i]}" -v y="${b[$i]}" -v n=$ops 'BEGIN{printf "%.2f", (y - x) / n}')")
            done
            printf '%-9s %-8s %-4s %5s | %6s %6s %6s %6s     | %6s %6s %6s %6s\n' "$placement" "$peer" \
                "$row" "${b[8]}" "${per[@]:0:4}" "${per[@]:4:4}"
        done
    done
done
