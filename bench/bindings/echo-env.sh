# echo-env.sh - sourced (bash) by run-bindings.sh and callgrind-bindings.sh: what both need
# before their clients run.
#   bindings_env ROOT BUILD     exports the variables that let every binding find the build's
#                               library, modules and Node addon
#   start_echo WORK BUILD       starts hybridd (store in memory) on WORK/bus.sock and the C echo
#                               service `bench-bindings serve` on it; appends their PIDs to the
#                               caller's PIDS array and sets EP to the service's endpoint.  The
#                               caller's ON_B / ON_P arrays (may be empty) prefix the daemon's and
#                               the service's command lines (taskset for --pin).
# The caller defines wait_for (a condition string, polled) and owns the clean-up of PIDS.
bindings_env() {
    export HYBRID_LIBRARY=$2/lib/libhybrid.so.0
    export PYTHONPATH=$1/bindings/python${PYTHONPATH:+:$PYTHONPATH}
    export LUA_PATH="$1/bindings/lua/?.lua;;" LUA_CPATH="$2/bindings/lua/?.so;;"
    export HYBRID_NODE_PACKAGE=$1/bindings/node
    local addon
    addon=$(ls "$2"/bindings/node/*.node 2>/dev/null | head -n1 || true)
    if [ -n "$addon" ]; then export HYBRID_NODE_ADDON=$addon; fi
}

start_echo() {
    local work=$1 build=$2
    printf 'store:\n  durability: memory\nlimits:\n  send_queue_bytes: 256M\n' >"$work/hybridd.yaml"
    "${ON_B[@]}" "$build/examples/hybridd/hybridd" --foreground --socket "$work/bus.sock" \
        --config "$work/hybridd.yaml" >"$work/hybridd.log" 2>&1 &
    PIDS+=($!)
    wait_for '[ -S "$work/bus.sock" ]' || { cat "$work/hybridd.log" >&2; return 1; }
    "${ON_P[@]}" "$build/bench/bench-bindings" serve "$work/bus.sock" \
        >"$work/serve.out" 2>"$work/serve.err" &
    PIDS+=($!)
    wait_for 'grep -q READY "$work/serve.out"' || { cat "$work/serve.err" >&2; return 1; }
    EP=$(head -n1 "$work/serve.err")
}
