#!/bin/sh
# SPDX-License-Identifier: MIT
# `hybrid store put|get|del|watch` end to end (doc/hybrid.md, doc/store.md).
# Expected outputs are written by hand from the specs.  Usage: cli-store.sh <path of hybrid>
set -u
H=${1:?usage: cli-store.sh HYBRID}
T=$(mktemp -d "${TMPDIR:-/tmp}/hyb-store.XXXXXX")
WPID=""
cleanup() {
        [ -n "$WPID" ] && kill "$WPID" 2>/dev/null
        rm -rf "$T"
}
trap cleanup EXIT
# No daemon can answer at a runtime dir of our own: commands without --db take the default
# database (doc/hybrid.md "Which store a command uses"), never a daemon running elsewhere.
export XDG_RUNTIME_DIR="$T"
unset HYBRID_BUS
DB="$T/s.db"
NPASS=0
NFAIL=0
ok() { NPASS=$((NPASS + 1)); }
bad() { NFAIL=$((NFAIL + 1)); echo "FAIL: $*" >&2; }
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
TAB=$(printf '\t')

expect 0 "" -- "$H" store --db "$DB" put /a/a 1
expect 0 "" -- "$H" store --db "$DB" put /a/b 2
expect 0 "" -- "$H" store --db "$DB" put /a/b/c 3
expect 0 "2" -- "$H" store --db "$DB" get /a/b
expect 0 "/a/a${TAB}1
/a/b${TAB}2" -- "$H" store --db "$DB" get '/a/+'
expect 0 "/a/a${TAB}1
/a/b${TAB}2
/a/b/c${TAB}3" -- "$H" store --db "$DB" get '/a/#'
expect 0 "[/a/b=>2]" -- "$H" store --db "$DB" get /a/b/
expect 0 "" -- "$H" store --db "$DB" put /m '[[0,1],[2,3]]'
expect 0 "2" -- "$H" store --db "$DB" get /m/1/0
expect 0 "" -- "$H" store --db "$DB" put /s "'hi'"
expect 0 "'hi'" -- "$H" store --db "$DB" get /s
expect 0 '"hi"' -- "$H" store --db "$DB" --json get /s
expect 0 "" -- "$H" store --db "$DB" --json put /j '{"k":[1,2.5]}'
expect 0 "[k=>[1,2.5]]" -- "$H" store --db "$DB" get /j
expect 0 "" -- "$H" store --db "$DB" put /neg -- -5
expect 0 "-5" -- "$H" store --db "$DB" get /neg
expect 0 "" -- "$H" store --db "$DB" del /a/b
expect 1 "" -- "$H" store --db "$DB" get /a/b
expect 0 "" -- "$H" store --db "$DB" del '/a/#'
expect 1 "" -- "$H" store --db "$DB" get '/a/+'
expect 1 "" -- "$H" store --db "$DB" get /nothing/here/
expect 0 "" -- "$H" store --db "$DB" --durability full put /f 1
expect 0 "1" -- "$H" store --db "$DB" get /f
expect 0 "" -- "$H" store --db "$DB" --durability memory put /mem 1
expect 1 "" -- "$H" store --db "$DB" get /mem
# errors: exit 2 for bad fURIs, objs, relative fURIs, usage; 1 for a scope that fails; 3 for the db
expect 2 "" -- "$H" store --db "$DB" put a/b 1
expect 2 "" -- "$H" store --db "$DB" get rel
expect 2 "" -- "$H" store --db "$DB" put /x '[1,'
expect 2 "" -- "$H" store --db "$DB" get '/a//b'
expect 2 "" -- "$H" store --db "$DB" put '/a/+' 1
expect 2 "" -- "$H" store --db "$DB" frob /x
expect 2 "" -- "$H" store --db "$DB" get
expect 2 "" -- "$H" store --db "$DB" --durability sometimes get /x
expect 1 "" -- "$H" store --db "$DB" get //kitchen/temp
grep -q "cluster" "$T/err" && ok || bad "cluster error does not name the scope: $(cat "$T/err")"
grep -q "^hybrid: store: HYB_E_SCOPE " "$T/err" && ok || bad "error line format: $(cat "$T/err")"
echo "not a database at all, only text that is long enough" > "$T/text.db"
expect 3 "" -- "$H" store --db "$T/text.db" get /x
grep -q "^hybrid: store: HYB_E_DATABASE " "$T/err" && ok || bad "db error line: $(cat "$T/err")"
mkdir "$T/dir.db"
expect 3 "" -- "$H" store --db "$T/dir.db" put /x 1
# the default database's directory is created when missing
expect 0 "" -- env XDG_DATA_HOME="$T/xdg" HYBRID_DB= "$H" store put /d 4
expect 0 "4" -- env XDG_DATA_HOME="$T/xdg" HYBRID_DB= "$H" store get /d
[ -f "$T/xdg/hybrid/store.db" ] && ok || bad "default database not created"

# objs print in the exact form (HYB_FORMAT_EXACT): it reads back as the same obj
expect 0 "" -- "$H" store --db "$DB" put /r/a 21.5
expect 0 "21.5" -- "$H" store --db "$DB" get /r/a
expect 0 "" -- "$H" store --db "$DB" put /r/b 21.0
expect 0 "21.0" -- "$H" store --db "$DB" get /r/b
expect 0 "" -- "$H" store --db "$DB" put /r/c 21
expect 0 "21" -- "$H" store --db "$DB" get /r/c
expect 0 "/r/a${TAB}21.5
/r/b${TAB}21.0
/r/c${TAB}21" -- "$H" store --db "$DB" get '/r/+'
expect 0 "" -- "$H" store --db "$DB" put /rec "[a=>21.5,b=>21.0,c=>'x']"
expect 0 "[a=>21.5,b=>21.0,c=>'x']" -- "$H" store --db "$DB" get /rec
# what get printed is a valid obj that stores the same value again
v=$("$H" store --db "$DB" get /rec)
expect 0 "" -- "$H" store --db "$DB" put /rec2 "$v"
expect 0 "[a=>21.5,b=>21.0,c=>'x']" -- "$H" store --db "$DB" get /rec2
# store put --json takes a JSON value
expect 0 "" -- "$H" store --db "$DB" --json put /jl '[1,2.5,"x",true]'
expect 0 "[1,2.5,'x',true]" -- "$H" store --db "$DB" get /jl
expect 0 "" -- "$H" store --db "$DB" -j put /jn 21.5
expect 0 "21.5" -- "$H" store --db "$DB" get /jn
expect 2 "" -- "$H" store --db "$DB" --json put /jbad '{oops'
expect 2 "" -- "$H" store --db "$DB" --json put /jbad "'hi'"
# short options: -d for --db, -j for --json
expect 0 "21.5" -- "$H" store -d "$DB" get /r/a
expect 0 "21.5" -- "$H" -j store get /r/a -d "$DB"
# --count ends watch: with --replay the stored values count too
expect 0 "/r/a${TAB}21.5" -- "$H" store --db "$DB" watch /r/a --replay --count 1
expect 2 "" -- "$H" store --db "$DB" watch /r/a --count 0
expect 2 "" -- "$H" store --db "$DB" get /r/a --count 1
"$H" store --db "$DB" watch '/c/#' --count 2 >"$T/count.out" 2>"$T/count.err" &
WPID=$!
i=0
while ! grep -q '^ready$' "$T/count.err" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
"$H" store --db "$DB" put /c/1 1.5
"$H" store --db "$DB" put /c/2 "'two'"
i=0
while kill -0 "$WPID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
if kill -0 "$WPID" 2>/dev/null; then
        bad "watch --count 2 still running after 2 writes"
        kill "$WPID"
fi
wait "$WPID"
st=$?
WPID=""
[ "$st" = 0 ] && ok || bad "watch --count 2 exit status $st"
[ "$(cat "$T/count.out")" = "/c/1${TAB}1.5
/c/2${TAB}'two'" ] && ok || bad "watch --count printed: $(cat "$T/count.out")"
# store check, and damage reported, never returned (exit 3 + "corrupt" naming the fURI)
D2="$T/check.db"
expect 0 "" -- "$H" store --db "$D2" put /c/v "'hello-corruption'"
expect 0 "" -- "$H" store --db "$D2" put /c/w 2
expect 0 "ok" -- "$H" store --db "$D2" check
expect 0 '{"database":"'"$D2"'","sound":true,"problems":[]}' -- "$H" store --db "$D2" --json check
# one flipped bit in the stored text ('h' -> 'i'): still valid obj text, so only the row's
# checksum can tell
python3 - "$D2" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
i = b.find(b'hello-corruption')
assert i > 0 and b.find(b'hello-corruption', i + 1) < 0
b[i] ^= 1
open(p, 'wb').write(b)
PY
expect 3 "" -- "$H" store --db "$D2" get /c/w
grep -q "corrupt" "$T/err" && grep -q "/c/v" "$T/err" && ok || bad "corrupt get: $(cat "$T/err")"
grep -q "^hybrid: store: HYB_E_CORRUPT " "$T/err" && ok || bad "corrupt line: $(cat "$T/err")"
expect 1 "/c/v${TAB}row does not match its checksum" -- "$H" store --db "$D2" check
grep -q "corrupt" "$T/err" && ok || bad "check stderr: $(cat "$T/err")"
expect 1 '{"database":"'"$D2"'","sound":false,"problems":[{"furi":"/c/v","problem":"row does not match its checksum"}]}' -- "$H" store --db "$D2" --json check
# a damaged key with a newline and bytes past ASCII is listed on one line, escaped
D3="$T/keys.db"
expect 0 "" -- "$H" store --db "$D3" put /ok 1
python3 - "$D3" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("INSERT INTO kv(furi, value, sum) VALUES(?, 1, 0)", ("/x\n\u00e9",))
c.commit()
PY
expect 1 '/x\x0a\xc3\xa9'"${TAB}row does not match its checksum" -- "$H" store --db "$D3" check
expect 1 '{"database":"'"$D3"'","sound":false,"problems":[{"furi":"/x\\x0a\\xc3\\xa9","problem":"row does not match its checksum"}]}' -- "$H" store --db "$D3" --json check
expect 3 "" -- "$H" store --db "$T/absent.db" check
[ ! -e "$T/absent.db" ] && ok || bad "check created the file it checks"
expect 3 "" -- "$H" store --db "$T/text.db" check
expect 2 "" -- "$H" store --db "$D2" check /c/v

# watch in one process sees put/del from another
"$H" store --db "$DB" put /w/old 0
"$H" store --db "$DB" watch '/w/#' --replay >"$T/watch.out" 2>"$T/watch.err" &
WPID=$!
i=0
while ! grep -q '^ready$' "$T/watch.err" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
grep -q '^ready$' "$T/watch.err" && ok || bad "watch never printed ready"
"$H" store --db "$DB" put /w/1 "'one'"
"$H" store --db "$DB" put /w/2 '[a=>1]'
"$H" store --db "$DB" del /w/1
"$H" store --db "$DB" put /other 5
i=0
while [ "$(wc -l <"$T/watch.out")" -lt 4 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.2
kill "$WPID"
wait "$WPID" 2>/dev/null
WPID=""
want="/w/old${TAB}0
/w/1${TAB}'one'
/w/2${TAB}[a=>1]
/w/1${TAB}noobj"
[ "$(cat "$T/watch.out")" = "$want" ] && ok || bad "watch printed: $(cat "$T/watch.out")"

# repl and run use the database --db names, also when it is the default path (doc/hybrid.md
# "Which store a command uses"); without --db or $HYBRID_DB, and no daemon at the default
# socket (a runtime dir of our own), the default database
X="$T/xdg"
mkdir -p "$X/hybrid"
XD="$X/hybrid/store.db"
expect 0 "" -- env XDG_DATA_HOME="$X" "$H" store --db "$XD" put /d/k 1
expect 0 "==>2" -- sh -c "echo '/d/k -> 2' | XDG_DATA_HOME='$X' '$H' repl --db '$XD'"
expect 0 "2" -- "$H" store --db "$XD" get /d/k
expect 0 "==>3" -- sh -c "echo '/d/k -> 3' | XDG_DATA_HOME='$X' HYBRID_DB='$XD' '$H' run -"
expect 0 "3" -- "$H" store --db "$XD" get /d/k
expect 0 "==>4" -- sh -c "echo '/d/k -> 4' | env -u HYBRID_DB -u HYBRID_BUS XDG_DATA_HOME='$X' XDG_RUNTIME_DIR='$T' '$H' repl"
expect 0 "4" -- "$H" store --db "$XD" get /d/k

echo "cli-store: $NPASS passed, $NFAIL failed"
[ "$NFAIL" = 0 ]
