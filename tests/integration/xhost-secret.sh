#!/bin/sh
# SPDX-License-Identifier: MIT
# Signed calls between hosts (doc/cluster.md "Signed calls"): hosts a and b share
# cluster.call_secret_file.  Calls from b to a work as before, with and without a token; a
# client of the broker that reads a's call topic (xhost-secret.py) cannot use the token a
# call of b carries in calls of its own, nor send b's call again (401); a daemon whose
# calls carry tokens unsigned says so at its start; a bad secret file stops the daemon.
# Skipped (77) when mosquitto or mosquitto-clients are not installed.
. "$HYB_IT_DIR/lib.sh"

need_mosquitto
start_mosquitto || finish
PORT=$MQ_PORT

for k in iss holder; do
        "$HYBRID" token keygen "$T/$k.key" >/dev/null || { bad "keygen $k"; finish; }
done
"$HYBRID" token issue --key "$T/iss.key" --iss acme --sub alice --aud a,b --holder "$T/holder.key.pub" \
        --cap 'bus://localhost/org.hybridos.cli/srv/getX=call' >"$T/good" || bad "issue good"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/secret"
chmod 600 "$T/secret"

cluster_yaml() { # HOST [SECRET-FILE]
        printf 'host: %s\ncluster:\n  broker: mqtt://127.0.0.1:%s\n' "$1" "$PORT"
        [ -n "${2:-}" ] && printf '  call_secret_file: %s\n' "$2"
        printf 'auth:\n  tokens: accept\n  audience: %s\n  issuers:\n    acme: %s\n' "$1" "$T/iss.key.pub"
}
start_daemon a "$(cluster_yaml a "$T/secret")" || finish
ASOCK=$SOCK
start_daemon b "$(cluster_yaml b "$T/secret")" || finish
BSOCK=$SOCK
check "a, whose calls are signed, does not warn of unprotected tokens" \
        sh -c "! grep -q 'tokens unprotected' '$T/a.log'"

SOCK=$ASOCK
serve_bg srv getX '{"x":42}' --runner srv || finish
serve_bg slow wait '{}' --runner slow --delay 3600000 || finish
SOCK=$BSOCK
call_ok() { hy call @a/org.hybridos.cli/srv getX --timeout 2000 >/dev/null 2>&1; }
wait_until 20 call_ok || bad "a call from b reaches a" "$(hy call @a/org.hybridos.cli/srv getX 2>&1)"
expect "b calls @a/org.hybridos.cli/srv getX (signed)" 0 '{"x":42}' hy call @a/org.hybridos.cli/srv getX
tok() { "$HYBRID" --bus "$BSOCK" --token "$T/good" --key "$T/holder.key" "$@"; }
expect "a token session on b calls a (signed, token checked by a)" 0 '{"x":42}' \
        tok call @a/org.hybridos.cli/srv getX

# a reader of a's call topic, with the token of b's next call
bg thief "$PYTHON" "$HYB_IT_DIR/xhost-secret.py" "$PORT" "$T/secret"
TPID=$BPID
ready thief || bad "the broker's client is subscribed" "$(cat "$T/thief.err")"
expect "b's token session calls a again (the call it sees)" 0 '{"x":42}' tok call @a/org.hybridos.cli/srv getX
wait_until 60 has_line "$T/thief.err" '^forge$' || bad "xhost-secret.py gets to its forged answer"
expect_err "a forged (unsigned) answer to b's call is dropped: the call ends at its deadline (504)" 1 \
        '^hybrid: call: 504 ' hy call @a/org.hybridos.cli/slow wait --timeout 3000
wait_until 60 sh -c "! kill -0 $TPID" || bad "xhost-secret.py ends"
wait "$TPID"
TRC=$?
sed 's/^/    /' "$T/thief.out"
check "every case of xhost-secret.py passes" [ "$TRC" = 0 ]
check "... and it ran them (14 cases)" [ "$(grep -c '^ok - ' "$T/thief.out")" -ge 14 ]
check "a logs the refused calls" grep -q "cluster: call of .* refused" "$T/a.log"
expect "a still answers b's signed calls" 0 '{"x":42}' hy call @a/org.hybridos.cli/srv getX

# a host without the secret: its unsigned calls are refused by a (401), and it warns at start
start_daemon c "$(cluster_yaml c)" || finish
CSOCK=$SOCK
check "c, whose calls carry tokens unsigned, warns at its start" \
        grep -q "calls to other hosts carry their callers' tokens unprotected" "$T/c.log"
c_401() {
        "$HYBRID" --bus "$CSOCK" call @a/org.hybridos.cli/srv getX --timeout 2000 2>"$T/c401.err" >/dev/null
        grep -q '^hybrid: call: 401 ' "$T/c401.err"
}
check "c's unsigned call to a is refused 401" wait_until 20 c_401

# a secret file too short, or missing: the daemon does not start and says why
printf 'short\n' >"$T/short"
printf '%s\n' "$(cluster_yaml d "$T/short")" >"$T/d.yaml"
"$HYBRIDD" --foreground --socket "$T/d.sock" --config "$T/d.yaml" >"$T/d.log" 2>&1 &
DP=$!
PIDS="$PIDS $DP"
gone() { ! kill -0 "$DP" 2>/dev/null; }
check "a daemon with a 5-byte secret does not start" wait_until 20 gone
check "... and names cluster.call_secret_file and the bound" \
        grep -q "cluster.call_secret_file $T/short: the secret must have 16 to 4096 bytes" "$T/d.log"
printf '%s\n' "$(cluster_yaml e "$T/none")" >"$T/e.yaml"
"$HYBRIDD" --foreground --socket "$T/e.sock" --config "$T/e.yaml" >"$T/e.log" 2>&1 &
EP=$!
PIDS="$PIDS $EP"
gone() { ! kill -0 "$EP" 2>/dev/null; }
check "a daemon whose secret file is missing does not start" wait_until 20 gone
check "... and says which file" grep -q "cluster.call_secret_file $T/none: No such file" "$T/e.log"
finish
