#!/bin/sh
# SPDX-License-Identifier: MIT
# The bus client over ws:// and wss:// against a real hybridd (doc/bus.md "Remote brokers",
# doc/hybrid.md --bus URL, --ca, --pin): every bus command of the CLI (call, serve, fire,
# listen, list, monitor, store put/get/del/watch, repl, run) through both schemes, C programs
# through hyb_bus_connect ($HYBRID_TOKEN, $HYBRID_KEY, $HYBRID_CA: bus-probe, threads of
# calls checked one by one), the caller's transport seen by a procedure ("ws" / "wss"), the
# TLS-exporter binding accepted by the daemon, certificate checks (another CA, another pin,
# no CA) and a token the daemon refuses: 401, exit 1.
. "$(dirname "$0")/lib.sh"
CERTS=$HYB_IT_DIR/../edge/certs
TAB=$(printf '\t')

for k in iss holder rogue; do
        "$HYBRID" token keygen "$T/$k.key" >/dev/null || { bad "keygen $k"; finish; }
done
"$HYBRID" token issue --key "$T/iss.key" --iss acme --sub alice --aud hub1 \
        --holder "$T/holder.key.pub" --ttl 3600 --cap 'bus://localhost/#=call,reg,sub,pub,admin' \
        --cap '/#=read,write,delete,sub' >"$T/tok" || bad "issue the token"
# the same rights signed by a key the daemon does not trust
"$HYBRID" token issue --key "$T/rogue.key" --iss acme --sub alice --aud hub1 \
        --holder "$T/holder.key.pub" --ttl 3600 --cap 'bus://localhost/#=call' >"$T/rogue" ||
        bad "issue the rogue token"

start_daemon d "listen:
  http: 127.0.0.1:0
  https: 127.0.0.1:0
tls: {cert: $CERTS/server.pem, key: $CERTS/server.key}
auth:
  tokens: accept
  audience: hub1
  issuers:
    acme: $T/iss.key.pub
log: {level: debug}" || finish
ports_known() {
        grep -q 'edge: HTTP on 127\.0\.0\.1:[1-9]' "$T/d.log" &&
                grep -q 'listening on https://127\.0\.0\.1:[1-9]' "$T/d.log"
}
wait_until 30 ports_known || { bad "the daemon logs its ports" "$(cat "$T/d.log")"; finish; }
HP=$(sed -n 's/.*edge: HTTP on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/d.log" | head -n 1)
SP=$(sed -n 's/.*listening on https:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/d.log" | head -n 1)
WS=ws://127.0.0.1:$HP/bus/ws
WSS=wss://localhost:$SP/bus/ws
export HYBRID_TOKEN="$T/tok" HYBRID_KEY="$T/holder.key" HYBRID_CA="$CERTS/ca.pem"

for URL in "$WS" "$WSS"; do
        s=${URL%%:*} # ws or wss
        h() { "$HYBRID" --bus "$URL" "$@"; }
        expect "$s: call the builtin echo" 0 '{"x":[1,"two"]}' h call @localhost/org.hybridos.bus/builtin echo '{"x":[1,"two"]}'
        run h list
        check "$s: list names the builtin endpoint" grep -q '^@localhost/org\.hybridos\.bus/builtin$' "$T/out"
        bg "serve$s" "$HYBRID" --bus "$URL" --app org.example.remote --runner "svc$s" serve hello '{"from":"remote"}'
        check "$s: serve registers over $s" wait_until 30 has_line "$T/serve$s.out" "^@localhost/org.example.remote/svc$s\$"
        SVC=$BPID
        expect "$s: a Unix peer calls the procedure served over $s" 0 '{"from":"remote"}' \
                "$HYBRID" --bus "$SOCK" call "@localhost/org.example.remote/svc$s" hello '{}'
        expect "$s: a remote peer calls it" 0 '{"from":"remote"}' h call "@localhost/org.example.remote/svc$s" hello '{}'
        run h list
        check "$s: list shows the remote endpoint and its procedure" \
                sh -c "grep -Eq '^@localhost/org\.example\.remote/svc$s( |\$)' '$T/out' && grep -q '^  procedure hello ' '$T/out'"
        stop "$SVC"
        check "$s: serve ends cleanly on SIGTERM (exit 0)" [ "$STOP_RC" = 0 ]

        bg "listen$s" "$HYBRID" --bus "$URL" listen "@localhost/org.example.fire$s/*" tick --count 1
        LPID=$BPID
        check "$s: listen subscribed" ready "listen$s"
        bg "mon$s" "$HYBRID" --bus "$URL" monitor --count 1
        MPID=$BPID
        check "$s: monitor ready" ready "mon$s"
        run "$HYBRID" --bus "$URL" --app "org.example.fire$s" --runner f1 fire tick '{"n":1}'
        check "$s: fire delivers to the remote listener" [ "$RC" = 0 ] && grep -q '"delivered":1' "$T/out"
        wait "$LPID"
        check "$s: listen printed the event" [ "$(cat "$T/listen$s.out")" = "@localhost/org.example.fire$s/f1${TAB}tick${TAB}{\"n\":1}" ]
        wait "$MPID"
        check "$s: monitor printed a packet" [ -s "$T/mon$s.out" ]

        bg "watch$s" "$HYBRID" --bus "$URL" store watch "/$s/#" --count 2
        WPID=$BPID
        check "$s: store watch subscribed" ready "watch$s"
        expect "$s: store put" 0 "" h store put "/$s/a" 21.5
        expect "$s: store get reads it back" 0 "21.5" h store get "/$s/a"
        expect "$s: a Unix peer reads the same store" 0 "21.5" "$HYBRID" --bus "$SOCK" store get "/$s/a"
        expect "$s: store del" 0 "" h store del "/$s/a"
        wait "$WPID"
        check "$s: store watch saw the write and the delete" \
                [ "$(cat "$T/watch$s.out")" = "/$s/a${TAB}21.5
/$s/a${TAB}noobj" ]
        expect "$s: store get of nothing: exit 1" 1 "" h store get "/$s/a"
        expect "$s: the repl writes and reads over $s" 0 "==>5
==>5" sh -c "printf '/$s/r -> 5\n*/$s/r\n' | '$HYBRID' --bus '$URL' repl"
        printf '*/%s/r\n' "$s" >"$T/p$s.mm"
        expect "$s: run reads the store over $s" 0 "==>5" h run "$T/p$s.mm"
done

# C programs through hyb_bus_connect: the URL and credentials from the environment
bg probe "$HYB_PROBE" edge-server "$WSS" e1
wait_until 30 has_line "$T/probe.out" '^ready$' || bad "bus-probe edge-server over wss starts" "$(cat "$T/probe.err")"
run "$HYBRID" --bus "$WS" call @localhost/org.example.edge/e1 whoami '{}'
check "a procedure served over wss sees a ws caller with transport \"ws\"" grep -q '"transport":"ws"' "$T/out"
run "$HYBRID" --bus "$WSS" call @localhost/org.example.edge/e1 whoami '{}'
check "... and a wss caller with \"wss\"" grep -q '"transport":"wss"' "$T/out"
run "$HYBRID" --bus "$SOCK" call @localhost/org.example.edge/e1 whoami '{}'
check "... and a Unix caller with neither" sh -c "[ $RC = 0 ] && ! grep -q '\"transport\":\"ws' '$T/out'"
bg echo "$HYB_PROBE" echo-server "$WS" remote
wait_until 30 has_line "$T/echo.out" '^ready$' || bad "bus-probe echo-server over ws starts" "$(cat "$T/echo.err")"
expect "bus-probe load: 4 threads x 50 calls over ws:// to a ws:// callee, each answer checked" 0 "*" \
        "$HYB_PROBE" load "$WS" @localhost/org.example.echo/remote echo 4 50
expect "bus-probe load: 4 threads x 50 calls over wss://" 0 "*" \
        "$HYB_PROBE" load "$WSS" @localhost/org.example.echo/remote echo 4 50

# 2000 events of 16 KiB (32 MiB) to a wss:// subscriber whose loop is hyb_bus_process +
# hyb_bus_wait: decrypted bytes the socket no longer announces, and reads cut at the budget,
# must still be delivered; bus-probe count checks the sequence of every event
bg cnt "$HYB_PROBE" count "$WSS" '@localhost/org.example.flood/*' BIG 2000
CPID=$BPID
check "bus-probe count subscribed over wss" wait_until 30 has_line "$T/cnt.out" '^ready$'
expect "a Unix peer fires 2000 events of 16 KiB" 0 "*" "$HYB_PROBE" flood "$SOCK" BIG 2000 16384
wait "$CPID"
CRC=$?
check "the wss:// subscriber got all 2000 in order (exit 0)" [ "$CRC" = 0 ]

# refusals
expect_err "a token from an untrusted issuer: 401, exit 1" 1 '^hybrid: list: 401 ' \
        env HYBRID_TOKEN="$T/rogue" "$HYBRID" --bus "$WS" list
expect_err "... the same over wss" 1 '^hybrid: list: 401 ' env HYBRID_TOKEN="$T/rogue" "$HYBRID" --bus "$WSS" list
expect_err "no token at all: 401 before connecting, exit 1" 1 '^hybrid: list: 401 .*needs a token' \
        env -u HYBRID_TOKEN -u HYBRID_KEY "$HYBRID" --bus "$WS" list
expect_err "wss:// with another CA: refused naming the server, exit 3" 3 \
        "wss://localhost:$SP: TLS handshake: certificate verification failed" \
        "$HYBRID" --bus "$WSS" --ca "$CERTS/wrongca.pem" list
expect_err "wss:// with another key pinned: refused naming the server, exit 3" 3 \
        "wss://localhost:$SP: TLS handshake: the server's key is not the pinned key" \
        "$HYBRID" --bus "$WSS" --pin "$(cat "$CERTS/wrongca.pin")" list
expect "wss:// with the server's key pinned (--pin replaces \$HYBRID_CA)" 0 '1' \
        "$HYBRID" --bus "$WSS" --pin "sha256//$(cat "$CERTS/server.pin")" call @localhost/org.hybridos.bus/builtin echo 1
expect_err "wss:// with no CA and no pin: usage error, exit 2" 2 'cannot be verified' \
        env -u HYBRID_CA "$HYBRID" --bus "$WSS" list
check "hybridd is alive" kill -0 "$DPID"
finish
