#!/bin/sh
# SPDX-License-Identifier: MIT
# What a remote peer (ws://, doc/edge.md "WebSocket") may call itself, against real hybridd
# processes and the CLI over ws://:
# - under org.hybridos.cli, the runner names local processes take by default (cli<pid> of
#   the hybrid tool, p<pid> and p<pid>_<n> of the library's store scope) are refused to a
#   remote peer with 403 (doc/protocol.md "Names"), so it cannot squat the name a local CLI
#   is about to take; other runner names stay open to it, the CLI over ws:// picks one of
#   them by default, and a local CLI still takes cli<N>;
# - a remote peer never counts as the daemon's own service peer (org.hybridos.logd writes
#   /log/..., org.hybridos.sysinfo /sys/info/...; doc/config.md), even when the daemon runs
#   as uid 65534, the uid every remote session is charged to.
. "$HYB_IT_DIR/lib.sh"

cd "$T" || exit 1
for k in iss holder; do
        "$HYBRID" token keygen "$T/$k.key" >/dev/null || { bad "keygen $k"; finish; }
done
"$HYBRID" token issue --key "$T/iss.key" --iss acme --sub alice --aud hub1 \
        --holder "$T/holder.key.pub" --ttl 3600 --cap 'bus://localhost/#=call,reg,sub,pub' \
        --cap '/#=read,write,delete,sub' >"$T/tok" || { bad "issue the token"; finish; }
chmod 644 "$T/iss.key.pub" "$T/tok"
AUTHCFG="auth:
  tokens: accept
  audience: hub1
  issuers:
    acme: $T/iss.key.pub"
# http_port LOG: the port a daemon logged for listen.http
http_port() {
        wait_until 30 has_line "$1" 'edge: HTTP on [0-9.]*:[1-9]' ||
                { bad "the daemon logs its HTTP port" "$(cat "$1")"; finish; }
        sed -n 's/.*edge: HTTP on [0-9.]*:\([0-9]*\).*/\1/p' "$1" | head -n 1
}
CRED="--token $T/tok --key $T/holder.key"

# --- the names of local processes under org.hybridos.cli
start_daemon d "listen:
  http: 127.0.0.1:0
$AUTHCFG
log: {level: debug}" || finish
WS=ws://127.0.0.1:$(http_port "$T/d.log")/bus/ws
for r in cli4242 CLI4242 p4242 p4242_3; do
        # shellcheck disable=SC2086
        expect_err "a remote peer asking for org.hybridos.cli/$r: 403, the connect refused (exit 3)" 3 \
                '403 .*kept for local processes' \
                "$HYBRID" --bus "$WS" $CRED --runner "$r" store put /public/x 1
done
check "the daemon logs the refusal with the peer's address" \
        grep -q 'auth refused for remote peer 127\.0\.0\.1:[0-9]* (ws): 403 runner cli4242 of org.hybridos.cli is kept' "$T/d.log"
# shellcheck disable=SC2086
expect "nothing was written by them" 1 '' "$HYBRID" --bus "$WS" $CRED store get /public/x
for r in cli4242x cli_4242 p4242_x console_0a1b2c3d alice; do
        # shellcheck disable=SC2086
        expect "a remote peer may take org.hybridos.cli/$r" 0 '' \
                "$HYBRID" --bus "$WS" $CRED --runner "$r" store put /public/x 1
done
# shellcheck disable=SC2086
expect "the CLI over ws:// connects with its default runner name" 0 '1' \
        "$HYBRID" --bus "$WS" $CRED store get /public/x
check "... which is w<pid>_<8 hex digits>" \
        grep -Eq 'org\.hybridos\.cli/w[0-9]+_[0-9a-f]{8}' "$T/d.log"
# shellcheck disable=SC2086
expect "another app's p<pid> is open to a remote peer its token covers" 0 '' \
        "$HYBRID" --bus "$WS" $CRED --app org.example.remote --runner p4242 store put /public/y 2
expect "a local CLI takes org.hybridos.cli/cli4242" 0 '1' \
        "$HYBRID" --bus "$SOCK" --runner cli4242 store get /public/x
# a local CLI holds cli5151 while a remote peer asks for it: 403, not a clash it could win later
bg holder "$HYBRID" --bus "$SOCK" --runner cli5151 store watch '/public/#'
HOLDER=$BPID
wait_until 30 grep -q 'org\.hybridos\.cli/cli5151' "$T/d.log" || bad "the local CLI cli5151 connects"
# shellcheck disable=SC2086
expect_err "a remote peer asking for a name a local CLI holds: 403" 3 '403 .*kept for local processes' \
        "$HYBRID" --bus "$WS" $CRED --runner cli5151 store put /public/z 1
check "the local CLI is still connected" kill -0 "$HOLDER"
kill "$HOLDER"
stop "$DPID"

# --- a remote peer is never the daemon's service peer: a daemon running as uid 65534
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null 2>&1; then
        echo "# not root or no setpriv: the daemon cannot run as uid 65534; skipped"
        finish
fi
mkdir -p "$T/nb" && chown 65534:65534 "$T/nb" || { bad "a directory for uid 65534"; finish; }
# stage the CLI for uid 65534 before the daemon starts: staging copies libhybrid.so.0 over
# the copy a running daemon has mapped (lib.sh nobody_stage), which would crash it
nobody_stage "$HYBRID" >/dev/null || { bad "stage the CLI for uid 65534"; finish; }
printf '%s\n' "listen:
  http: 127.0.0.1:0
$AUTHCFG
log: {level: debug}" >"$T/nb.yaml"
chmod 644 "$T/nb.yaml"
AS_NOBODY_EXEC=1 as_nobody "$HYBRIDD" --foreground --socket "$T/nb/bus.sock" --config "$T/nb.yaml" >"$T/nb.log" 2>&1 &
NB=$!
PIDS="$PIDS $NB"
wait_until 30 sock_or_dead "$T/nb/bus.sock" "$NB" && [ -S "$T/nb/bus.sock" ] ||
        { bad "the daemon starts as uid 65534" "$(cat "$T/nb.log")"; finish; }
WS=ws://127.0.0.1:$(http_port "$T/nb.log")/bus/ws
# shellcheck disable=SC2086
expect_err "a remote peer named org.hybridos.logd may not write /log/ (403)" 1 \
        '403 .*written by hybrid-logd alone' \
        "$HYBRID" --bus "$WS" $CRED --app org.hybridos.logd --runner main store put /log/x/1 666
# shellcheck disable=SC2086
expect_err "nor delete there (403)" 1 '403 .*written by hybrid-logd alone' \
        "$HYBRID" --bus "$WS" $CRED --app org.hybridos.logd --runner main store del /log/x/1
# shellcheck disable=SC2086
expect_err "a remote peer named org.hybridos.sysinfo may not write /sys/info/ (403)" 1 \
        '403 .*read-only' \
        "$HYBRID" --bus "$WS" $CRED --app org.hybridos.sysinfo --runner main store put /sys/info/x 1
expect "the local org.hybridos.logd of the daemon's uid still writes /log/" 0 '' \
        as_nobody "$HYBRID" --bus "$T/nb/bus.sock" --app org.hybridos.logd --runner main store put /log/x/1 7
expect "the local org.hybridos.sysinfo still writes /sys/info/" 0 '' \
        as_nobody "$HYBRID" --bus "$T/nb/bus.sock" --app org.hybridos.sysinfo --runner main store put /sys/info/x 1
# shellcheck disable=SC2086
expect "the record is the local service's" 0 '7' "$HYBRID" --bus "$WS" $CRED store get /log/x/1
stop "$NB"
finish
