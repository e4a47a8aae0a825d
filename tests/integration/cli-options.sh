#!/bin/sh
# SPDX-License-Identifier: MIT
# The hybrid CLI's frame, no daemon needed (doc/hybrid.md): `hybrid help`, -h and the
# other short options, per-command help listing only that command's options, "did you
# mean" for a mistyped command or option, unknown options (exit 2), errors as one JSON
# object on stderr under --json, `repl --help` pointing to doc/mmadt.md.
# Usage: cli-options.sh <path of hybrid>
set -u
H=${1:?usage: cli-options.sh HYBRID}
T=$(mktemp -d "${TMPDIR:-/tmp}/hyb-opt.XXXXXX")
trap 'rm -rf "$T"' EXIT
NPASS=0
NFAIL=0
ok() { NPASS=$((NPASS + 1)); printf 'ok - %s\n' "$1"; }
bad() { NFAIL=$((NFAIL + 1)); printf 'FAIL - %s\n' "$1"; [ $# -gt 1 ] && printf '%s\n' "$2" | sed 's/^/    | /'; return 0; }
run() { "$@" >"$T/out" 2>"$T/err"; RC=$?; }
# expect_rc DESC STATUS CMD...: exit status only
expect_rc() {
        d=$1 st=$2; shift 2
        run "$@"
        if [ "$RC" = "$st" ]; then ok "$d"; else bad "$d" "exit $RC, wanted $st; stderr: $(head -c 400 "$T/err")"; fi
}
# out_has / out_lacks / err_has REGEX DESC: on the last run's output
out_has() { if grep -Eq -- "$1" "$T/out"; then ok "$2"; else bad "$2" "stdout: $(head -c 600 "$T/out")"; fi; }
out_lacks() { if grep -Eq -- "$1" "$T/out"; then bad "$2" "stdout: $(head -c 600 "$T/out")"; else ok "$2"; fi; }
err_has() { if grep -Eq -- "$1" "$T/err"; then ok "$2"; else bad "$2" "stderr: $(head -c 600 "$T/err")"; fi; }
err_is_json_error() {
        jd=$1
        shift
        # one line, one JSON object {"error":{"status","name","message",...}}, no other text
        if [ "$(wc -l <"$T/err")" -eq 1 ] && /usr/bin/python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))["error"]
assert set(("status", "name", "message")) <= set(e), e
assert e["status"] is None or isinstance(e["status"], int), e
want = sys.argv[2:]
if want: assert e["name"] == want[0], e
if want[1:]: assert e["status"] == int(want[1]), e
' "$T/err" "$@"; then ok "$jd is one JSON error object on stderr"; else bad "$jd is one JSON error object on stderr" "stderr: $(head -c 600 "$T/err")"; fi
}

# --- help
expect_rc "hybrid help exits 0" 0 "$H" help
out_has '^  store ' "hybrid help lists the commands"
out_has '^  repl ' "hybrid help lists repl"
out_has '^  -h, --help' "hybrid help names -h"
out_has '^  -j, --json' "hybrid help names -j"
out_has '^  -b, --bus' "hybrid help names -b"
out_has '^  -d, --db' "hybrid help names -d"
out_has '^  -a, --app' "hybrid help names -a"
out_has '^  -V, --version' "hybrid help names -V"
expect_rc "hybrid -h exits 0" 0 "$H" -h
out_has '^  store ' "hybrid -h is the same help"
expect_rc "hybrid help store exits 0" 0 "$H" help store
out_has 'hybrid store put' "help store shows store's usage"
out_has '--replay' "help store lists --replay"
out_has '--count' "help store lists --count"
out_has '--db' "help store lists --db"
out_lacks '--timeout|--delay' "help store lists no option store does not take"
expect_rc "hybrid store -h exits 0" 0 "$H" store -h
out_has 'hybrid store put' "store -h is store's help"
expect_rc "hybrid call --help exits 0" 0 "$H" call --help
out_has '--timeout' "call help lists --timeout"
out_has '--bus' "call help lists --bus"
out_lacks '--replay|--durability|--db|--delay' "call help lists no option call does not take"
expect_rc "hybrid furi --help exits 0" 0 "$H" furi --help
out_lacks '--bus|--db|--app|--runner|--timeout' "furi help lists only what furi takes"
expect_rc "hybrid repl --help exits 0" 0 "$H" repl --help
out_has 'doc/mmadt\.md' "repl --help points to doc/mmadt.md"
expect_rc "help of an unknown command: exit 2" 2 "$H" help stroe
err_has "did you mean 'store'" "help stroe suggests store"

# --- version
expect_rc "-V exits 0" 0 "$H" -V
out_has '^hybrid [0-9]+\.[0-9]+' "-V prints the version"
expect_rc "--version exits 0" 0 "$H" --version

# --- did you mean, unknown options
expect_rc "a mistyped command: exit 2" 2 "$H" stor get /x
err_has "^hybrid: usage: unknown command 'stor'; did you mean 'store'\?" "stor suggests store"
expect_rc "a mistyped command: exit 2" 2 "$H" lisen x y
err_has "did you mean 'listen'\?" "lisen suggests listen"
expect_rc "a word far from any command: exit 2" 2 "$H" xyzzy
err_has "unknown command 'xyzzy'" "xyzzy is reported as unknown"
if grep -q "did you mean" "$T/err"; then bad "no suggestion for a word far from all" "$(cat "$T/err")"; else ok "no suggestion for a word far from all"; fi
expect_rc "an unknown option: exit 2" 2 "$H" store --db "$T/s.db" get /x --frobnicate
err_has "^hybrid: store: usage unknown option '--frobnicate'" "the unknown option is named"
expect_rc "a mistyped option: exit 2" 2 "$H" store --db "$T/s.db" watch /x --replya
err_has "unknown option '--replya'; did you mean '--replay'\?" "--replya suggests --replay"
# a suggestion is an option the command takes: --bis is far from every option of furi
expect_rc "a mistyped option furi does not take: exit 2" 2 "$H" furi parse /a --bis
err_has "unknown option '--bis'" "--bis is reported as unknown"
if grep -q "did you mean" "$T/err"; then bad "no suggestion of --bus, which furi does not take" "$(cat "$T/err")"; else ok "no suggestion of --bus, which furi does not take"; fi
expect_rc "a mistyped option of a bus command: exit 2" 2 "$H" list --bis "$T/x.sock"
err_has "unknown option '--bis'; did you mean '--bus'\?" "--bis suggests --bus for list"
expect_rc "an option of another command: exit 2" 2 "$H" store --db "$T/s.db" get /x --timeout 5
err_has "unknown option '--timeout'" "--timeout is unknown to store"
expect_rc "an unknown short option: exit 2" 2 "$H" store -Z get /x
err_has "unknown option '-Z'" "-Z is reported as an unknown option"
expect_rc "a value option without a value: exit 2" 2 "$H" store get /x -d
err_has "needs a value" "-d without a value says so"
# a global option the command does not use is refused, not silently ignored
expect_rc "--bus for furi: exit 2" 2 "$H" furi parse /a --bus "$T/x.sock"
err_has "^hybrid: furi: usage option '--bus' is not used by 'furi'" "--bus for furi is named"
expect_rc "-d for call: exit 2" 2 "$H" call @localhost/a.b/c m -d "$T/s.db"
err_has "option '--db' is not used by 'call'" "-d for call is named as --db"
expect_rc "--runner for furi: exit 2" 2 "$H" furi parse /a --runner r
# a negative number stays an argument
expect_rc "put of -5 without --" 0 "$H" store -d "$T/s.db" put /n -5
expect_rc "get it back" 0 "$H" store -d "$T/s.db" get /n
out_has '^-5$' "-5 is an obj, not an option"
# short flags can be grouped: -jd FILE
expect_rc "grouped short options -jd FILE" 0 "$H" store -jd "$T/s.db" get /n
out_has '^-5$' "-jd reads the database as -j -d"

# --- errors in JSON under --json
expect_rc "--json usage error: exit 2" 2 "$H" --json store get
err_is_json_error "a usage error" usage
expect_rc "-j unknown command: exit 2" 2 "$H" -j stor
err_is_json_error "an unknown command" usage
# before a command is known, "command" is null (not "usage", which is no command)
err_has '"command":null' "an unknown command: command is null"
expect_rc "--json usage error of store: exit 2" 2 "$H" --json store get
err_has '"command":"store"' "a usage error of store names the command"
expect_rc "--json parse error: exit 2" 2 "$H" store -d "$T/s.db" --json get '/a//b'
err_is_json_error "a bad fURI"
expect_rc "--json nothing found: exit 1 and no error" 1 "$H" store -d "$T/s.db" --json get /none
[ -s "$T/err" ] && bad "get of nothing prints nothing" "$(cat "$T/err")" || ok "get of nothing prints nothing"
expect_rc "--json unreachable daemon: exit 3" 3 "$H" -j --bus "$T/absent.sock" call @localhost/a.b/c m
err_is_json_error "an unreachable daemon"
expect_rc "--json malformed endpoint: exit 2" 2 "$H" -j --bus "$T/absent.sock" call 'bad name' m
err_is_json_error "a malformed endpoint" HYB_E_NOT_ACCEPTABLE 406
expect_rc "--json without a command: exit 2" 2 "$H" --json
err_is_json_error "a missing command" usage
expect_rc "no command at all: exit 2" 2 "$H"
err_has '^usage: hybrid <command>' "no command prints the help on stderr"
expect_rc "without --json the error is one text line" 2 "$H" store get
err_has "^hybrid: store: usage " "text error line"

# --- malformed endpoint names say which part is wrong and show the form (before connecting)
expect_rc "call to a name without '@': exit 2" 2 "$H" --bus "$T/absent.sock" call 'bad name' m
err_has "^hybrid: call: 406 .*must start with '@'.*@host/app/runner" "no '@': said, with the form"
expect_rc "call to a name without runner: exit 2" 2 "$H" --bus "$T/absent.sock" call @localhost/org.example m
err_has "runner part is missing.*@host/app/runner" "the missing runner is named"
expect_rc "call to a name with a bad app: exit 2" 2 "$H" --bus "$T/absent.sock" call '@localhost/org ex/main' m
err_has "app part 'org ex' has an invalid character" "the bad app part is named"
expect_rc "call to a name with an empty host: exit 2" 2 "$H" --bus "$T/absent.sock" call '@/org.ex/main' m
err_has "host part is empty" "the empty host is named"
expect_rc "call to a name with a part too many: exit 2" 2 "$H" --bus "$T/absent.sock" call '@h/org.ex/main/x' m
err_has "unexpected part 'x' after the runner" "the extra part is named"
expect_rc "listen 'bad name' '*': exit 2" 2 "$H" --bus "$T/absent.sock" listen 'bad name' '*'
err_has "^hybrid: listen: 406 .*@host/app/runner" "listen names the form"
expect_rc "listen with a bad bubble glob: exit 2" 2 "$H" --bus "$T/absent.sock" listen '@localhost/*' 'a b'
err_has "^hybrid: listen: 406 bubble 'a b'" "listen names the bad bubble"
expect_rc "list of a malformed name: exit 2" 2 "$H" --bus "$T/absent.sock" list '@localhost/org.ex'
err_has "^hybrid: list: 406 .*runner part is missing" "list names the missing part"

# --- memory: --help and usage errors free what main allocated (valgrind, when installed)
if [ "${HYB_IT_SANITIZED:-0}" = 1 ]; then
        echo "# sanitizer build: LeakSanitizer checks the leaks, valgrind cannot run it"
elif command -v valgrind >/dev/null 2>&1; then
        for args in "store --help" "store get" "stor" "--frob"; do
                # shellcheck disable=SC2086
                if valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
                        "$H" $args >/dev/null 2>"$T/vg"; [ $? -ne 99 ]; then
                        ok "no leak on 'hybrid $args'"
                else
                        bad "no leak on 'hybrid $args'" "$(head -c 800 "$T/vg")"
                fi
        done
else
        echo "# valgrind not installed: leak checks skipped"
fi

echo "# $NPASS passed, $NFAIL failed"
[ "$NFAIL" -eq 0 ]
