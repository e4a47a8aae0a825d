#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds the installed static archive from the internal one so that only the
# public hyb_ API is global in it: every object is linked into one relocatable
# object (ld -r), whose hidden symbols (everything not HYB_EXPORT, since the
# library is compiled with -fvisibility=hidden) are then made local.  Internal
# names (db_open, vec_push...) stay free to clash with nothing in a user's program.
#
#   localize-archive.sh <objcopy> <ar> <input.a> <output.a> <workdir> <cc> [cc args...]
set -eu
objcopy=$1 ar=$2 in=$3 out=$4 work=$5
shift 5
mkdir -p "$work"
obj="$work/libhybrid.o"
rm -f "$obj" "$out"
"$@" -r -nostdlib -o "$obj" -Wl,--whole-archive "$in" -Wl,--no-whole-archive
"$objcopy" --localize-hidden "$obj"
"$ar" rcs "$out" "$obj"
