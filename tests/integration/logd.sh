#!/bin/sh
# SPDX-License-Identifier: MIT
# hybrid-logd and `hybrid log` (issue 9; doc/hybrid-logd.md, doc/hybrid.md "log"): the ring
# bound by count and by bytes, a record over the byte bound refused, a flooding app unable
# to push a quiet one out (the half-ring share), records surviving a logd restart as far
# as the new ring holds them, the store under /log/<app>/<seq>, the app taken from the
# caller's verified name, --level / --from / --since / --json, query pages, `--follow`
# seeing two apps in order and exiting 3 when the daemon goes, hybridd's own lines, and
# the share per caller uid (one uid under 50 app names) with counters bounded by the ring.
# Expected records follow from the options and the eviction rule of doc/hybrid-logd.md.
. "$(dirname "$0")/lib.sh"
: "${HYB_LOGD:?}"
TAB=$(printf '\t')
unset HYBRID_BUS HYBRID_DB
export XDG_RUNTIME_DIR="$T/rt" XDG_DATA_HOME="$T/data"
mkdir -p "$T/rt"
LOGD_EP=@localhost/org.hybridos.logd/main

# start_logd NAME ARGS...: hybrid-logd on $SOCK; waits for its endpoint line; sets LPID
start_logd() {
        n=$1; shift
        "$HYB_LOGD" --bus "$SOCK" "$@" >"$T/$n.out" 2>"$T/$n.log" &
        LPID=$!
        PIDS="$PIDS $LPID"
        wait_until 10 has_line "$T/$n.out" "^$LOGD_EP\$" || { bad "logd $n starts" "$(cat "$T/$n.log")"; return 1; }
}
# say APP MESSAGE [LEVEL]: `hybrid log send` as @localhost/APP/r1
say() { hy --app "$1" --runner r1 log send --level "${3:-info}" "$2" || bad "log send as $1: $2"; }
# msgs ARGS...: the messages `hybrid log ARGS` prints, one per line
msgs() { hy log "$@" | cut -d' ' -f4-; }
# lines ARGS...: the lines without their time
lines() { hy log "$@" | cut -d' ' -f2-; }
nl() { printf '%s\n' "$@"; }

# ---------------------------------------------------------------- count bound, share, restart
start_daemon d1 "" || finish
start_logd l1 --max-records 5 --max-bytes 100000 || finish
for i in 1 2 3 4 5 6 7 8; do say org.example.count "c$i"; done
check "--max-records 5: the last 5 of 8 records, oldest first" [ "$(msgs)" = "$(nl c4 c5 c6 c7 c8)" ]
check "the lines are <time> <level> <@host/app/runner> <message>" \
        sh -c "\"$HYBRID\" --bus \"$SOCK\" log | grep -Eqx '[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z info @localhost/org\\.example\\.count/r1 c8'"
expect "the store keeps them under /log/<app>/<seq>, retained" 0 "/log/org.example.count/4
/log/org.example.count/5
/log/org.example.count/6
/log/org.example.count/7
/log/org.example.count/8" sh -c "\"$HYBRID\" --bus \"$SOCK\" store get '/log/#' | cut -f1"
expect "a stored record reads back" 0 "'c8'" hy store get /log/org.example.count/8/message

# A quiet app, then a flood of 20 from another: once the flooder holds half the ring it
# only pushes out its own records.
say org.example.quiet q1
say org.example.quiet q2
i=1
while [ $i -le 20 ]; do say org.example.flood "f$i"; i=$((i + 1)); done
check "the flooder did not push the quiet app out (measured: 2 of 5 kept)" \
        [ "$(msgs --from org.example.quiet)" = "$(nl q1 q2)" ]
check "the flooder keeps the rest of the ring, its newest" [ "$(msgs)" = "$(nl q1 q2 f18 f19 f20)" ]

stop "$LPID"
check "logd stops cleanly on SIGTERM" [ "$STOP_RC" -eq 0 ]
expect_err "without logd, hybrid log exits 1 with 404" 1 "^hybrid: log: 404 .*hybrid-logd" hy log
expect_err "without logd, log send exits 1 with 404" 1 "^hybrid: log: 404 " hy log send x
start_logd l1b --max-records 5 --max-bytes 100000 || finish
check "after a restart the ring is back" [ "$(msgs)" = "$(nl q1 q2 f18 f19 f20)" ]
say org.example.quiet q3
check "new records follow the reloaded ones" [ "$(msgs --from org.example.quiet)" = "$(nl q2 q3)" ]
stop "$LPID"
start_logd l1c --max-records 2 --max-bytes 100000 || finish
# reloaded oldest first under the same rule: each app ends with its newest record
check "a smaller ring keeps what it holds (f20 and q3)" [ "$(msgs)" = "$(nl f20 q3)" ]
expect "and the store follows it (seqs 1-8 count, 9-10 quiet, 11-30 flood, 31 q3)" 0 "/log/org.example.flood/30
/log/org.example.quiet/31" sh -c "\"$HYBRID\" --bus \"$SOCK\" store get '/log/#' | cut -f1"
stop "$LPID"
stop "$DPID"

# ---------------------------------------------------------------- byte bound
start_daemon d2 "" || finish
start_logd l2 --max-records 100 --max-bytes 30 || finish
for i in 1 2 3 4; do say org.example.bytes "message-0$i"; done
check "--max-bytes 30: three 10-byte messages fit, the oldest went" \
        [ "$(msgs)" = "$(nl message-02 message-03 message-04)" ]
expect_err "a record larger than the whole ring is refused with 413" 1 \
        "^hybrid: log: 413 record of 31 bytes is larger than the whole ring \\(--max-bytes 30\\)" \
        hy log send 0123456789012345678901234567890
check "the refused record dropped nothing" [ "$(msgs)" = "$(nl message-02 message-03 message-04)" ]
say org.example.bytes 0123456789012345678901234
check "a 25-byte record leaves room for nothing else" [ "$(msgs)" = 0123456789012345678901234 ]
stop "$LPID"
stop "$DPID"

# ---------------------------------------------------------------- follow, filters, identity
# a boot program whose subscription fails on a string: a runtime error hybridd logs later
start_daemon d3 "boot:
  programs:
    - inline: \"/in?sub -> |(plus(1).to(/out))\"" || finish
start_logd l3 || finish
bg follow hy log --follow --from 'org.example.*'
FPID=$BPID
check "log --follow is subscribed (ready on stderr)" ready follow
# another runner of logd's app fires a Record naming org.example.a: --follow's pattern
# matches it, but only logd's own endpoint speaks for the log
expect "a peer as @localhost/org.hybridos.logd/evil fires a forged Record" 0 "*" \
        hy --app org.hybridos.logd --runner evil fire Record \
        '{"seq":1,"time":1,"host":"localhost","app":"org.example.a","runner":"r1","level":"error","message":"forged"}'
say org.example.a one
say org.example.b two
say org.example.a three
say org.example.b four
four() { [ "$(wc -l <"$T/follow.out")" -ge 4 ]; }
wait_until 10 four
check "--follow did not print the forged Record" sh -c "! grep -q forged '$T/follow.out'"
check "--follow saw the records of two apps, in order" [ "$(cut -d' ' -f2- "$T/follow.out")" = "$(nl \
        "info @localhost/org.example.a/r1 one" "info @localhost/org.example.b/r1 two" \
        "info @localhost/org.example.a/r1 three" "info @localhost/org.example.b/r1 four")" ]

# 10 ms apart, so that the millisecond times printed tell them apart (--since below)
for l in error warning notice info debug; do say org.example.lv "m-$l" "$l"; sleep 0.01; done
check "--level notice: notice and more severe" \
        [ "$(lines --from org.example.lv --level notice)" = "$(nl "error @localhost/org.example.lv/r1 m-error" \
        "warning @localhost/org.example.lv/r1 m-warning" "notice @localhost/org.example.lv/r1 m-notice")" ]
check "--level debug: all five" [ "$(msgs --from org.example.lv --level debug | wc -l)" -eq 5 ]
check "--from with a glob" [ "$(msgs --from 'org.example.?')" = "$(nl one two three four)" ]
expect_err "a bad --level is a usage error" 2 "^hybrid: log: usage " hy log --level loud
expect_err "a bad level for send too" 2 "^hybrid: log: usage " hy log send --level loud x
expect_err "a bad --since is a usage error" 2 "^hybrid: log: usage " hy log --since yesterday

say org.example.nl "$(printf 'two\nlines\tand a tab')"
check "a message with a newline stays one line (control characters escaped)" \
        [ "$(msgs --from org.example.nl)" = 'two\nlines\tand a tab' ]
check "--json keeps the message as sent" sh -c "\"$HYBRID\" --bus \"$SOCK\" log --json --from org.example.nl | \
        \"$PYTHON\" -c 'import json,sys; assert json.loads(sys.stdin.read())[\"message\"] == \"two\\nlines\\tand a tab\"'"

# --json: one JSON object per line, the record as logd keeps it
hy log --json --from org.example.lv --level error >"$T/json.out"
check "--json gives the record: seq, time, host, app, runner, level, message" "$PYTHON" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 1, rows
r = rows[0]
assert (r["host"], r["app"], r["runner"], r["level"], r["message"]) == \
       ("localhost", "org.example.lv", "r1", "error", "m-error"), r
assert isinstance(r["seq"], int) and isinstance(r["time"], int)
' "$T/json.out"

# --since: from the printed time of m-notice (the same form), and @SECONDS from its JSON time
T_NOTICE=$(hy log --from org.example.lv | grep ' m-notice$' | cut -d' ' -f1)
check "--since <printed time> starts at that record" \
        [ "$(msgs --from org.example.lv --since "$T_NOTICE")" = "$(nl m-notice m-info m-debug)" ]
US=$(hy log --json --from org.example.lv --level warning | "$PYTHON" -c '
import json, sys
print([json.loads(l) for l in sys.stdin][-1]["time"])')
SECS=$("$PYTHON" -c "print('%d.%06d' % divmod($US, 1000000))")
check "--since @SECONDS starts at that record" \
        [ "$(msgs --from org.example.lv --since "@$SECS")" = "$(nl m-warning m-notice m-info m-debug)" ]
# that long ago is before the epoch: every record, not an overflow into the future
check "--since -9999999999999d shows all" [ "$(msgs --from org.example.lv --since -9999999999999d | wc -l)" -eq 5 ]
check "--since -99999999999999999999s shows all" [ "$(msgs --from org.example.lv --since -99999999999999999999s | wc -l)" -eq 5 ]
check "--since -1h shows the last hour" [ "$(msgs --from org.example.lv --since -1h | wc -l)" -eq 5 ]
check "--since @0 shows all, --since -0s none of the past" \
        [ "$(msgs --from org.example.lv --since @0 | wc -l)" -eq 5 -a -z "$(msgs --from org.example.lv --since -0s)" ]

# the record's app is the caller's verified name, whatever its params say
expect "a call to log with its own app and runner" 0 "*" \
        hy --app org.example.me --runner r9 call "$LOGD_EP" log \
        '{"message":"spoof","app":"org.evil","runner":"x","host":"elsewhere"}'
check "is not kept as the app it names" [ "$(lines --from 'org.evil')" = "" ]
check "under the caller's own name" [ "$(lines --from org.example.me)" = "info @localhost/org.example.me/r9 spoof" ]
expect_err "log without a message is refused (400)" 1 "^hybrid: call: 400 " hy call "$LOGD_EP" log '{}'

# query pages: "next" names the last record of a full page
hy call "$LOGD_EP" query '{"app":"org.example.lv","limit":2}' >"$T/p1.json"
N1=$("$PYTHON" -c 'import json,sys; p=json.load(open(sys.argv[1])); print(p["next"])' "$T/p1.json")
hy call "$LOGD_EP" query "{\"app\":\"org.example.lv\",\"limit\":2,\"after\":$N1}" >"$T/p2.json"
hy call "$LOGD_EP" query "{\"app\":\"org.example.lv\",\"limit\":2,\"after\":$("$PYTHON" -c \
        'import json,sys; print(json.load(open(sys.argv[1]))["next"])' "$T/p2.json")}" >"$T/p3.json"
check "query pages of 2: 2 + 2 + 1 records, the last page without next" "$PYTHON" -c '
import json, sys
ps = [json.load(open(f)) for f in sys.argv[1:]]
got = [[r["message"] for r in p["records"]] for p in ps]
assert got == [["m-error", "m-warning"], ["m-notice", "m-info"], ["m-debug"]], got
assert ps[0]["next"] == ps[0]["records"][-1]["seq"] and ps[2]["next"] is None, ps
' "$T/p1.json" "$T/p2.json" "$T/p3.json"

# hybridd's own lines: an endpoint name taken twice is refused, and the broker logs it
bg holder hy --app org.example.dup --runner r1 listen '@localhost/nobody/*' 'X'
check "a client holds @localhost/org.example.dup/r1" ready holder
expect_err "the same name again is refused (409)" 1 "409" hy --app org.example.dup --runner r1 log send x
hasbus() { hy log --from org.hybridos.bus | grep -q 'auth refused .*409'; }
check "hybridd's own line is a record of @localhost/org.hybridos.bus/builtin" wait_until 10 hasbus
check "with its level" sh -c "\"$HYBRID\" --bus \"$SOCK\" log --from org.hybridos.bus | grep -q ' info @localhost/org.hybridos.bus/builtin auth refused'"
expect "a write the boot program fails on" 0 "" hy store put /in "'text'"
hasboot() { hy log --from org.hybridos.bus --level error | grep -q ' error @localhost/org.hybridos.bus/builtin boot: '; }
check "the boot program's error, logged by hybridd after its start, is a record at error" \
        wait_until 10 hasboot

# logd restarts: --follow (a pattern subscription) goes on with the new one
stop "$LPID"
start_logd l3b || finish
say org.example.a five
five() { grep -q ' @localhost/org.example.a/r1 five$' "$T/follow.out"; }
check "--follow goes on across a logd restart" wait_until 10 five

# the daemon goes: --follow exits 3 with the reason
stop "$DPID"
wait "$FPID"
check "--follow exits 3 when the daemon closes the session" [ $? -eq 3 ]
check "and says why" grep -q "^hybrid: log: " "$T/follow.err"

# ---------------------------------------------------------------- what others left under /log/
# /log/ is written and deleted by logd's app alone (connected as the daemon's uid or root):
# another app is refused there, by name and through a pattern delete reaching it.
start_daemon d4 "" || finish
forged() { echo "[seq=>$1,time=>1,host=>'localhost',app=>'org.victim',runner=>'main',level=>'error',message=>'forged']"; }
expect_err "another app may not write under /log/" 1 "403 .*written by hybrid-logd alone" \
        hy --app org.evil store put /log/org.victim/5 "$(forged 5)"
expect_err "nor delete there" 1 "403 .*written by hybrid-logd alone" \
        hy --app org.evil store del /log/org.victim/5
# A stored value claiming a seq outside 1..2^53 is not one of logd's records (a peer of the
# logd app, or a database file written by an embedded store, may leave one): taken back at a
# restart, 2^63-1 would number the next records past what a JSON integer holds (negative
# seqs, and `hybrid log` paging from the start again and again).
expect "a peer of the logd app writes a record with seq 2^63-1 under /log/" 0 "" \
        hy --app org.hybridos.logd --runner other store put /log/org.victim/9223372036854775807 "$(forged 9223372036854775807)"
expect "and one with seq 0" 0 "" hy --app org.hybridos.logd --runner other store put /log/org.victim/0 "$(forged 0)"
expect_err "a pattern delete by another app that would reach /log/ is refused" 1 "403 " \
        hy --app org.evil store del "/+/org.victim/#"
start_logd l4 || finish
say org.example.after a1
check "logd did not take them back" [ "$(lines --from org.victim)" = "" ]
check "the next record is numbered 1" [ "$(hy log --json --from org.example.after | \
        "$PYTHON" -c 'import json,sys; print(json.loads(sys.stdin.read())["seq"])')" = 1 ]
stop "$LPID"

# a query answer whose next does not move on (here a stand-in for logd): `hybrid log`
# stops with an error instead of printing the same page forever
bg fake hy --app org.hybridos.logd --runner main serve query \
        '{"records":[{"seq":7,"time":1,"host":"localhost","app":"org.example.x","runner":"r1","level":"info","message":"again"}],"next":7}'
wait_until 10 has_line "$T/fake.out" "^$LOGD_EP\$" || bad "the stand-in logd starts" "$(cat "$T/fake.err")"
timeout 20 "$HYBRID" --bus "$SOCK" log >"$T/loop.out" 2>"$T/loop.err"
RC=$?
check "hybrid log exits 1 when a page's next does not follow the last (exit $RC)" [ "$RC" -eq 1 ]
check "having printed no more than the two pages" [ "$(wc -l <"$T/loop.out")" -le 2 ]
check "and says why" grep -q "^hybrid: log: .*next page" "$T/loop.err"
stop "$DPID"

# ---------------------------------------------------------------- a small max_body
# A daemon with max_body 256 KiB (doc/config.md allows it): the pages of query and the
# Record events must fit it, whatever the ring holds.
start_daemon d5 "limits: {max_body: 256K, max_frame: 320K, send_queue_bytes: 1M}" || finish
start_logd l5 --max-bytes 100000000 || finish
K60=$(head -c 60000 /dev/zero | tr '\0' x)
for i in 1 2 3 4 5 6 7 8; do say org.example.big "$i $K60"; done
run "$HYBRID" --bus "$SOCK" log
check "hybrid log shows 8 records of 60 KB under max_body 256K (exit $RC)" \
        [ "$RC:$(cut -d' ' -f4 "$T/out" | tr '\n' ' ')" = "0:1 2 3 4 5 6 7 8 " ]
# a message that fits a call (262100 bytes: the body is 262129 of 262144) but whose
# record (with time, host, app, runner) would not fit a reply or an event
K87=$(head -c 87366 /dev/zero | tr '\0' y)
expect_err "a record too large for any reply is refused with 413" 1 "^hybrid: log: 413 record of [0-9]+ bytes as JSON" \
        hy --app org.example.big log send "$K87" "$K87" "$K87"
run "$HYBRID" --bus "$SOCK" log
check "and the log stays readable (exit $RC)" [ "$RC:$(wc -l <"$T/out")" = "0:8" ]

# a follower that stops reading (SIGSTOP) while 2.4 MB of records go out: the daemon cuts
# it off at its send queue (1M here), logd and everyone else go on
bg stalled hy log --follow --from org.example.flood
SPID=$BPID
check "a follower is subscribed" ready stalled
kill -STOP "$SPID"
for i in $(seq 1 40); do say org.example.flood "$i $K60"; done
say org.example.quiet "still logging"
check "logd goes on while a follower has stopped reading" [ "$(msgs --from org.example.quiet)" = "still logging" ]
kill -CONT "$SPID"
wait "$SPID"
RC=$?
check "the stalled follower was cut off: exit 3 ($RC)" [ "$RC" -eq 3 ]
check "and told why (its send queue)" grep -q "^hybrid: log: .*send_queue_bytes" "$T/stalled.err"
stop "$LPID"
stop "$DPID"

# ---------------------------------------------------------------- the share per uid
# One uid (65534) logs 2 records under each of 50 app names into a ring of 20 where
# another uid (ours) holds 4.  The flooding uid reaches half the ring (10) before the
# ring is full, so from then on it replaces only its own records: the quiet uid keeps
# its 4, the flooder its newest 16 (apps a43..a50, 2 each).  logd's counters follow the
# ring: 1 + 8 apps and 2 uids, not the 51 app names that came and went.
export XDG_DATA_HOME="$T/data6"
start_daemon d6 "" || finish
start_logd l6 --max-records 20 --max-bytes 100000 || finish
for i in 1 2 3 4; do say org.example.calm "q$i"; done
i=1
while [ $i -le 50 ]; do
        for k in a b; do
                as_nobody "$HYBRID" --bus "$SOCK" --app "org.flood.a$i" --runner r1 log send "f$i$k" ||
                        bad "log send as uid 65534, app org.flood.a$i"
        done
        i=$((i + 1))
done
check "a uid flooding under 50 app names did not push another uid's records out" \
        [ "$(msgs --from org.example.calm)" = "$(nl q1 q2 q3 q4)" ]
check "the flooding uid keeps the rest of the ring, its newest 16" \
        [ "$(msgs --from 'org.flood.*')" = "$(i=43; while [ $i -le 50 ]; do nl "f${i}a" "f${i}b"; i=$((i + 1)); done)" ]
# bytes: q1..q4 (2 each) and 16 messages of 4 bytes
expect "logd keeps counters only for the apps and uids holding records" 0 \
        '{"records":20,"bytes":72,"apps":9,"uids":2}' hy call "$LOGD_EP" stats '{}'
stop "$LPID"
stop "$DPID"
finish
