#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds a tiny consumer project that has this checkout as subprojects/libhybrid (a
# symlink), as README.md describes, runs its program, and checks that the subproject
# built only the library (no tools, tests or benchmarks).
# Usage: subproject.sh SRCROOT CONSUMER_DIR
set -eu
root=$(cd "$1" && pwd) consumer=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hyb-subproject.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
cp "$consumer/meson.build" "$consumer/main.c" "$tmp/"
mkdir "$tmp/subprojects"
ln -s "$root" "$tmp/subprojects/libhybrid"
# force_fallback_for: use the subproject even where a libhybrid is installed system-wide.
meson setup "$tmp/build" "$tmp" -Dforce_fallback_for=hybrid >"$tmp/setup.log" 2>&1 ||
        { cat "$tmp/setup.log"; echo "FAIL: meson setup of the consumer"; exit 1; }
meson compile -C "$tmp/build" >"$tmp/compile.log" 2>&1 ||
        { tail -40 "$tmp/compile.log"; echo "FAIL: meson compile of the consumer"; exit 1; }
fail=0
"$tmp/build/consumer" || { echo "FAIL: the consumer program exited $?"; fail=1; }
for p in examples tests bench; do
        if [ -d "$tmp/build/subprojects/libhybrid/$p" ]; then
                echo "FAIL: the subproject built $p/ (should be off by default there)"; fail=1
        fi
done
ls "$tmp/build/subprojects/libhybrid"/lib/libhybrid.so* >/dev/null 2>&1 ||
        { echo "FAIL: no libhybrid.so built in the subproject"; fail=1; }
exit $fail
