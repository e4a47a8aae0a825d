#!/bin/sh
# SPDX-License-Identifier: MIT
# hybridd itself (doc/hybridd.md): --version and --help, one clean line per error (the
# file, key and position once each, "did you mean"), the exit statuses of its doc, the
# socket path precedence (--socket, listen.unix, $HYBRID_BUS, the default), the only
# directory it may create (its runtime directory), and a prompt exit 0 on SIGTERM.
. "$(dirname "$0")/lib.sh"
TAB=$(printf '\t')
unset HYBRID_BUS
# Runs that must end by themselves are bounded by `timeout 10`: a regression fails, not hangs.

# --- options
expect "--version exits 0" 0 "*" "$HYBRIDD" --version
check "--version: one line 'hybridd X.Y.Z' on stdout" grep -Eqx 'hybridd [0-9]+\.[0-9]+\.[0-9]+' "$T/out"
run "$HYBRIDD" -V
check "-V is --version" grep -Eqx 'hybridd [0-9]+\.[0-9]+\.[0-9]+' "$T/out"
run "$HYBRIDD" --help
check "--help exits 0 and lists the exit statuses" [ "$RC" -eq 0 ] && grep -q 'exit status' "$T/out"

one_line() { [ "$(wc -l <"$T/err")" -eq 1 ]; }
expect_err "an unknown option is a usage error (2)" 2 "^hybridd: unknown option '--bogus'" \
        "$HYBRIDD" --bogus
check "... reported in one line" one_line
expect_err "a missing option argument is a usage error (2)" 2 "^hybridd: option '--config' needs an argument" \
        "$HYBRIDD" --config
check "... reported in one line" one_line
expect_err "an extra argument is a usage error (2)" 2 "^hybridd: unexpected argument 'extra'" \
        timeout 10 "$HYBRIDD" --foreground extra
check "... reported in one line" one_line

# --- configuration errors: exit 2, one line "hybridd: FILE: key: message at LINE:COLUMN"
count() { grep -o -- "$1" "$T/err" | wc -l; }
n=0
while IFS="$TAB" read -r yaml pos; do
        case "$yaml" in ''|'#'*) continue ;; esac
        n=$((n + 1))
        printf "$(printf '%s' "$yaml" | sed 's/%/%%/g')\n" >"$T/bad.yaml"
        run timeout 10 "$HYBRIDD" --foreground --socket "$T/bad.sock" --config "$T/bad.yaml"
        if [ "$RC" -ne 2 ] || ! one_line || [ "$(count 'bad\.yaml')" -ne 1 ] ||
           [ "$(count "$pos")" -ne 1 ] ||
           ! grep -Eq "^hybridd: $T/bad\.yaml: [][a-z_.0-9]+: .* at $pos\$" "$T/err"; then
                bad "config case $n '$yaml': exit 2, one line, file and $pos once" \
                    "exit $RC: $(cat "$T/err")"
        else
                ok "config case $n '$yaml': exit 2, one line, file and $pos once"
        fi
done <"$HYB_IT_DIR/config-cases.txt"
check "no socket was left by refused configs" [ ! -e "$T/bad.sock" ]

printf 'limits:\n  max_bodys: 1M\n' >"$T/typo.yaml"
expect_err "a mistyped key gets 'did you mean'" 2 \
        "^hybridd: $T/typo\.yaml: limits\.max_bodys: unknown key, did you mean max_body\? at 2:3\$" \
        timeout 10 "$HYBRIDD" --foreground --socket "$T/typo.sock" --config "$T/typo.yaml"
printf 'limits:\n  send_queue_bytes: 18446744073709551615\n' >"$T/range.yaml"
expect_err "an out-of-range value gets the range" 2 \
        "^hybridd: $T/range\.yaml: limits\.send_queue_bytes: .*out of range \(allowed 1\.\.16G\) at 2:21\$" \
        timeout 10 "$HYBRIDD" --foreground --socket "$T/range.sock" --config "$T/range.yaml"
expect_err "an unreadable config is a configuration error (2)" 2 \
        "^hybridd: $T/none\.yaml: No such file or directory\$" \
        timeout 10 "$HYBRIDD" --foreground --socket "$T/none.sock" --config "$T/none.yaml"
check "... in one line" one_line
run timeout 10 "$HYBRIDD" --config "$T/typo.yaml"
check "detached, a config error still exits 2" [ "$RC" -eq 2 ]

# --- directories: a missing configured one is an error (3); only the runtime dir is made
expect_err "a socket in a missing directory: exit 3" 3 \
        "^hybridd: error: cannot listen on $T/no/such/bus\.sock: directory $T/no/such does not exist\$" \
        timeout 10 "$HYBRIDD" --foreground --socket "$T/no/such/bus.sock"
check "... and no directory was created" [ ! -e "$T/no" ]
run timeout 10 "$HYBRIDD" --socket "$T/no/bus.sock"
check "detached, the same failure exits 3 (got $RC; $(cat "$T/out" "$T/err" 2>/dev/null | head -c 300))" \
        [ "$RC" -eq 3 ]
check "... and no directory was created" [ ! -e "$T/no" ]
printf 'listen: {unix: %s/cfgdir/bus.sock}\n' "$T" >"$T/dir.yaml"
expect_err "listen.unix in a missing directory: exit 3" 3 "directory $T/cfgdir does not exist" \
        timeout 10 "$HYBRIDD" --foreground --config "$T/dir.yaml"
check "... and it was not created" [ ! -e "$T/cfgdir" ]

# waitsock PATH: the daemon $DPID made its socket at PATH (and is alive)
waitsock() { wait_until 10 sock_or_dead "$1" "$DPID" && [ -S "$1" ]; }
mkdir "$T/xdg"
env XDG_RUNTIME_DIR="$T/xdg" "$HYBRIDD" --foreground >"$T/xdg.log" 2>&1 &
DPID=$!
PIDS="$PIDS $DPID"
check "the default socket's runtime dir \$XDG_RUNTIME_DIR/hybrid is created" \
        waitsock "$T/xdg/hybrid/bus.sock"
stop "$DPID"
check "... and the daemon exits 0 on SIGTERM" [ "$STOP_RC" -eq 0 ]
check "... removing its socket" [ ! -e "$T/xdg/hybrid/bus.sock" ]
expect_err "a missing \$XDG_RUNTIME_DIR is not created: exit 3" 3 \
        "^hybridd: error: cannot create $T/noxdg/hybrid: No such file or directory\$" \
        timeout 10 env XDG_RUNTIME_DIR="$T/noxdg" "$HYBRIDD" --foreground
check "... nor anything under it" [ ! -e "$T/noxdg" ]

# --- $HYBRID_BUS: after --socket and listen.unix, before the default
env HYBRID_BUS="$T/env.sock" XDG_RUNTIME_DIR="$T/xdg" "$HYBRIDD" --foreground >"$T/env.log" 2>&1 &
DPID=$!
PIDS="$PIDS $DPID"
check "\$HYBRID_BUS is the socket when neither --socket nor listen.unix is given" waitsock "$T/env.sock"
check "... not the default one" [ ! -e "$T/xdg/hybrid/bus.sock" ]
run "$HYBRID" --bus "$T/env.sock" call @localhost/org.hybridos.bus/builtin echo 5
check "... and clients reach the broker there" [ "$RC" -eq 0 ]
stop "$DPID"
env HYBRID_BUS="$T/env.sock" "$HYBRIDD" --foreground --socket "$T/opt.sock" >"$T/opt.log" 2>&1 &
DPID=$!
PIDS="$PIDS $DPID"
check "--socket wins over \$HYBRID_BUS" waitsock "$T/opt.sock"
check "... which is not used" [ ! -e "$T/env.sock" ]
stop "$DPID"
printf 'listen: {unix: %s/cfg.sock}\n' "$T" >"$T/cfg.yaml"
env HYBRID_BUS="$T/env.sock" "$HYBRIDD" --foreground --config "$T/cfg.yaml" >"$T/cfg.log" 2>&1 &
DPID=$!
PIDS="$PIDS $DPID"
check "listen.unix wins over \$HYBRID_BUS" waitsock "$T/cfg.sock"
check "... which is not used" [ ! -e "$T/env.sock" ]

# --- a second daemon on a live socket: exit 3
expect_err "a live broker on the socket: exit 3" 3 "already listening on $T/cfg\.sock" \
        timeout 10 "$HYBRIDD" --foreground --socket "$T/cfg.sock"
check "... and the live one keeps its socket" [ -S "$T/cfg.sock" ]

# --- SIGTERM when idle: exit 0 at once (no 1 s grace when nothing is queued). The daemon
# says in its log when it waits for queued output; an idle one must not.
stop "$DPID"
check "an idle daemon exits 0 on SIGTERM" [ "$STOP_RC" -eq 0 ]
check "... and removed its socket" [ ! -e "$T/cfg.sock" ]
# A daemon no peer ever connected to (the one above was probed by the second daemon, whose
# CHALLENGE may still be queued under load): no wait for queued output, no 1 s grace
"$HYBRIDD" --foreground --socket "$T/idle.sock" >"$T/idle.log" 2>&1 &
DPID=$!
PIDS="$PIDS $DPID"
check "a daemon nobody connects to" waitsock "$T/idle.sock"
stop "$DPID"
check "... exits 0 on SIGTERM" [ "$STOP_RC" -eq 0 ]
check "... without waiting for queued output (no 1 s grace)" sh -c "! grep -q 'output queued' '$T/idle.log'"
# SIGTERM the moment the socket appears (a service manager may): caught already, so a clean
# exit 0 that removes the socket, not the default death that leaves it behind
early_term() {
        for _ in 1 2 3 4 5; do
                "$HYBRIDD" --foreground --socket "$T/early.sock" >>"$T/early.log" 2>&1 &
                p=$!
                while [ ! -S "$T/early.sock" ] && kill -0 "$p" 2>/dev/null; do :; done
                kill -TERM "$p"
                wait "$p" || return 1
                [ ! -e "$T/early.sock" ] || return 1
        done
}
check "SIGTERM as soon as the socket appears: exit 0, socket removed (5 rounds)" early_term
# --- SIGTERM with output queued to a peer that does not read: the daemon says it waits
# (up to 1 s) for that output, and still exits 0
"$HYBRIDD" --foreground --socket "$T/q.sock" >"$T/q.log" 2>&1 &
DPID=$!
PIDS="$PIDS $DPID"
check "a daemon for the queued-output case" waitsock "$T/q.sock"
bg stall "$PYTHON" "$HYB_IT_DIR/rawbus.py" stall "$T/q.sock" '@localhost/org.example.flood/*' 'BIG' 30
wait_until 10 has_line "$T/stall.out" subscribed
# 64 events x 16 KiB = 1 MiB: more than the stalled socket takes, less than its queue bound
run "$HYB_PROBE" flood "$T/q.sock" BIG 64 16384
check "the events were fired" grep -q 'errors 0' "$T/out"
stop "$DPID"
check "a daemon with output queued exits 0 on SIGTERM" [ "$STOP_RC" -eq 0 ]
check "... after saying it waits for the queued output" grep -q 'output queued to 1 peer' "$T/q.log"
kill "$BPID" 2>/dev/null
finish
