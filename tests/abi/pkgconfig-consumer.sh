#!/bin/sh
# Installs the build into a staging dir, then builds and runs a tiny program
# with nothing but `pkg-config --cflags --libs hybrid`, as a user would; and
# static-consumer.c against the installed libhybrid.a with `pkg-config --static`
# (Libs.private must name what the archive needs, mbedTLS included).
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

# the archive in place of -lhybrid, the rest as `pkg-config --static` says
static=$(pkg-config --static --libs-only-l --libs-only-other hybrid | sed 's/-lhybrid//')
cc -o "$stage/static-consumer" "$(dirname "$src")/static-consumer.c" $(pkg-config --cflags hybrid) \
        "$libdir/libhybrid.a" $static
"$stage/static-consumer"
