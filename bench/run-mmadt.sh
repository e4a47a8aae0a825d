#!/usr/bin/env bash
# run-mmadt.sh - build libhybrid optimised (build-bench, buildtype=release) and run bench-mmadt.
#
# usage: bench/run-mmadt.sh [--quick] [any other bench-mmadt option]
#   (no option)  the full run: 5 rounds, ours and lua5.4 alternating, ~1 minute
#   --quick      smoke run: 1 round
# The table goes to stdout; progress to stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}

if ! command -v "${LUA:-lua5.4}" >/dev/null; then
    echo "run-mmadt.sh: ${LUA:-lua5.4} not found (Debian: apt install lua5.4)" >&2
    exit 1
fi
. "$ROOT/bench/bench-build.sh"
bench_build_dir "$ROOT" "$BUILD"
# a meson.build edited since the last build: the target is unknown until meson reconfigures
if ! log=$(meson compile -C "$BUILD" bench/bench-mmadt 2>&1) &&
   ! log=$(meson setup --reconfigure "$BUILD" "$ROOT" >/dev/null 2>&1 &&
           meson compile -C "$BUILD" bench/bench-mmadt 2>&1); then
    printf '%s\n' "$log" >&2
    exit 1
fi
exec "$BUILD/bench/bench-mmadt" --lua "${LUA:-lua5.4}" --dir "$ROOT/bench/mmadt" "$@"
