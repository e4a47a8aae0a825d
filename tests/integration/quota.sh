#!/bin/sh
# SPDX-License-Identifier: MIT
# A hostile local user (uid 65534) against a real hybridd with the default quotas
# (doc/config.md "Quotas"): slow subscribers, big frames, stalled pre-auth connections,
# huge registrations and every per-uid count quota.  The broker's peak RSS (VmHWM from
# /proc) stays within limits.max_memory + 16 MiB, the offender alone is cut off with an
# ERROR naming the quota (which it can read, its queue having been full), the daemon logs
# name, uid and quota, a bystander of another uid keeps being served, and the memory is
# given back once the attackers are gone.
. "$(dirname "$0")/lib.sh"
B=@localhost/org.hybridos.bus/builtin
# The attacker runs as uid 65534: stage the helpers where it can read them.
cp "$HYB_IT_DIR/rawbus.py" "$HYB_IT_DIR/hostile.py" "$T/"
chmod 644 "$T/rawbus.py" "$T/hostile.py"
H="$T/hostile.py"
MAX_MEMORY_KIB=65536 # the default limits.max_memory, 64 MiB
hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
rss_below() { [ "$(vmrss "$1")" -le "$2" ]; }
# Under AddressSanitizer (shadow memory, quarantine) RSS says nothing about the broker's
# accounting: the RSS checks are skipped there, everything else still runs.
asan() { grep -qa __asan_init "/proc/$1/exe"; }
check_rss() {
        if asan "$DPID"; then
                echo "# skipped under ASan: $1"
        else
                check "$@"
        fi
}
nobody_py() { as_nobody "$PYTHON" "$H" "$@"; }

# --- 10 subscribers that never read; the publisher (a bystander) sends 100 MiB to each
start_daemon subs 'log: {level: warning}' || finish
rss0=$(vmrss "$DPID")
bg subs as_nobody "$PYTHON" "$H" subscribers "$SOCK" 10 "$T/go"
SUBS=$BPID
check "10 slow subscribers of uid 65534 subscribed" wait_until 20 has_line "$T/subs.out" subscribed
run "$PYTHON" "$H" publish "$SOCK" 400 262144
check "slow subscribers: the publisher is never cut off and still served" [ "$RC" -eq 0 ]
grep -E '^(FAIL|info)' "$T/out" | sed 's/^/    | /'
peak=$(hwm "$DPID")
echo "# slow subscribers: hybridd VmHWM $peak KiB (limit $((MAX_MEMORY_KIB + 16384)))"
check_rss "slow subscribers: peak RSS <= max_memory + 16 MiB" [ "$peak" -le $((MAX_MEMORY_KIB + 16384)) ]
touch "$T/go"
wait "$SUBS"
check "slow subscribers: each read why it was cut off and was disconnected" [ $? -eq 0 ]
grep -E '^(FAIL|info)' "$T/subs.out" | sed 's/^/    | /'
check "the daemon logged name, uid and quota of a cut-off subscriber" grep -Eq \
        '@localhost/org.example.slow/s[0-9]+ \(uid 65534 pid [0-9]+\): quota (uid_max_bytes|max_memory) exceeded' \
        "$T/subs.log"
check_rss "slow subscribers: RSS back within 16 MiB of the start after they left" \
        wait_until 10 rss_below "$DPID" $((rss0 + 16384))
stop "$DPID"

# --- 20 clients each sending a 16 MiB - 1 frame and never its last byte
start_daemon big 'log: {level: warning}' || finish
rss0=$(vmrss "$DPID")
HOLD_S=4 bg big as_nobody env HOLD_S=4 "$PYTHON" "$H" bigframes "$SOCK" 20 16777215
BIG=$BPID
check "big frames: the attack is in place" wait_until 60 has_line "$T/big.out" held
run "$PYTHON" "$H" bystander "$SOCK"
check "big frames: a bystander of another uid is served meanwhile" [ "$RC" -eq 0 ]
peak=$(hwm "$DPID")
echo "# big frames: hybridd VmHWM $peak KiB (limit $((MAX_MEMORY_KIB + 16384)))"
check_rss "big frames: peak RSS <= max_memory + 16 MiB" [ "$peak" -le $((MAX_MEMORY_KIB + 16384)) ]
wait "$BIG"
check "big frames: the refused senders read ERROR 507 naming the quota" [ $? -eq 0 ]
grep -E '^(FAIL|info)' "$T/big.out" | sed 's/^/    | /'
check_rss "big frames: RSS back within 16 MiB of the start after they left" \
        wait_until 10 rss_below "$DPID" $((rss0 + 16384))
stop "$DPID"

# --- two hostile uids: the second may take only 3/4 of what the first left (fair share)
start_daemon fair "$(printf 'limits:\n  max_memory: 8M\n  uid_max_bytes: 8M\n  max_body: 6M\n  send_queue_bytes: 8M\n')" || finish
bg fair1 as_nobody "$PYTHON" "$H" hold "$SOCK" 5242880 admitted 6
F1=$BPID
check "fair share: uid 65534 holds a 5 MiB frame" wait_until 20 has_line "$T/fair1.out" held
run setpriv --reuid=65533 --regid=65533 --clear-groups "$PYTHON" "$H" hold "$SOCK" 3145728 refused 0
check "fair share: uid 65533 may not take the 3 MiB left of 8 MiB (507 max_memory)" [ "$RC" -eq 0 ]
grep '^FAIL' "$T/out" | sed 's/^/    | /'
run "$PYTHON" "$H" bystander "$SOCK"
check "fair share: a third uid is still served" [ "$RC" -eq 0 ]
kill "$F1" 2>/dev/null
stop "$DPID"

# --- 1 024 connections that never authenticate
start_daemon pre "$(printf 'log: {level: warning}\nlimits: {auth_timeout_ms: 60000}\n')" || finish  # none may time out mid-attack
bg pre as_nobody "$PYTHON" "$H" preauth "$SOCK" 1024 6
PRE=$BPID
check "pre-auth: the attack is in place" wait_until 60 has_line "$T/pre.out" held
sed 's/^/    | /' "$T/pre.out"
check "pre-auth: uid 65534 got 64 (uid_max_unauth_connections) pending connections" \
        grep -q '^accepted 64$' "$T/pre.out"
check "pre-auth: the rest were refused with ERROR 429 naming the quota" \
        grep -q '^refused 960: 429 quota uid_max_unauth_connections exceeded$' "$T/pre.out"
run "$PYTHON" "$H" bystander "$SOCK"
check "pre-auth: a client of another uid still connects and is served (no 503)" [ "$RC" -eq 0 ]
grep '^FAIL' "$T/out" | sed 's/^/    | /'
kill "$PRE" 2>/dev/null
stop "$DPID"
check "pre-auth: the daemon logged the refusal with uid and quota" grep -q \
        'connection of uid 65534 pid [0-9]* refused: quota uid_max_unauth_connections exceeded' "$T/pre.log"
n=$(grep -c 'refused: quota' "$T/pre.log")
check "pre-auth: 960 refusals did not flood the log ($n lines)" [ "$n" -le 10 ]
# the total budget: 6 per uid, 8 in all
start_daemon pre2 "$(printf 'limits:\n  max_unauth_connections: 8\n  uid_max_unauth_connections: 6\n')" || finish
bg pre2 as_nobody "$PYTHON" "$H" preauth "$SOCK" 10 4
PRE=$BPID
check "pre-auth budget: uid 65534 holds its 6" wait_until 20 has_line "$T/pre2.out" held
run "$PYTHON" "$H" preauth "$SOCK" 4 0
check "pre-auth budget: another uid gets the 2 left of 8, then ERROR 503 max_unauth_connections" \
        sh -c "grep -q '^accepted 2\$' '$T/out' && grep -q '^refused 2: 503 quota max_unauth_connections exceeded\$' '$T/out'"
kill "$PRE" 2>/dev/null
stop "$DPID"

# --- per-uid counts (6 each) over two connections of one uid; policy text (1 MiB)
start_daemon cnt "$(printf 'limits:\n  uid_max_connections: 6\n  uid_max_pending_calls: 6\n  uid_max_subscriptions: 6\n  uid_max_registrations: 6\n')" || finish
run "$PYTHON" "$H" counts "$SOCK" 6
check "per-uid count quotas answer 429 naming the quota" [ "$RC" -eq 0 ]
sed 's/^/    | /' "$T/out"
stop "$DPID"
start_daemon reg "$(printf 'limits:\n  max_policy_bytes: 32K\n  uid_max_policy_bytes: 1M\n')" || finish
HOLD_S=0 run "$PYTHON" "$H" policy "$SOCK" 100 32000
check "huge registrations stop at uid_max_policy_bytes with 507" [ "$RC" -eq 0 ]
grep -E '^(FAIL|info)' "$T/out" | sed 's/^/    | /'
stop "$DPID"

# --- the client library reports why the broker cut it off
start_daemon lib "$(printf 'limits:\n  uid_max_bytes: 1M\n')" || finish
"$PYTHON" -c "import sys; sys.stdout.write('\"' + 'c' * (4 << 20) + '\"')" >"$T/4m.json"
expect_err "a call over uid_max_bytes: the CLI says 507 and names the quota" 1 \
        '507.*quota uid_max_bytes exceeded' sh -c "\"$HYBRID\" --bus '$SOCK' call $B echo - <'$T/4m.json'"
echo_ok() { [ "$(hy call $B echo 1 2>/dev/null)" = 1 ]; }
check "the daemon serves the next client" echo_ok
stop "$DPID"
finish
