#!/bin/sh
# SPDX-License-Identifier: MIT
# `hybrid store` on a database the user may read but not write, in a directory it may not write
# (so no -wal or -shm file can be made): reads work, writes fail with a read-only error and exit
# 1, `store check` works.  As root the commands run as uid 65534 (setpriv) from copies of the
# tool and the library staged in a world-readable temp dir: the build tree may sit where that
# uid cannot enter.  Usage: store-access.sh <path of hybrid> <path of libhybrid.so>
set -u
H=${1:?usage: store-access.sh HYBRID LIBHYBRID}
LIB=${2:?usage: store-access.sh HYBRID LIBHYBRID}
T=$(mktemp -d "${TMPDIR:-/tmp}/hyb-access.XXXXXX")
cleanup() {
        chmod -R u+w "$T" 2>/dev/null
        rm -rf "$T"
}
trap cleanup EXIT
NPASS=0
NFAIL=0
ok() { NPASS=$((NPASS + 1)); }
bad() { NFAIL=$((NFAIL + 1)); echo "FAIL: $*" >&2; }
TAB=$(printf '\t')

if [ "$(id -u)" = 0 ]; then
        command -v setpriv >/dev/null || { echo "store-access: setpriv is missing: skipped"; exit 77; }
        AS="setpriv --reuid=65534 --regid=65534 --clear-groups"
else
        AS=""
fi
chmod 755 "$T"
mkdir "$T/bin" "$T/lib" "$T/ro"
cp "$H" "$T/bin/hybrid"
cp -L "$LIB" "$T/lib/libhybrid.so.0"
chmod -R a+rX "$T/bin" "$T/lib"
# runs the staged tool as the unprivileged user
RO() { $AS env LD_LIBRARY_PATH="$T/lib" "$T/bin/hybrid" "$@"; }
# expect <status> <stdout> -- command...
expect() {
        want_st=$1 want_out=$2
        shift 3
        out=$("$@" 2>"$T/err")
        st=$?
        if [ "$st" = "$want_st" ] && [ "$out" = "$want_out" ]; then ok; else
                bad "$* -> status $st, output '$out' (want $want_st, '$want_out'); stderr: $(cat "$T/err")"
        fi
}

DB="$T/ro/s.db"
expect 0 "" -- "$H" store --db "$DB" put /r/a 1
expect 0 "" -- "$H" store --db "$DB" put /r/s "'text'"
chmod 444 "$DB"
chmod 555 "$T/ro"
# the setup can fail: that user really may not write here
if $AS touch "$T/ro/probe" 2>/dev/null || $AS sh -c ": >> '$DB'" 2>/dev/null; then
        bad "uid $($AS id -u) may write $T/ro: the test cannot tell anything"
fi
expect 0 "1" -- RO store --db "$DB" get /r/a
expect 0 "/r/a${TAB}1
/r/s${TAB}'text'" -- RO store --db "$DB" get '/r/#'
expect 1 "" -- RO store --db "$DB" put /r/a 2
grep -q "^hybrid: store: HYB_E_READ_ONLY .*read-only" "$T/err" && ok || bad "write error: $(cat "$T/err")"
expect 1 "" -- RO store --db "$DB" del /r/a
expect 0 "1" -- RO store --db "$DB" get /r/a
expect 0 "ok" -- RO store --db "$DB" check
[ ! -e "$DB-wal" ] && [ ! -e "$DB-shm" ] && ok || bad "a -wal or -shm file was made: $(ls "$T/ro")"

# a stale -wal beside a read-only file: its commits would be invisible, so it is refused
chmod 755 "$T/ro"
chmod 644 "$DB"
# a writer that stays open (so its commit stays in the -wal), then is killed
"$H" store --db "$DB" put /r/a 3
"$H" store --db "$DB" watch '/x' 2>"$T/watch.err" &
WPID=$!
i=0
while ! grep -q '^ready$' "$T/watch.err" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
"$H" store --db "$DB" put /r/a 4
kill -9 "$WPID"
wait "$WPID" 2>/dev/null
if [ -s "$DB-wal" ]; then
        chmod 444 "$DB"
        chmod 555 "$T/ro"
        expect 3 "" -- RO store --db "$DB" get /r/a
        grep -q "HYB_E_READ_ONLY .*-wal" "$T/err" && ok || bad "stale -wal: $(cat "$T/err")"
        chmod 755 "$T/ro"
        chmod 644 "$DB"
        # with write access again the WAL is checkpointed, and the last commit is there
        expect 0 "4" -- "$H" store --db "$DB" get /r/a
else
        bad "no -wal was left by the killed writer"
fi

echo "store-access: $NPASS passed, $NFAIL failed"
[ "$NFAIL" = 0 ]
