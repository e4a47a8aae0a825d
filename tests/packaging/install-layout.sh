#!/bin/sh
# SPDX-License-Identifier: MIT
# What `meson install` puts where: the library, headers and hybrid.pc; the hybrid tool,
# hybridd and the services hybrid-sysinfo and hybrid-sensor-sim in bin/ but not the sample
# programs (unless -Dinstall_samples=true); and man
# pages for the tools in share/man/man1 that render without troff errors and carry the
# sections a man page needs.  Usage: install-layout.sh BUILD SRCROOT MAN(yes|no)
set -eu
build=$1 src=$2 want_man=$3
stage=$(mktemp -d "${TMPDIR:-/tmp}/hyb-stage.XXXXXX"); trap 'rm -rf "$stage"' EXIT
meson install -C "$build" --destdir "$stage" --quiet >/dev/null
fail=0
for f in bin/hybrid bin/hybridd bin/hybrid-logd bin/hybrid-sysinfo bin/hybrid-sensor-sim \
         include/hybrid/hybrid.h include/hybrid/log.h; do
        find "$stage" -path "*/$f" | grep -q . || { echo "FAIL: $f not installed"; fail=1; }
done
# the systemd units, in a systemd unit directory, ExecStart= in the installed bindir
for f in hybridd hybrid-logd hybrid-sysinfo hybrid-sensor-sim; do
        u=$(find "$stage" -path "*/lib/systemd/system/$f.service" | head -1)
        if [ -z "$u" ]; then
                echo "FAIL: $f.service not installed in a lib/systemd/system"; fail=1
        elif ! grep -q "^ExecStart=$(meson introspect "$build" --buildoptions |
                /usr/bin/python3 -c 'import json, os, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(os.path.join(o["prefix"], o["bindir"]))')/$f" "$u"; then
                echo "FAIL: $f.service: ExecStart= not in the installed bindir"; fail=1
        fi
done
for f in hybrid.pc libhybrid.so.0 libhybrid.a; do
        find "$stage" -name "$f" | grep -q . || { echo "FAIL: $f not installed"; fail=1; }
done
# The installed tool finds the installed library by itself (RUNPATH $ORIGIN/../libdir).
hyb=$(find "$stage" -path '*/bin/hybrid' | head -1)
if [ -n "$hyb" ]; then
        out=$(env -u LD_LIBRARY_PATH "$hyb" furi match /a/b '/a/+' 2>&1) || true
        [ "$out" = true ] || { echo "FAIL: installed bin/hybrid does not run by itself: $out"; fail=1; }
fi
# The services find it too: a usage error (2) means the program ran (127: the loader failed).
for svc in hybrid-sysinfo hybrid-sensor-sim; do
        p=$(find "$stage" -path "*/bin/$svc" | head -1)
        [ -n "$p" ] || continue
        st=0
        env -u LD_LIBRARY_PATH "$p" --no-such-option >/dev/null 2>&1 || st=$?
        [ "$st" = 2 ] || { echo "FAIL: installed bin/$svc does not run by itself (exit $st)"; fail=1; }
done
if find "$stage" -name 'hybrid-sample-*' | grep .; then
        echo "FAIL: sample programs installed without -Dinstall_samples=true"; fail=1
fi
if [ "$want_man" != yes ]; then
        echo "man pages not built (no go-md2man, or -Dman=disabled): not checked"
        exit $fail
fi
command -v man >/dev/null || { echo "SKIP: man not installed"; exit 77; }
for page in hybrid hybridd hybrid-logd hybrid-sysinfo hybrid-sensor-sim; do
        [ -f "$src/doc/${page}.md" ] || continue
        f=$(find "$stage" -path "*/share/man/man1/$page.1" | head -1)
        if [ -z "$f" ]; then
                echo "FAIL: $page.1 not installed in share/man/man1"; fail=1; continue
        fi
        MANWIDTH=100 LC_ALL=C.UTF-8 man --warnings -l "$f" >"$stage/$page.txt" 2>"$stage/$page.err" || {
                echo "FAIL: man -l $page.1 exited $?"; cat "$stage/$page.err"; fail=1; continue; }
        # Line-filling notes are not errors; anything else troff says is.
        if grep -v -e 'cannot adjust line' -e 'cannot break line' "$stage/$page.err" | grep -q .; then
                echo "FAIL: $page.1: troff complains:"; cat "$stage/$page.err"; fail=1
        fi
        for s in NAME SYNOPSIS; do
                grep -qx "$s" "$stage/$page.txt" || { echo "FAIL: $page.1 has no $s section"; fail=1; }
        done
        # NAME is "page - what it is" (what whatis/apropos read).
        sed -n '/^NAME$/{n;p;}' "$stage/$page.txt" | grep -Eq "^ +$page - [^ ]" ||
                { echo "FAIL: $page.1: NAME is not \"$page - ...\""; fail=1; }
        echo "ok $page.1:"; head -12 "$stage/$page.txt" | sed 's/^/    /'
done
exit $fail
