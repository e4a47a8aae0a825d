#!/bin/sh
# SPDX-License-Identifier: MIT
# `hybrid furi match|parse` end to end (doc/hybrid.md, doc/furi.md): outputs, exit
# statuses and error lines.  Expected values are written from the spec.
# Usage: cli-furi.sh <path of the built hybrid binary>
set -u
HYBRID=${1:?usage: cli-furi.sh HYBRID}
T=$(mktemp -d "${TMPDIR:-/tmp}/hyb-furi.XXXXXX")
trap 'rm -rf "$T"' EXIT
NPASS=0
NFAIL=0

# expect DESC STATUS STDOUT ARGS...: exact exit status and stdout
expect() {
        d=$1 st=$2 want=$3; shift 3
        "$HYBRID" "$@" >"$T/out" 2>"$T/err"
        rc=$?
        got=$(cat "$T/out")
        if [ "$rc" = "$st" ] && [ "$got" = "$want" ]; then
                NPASS=$((NPASS + 1)); echo "ok - $d"
        else
                NFAIL=$((NFAIL + 1)); echo "FAIL - $d: status $rc (want $st), stdout '$got' (want '$want')"
                sed 's/^/    | /' "$T/err"
        fi
}
# expect_err DESC REGEX ARGS...: exit 2, nothing on stdout, one stderr line matching REGEX
expect_err() {
        d=$1 re=$2; shift 2
        "$HYBRID" "$@" >"$T/out" 2>"$T/err"
        rc=$?
        if [ "$rc" = 2 ] && [ ! -s "$T/out" ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -Eq "$re" "$T/err"; then
                NPASS=$((NPASS + 1)); echo "ok - $d"
        else
                NFAIL=$((NFAIL + 1)); echo "FAIL - $d: status $rc (want 2)"
                sed 's/^/    | /' "$T/out" "$T/err"
        fi
}

# parse: the canonical form
expect "parse absolute" 0 "/abc" furi parse /abc
expect "parse resolves dots" 0 "a/c" furi parse a/b/../c
expect "parse relative keeps leading .." 0 "../a" furi parse ../a
expect "parse lower-cases the host" 0 "//fhatos.org/ABC" furi parse //FhatOS.ORG/ABC
expect "parse upper-case hex" 0 "home/%2F/temp" furi parse home/%2f/temp
expect "parse decodes what stands raw" 0 "AB" furi parse %41%42
expect "parse encodes a space" 0 "a%20b" furi parse "a b"
expect "parse keeps the query" 0 "/a/b?k=v&sub" furi parse "/a/b?k=v&sub"
expect "parse branch" 0 "a/b/" furi parse a/b/
expect "parse home" 0 "~/abc" furi parse "~/abc"
expect "parse instruction" 0 "/sys/scheduler::spawn" furi parse /sys/scheduler::spawn
expect "parse after --" 0 "a" furi parse -- a
expect "parse --json" 0 '{"furi":"//kitchen/temp/","scheme":null,"user":null,"host":"kitchen","port":null,"absolute":true,"branch":true,"segments":["temp"],"kinds":["literal"],"query":null,"scope":"cluster","pattern":false}' furi parse --json //Kitchen/temp/
expect "parse --json pattern" 0 '{"furi":"bus://+/a/+/%2B/#?sub","scheme":"bus","user":null,"host":"+","port":null,"absolute":true,"branch":false,"segments":["a","+","+","#"],"kinds":["literal","plus","literal","hash"],"query":"sub","scope":"cluster","pattern":true}' furi parse "bus://+/a/+/%2B/#?sub" --json
expect "parse --json global" 0 '{"furi":"//10.0.0.7:80/x","scheme":null,"user":null,"host":"10.0.0.7","port":80,"absolute":true,"branch":false,"segments":["x"],"kinds":["literal"],"query":null,"scope":"global","pattern":false}' --json furi parse //10.0.0.7:80/x

# parse errors: exit 2, `hybrid: furi: HYB_E_PARSE <message with offset>`
expect_err "empty segment" '^hybrid: furi: HYB_E_PARSE .*empty segment at offset 5' furi parse home//temp
expect_err "wildcard inside a segment" '^hybrid: furi: HYB_E_PARSE .*at offset 3' furi parse a/b+
expect_err "# not last" '^hybrid: furi: HYB_E_PARSE .*at offset 2' furi parse "a/#/b"
expect_err "bad percent" '^hybrid: furi: HYB_E_PARSE .*at offset 1' furi parse a%zz
expect_err "climb above root" '^hybrid: furi: HYB_E_PARSE .*at offset 1' furi parse /..
expect_err "segment limit" '^hybrid: furi: HYB_E_LIMIT .*at offset 1' furi parse "/$(printf '%0256d' 0)"
expect_err "bad pattern in match" '^hybrid: furi: HYB_E_PARSE .*at offset 3' furi match /a/b /a/+x
expect_err "missing argument" '^hybrid: furi: usage' furi match /a
expect_err "unknown subcommand" '^hybrid: furi: usage' furi frob x

# match: true or false, exit 0 either way
expect "match +" 0 true furi match a/b a/+
expect "match mismatch" 0 false furi match a/b a/c
expect "match # zero segments" 0 true furi match a/b "a/b/#"
expect "match branch under #" 0 true furi match a/b/ "a/#"
expect "absolute vs relative" 0 false furi match /a "+/#"
expect "relative vs absolute" 0 false furi match a /+
expect "branch must agree" 0 false furi match /a/b/ /a/+
expect "branch with branch" 0 true furi match /a/b/ /a/+/
expect "# alone" 0 true furi match //kitchen/temp "#"
expect "host pattern vs no host" 0 false furi match /kitchen/temp "//+/temp"
expect "host wildcard" 0 true furi match //kitchen/temp "//+/temp"
expect "query ignored" 0 true furi match "a?sub" a
expect "literal %2B vs +" 0 false furi match a/x a/%2B
expect "within" 0 true furi match /fs/+/abc "/fs/#"
expect "not within" 0 false furi match "/fs/#" /fs/+/abc
expect "# not within +" 0 false furi match "#" +

echo "$NPASS passed, $NFAIL failed"
[ "$NFAIL" = 0 ]
