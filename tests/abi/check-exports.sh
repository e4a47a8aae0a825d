#!/bin/sh
# The dynamic symbols of libhybrid.so must be exactly the HYB_EXPORT functions of
# the public headers, all matched by the version script, nothing else.
set -eu
lib=$1 hdrdir=$2 map=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {print $3}' | sed 's/@.*//' | grep -v '^HYBRID_' | sort -u > "$tmp/exported"
# Declarations: "HYB_EXPORT <type> <name>(" possibly with * before the name.
cat "$hdrdir"/*.h | tr '\n' ' ' | grep -o 'HYB_EXPORT[^;(]*(' | sed 's/($//; s/.*[ *]//' | grep '^hyb_' | sort -u > "$tmp/declared"
grep -q 'hyb_\*' "$map" || { echo "version script does not export hyb_*"; exit 1; }
if ! diff -u "$tmp/declared" "$tmp/exported"; then
        echo "FAIL: exported symbols differ from the HYB_EXPORT declarations (- declared, + exported)"
        exit 1
fi
if grep -v '^hyb_' "$tmp/exported"; then echo "FAIL: symbols without the hyb_ prefix leak"; exit 1; fi
echo "ok: $(wc -l < "$tmp/exported") exported symbols match the headers"
