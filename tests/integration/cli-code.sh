#!/bin/sh
# SPDX-License-Identifier: MIT
# Code stored in a database file survives the process that stored it (doc/store.md "Code"):
# `hybrid repl --db` stores code, then `hybrid store get` prints it in the exact text form
# (`|(source)`, which reads back as the same code: doc/obj.md) and a second `repl --db`
# applies it with the results the language gives (doc/mmadt.md), the same as before the
# reopen.  Expected outputs are written by hand from the specs.  Usage: cli-code.sh HYBRID
set -u
H=${1:?usage: cli-code.sh HYBRID}
T=$(mktemp -d "${TMPDIR:-/tmp}/hyb-code.XXXXXX")
trap 'rm -rf "$T"' EXIT
DB="$T/c.db"
NPASS=0
NFAIL=0
ok() { NPASS=$((NPASS + 1)); }
bad() { NFAIL=$((NFAIL + 1)); echo "FAIL: $*" >&2; }
# expect <status> <stdout> -- command... (stdin from $IN when set)
expect() {
        want_st=$1 want_out=$2
        shift 3
        out=$("$@" <"${IN:-/dev/null}" 2>"$T/err")
        st=$?
        if [ "$st" = "$want_st" ] && [ "$out" = "$want_out" ]; then ok; else
                bad "$* -> status $st, output '$out' (want $want_st, '$want_out'); stderr: $(cat "$T/err")"
        fi
}

# the brief's reproduction: store a function, open the file again
printf '%s\n' '/f -> |plus(1)' >"$T/store1"
IN="$T/store1" expect 0 "==>plus(1)" -- "$H" repl --db "$DB"
expect 0 "|(plus(1))" -- "$H" store --db "$DB" get /f
expect 0 "ok" -- "$H" store --db "$DB" check

cat >"$T/store2" <<'MM'
/c/zz -> |(plus(5).mult(2))
/c/band -> |band?int{?}<=int(min=>else(2),max=>else(8))[is(gte(*min)).is(lte(*max))]
/c/t -> thread[[loop=>^(plus(1))]]
/c/person -> |[name?str=>_, age?int=>else(29)]
/c/r -> |plus(1.5)
MM
IN="$T/store2" expect 0 "==>plus(5).mult(2)
==>band?int{?}<=int(min=>else(2),max=>else(8))[is(gte(from(min))).is(lte(from(max)))]
==>thread[[loop=>lift(plus(1)),halt=>true]]
==>[name?str=>_,age?int=>else(29)]
==>plus(1.500000)" -- "$H" repl --db "$DB"
expect 0 "thread[[loop=>|(lift(plus(1))),halt=>true]]" -- "$H" store --db "$DB" get /c/t
expect 0 "|(plus(1.5))" -- "$H" store --db "$DB" get /c/r
expect 0 "[name?str=>|(_),age?int=>|(else(29))]" -- "$H" store --db "$DB" get /c/person

# a later process applies what an earlier one stored
cat >"$T/use" <<'MM'
5.V(*/f)
5./f()
*/f
52./c/zz()
{2,3,4,5}./c/band(min=>3,max=>4)
/c/person[[name=>'pig']]
*/f.eq(|plus(1))
*/c/r
MM
want="==>6
==>6
==>plus(1)
==>114
==>3
==>4
==>/c/person[[name?str=>'pig',age?int=>29]]
==>true
==>plus(1.500000)"
IN="$T/use" expect 0 "$want" -- "$H" repl --db "$DB"
# and again, from a file that a repl already read and wrote back to
printf '%s\n' '/g -> *(/f)' >"$T/copy"
IN="$T/copy" expect 0 "==>plus(1)" -- "$H" repl --db "$DB"
printf '%s\n' '7./g()' >"$T/useg"
IN="$T/useg" expect 0 "==>8" -- "$H" repl --db "$DB"

# `store put` of the exact form stores code the repl applies
expect 0 "" -- "$H" store --db "$DB" put /h '|(mult(3))'
printf '%s\n' '5./h()' >"$T/useh"
IN="$T/useh" expect 0 "==>15" -- "$H" repl --db "$DB"
# code whose text is not mm-ADT: stored, and an error where it is applied (exit 1), while
# the rest of the file stays usable
expect 0 "" -- "$H" store --db "$DB" put /bad '|(plus(1).)'
printf '%s\n' '5./bad()' '5./f()' >"$T/usebad"
IN="$T/usebad" expect 1 "[ERROR] stored code 'plus(1).' cannot be compiled at line 1 column 3
==>6" -- "$H" repl --db "$DB"
# unclosed code is not an obj
expect 2 "" -- "$H" store --db "$DB" put /bad '|(plus(1)'

echo "cli-code: $NPASS passed, $NFAIL failed"
[ "$NFAIL" = 0 ]
