#!/usr/bin/env bash
# run-store.sh - build libhybrid optimised (build-bench, buildtype=release) and run bench-store.
#
# usage: bench/run-store.sh [--quick] [any other bench-store option]
#   (no option)  the full run: 5 runs per figure, ~2 minutes
#   --quick      smoke run, ~15 s
# The databases go to a fresh directory under $TMPDIR (default /tmp), removed at the end; pass
# --dir DIR to measure another disk.  The table goes to stdout; progress to stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}

. "$ROOT/bench/bench-build.sh"
bench_build_dir "$ROOT" "$BUILD"
if ! log=$(meson compile -C "$BUILD" bench/bench-store 2>&1); then
    printf '%s\n' "$log" >&2
    exit 1
fi
exec "$BUILD/bench/bench-store" "$@"
