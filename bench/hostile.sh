#!/bin/sh
# SPDX-License-Identifier: MIT
# hostile.sh - a hostile local user against hybridd with the default quotas
# (doc/config.md "Quotas"), one fresh daemon per scenario:
#   none         no attack (the bystander alone: the reference row)
#   slow-subs    10 subscribers that never read; a publisher sends 400 events of 256 KiB
#   big-frames   20 clients each sending a 16 MiB - 1 frame without its last byte
#   pre-auth     1 024 connections that never authenticate
#   huge-regs    1 024 procedures with 64 KB argument policies
#   reads-all    the host store holds 262 144 keys; storeRead /# back to back with
#                store.limits.max_read_keys raised to 1048576 (as before that bound: every
#                read walks and sends all of them)
#   reads-capped the same with the default max_read_keys (1024): each read is refused 413
#                once its walk reaches the bound
#   reads-paged  the same, reading all of /# in pages (storeReadPage) back to back
#                (four readers each; $READ_DEPTH reads in flight per reader, default 8)
# While each attack runs, a well-behaved bystander echoes back to back through the builtin
# endpoint.  Prints hybridd's peak RSS (VmHWM from /proc) beside limits.max_memory + 16 MiB,
# and the bystander's echo latency, as a table.  A benchmark, not a test: nothing here
# asserts; tests/integration/quota.sh checks the same scenarios.
#
# usage: bench/hostile.sh [BUILD_DIR]     (default: build/, configured and compiled if needed)
# As root the attacker runs as uid 65534 and the bystander as root (two uids, as in real
# life); otherwise both are the invoking uid, so the per-uid quotas hit the bystander too.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
PY=${PYTHON:-/usr/bin/python3} # the attacker uid must be able to run it
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" "$ROOT" >/dev/null
meson compile -C "$BUILD" examples/hybridd/hybridd >/dev/null
HYBRIDD=$BUILD/examples/hybridd/hybridd
W=$(mktemp -d "${TMPDIR:-/tmp}/bench-hostile.XXXXXX")
chmod 755 "$W"
cp "$ROOT/tests/integration/rawbus.py" "$ROOT/tests/integration/hostile.py" "$W/"
chmod 644 "$W"/*.py
H=$W/hostile.py
ulimit -n 4096 2>/dev/null || true
PIDS=""
cleanup() {
        for p in $PIDS; do kill "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
if [ "$(id -u)" -eq 0 ]; then
        attacker() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
        WHO="uid 65534 attacks, root is the bystander"
else
        attacker() { "$@"; }
        WHO="attacker and bystander share uid $(id -u)"
fi
kib() { awk "/^$2:/ { print \$2 }" "/proc/$1/status"; }
wait_line() { i=0; until grep -q "$2" "$1" 2>/dev/null; do i=$((i + 1)); [ $i -lt 1500 ] || return 1; sleep 0.02; done; }

row() {
        name=$1
        sock=$W/$name.sock
        rm -f "$W/stop"
        case $name in
        # one uid loads all 262 144 keys: past its default uid_max_keys (half of them)
        reads-all) printf 'limits: {max_body: 32M}\nstore: {limits: {max_read_keys: 1048576, uid_max_keys: 262144}}\n' ;;
        reads-*) printf 'store: {limits: {uid_max_keys: 262144}}\n' ;;
        *) printf '{}\n' ;;
        esac >"$W/$name.yaml"
        "$HYBRIDD" --foreground --socket "$sock" --config "$W/$name.yaml" >"$W/$name.log" 2>&1 &
        dpid=$!
        PIDS="$PIDS $dpid"
        i=0; until [ -S "$sock" ]; do i=$((i + 1)); [ $i -lt 500 ] || { echo "hybridd did not start" >&2; exit 1; }; sleep 0.02; done
        case $name in
        reads-*) "$PY" "$H" storeload "$sock" /k 262144 >"$W/load.out" 2>&1 ;;
        esac
        bystander() {
                "$PY" "$H" latency "$sock" "$W/stop" >"$W/$name.lat" 2>&1 &
                lpid=$!
                PIDS="$PIDS $lpid"
        }
        # the readers' rows measure the bystander only while the reads go on
        case $name in reads-*) ;; *) bystander; sleep 0.3 ;; esac
        case $name in
        none) sleep 3 ;;
        slow-subs)
                attacker "$PY" "$H" subscribers "$sock" 10 "$W/stop" >"$W/a.out" 2>&1 &
                apid=$!
                wait_line "$W/a.out" subscribed
                "$PY" "$H" publish "$sock" 400 262144 >"$W/p.out" 2>&1 || true ;;
        big-frames)
                attacker env HOLD_S=2 "$PY" "$H" bigframes "$sock" 20 16777215 >"$W/a.out" 2>&1 &
                apid=$!
                wait_line "$W/a.out" held ;;
        pre-auth)
                attacker "$PY" "$H" preauth "$sock" 1024 3 >"$W/a.out" 2>&1 &
                apid=$!
                wait_line "$W/a.out" held ;;
        huge-regs)
                attacker env HOLD_S=1 "$PY" "$H" policy "$sock" 1024 64000 >"$W/a.out" 2>&1 &
                apid=$!
                wait_line "$W/a.out" held ;;
        reads-*)
                # four readers, so the daemon always has a read to do
                apid=
                for i in 1 2 3 4; do
                        attacker "$PY" "$H" storereadloop "$sock" '/#' "$W/stop" \
                                "$([ "$name" = reads-paged ] && echo 1 || echo 0)" "${READ_DEPTH:-8}" \
                                >"$W/a$i.out" 2>&1 &
                        apid="$apid $!"
                done
                for i in 1 2 3 4; do wait_line "$W/a$i.out" reading; done
                sleep 0.5
                bystander
                sleep 3 ;;
        esac
        peak=$(kib "$dpid" VmHWM)
        touch "$W/stop"
        wait "$lpid" || true
        [ "$name" = none ] || wait $apid || true
        case $name in
        reads-*) READS="$READS
  $name: $(cat "$W"/a[1-4].out | grep '^reads' | paste -sd' ')" ;;
        esac
        sleep 1
        after=$(kib "$dpid" VmRSS)
        kill "$dpid"; wait "$dpid" 2>/dev/null || true
        set -- $(cat "$W/$name.lat")
        printf '| %-12s | %8.1f | %8.1f | %8.1f | %7s | %8s | %8s | %9s | %6s |\n' "$name" \
                "$(echo "$peak / 1024" | bc -l)" "$(echo "65536 / 1024 + 16" | bc -l)" \
                "$(echo "$after / 1024" | bc -l)" "$2" "$3" "$4" "$6" "$5"
}

echo "hybridd under a hostile local user ($WHO), default limits (max_memory 64 MiB)"
echo
echo "| scenario     | peak MiB | goal MiB | after MiB | echoes | p50 ms   | p99 ms   | max ms    | errors |"
echo "|--------------|----------|----------|-----------|--------|----------|----------|-----------|--------|"
READS=
for s in ${SCENARIOS:-none slow-subs big-frames pre-auth huge-regs reads-all reads-capped reads-paged}; do
        row "$s"
done
[ -z "$READS" ] || printf '\nreads of the attackers (calls; pages count one each) and their statuses:%s\n' "$READS"
