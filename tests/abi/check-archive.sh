#!/bin/sh
# The installed static archive must define only hyb_ names as globals (the
# internal names of the library are local to its one relocatable object), and
# every symbol the shared library exports must be a global of the archive too.
set -eu
archive=$1 shlib=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# Defined globals: uppercase types other than U (undefined); weak W/V count too.
nm -A "$archive" | awk '{t=$(NF-1)} t ~ /^[A-TV-Z]$/ {print $NF}' | sort -u > "$tmp/globals"
[ -s "$tmp/globals" ] || { echo "FAIL: no global symbol in $archive"; exit 1; }
if grep -v '^hyb_' "$tmp/globals" > "$tmp/leaks"; then
        echo "FAIL: $(wc -l < "$tmp/leaks") global symbols without the hyb_ prefix in $archive:"
        head -20 "$tmp/leaks"
        exit 1
fi
nm -D --defined-only "$shlib" | awk '$2 ~ /^[TDBR]$/ {print $3}' | sed 's/@.*//' | grep '^hyb_' | sort -u > "$tmp/exported"
if ! diff -u "$tmp/exported" "$tmp/globals"; then
        echo "FAIL: the archive's globals differ from the shared library's exports (- .so, + .a)"
        exit 1
fi
echo "ok: $(wc -l < "$tmp/globals") global symbols in the archive, all hyb_"
