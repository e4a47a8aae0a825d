#!/bin/sh
# SPDX-License-Identifier: MIT
# scripts/bootstrap.sh installs what each use needs: every pkg-config dependency the
# meson files ask for comes from a package of the `build` set (the test and bench ones
# from the `test` set), the tools the build and the tests run come from packages of
# those sets, the demo, test and bench sets contain the build set, and the bench set holds
# the packages of the bench/ meson file's dependencies.
# Usage: bootstrap-sets.sh SRCROOT
set -eu
root=$1
command -v dpkg >/dev/null || { echo "SKIP: not a Debian system"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hyb-bootstrap.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
for set in build demo test bench; do
        sh "$root/scripts/bootstrap.sh" --list $set | sort -u >"$tmp/$set"
done
fail=0
in_set() { # in_set SET PACKAGE WHY
        grep -qx "$2" "$tmp/$1" || { echo "FAIL: $2 ($3) is not in bootstrap's $1 set"; fail=1; }
}
owner() { # the package that installed a file (arch suffix dropped)
        dpkg -S "$1" 2>/dev/null | head -1 | sed 's/[:,].*//'
}
for set in demo test bench; do
        missing=$(comm -23 "$tmp/build" "$tmp/$set")
        [ -z "$missing" ] || { echo "FAIL: the $set set lacks build packages:" $missing; fail=1; }
done
# pkg-config dependencies of the meson files (mbedTLS has no .pc: found as a library).
for f in $(find "$root" -name meson.build -not -path '*/build*' -not -path '*/subprojects/*'); do
        sed -n "s/.*dependency('\([^']*\)'.*/\1/p" "$f" | while read -r dep; do
                echo "$dep $f"
        done
done | sort -u >"$tmp/deps"
while read -r dep file; do
        case $dep in threads | hybrid) continue ;; esac
        pc=$(pkg-config --path "$dep" 2>/dev/null) || continue
        pkg=$(owner "$pc")
        [ -n "$pkg" ] || continue
        case $dep:$file in
        check:* | *:"$root"/tests/*) in_set test "$pkg" "dependency('$dep') in ${file#"$root"/}" ;;
        *:"$root"/bench/*)
                in_set test "$pkg" "dependency('$dep') in ${file#"$root"/}"
                in_set bench "$pkg" "dependency('$dep') in ${file#"$root"/}"
                ;;
        *) in_set build "$pkg" "dependency('$dep') in ${file#"$root"/}" ;;
        esac
        echo "ok dependency('$dep'): $pkg"
done <"$tmp/deps"
# Tools: those of the build, then those scripts/test and the test scripts run.
for t in meson ninja pkg-config go-md2man; do
        p=$(command -v "$t") && pkg=$(owner "$p") && [ -n "$pkg" ] && in_set build "$pkg" "$t"
done
for t in sqlite3 clang setpriv man systemd-analyze openssl; do
        p=$(command -v "$t") && pkg=$(owner "$p") && [ -n "$pkg" ] && in_set test "$pkg" "$t"
done
in_set test python3 "python3 runs the test scripts"
in_set test check "the C test runner"
in_set test python3-cryptography "tests/token: keys and signatures made by Python"
in_set test python3-jwt "tests/token: PyJWT verifies our ES256 JWS"
exit $fail
