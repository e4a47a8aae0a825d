#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the build into a staging dir (as a user would install it), then compiles
# every C example of README.md and doc/ against it with nothing but
# `pkg-config --cflags --libs hybrid`; complete programs are run (c-examples.py).
set -eu
build=$1 src=$2
shift 2
stage=$(mktemp -d "${TMPDIR:-/tmp}/hyb-stage.XXXXXX"); trap 'rm -rf "$stage"' EXIT
meson install -C "$build" --destdir "$stage" --quiet >/dev/null
pc=$(find "$stage" -name hybrid.pc | head -1)
[ -n "$pc" ] || { echo "FAIL: hybrid.pc not installed"; exit 1; }
export PKG_CONFIG_PATH="$(dirname "$pc")" PKG_CONFIG_SYSROOT_DIR="$stage"
python3 "$(dirname "$0")/c-examples.py" "$src" "$@"
