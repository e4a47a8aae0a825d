# SPDX-License-Identifier: MIT
# Shared by the integration scripts (POSIX sh, sourced): a temp dir, real hybridd
# processes on sockets in it, background clients, checks that count and report, and a
# cleanup that ends every process we started.  Expected values come from doc/protocol.md,
# doc/hybrid.md and doc/protocol.md, never from recorded output.
#
# Environment (set by tests/integration/meson.build): HYBRIDD HYBRID HYB_PROBE HYB_SERVICE
# HYB_CLIENT PYTHON HYB_IT_DIR.  HYB_IT_SANITIZED=1 when scripts/test runs them a second
# time under ASan/UBSan: RSS then includes ASan's shadow memory and redzones, so a test
# measuring memory may read it with that in mind (see the top of scripts/test).
set -u

: "${HYBRIDD:?}" "${HYBRID:?}" "${HYB_IT_DIR:?}"
PYTHON=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/hyb-it.XXXXXX")
chmod 755 "$T" # other uids (setpriv cases) must reach the sockets
PIDS=""
NPASS=0
NFAIL=0

cleanup() {
        for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
        for p in $PIDS; do
                i=0
                while kill -0 "$p" 2>/dev/null && [ $i -lt 20 ]; do sleep 0.05; i=$((i + 1)); done
                kill -KILL "$p" 2>/dev/null
        done
        rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok() { NPASS=$((NPASS + 1)); printf 'ok - %s\n' "$1"; }
bad() {
        NFAIL=$((NFAIL + 1))
        printf 'FAIL - %s\n' "$1"
        [ $# -gt 1 ] && printf '%s\n' "$2" | sed 's/^/    | /'
        return 0
}
# check DESC COMMAND...: passes when the command succeeds
check() { d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

# run CMD...: runs a command, stdout in $T/out, stderr in $T/err, exit status in $RC
run() { "$@" >"$T/out" 2>"$T/err"; RC=$?; }
OUT() { cat "$T/out"; }

# expect DESC STATUS STDOUT CMD...: exact exit status and exact stdout ("*" = any)
expect() {
        d=$1 st=$2 want=$3; shift 3
        run "$@"
        got=$(cat "$T/out")
        if [ "$RC" != "$st" ]; then
                bad "$d" "exit $RC, wanted $st; stderr: $(head -c 400 "$T/err")"
        elif [ "$want" != "*" ] && [ "$got" != "$want" ]; then
                bad "$d" "stdout '$(printf %s "$got" | head -c 300)', wanted '$want'"
        else
                ok "$d"
        fi
}
# expect_err DESC STATUS STDERR-REGEX CMD...: exit status and a pattern on stderr
expect_err() {
        d=$1 st=$2 re=$3; shift 3
        run "$@"
        if [ "$RC" != "$st" ]; then
                bad "$d" "exit $RC, wanted $st; stderr: $(head -c 400 "$T/err")"
        elif ! grep -Eq -- "$re" "$T/err"; then
                bad "$d" "stderr '$(head -c 400 "$T/err")' does not match /$re/"
        else
                ok "$d"
        fi
}

# wait_until SECONDS COMMAND...: polls every 20 ms
wait_until() {
        lim=$(($1 * 50)); shift
        i=0
        while ! "$@" 2>/dev/null; do
                i=$((i + 1))
                [ $i -ge "$lim" ] && return 1
                sleep 0.02
        done
        return 0
}

sock_or_dead() { [ -S "$1" ] || ! kill -0 "$2" 2>/dev/null; }
# start_daemon NAME YAML: hybridd --foreground on $T/NAME.sock; sets SOCK and DPID
start_daemon() {
        printf '%s\n' "$2" >"$T/$1.yaml"
        "$HYBRIDD" --foreground --socket "$T/$1.sock" --config "$T/$1.yaml" \
                >"$T/$1.log" 2>&1 &
        DPID=$!
        PIDS="$PIDS $DPID"
        SOCK="$T/$1.sock"
        if ! wait_until 10 sock_or_dead "$SOCK" "$DPID" || [ ! -S "$SOCK" ]; then
                bad "daemon $1 starts" "$(cat "$T/$1.log")"
                return 1
        fi
        return 0
}

# stop PID: SIGTERM and wait; sets STOP_RC
stop() {
        kill -TERM "$1" 2>/dev/null
        wait "$1"
        STOP_RC=$?
}

# bg NAME CMD...: starts a background client, stdout $T/NAME.out, stderr $T/NAME.err; sets BPID
bg() {
        n=$1; shift
        # `hy` is a function: run the binary itself so BPID is the CLI, not a subshell.
        [ "$1" = hy ] && { shift; set -- "$HYBRID" --bus "$SOCK" "$@"; }
        "$@" >"$T/$n.out" 2>"$T/$n.err" &
        BPID=$!
        PIDS="$PIDS $BPID"
}
has_line() { [ -s "$1" ] && grep -q -- "$2" "$1"; }
ready() { wait_until 10 has_line "$T/$1.err" '^ready$'; }
# serve_bg NAME ARGS...: `hybrid serve` in the background; waits for its endpoint line
serve_bg() {
        n=$1; shift
        bg "$n" "$HYBRID" --bus "$SOCK" serve "$@"
        wait_until 10 has_line "$T/$n.out" '^@' || { bad "serve $n starts" "$(cat "$T/$n.err")"; return 1; }
}
hy() { "$HYBRID" --bus "$SOCK" "$@"; }
# pycases DESC SCRIPT ARGS...: the Python script SCRIPT (in this folder) with ARGS in the
# foreground, its output shown indented; passes when it exits 0, reports at least one `ok`
# case and no FAIL (the lines rawbus.py's say() prints).
pycases() {
        d=$1; out="$T/$(basename "$2" .py).out"; shift
        "$(command -v "$PYTHON" || echo /usr/bin/python3)" "$HYB_IT_DIR/$@" >"$out" 2>&1
        rc=$?
        sed 's/^/    /' "$out"
        if [ $rc -eq 0 ] && ! grep -q '^FAIL' "$out" && grep -q '^ok ' "$out"; then
                ok "$d"
        else
                bad "$d" "$(tail -n 5 "$out")"
        fi
}
# rawbus DESC MODE ARGS...: rawbus.py MODE ARGS, as pycases.
rawbus() {
        d=$1; shift
        pycases "$d" rawbus.py "$@"
}
# as_nobody CMD...: runs CMD as uid/gid 65534.  That uid may be unable to enter the
# checkout (a clone inside a root-only `mktemp -d` folder, as CI may use), so a program
# given by path runs from a copy staged in $T/nobody, next to copies of the libraries it
# loads from outside the system directories (libhybrid.so.0 from the build tree), found
# through LD_LIBRARY_PATH, which the loader searches before the binary's RUNPATH.
# Without root there is no uid to switch to: the command then fails with a message
# saying so, and the check that ran it reports that message.
NOBODY_DIR=$T/nobody
nobody_stage() {
        src=$1
        # One directory per source path keeps argv[0]'s basename and avoids clashes.
        key=$(printf '%s' "$src" | cksum | cut -d' ' -f1)
        dst=$NOBODY_DIR/$key/$(basename "$src")
        if [ ! -x "$dst" ]; then
                mkdir -p "$NOBODY_DIR/$key" "$NOBODY_DIR/lib" || return 1
                cp "$src" "$dst" || return 1
                ldd "$src" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' |
                        while read -r soname path; do
                                case $path in
                                /lib/* | /lib64/* | /usr/*) ;;
                                # a new file renamed into place: a daemon started as
                                # nobody keeps the copy it has mapped (cp over it crashes it)
                                *) cp -L "$path" "$NOBODY_DIR/lib/.$soname.$$" &&
                                   mv -f "$NOBODY_DIR/lib/.$soname.$$" "$NOBODY_DIR/lib/$soname" || exit 1 ;;
                                esac
                        done || return 1
                chmod -R a+rX "$NOBODY_DIR" || return 1
        fi
        printf '%s\n' "$dst"
}
as_nobody() {
        if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null 2>&1; then
                echo "as_nobody: cannot run '$1' as uid 65534: needs root and setpriv" >&2
                return 126
        fi
        case $1 in
        */*)
                prog=$(nobody_stage "$1") || {
                        echo "as_nobody: cannot stage '$1' in $NOBODY_DIR" >&2
                        return 126
                }
                shift
                set -- "$prog" "$@"
                ;;
        esac
        # AS_NOBODY_EXEC=1 (for `AS_NOBODY_EXEC=1 as_nobody CMD &`): the background subshell
        # becomes CMD, so $! is CMD's PID and the test's clean-up stops CMD itself (killing
        # the subshell left a daemon started this way running)
        LD_LIBRARY_PATH="$NOBODY_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
                ${AS_NOBODY_EXEC:+exec} setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

# free_port: a loopback TCP port free now (the kernel's choice); port_open PORT: does
# something accept connections on it?
free_port() {
        "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_open() {
        "$PYTHON" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$1" 2>/dev/null
}

# need_mosquitto: sets MOSQUITTO (the broker's path), or exits 77 (skipped) when mosquitto
# or mosquitto-clients (mosquitto_pub, mosquitto_sub) are not installed.
need_mosquitto() {
        MOSQUITTO=$(command -v mosquitto 2>/dev/null)
        for m in /usr/sbin/mosquitto /usr/bin/mosquitto /usr/local/sbin/mosquitto; do
                [ -z "$MOSQUITTO" ] && [ -x "$m" ] && MOSQUITTO=$m
        done
        if [ -z "$MOSQUITTO" ] || ! command -v mosquitto_pub >/dev/null || ! command -v mosquitto_sub >/dev/null; then
                echo "# SKIP: mosquitto and mosquitto-clients are not installed"
                exit 77
        fi
}
# start_mosquitto [persist]: a mosquitto broker on a free loopback port, anonymous clients
# allowed; with `persist`, its persistence file in $T/mq/ (saved every second).  Started as
# root it runs as root (`user root`: else it drops to user mosquitto, which cannot write
# in a root-owned temp dir).  Sets MQ_PORT and MQPID; called again (after stop_mosquitto)
# it starts the same broker on the same port.  Waits until the port accepts connections;
# returns 1 (a failed check) when it does not.
start_mosquitto() {
        [ -n "${MOSQUITTO:-}" ] || need_mosquitto
        if [ ! -f "$T/mq/mosquitto.conf" ]; then
                MQ_PORT=$(free_port)
                mkdir -p "$T/mq"
                {
                        echo "listener $MQ_PORT 127.0.0.1"
                        echo "allow_anonymous true"
                        if [ "${1:-}" = persist ]; then
                                echo "persistence true"
                                echo "persistence_location $T/mq/"
                                echo "autosave_interval 1"
                        fi
                        [ "$(id -u)" = 0 ] && echo "user root"
                } >"$T/mq/mosquitto.conf"
        fi
        "$MOSQUITTO" -c "$T/mq/mosquitto.conf" >>"$T/mosquitto.log" 2>&1 &
        MQPID=$!
        PIDS="$PIDS $MQPID"
        wait_until 20 port_open "$MQ_PORT" && return 0
        bad "mosquitto starts" "$(tail -n 5 "$T/mosquitto.log")"
        return 1
}
# stop_mosquitto: SIGTERM to the broker start_mosquitto started, and wait for its end.
stop_mosquitto() {
        kill -TERM "$MQPID" 2>/dev/null
        wait "$MQPID" 2>/dev/null
}

# vmrss PID: resident set in KiB
vmrss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

finish() {
        if [ "$NFAIL" -gt 0 ]; then
                for f in "$T"/*.log; do
                        [ -s "$f" ] && { echo "# last lines of $f:"; tail -n 15 "$f" | sed 's/^/#   /'; }
                done
        fi
        echo "# $NPASS passed, $NFAIL failed"
        [ "$NFAIL" -eq 0 ]
        exit $?
}

# wait_secs SECONDS COMMAND...: polls COMMAND until it succeeds, bounded by the clock (a
# command that is slow on a loaded machine does not stretch the bound as wait_until's
# count of tries would)
wait_secs() {
        end=$(($(date +%s) + $1)); shift
        while ! "$@" 2>/dev/null; do
                [ "$(date +%s)" -ge "$end" ] && return 1
                sleep 0.05
        done
        return 0
}
