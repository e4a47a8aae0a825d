#!/bin/sh
# Installs the build into a staging dir, then builds and runs a tiny program
# with nothing but `pkg-config --cflags --libs hybrid`, as a user would.
set -eu
build=$1 src=$2
stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
meson install -C "$build" --destdir "$stage" --quiet >/dev/null
pcdir=$(dirname "$(find "$stage" -name hybrid.pc | head -1)")
[ -n "$pcdir" ] || { echo "FAIL: hybrid.pc not installed"; exit 1; }
export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$stage"
flags=$(pkg-config --cflags --libs hybrid)
echo "pkg-config --cflags --libs hybrid: $flags"
cc -o "$stage/consumer" "$src" $flags
libdir=$(pkg-config --libs-only-L hybrid | sed 's/^ *-L//; s/ .*//')
LD_LIBRARY_PATH="$libdir" "$stage/consumer"
