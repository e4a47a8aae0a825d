#!/bin/sh
# SPDX-License-Identifier: MIT
# The HTTP edge checks a request's token and DPoP proof on the daemon's verifying threads
# (doc/edge.md "Authentication", "Cost of a request"), not on its loop, and keeps the tokens
# it verified: HYBRID_TEST_VERIFY_GATE holds every signature check until the test writes a
# byte per check into a FIFO, so what is in flight is counted, never timed.
# - a request with a new token is held (2 checks: the token's block and the proof) while
#   an anonymous request and a bus peer are served; once let through it is answered;
# - the same token again costs its proof alone (1 check), and that proof is still checked:
#   a tampered one is 401, a replayed one too;
# - a client that goes away while its request is held, and a daemon stopped while one is,
#   are safe (the daemon serves on, then exits 0).
. "$HYB_IT_DIR/lib.sh"
DPOP="$HYB_IT_DIR/edge-dpop.py"
command -v curl >/dev/null || { bad "curl is installed"; finish; }

cd "$T" || exit 1
for k in iss holder; do
        "$HYBRID" token keygen "$T/$k.key" >/dev/null || { bad "keygen $k"; finish; }
done
"$HYBRID" token issue --key "$T/iss.key" --iss acme --sub alice --aud hub1 \
        --holder "$T/holder.key.pub" --ttl 3600 --cap '/sensors/#=read' >"$T/good" || bad "issue"

mkfifo "$T/gate" || { bad "mkfifo"; finish; }
export HYBRID_TEST_VERIFY_GATE="$T/gate"
start_daemon d "listen:
  http: 127.0.0.1:0
edge:
  anonymous: [\"/store/public/#\"]
auth:
  tokens: accept
  audience: hub1
  issuers:
    acme: $T/iss.key.pub
  verify_threads: 1
policy:
  store:
    - {furi: \"/public/#\", allow: [read, write]}
    - {furi: \"/sensors/#\", allow: [read, write]}
log:
  level: debug" || finish
unset HYBRID_TEST_VERIFY_GATE
port_known() { grep -q 'edge: HTTP on 127.0.0.1:[1-9]' "$T/d.log"; }
wait_until 30 port_known || { bad "the daemon logs its HTTP port" "$(cat "$T/d.log")"; finish; }
PORT=$(sed -n 's/.*edge: HTTP on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/d.log" | head -n 1)
B=http://127.0.0.1:$PORT
hy store put /sensors/t 21 >/dev/null || bad "store put /sensors/t"
hy store put /public/p 7 >/dev/null || bad "store put /public/p"

# held NAME [badsig]: GET /store/sensors/t with the token and a fresh proof (badsig: one
# character of its signature changed), in the background; status and body go to NAME.out
held() {
        n=$1
        proof=$("$PYTHON" "$DPOP" GET "$B/store/sensors/t" "$T/good" "$T/holder.key")
        [ "${2:-}" = badsig ] && proof=$("$PYTHON" -c 'import sys; p = sys.argv[1]; c = p[-10]
print(p[:-10] + ("A" if c != "A" else "B") + p[-9:])' "$proof")
        echo "$proof" >"$T/$n.proof"
        bg "$n" curl -s --max-time 120 -w ' %{http_code}' -H "Authorization: Bearer $(cat "$T/good")" \
                -H "DPoP: $proof" "$B/store/sensors/t"
}
# logged N K: the N-th "token being verified" line of the edge counts K checks
logged() { [ "$(grep 'edge: token being verified' "$T/d.log" | sed -n "$1p")" != "" ] &&
        grep 'edge: token being verified' "$T/d.log" | sed -n "$1p" | grep -q "($2 signatures)$"; }
release() { printf "%$1s" '' >"$T/gate"; }
answered() { has_line "$T/$1.out" "$2"; }

# a new token: its block and its proof, held
held r1
wait_until 30 logged 1 2 || bad "a new token: 2 checks (its block, the proof) on the pool" "$(grep 'edge:' "$T/d.log")"
ST=$(curl -s --max-time 30 -o "$T/anon.out" -w '%{http_code}' "$B/store/public/p")
check "an anonymous request is served while a token is being verified" sh -c "[ '$ST' = 200 ] && [ \"\$(cat '$T/anon.out')\" = 7 ]"
expect "a bus peer is served meanwhile" 0 21 hy store get /sensors/t
check "the held request is not answered yet" sh -c "[ ! -s '$T/r1.out' ]"
release 2
wait_until 60 answered r1 '^21 200$' && ok "once its 2 checks ran, it is answered 200" ||
        bad "the held request is answered" "$(cat "$T/r1.out" "$T/r1.err" 2>/dev/null)"

# the same token again: the proof alone (the token is in the cache of verified tokens)
held r2
wait_until 30 logged 2 1 || bad "a token verified before: 1 check (the proof)" "$(grep 'edge:' "$T/d.log")"
release 1
wait_until 60 answered r2 '^21 200$' && ok "... and it is answered 200" ||
        bad "the second request is answered" "$(cat "$T/r2.out" "$T/r2.err" 2>/dev/null)"
# the proof is still checked on a cached token
held r3 badsig
wait_until 30 logged 3 1 || bad "a proof with a bad signature, of a cached token, is checked" "$(grep 'edge:' "$T/d.log")"
release 1
wait_until 60 answered r3 ' 401$' && ok "... and refused 401" ||
        bad "the tampered proof is refused" "$(cat "$T/r3.out")"
check "... logged with its reason" grep -q "edge: 401 token .* of alice: DPoP: the signature is not the holder's" "$T/d.log"
# a replayed proof of a cached token
bg r4 curl -s --max-time 120 -w ' %{http_code}' -H "Authorization: Bearer $(cat "$T/good")" \
        -H "DPoP: $(cat "$T/r2.proof")" "$B/store/sensors/t"
wait_until 30 logged 4 1 || bad "the replayed proof is checked" "$(grep 'edge:' "$T/d.log")"
release 1
wait_until 60 answered r4 ' 401$' && ok "a replayed proof with a cached token: 401" ||
        bad "the replayed proof is refused" "$(cat "$T/r4.out")"

# a client that goes away while its request is held
held r5
wait_until 30 logged 5 1 || bad "the fifth request is being verified"
kill "$BPID" 2>/dev/null
release 1
expect "the daemon serves on after a client left mid-verification" 0 21 hy store get /sensors/t
ST=$(curl -s --max-time 30 -o "$T/anon.out" -w '%{http_code}' "$B/store/public/p")
check "... and the edge too" [ "$ST" = 200 ]
# a daemon stopped while a request is held: it exits 0
held r6
wait_until 30 logged 6 1 || bad "the sixth request is being verified"
stop "$DPID"
check "a daemon stopped while a request is held exits 0" [ "$STOP_RC" = 0 ]
finish
