#!/usr/bin/env bash
# run-edge.sh - builds libhybrid optimised (build-bench, buildtype=release), starts privately
# in a temporary directory hybridd with its HTTP edge (listen.http on 127.0.0.1, a free port),
# the echo procedure (bench-edge serve), nginx proxying HTTP keep-alive to bench-edge's
# Unix-socket upstream, tries mosquitto's WebSocket listener, and runs bench-edge
# (bench/README.md, "bench-edge").
#
# usage: bench/run-edge.sh [--quick] [any other bench-edge option, e.g. --rounds 5 --verbose]
#   (no option)  3 rounds of 5 000 calls per RTT figure and 2 s per rate figure, ~1-2 minutes
#   --quick      1 round, 1 000 calls, 1 s, 200 idle WebSocket clients: a smoke run
# Every daemon is stopped by PID at the end and the directory removed.  The table goes to
# stdout, progress to stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-edge.XXXXXX")
PY=/usr/bin/python3
log() { printf '== %s\n' "$*" >&2; }

ARGS=()
for a in "$@"; do
    if [ "$a" = --quick ]; then
        ARGS+=(--rounds 1 --calls 1000 --secs 1 --clients 200)
    else
        ARGS+=("$a")
    fi
done

. "$ROOT/bench/bench-build.sh"
. "$ROOT/bench/peers.sh"
bench_build_dir "$ROOT" "$BUILD"
ninja -C "$BUILD" build.ninja >/dev/null 2>&1 || true     # pick up a changed bench/meson.build
if ! out=$(meson compile -C "$BUILD" bench/bench-edge examples/hybridd/hybridd examples/hybrid/hybrid 2>&1); then
    printf '%s\n' "$out" >&2
    exit 1
fi
BENCH=$BUILD/bench/bench-edge
HYBRIDD=$BUILD/examples/hybridd/hybridd
HYBRID=$BUILD/examples/hybrid/hybrid

# 1 000 WebSocket clients in the bench and as many sockets in hybridd, plus the helpers
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"

PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${BENCH_KEEP:-}" ]; then echo "== kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT


# ---- a token for the token rows: issuer and holder keys, the echo procedure's call
"$HYBRID" token keygen "$WORK/iss.key" >/dev/null
"$HYBRID" token keygen "$WORK/holder.key" >/dev/null
"$HYBRID" token issue --key "$WORK/iss.key" --iss bench --sub bench --aud edgebench \
    --holder "$WORK/holder.key.pub" --ttl 3600 \
    --cap 'bus://localhost/org.example.bench.echo/+/echo=call' >"$WORK/token"

# ---- hybridd with its edge
WS_LIMITS=""
HAVE_WS=0
if [ -f "$ROOT/lib/edge/ws.c" ]; then
    HAVE_WS=1
    WS_LIMITS="  ws_max_connections: 2000
  ws_max_per_address: 2000"
fi
COAP_LISTEN=""
HAVE_COAP=0
if [ -f "$ROOT/lib/edge/coap.c" ]; then
    HAVE_COAP=1
    COAP_LISTEN="  coap: 127.0.0.1:0"
fi
cat >"$WORK/hybridd.yaml" <<EOF
listen:
  http: 127.0.0.1:0
$COAP_LISTEN
edge:
  anonymous: ["/bus/org.example.bench.echo/#"]
auth:
  tokens: accept
  audience: edgebench
  issuers:
    bench: $WORK/iss.key.pub
limits:
  max_connections: 4000
  max_endpoints: 4000
  uid_max_connections: 4000
$WS_LIMITS
EOF
"$HYBRIDD" --foreground --socket "$WORK/bus.sock" --config "$WORK/hybridd.yaml" >"$WORK/hybridd.log" 2>&1 &
HPID=$!; PIDS+=("$HPID")
bench_wait_line "$WORK/hybridd.log" 'edge: HTTP on 127.0.0.1:[1-9]' "$HPID" ||
    { cat "$WORK/hybridd.log" >&2; echo "hybridd did not start" >&2; exit 1; }
HTTP=$(sed -n 's/.*edge: HTTP on \(127\.0\.0\.1:[0-9]*\).*/\1/p' "$WORK/hybridd.log" | head -n 1 || true)
log "hybridd (pid $HPID) on $WORK/bus.sock, HTTP on $HTTP"

"$BENCH" serve "$WORK/bus.sock" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SPID=$!; PIDS+=("$SPID")
bench_wait_line "$WORK/serve.out" '^READY' "$SPID" || { cat "$WORK/serve.err" >&2; exit 1; }

# ---- nginx (Debian's), its own prefix, not a daemon, one worker, keep-alive to the upstream
ARGS_PEER=()
if command -v nginx >/dev/null; then
    "$BENCH" upstream "$WORK/upstream.sock" >"$WORK/upstream.out" 2>"$WORK/upstream.err" &
    UPID=$!; PIDS+=("$UPID")
    bench_wait_line "$WORK/upstream.out" '^READY' "$UPID" || { cat "$WORK/upstream.err" >&2; exit 1; }
    NPORT=$(bench_free_port)
    N=$WORK/nginx
    bench_nginx_conf "$N" "$NPORT" "$WORK/upstream.sock"
    nginx -p "$N" -c "$N/nginx.conf" -e "$N/error.log" >"$N/stdout" 2>&1 &
    NGPID=$!; PIDS+=("$NGPID")
    if bench_nginx_up "$NGPID" "$NPORT"; then
        ARGS_PEER+=(--nginx "127.0.0.1:$NPORT")
        log "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') (pid $NGPID) on 127.0.0.1:$NPORT -> $WORK/upstream.sock"
    else
        log "nginx did not start: $(cat "$N/error.log" "$N/stdout" 2>/dev/null | tail -n 3)"
    fi
else
    log "no nginx: its row stays empty"
fi

# ---- mosquitto's WebSocket listener, where Debian's build has one
MOSQ="mosquitto not installed"
if command -v mosquitto >/dev/null; then
    MPORT=$(bench_free_port)
    printf 'user %s\nlistener %s 127.0.0.1\nprotocol websockets\nallow_anonymous true\npersistence false\nlog_dest stderr\n' \
        "$(id -un)" "$MPORT" >"$WORK/mosquitto.conf"
    mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
    MPID=$!; PIDS+=("$MPID")
    state=unknown
    for _ in $(seq 100); do
        if ! kill -0 "$MPID" 2>/dev/null; then state=exited; break; fi
        if grep -q 'Error' "$WORK/mosquitto.log"; then state=refused; break; fi
        if "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1', $MPORT), 1)" 2>/dev/null; then
            state=listening; break
        fi
        sleep 0.05
    done
    V=$(mosquitto -h 2>/dev/null | sed -n 's/^mosquitto version \([0-9.]*\).*/\1/p' | head -n 1 || true)
    if [ "$state" = listening ]; then
        MOSQ="mosquitto $V listens on WebSockets: not measured by this bench"
    elif ldd "$(command -v mosquitto)" | grep -q libwebsockets; then
        MOSQ="mosquitto $V: its WebSocket listener did not start"
    else
        MOSQ="not available in Debian's build (mosquitto $V without libwebsockets)"
    fi
    kill "$MPID" 2>/dev/null || true
    log "mosquitto WebSocket listener: $MOSQ"
fi

WS_ARGS=()
if [ "$HAVE_WS" = 1 ]; then
    WS_ARGS+=(--ws "ws://$HTTP/bus/ws")
fi
if [ "$HAVE_COAP" = 1 ]; then
    bench_wait_line "$WORK/hybridd.log" 'edge: CoAP on 127.0.0.1:[1-9]' "$HPID" || { cat "$WORK/hybridd.log" >&2; exit 1; }
    WS_ARGS+=(--coap "$(sed -n 's/.*edge: CoAP on \(127\.0\.0\.1:[0-9]*\).*/\1/p' "$WORK/hybridd.log" | head -n 1 || true)")
fi
"$BENCH" --sock "$WORK/bus.sock" --http "$HTTP" --token "$WORK/token" --key "$WORK/holder.key" \
    --hybridd-pid "$HPID" --mosquitto-ws "$MOSQ" "${ARGS_PEER[@]}" "${WS_ARGS[@]}" "${ARGS[@]}"
