# bench-build.sh - sourced by the bench/run-*.sh scripts (bash): bench_build_dir ROOT BUILD
# sets up BUILD (meson, buildtype=release) for the source tree ROOT, or switches an existing
# build directory to release.  The benchmarks are measured optimised only.
bench_build_dir() {
    if [ ! -f "$2/build.ninja" ]; then
        meson setup "$2" "$1" -Dbuildtype=release >/dev/null
    elif [ "$(meson introspect --buildoptions "$2" 2>/dev/null |
              python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="buildtype"][0])')" != release ]; then
        meson configure "$2" -Dbuildtype=release >/dev/null
    fi
}
