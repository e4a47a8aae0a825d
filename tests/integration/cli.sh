#!/bin/sh
# SPDX-License-Identifier: MIT
# The hybrid CLI's bus commands against a real hybridd (doc/hybrid.md, doc/bus.md):
# call output and exit statuses, serve, listen + fire lines and counts, list --json,
# monitor for administrators only, 16 MiB through echo, the sample service and client.
. "$(dirname "$0")/lib.sh"
B=@localhost/org.hybridos.bus/builtin

start_daemon cli "log: {level: warning}" || finish

# --- call
expect "call echo prints the body as received" 0 '{"a": [1, 2]}' \
        hy call $B echo '{"a": [1, 2]}'
printf '[1,  "two" ,3]' >"$T/in.json"
expect "call - reads the params from stdin" 0 '[1,  "two" ,3]' sh -c "\"$HYBRID\" --bus '$SOCK' call $B echo - <'$T/in.json'"
expect "options may stand anywhere (--timeout between arguments)" 0 '"x"' hy call $B --timeout 2000 echo '"x"'
expect "call without params sends {}" 0 '{}' hy call $B echo
expect_err "bad JSON params: exit 2" 2 '^hybrid: call: ' hy call $B echo '{"a":'
expect_err "missing method: exit 2" 2 '^hybrid: call: ' hy call $B
expect_err "bad --timeout: exit 2" 2 '^hybrid: call: ' hy call $B echo '{}' --timeout soon
expect_err "unknown builtin method: exit 1, 404 on stderr" 1 '^hybrid: call: 404 ' \
        hy call $B noSuchMethod '{}'
expect_err "unknown endpoint: exit 1, 404 on stderr" 1 '^hybrid: call: 404 ' \
        hy call @localhost/org.example.absent/main getX '{}'
expect_err "no daemon: exit 3" 3 '^hybrid: call: ' \
        "$HYBRID" --bus "$T/absent.sock" call $B echo '{}'
expect_err "HYBRID_BUS is the default bus" 3 '^hybrid: call: ' \
        env HYBRID_BUS="$T/absent.sock" "$HYBRID" call $B echo '{}'
expect "HYBRID_BUS reaches the daemon" 0 '[]' env HYBRID_BUS="$SOCK" "$HYBRID" call $B echo '[]'
expect_err "bad --app name: exit 2" 2 '^hybrid: call: 406 ' hy --app my-app call $B echo '{}'
expect_err "reserved --runner: exit 2" 2 '^hybrid: call: 406 ' hy --runner builtin call $B echo '{}'

# --- serve
serve_bg srv1 getX '{"x": 42}' --runner srv1
expect "serve prints its endpoint name" 0 "@localhost/org.hybridos.cli/srv1" cat "$T/srv1.out"
expect "call reaches serve's fixed reply" 0 '{"x": 42}' hy call @localhost/org.hybridos.cli/srv1 getX '{"any":1}'
expect "endpoint names compare case-insensitively" 0 '{"x": 42}' \
        hy call @LOCALHOST/ORG.HYBRIDOS.CLI/SRV1 GETX '{}'
expect_err "duplicate endpoint name: exit 1, 409" 1 '409' hy --runner srv1 call $B echo '{}'
expect_err "serve with bad JSON reply: exit 2" 2 '^hybrid: serve: ' hy serve getY '{oops'
expect_err "serve with a bad method name: exit 2, 406" 2 '^hybrid: serve: 406 ' hy serve get-y '{}'
stop "$BPID"
check "serve ends on SIGTERM with exit 0" [ "$STOP_RC" -eq 0 ]
expect_err "after serve ended its endpoint is gone: 404" 1 '^hybrid: call: 404 ' \
        hy call @localhost/org.hybridos.cli/srv1 getX '{}'
serve_bg srv2 getX '{}' --runner srv2
kill -INT "$BPID"; wait "$BPID"; rc=$?
check "serve ends on SIGINT with exit 0" [ "$rc" -eq 0 ]

# --- listen + fire
bg l1 hy listen '@localhost/org.hybridos.cli/*' 'TEMP*'
L1=$BPID
bg l2 hy listen '@localhost/org.hybridos.cli/sens?r' 'temp?' --count 1
L2=$BPID
bg l3 hy listen '@localhost/org.hybridos.cli/*' 'HUM*'
L3=$BPID
check "listen prints ready on stderr" ready l1
ready l2; ready l3
expect "fire prints the broker's counts (2 matching listeners)" 0 '{"delivered":2,"failed":0}' \
        hy --runner sensor fire TEMP1 '{"t": 21.5}'
want=$(printf '@localhost/org.hybridos.cli/sensor\tTEMP1\t{"t": 21.5}')
check "listen prints <endpoint>\\t<bubble>\\t<body>" wait_until 5 grep -qxF "$want" "$T/l1.out"
wait "$L2"; rc=$?
check "listen --count 1 exits 0 after one event" [ "$rc" -eq 0 ]
check "case-insensitive glob listener got the same line" grep -qxF "$want" "$T/l2.out"
expect "fire with one matching listener left" 0 '{"delivered":1,"failed":0}' \
        hy --runner other fire TEMP2 '[2]'
check "second event reached the standing listener" wait_until 5 grep -qxF \
        "$(printf '@localhost/org.hybridos.cli/other\tTEMP2\t[2]')" "$T/l1.out"
expect "fire with no subscriber counts 0" 0 '{"delivered":0,"failed":0}' hy fire PRESSURE '{}'
check "listener on HUM* saw nothing" [ ! -s "$T/l3.out" ]
check "listener lines come one per event" [ "$(wc -l <"$T/l1.out")" -eq 2 ]
expect_err "fire with bad JSON: exit 2" 2 '^hybrid: fire: ' hy fire TEMP '{x'
expect_err "fire a bad bubble name: exit 2, 406" 2 '^hybrid: fire: 406 ' hy fire 9TEMP '{}'
stop "$L1"
check "listen ends on SIGTERM with exit 0" [ "$STOP_RC" -eq 0 ]
stop "$L3"
expect_err "exact subscription to an absent bubble: exit 1, 404" 1 '^hybrid: listen: 404 ' \
        hy listen @localhost/org.example.absent/main TEMP

# --- sample service, list
bg svc "$HYB_SERVICE" --bus "$SOCK" --interval 100
SVC=$BPID
check "sample service prints its endpoint" wait_until 10 has_line "$T/svc.out" \
        '^@localhost/org.example.thermo/main$'
run "$HYB_CLIENT" --bus "$SOCK" --events 2
check "sample client: calls, 400 policy, 403 \$owner, events" [ "$RC" -eq 0 ]
[ "$RC" -eq 0 ] || cat "$T/out" "$T/err"
expect_err "policy: setTarget without celsius is 400" 1 '^hybrid: call: 400 ' \
        hy call @localhost/org.example.thermo/main setTarget '{}'
expect_err "policy: celsius of the wrong type is 400" 1 '^hybrid: call: 400 ' \
        hy call @localhost/org.example.thermo/main setTarget '{"celsius":"hot"}'
expect_err "policy: params that are not an object are 400" 1 '^hybrid: call: 400 ' \
        hy call @localhost/org.example.thermo/main setTarget '[1]'
expect "policy passes: setTarget answers" 0 '{"target":22.0}' \
        hy call @localhost/org.example.thermo/main setTarget '{"celsius":22}'
expect "--app of the owner may call \$owner's reset" 0 '{}' \
        hy --app org.example.thermo call @localhost/org.example.thermo/main reset
serve_bg srv3 getX '{}' --runner srv3 --for-app 'org.hybridos.*'
run hy list --json
check "list --json exits 0" [ "$RC" -eq 0 ]
cat >"$T/checklist.py" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
eps = {e["endpointName"].lower(): e for e in doc}
def short(n): return n.rsplit("/", 1)[-1].lower()
t = eps["@localhost/org.example.thermo/main"]
procs = {short(p["procedureName"]): p for p in t["procedures"]}
assert set(procs) >= {"gettemperature", "settarget", "getstatus"}, procs
pol = {a["key"]: a for a in procs["settarget"]["policy"]}
assert pol["celsius"]["required"] in (True, 1), pol
assert pol["celsius"]["type"] in ("number", 3), pol
pol = {a["key"]: a for a in procs["gettemperature"]["policy"]}
assert pol["unit"]["required"] in (False, 0) and pol["unit"]["type"] in ("string", 1), pol
assert "reset" not in procs, "reset is $owner-only: the CLI may not call it"
assert [short(e["eventName"]) for e in t["events"]] == ["temp"], t["events"]
s = eps["@localhost/org.hybridos.cli/srv3"]
assert [short(p["procedureName"]) for p in s["procedures"]] == ["getx"], s
assert s["procedures"][0]["forApp"] == "org.hybridos.*", s
assert "uid" in t and "pid" in t, "root is an administrator: uid and pid are listed"
PY
run_py() { "$PYTHON" "$T/checklist.py" "$T/out.json"; }
cp "$T/out" "$T/out.json"
check "list --json: endpoints, procedures with policies and ACLs, events" run_py
run hy list @localhost/org.example.thermo/main
check "list <endpoint> text shows procedures with policies" grep -q 'procedure setTarget.*celsius:number' "$T/out"
check "list <endpoint> text shows the event" grep -q 'event TEMP' "$T/out"
run hy list
check "list without an endpoint shows both endpoints" sh -c \
        "grep -q '^@localhost/org.example.thermo/main' '$T/out' && grep -q '^@localhost/org.hybridos.cli/srv3' '$T/out'"
bg t1 hy listen @localhost/org.example.thermo/main TEMP --count 2
check "exact subscription to the service's periodic event" wait_until 10 has_line "$T/t1.out" 'TEMP.*celsius'

# --- monitor
bg mon hy monitor
MON=$BPID
check "monitor (root is an administrator) is ready" ready mon
hy call @localhost/org.hybridos.cli/srv3 getX '{"mon":1}' >/dev/null
check "monitor prints the call line" wait_until 5 grep -q \
        '^call	@localhost/org.hybridos.cli/cli[0-9]*	@localhost/org.hybridos.cli/srv3	getX	[0-9]*	0	{"mon":1}$' "$T/mon.out"
check "monitor prints the result line with the body" wait_until 5 grep -q \
        '^result	@localhost/org.hybridos.cli/srv3	@localhost/org.hybridos.cli/cli[0-9]*		[0-9]*	200	{}$' "$T/mon.out"
hy call $B echo '{"mon":2}' >/dev/null
check "monitor shows calls to the builtin endpoint too" wait_until 2 grep -q \
        "^call	.*	$B	echo	.*{\"mon\":2}\$" "$T/mon.out"
expect_err "monitor as a non-administrator: exit 1, 403" 1 '^hybrid: monitor: 403 ' \
        as_nobody "$HYBRID" --bus "$SOCK" monitor
expect "a non-administrator may still call" 0 '1' as_nobody "$HYBRID" --bus "$SOCK" call $B echo 1
stop "$MON"
check "monitor ends on SIGTERM with exit 0" [ "$STOP_RC" -eq 0 ]
run as_nobody "$HYBRID" --bus "$SOCK" list --json
check "a non-administrator's list has no uid/pid" sh -c "[ $RC -eq 0 ] && ! grep -q '\"pid\"' '$T/out'"

# --- 16 MiB through the CLI
"$PYTHON" -c "import sys; sys.stdout.write('\"' + 'a' * (16 * 1024 * 1024 - 2) + '\"')" >"$T/big.json"
hy call $B echo - <"$T/big.json" >"$T/big.out" 2>"$T/err"; rc=$?
printf '\n' >>"$T/big.json"
check "a 16 MiB body goes through echo and back unchanged" sh -c "[ $rc -eq 0 ] && cmp -s '$T/big.json' '$T/big.out'"
"$PYTHON" -c "import sys; sys.stdout.write('\"' + 'a' * (16 * 1024 * 1024 - 1) + '\"')" >"$T/big.json"
expect_err "16 MiB + 1 byte: exit 1, 413" 1 '^hybrid: call: 413 ' sh -c "\"$HYBRID\" --bus '$SOCK' call $B echo - <'$T/big.json'"
rm -f "$T/big.json" "$T/big.out"

stop "$SVC"
check "sample service ends on SIGTERM with exit 0" [ "$STOP_RC" -eq 0 ]
stop "$DPID"
check "hybridd ends on SIGTERM with exit 0" [ "$STOP_RC" -eq 0 ]
check "hybridd removed its socket" [ ! -e "$SOCK" ]
finish
