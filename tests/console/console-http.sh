#!/bin/sh
# SPDX-License-Identifier: MIT
# The browser console's static files (doc/console.md) served by a real hybridd on
# listen.http, with curl: `/` and the assets byte for byte as committed in
# lib/edge/console/, their types and security headers (doc/console.md "Security"),
# anonymous under auth.tokens require, 404 for every other path under /console/ (no path
# traversal, encoded or not), 405 for other methods, and the bus routes untouched.
. "$HYB_IT_DIR/lib.sh"
SRC=${HYB_SRC:?}/lib/edge/console
command -v curl >/dev/null || { bad "curl is installed"; finish; }

cd "$T" || exit 1
"$HYBRID" token keygen "$T/iss.key" >/dev/null || { bad "keygen"; finish; }
start_daemon d "listen:
  http: 127.0.0.1:0
auth:
  tokens: require
  audience: hub1
  issuers:
    acme: $T/iss.key.pub" || finish
port_known() { grep -q 'edge: HTTP on 127.0.0.1:[1-9]' "$T/d.log"; }
wait_until 10 port_known || { bad "the daemon logs its HTTP port" "$(cat "$T/d.log")"; finish; }
PORT=$(sed -n 's/.*edge: HTTP on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/d.log" | head -n 1)
B=http://127.0.0.1:$PORT

# get METHOD PATH: status in $ST, body in $T/body, headers in $T/hdr
get() {
        ST=$(curl -s --path-as-is -X "$1" -D "$T/hdr" -o "$T/body" -w '%{http_code}' --max-time 30 "$B$2")
}
hdr() { tr -d '\r' <"$T/hdr" | grep -i "^$1: " | head -n 1 | sed 's/^[^:]*: //'; }
security_headers() { # DESC: the headers every console answer carries
        csp=$(hdr Content-Security-Policy)
        case "$csp" in
        *"default-src 'none'"*"script-src 'self'"*"connect-src 'self'"*"frame-ancestors 'none'"*)
                case "$csp" in
                *unsafe-inline* | *unsafe-eval* | *"*"*) bad "$1: CSP without unsafe sources" "$csp" ;;
                *) ok "$1: strict Content-Security-Policy" ;;
                esac ;;
        *) bad "$1: strict Content-Security-Policy" "$csp" ;;
        esac
        [ "$(hdr X-Content-Type-Options)" = nosniff ] && ok "$1: nosniff" || bad "$1: nosniff" "$(cat "$T/hdr")"
}

get GET /
if [ "$ST" = 200 ] && cmp -s "$T/body" "$SRC/index.html"; then ok "GET / is index.html, anonymous under tokens: require"
else bad "GET / is index.html" "status $ST"; fi
[ "$(hdr Content-Type)" = "text/html; charset=utf-8" ] && ok "/ is text/html" || bad "/ is text/html" "$(hdr Content-Type)"
security_headers "/"
grep -q '<script type="module" src="/console/console.mjs"></script>' "$T/body" &&
        ok "the page loads its script from /console/" || bad "the page loads its script from /console/"
if grep -Eq '<script>|<script [^>]*>[^<]' "$T/body" || grep -Eqi ' on[a-z]+=' "$T/body"; then
        bad "no inline script or handler in the page"
else ok "no inline script or handler in the page"; fi

for f in console.mjs wire.mjs console.css favicon.svg; do
        get GET "/console/$f"
        if [ "$ST" = 200 ] && cmp -s "$T/body" "$SRC/$f"; then ok "/console/$f served as committed"
        else bad "/console/$f served as committed" "status $ST"; fi
        case $f in
        *.css) want="text/css; charset=utf-8" ;;
        *.svg) want="image/svg+xml" ;;
        *) want="text/javascript; charset=utf-8" ;;
        esac
        [ "$(hdr Content-Type)" = "$want" ] && ok "/console/$f is $want" || bad "/console/$f type" "$(hdr Content-Type)"
done
security_headers "/console/wire.mjs"

# HEAD: the headers with the body's length, and no body (raw socket: curl would wait for
# one), for an asset and for the errors of the console and of the other routes alike
head_raw() { # PATH: "STATUS-LINE CONTENT-LENGTH BYTES-AFTER-THE-HEADERS"
        "$PYTHON" - "$PORT" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(b"HEAD %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % sys.argv[2].encode())
d = b""
while True:
    x = s.recv(65536)
    if not x:
        break
    d += x
head, _, rest = d.partition(b"\r\n\r\n")
lines = head.decode().split("\r\n")
cl = [l.split(":", 1)[1].strip() for l in lines if l.lower().startswith("content-length:")]
print(lines[0], cl[0] if cl else "-", len(rest))
PY
}
want_len=$(wc -c <"$SRC/wire.mjs" | tr -d ' ')
got=$(head_raw /console/wire.mjs)
[ "$got" = "HTTP/1.1 200 OK $want_len 0" ] && ok "HEAD: 200, the length, no body" ||
        bad "HEAD: 200, the length, no body" "got '$got', wanted 'HTTP/1.1 200 OK $want_len 0'"
for p in /console/nope.js /no/such/route; do
        got=$(head_raw "$p")
        case $got in
        "HTTP/1.1 404 "*" 0") ok "HEAD $p: 404 without a body" ;;
        *) bad "HEAD $p: 404 without a body" "got '$got'" ;;
        esac
done
get GET "/?token=x"
[ "$ST" = 200 ] && ok "a query on / is ignored" || bad "a query on / is ignored" "status $ST"

for p in /console/ /console/index.html /console/nope.js /console/../console/wire.mjs \
        /console/%2e%2e/console/wire.mjs /console/..%2fconsole%2fwire.mjs /console/wire.mjs/ \
        /console//wire.mjs /console/WIRE.MJS /console/wire.mjs%00 /console/%2Fetc%2Fpasswd \
        /console/console-assets.c /index.html /console; do
        get GET "$p"
        if [ "$ST" = 404 ] && ! cmp -s "$T/body" "$SRC/wire.mjs"; then ok "GET $p: 404"
        else bad "GET $p: 404" "status $ST"; fi
done
get GET /console/nope.js
security_headers "a 404 under /console/"

for m in POST PUT DELETE; do
        get "$m" /
        if [ "$ST" = 405 ] && hdr Allow | grep -q 'GET, HEAD'; then ok "$m /: 405 with Allow"
        else bad "$m /: 405 with Allow" "status $ST"; fi
done

# The bus routes keep needing credentials: the console's routes opened nothing else.
get GET /store/x
[ "$ST" = 401 ] && ok "GET /store/x still 401 without a token" || bad "GET /store/x still 401" "status $ST"
get GET /nothing
[ "$ST" = 404 ] && ok "an unknown route is still 404" || bad "an unknown route is still 404" "status $ST"
kill -0 "$DPID" && ok "the daemon is still serving" || bad "the daemon is still serving"
finish
