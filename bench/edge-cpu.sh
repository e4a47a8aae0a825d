#!/usr/bin/env bash
# edge-cpu.sh - CPU time (user + system, /proc/PID/stat) per request of each process of the
# two rows of bench-edge's HTTP rate figure: hybridd and the echo procedure (bench-edge serve),
# nginx's worker and its upstream (bench-edge upstream).  A figure that does not depend on how
# loaded the machine is or where the processes run (bench/README.md, bench-edge).
#
# usage: bench/edge-cpu.sh [--secs S] [--conns C] [--pin CPULIST] [--bare]
#   --secs S      seconds of each rate figure (default 3)
#   --conns C     keep-alive connections (default 16)
#   --pin LIST    run every process, the load generator included, under taskset -c LIST
#   --bare        a third row: `bench-edge bare`, an evhttp server answering in process,
#                 the floor of a request served by evhttp
# Uses build-bench (release; bench/bench-build.sh), free ports, a temporary directory; every
# process is stopped by PID.  The request count is the rate times the seconds (about).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
SECS=3 CONNS=16 PIN=() BARE=0
while [ $# -gt 0 ]; do
    case $1 in
    --secs) SECS=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --pin) PIN=(taskset -c "$2"); shift 2 ;;
    --bare) BARE=1; shift ;;
    *) echo "usage: $0 [--secs S] [--conns C] [--pin CPULIST] [--bare]" >&2; exit 2 ;;
    esac
done
command -v nginx >/dev/null || { echo "edge-cpu.sh: nginx is not installed" >&2; exit 1; }

. "$ROOT/bench/bench-build.sh"
. "$ROOT/bench/peers.sh"
bench_build_dir "$ROOT" "$BUILD"
meson compile -C "$BUILD" bench/bench-edge examples/hybridd/hybridd >/dev/null
BENCH=$BUILD/bench/bench-edge
W=$(mktemp -d "${TMPDIR:-/tmp}/edge-cpu.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

cat >"$W/hybridd.yaml" <<EOT
listen:
  http: 127.0.0.1:0
edge:
  anonymous: ["/bus/org.example.bench.echo/#"]
EOT
"${PIN[@]}" "$BUILD/examples/hybridd/hybridd" --foreground --socket "$W/bus.sock" --config "$W/hybridd.yaml" >"$W/hybridd.log" 2>&1 &
HP=$!; PIDS+=("$HP")
bench_wait_line "$W/hybridd.log" 'edge: HTTP on 127.0.0.1:[1-9]' "$HP" || { cat "$W/hybridd.log" >&2; exit 1; }
HTTP=$(sed -n 's/.*edge: HTTP on \(127\.0\.0\.1:[0-9]*\).*/\1/p' "$W/hybridd.log" | head -n 1)
"${PIN[@]}" "$BENCH" serve "$W/bus.sock" >"$W/serve.out" 2>"$W/serve.err" &
SP=$!; PIDS+=("$SP")
"${PIN[@]}" "$BENCH" upstream "$W/upstream.sock" >"$W/upstream.out" 2>"$W/upstream.err" &
UP=$!; PIDS+=("$UP")
bench_wait_line "$W/serve.out" '^READY' "$SP" || { cat "$W/serve.err" >&2; exit 1; }
bench_wait_line "$W/upstream.out" '^READY' "$UP" || { cat "$W/upstream.err" >&2; exit 1; }

NPORT=$(bench_free_port)
bench_nginx_conf "$W/nginx" "$NPORT" "$W/upstream.sock"   # its worker reads the upstream socket in $W
"${PIN[@]}" nginx -p "$W/nginx" -c "$W/nginx/nginx.conf" -e "$W/nginx/error.log" >"$W/nginx/stdout" 2>&1 &
NP=$!; PIDS+=("$NP")
bench_nginx_up "$NP" "$NPORT" || { cat "$W/nginx/error.log" >&2; echo "nginx did not start" >&2; exit 1; }
NW=$(pgrep -P "$NP" | head -n 1)
[ -n "$NW" ] || { echo "no nginx worker" >&2; exit 1; }

ROWS="http nginx"
if [ "$BARE" = 1 ]; then
    "${PIN[@]}" "$BENCH" bare >"$W/bare.out" 2>"$W/bare.err" &
    BP=$!; PIDS+=("$BP")
    bench_wait_line "$W/bare.out" '^READY [1-9]' "$BP" || { cat "$W/bare.err" >&2; exit 1; }
    BPORT=$(sed -n 's/^READY \([0-9]*\)$/\1/p' "$W/bare.out")
    ROWS="$ROWS bare"
fi

ticks() { [ -n "$1" ] && awk '{print $14 + $15}' "/proc/$1/stat" || echo 0; }
HZ=$(getconf CLK_TCK)
B=("$BENCH" --sock "$W/bus.sock" --http "$HTTP" --calls 10 --rounds 1 --conns "$CONNS")
"${PIN[@]}" "${B[@]}" --nginx "127.0.0.1:$NPORT" --rows http,nginx --secs 1 >/dev/null   # warm-up
printf 'CPU time per request, %s connections, %s s each, %s\n' "$CONNS" "$SECS" \
    "${PIN[*]:-not pinned}"
for row in $ROWS; do
    case $row in
    http) P1=$HP P2=$SP PAT="HTTP keep-alive POST /bus/..., anonymous" N1=hybridd
          N2="bench-edge serve" R=(--rows http) ;;
    nginx) P1=$NW P2=$UP PAT="nginx ->" N1="nginx worker" N2="bench-edge upstream"
           R=(--rows nginx --nginx "127.0.0.1:$NPORT") ;;
    bare) P1=$BP P2="" PAT="nginx ->" N1="bench-edge bare" N2="(none)"
          R=(--rows nginx --nginx "127.0.0.1:$BPORT") ;;
    esac
    a1=$(ticks "$P1") a2=$(ticks "$P2")
    rate=$("${PIN[@]}" "${B[@]}" "${R[@]}" --secs "$SECS" | grep -F -- "$PAT" | head -n 1 |
           awk -F'|' '{gsub(/ /, "", $5); print $5}')
    b1=$(ticks "$P1") b2=$(ticks "$P2")
    case $rate in ''|*[!0-9]*) echo "$row: no rate measured" >&2; exit 1 ;; esac
    n=$((rate * SECS))
    awk -v r="$row" -v rate="$rate" -v n="$n" -v d1=$((b1 - a1)) -v d2=$((b2 - a2)) -v hz="$HZ" \
        -v n1="$N1" -v n2="$N2" 'BEGIN {
            u1 = d1 / hz / n * 1e6; u2 = d2 / hz / n * 1e6
            printf "%-6s %7d calls/s  %s %.1f us  %s %.1f us  both %.1f us\n", r, rate, n1, u1, n2, u2, u1 + u2 }'
done
