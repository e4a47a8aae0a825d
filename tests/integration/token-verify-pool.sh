#!/bin/sh
# SPDX-License-Identifier: MIT
# The threads that check token signatures at connect (doc/config.md `auth`: verify_threads,
# max_verifying, uid_max_verifying) against a real hybridd.  HYBRID_TEST_VERIFY_GATE holds
# every signature check until the test writes a byte per check into a FIFO, so what the
# daemon has in flight is counted, never timed:
# - uid_max_verifying 2: a uid's third connect while two are being verified is refused 429
#   (logged), another uid still gets its turn (as root: as uid 65534);
# - max_verifying, lowered by a reload to what is in flight: the next connect is 503; the
#   connects under way are verified again under the new configuration and get in;
# - a peer being verified is not served (its command waits), then is, once the checks ran;
# - a peer that goes away while its token is checked, and a daemon stopped while one is,
#   are safe (the daemon serves on, then exits 0; the ASan run of this suite checks memory).
. "$HYB_IT_DIR/lib.sh"

cd "$T" || exit 1
for k in iss holder; do
        "$HYBRID" token keygen "$T/$k.key" >/dev/null || { bad "keygen $k"; finish; }
done
"$HYBRID" token issue --key "$T/iss.key" --iss acme --sub alice --aud hub1 \
        --holder "$T/holder.key.pub" --ttl 3600 --cap '/sensors/#=read' >"$T/good" || bad "issue"
tok() { "$HYBRID" --bus "$SOCK" --token "$T/good" --key "$T/holder.key" "$@"; }
# in_flight N: N verifications logged so far (the CLI announces a new token ahead of its
# AUTH, doc/protocol.md "Handshake": "token announced, being verified" is its blocks, then
# "token being verified" its proof, or all of it again after a reload; a token verified
# before is not announced: its AUTH's proof only)
verifying() { [ "$(grep -c 'being verified' "$T/d.log")" -ge "$1" ]; }
in_flight() { wait_until 30 verifying "$1"; }
# release: one byte per check logged so far (a signature of the token's blocks, and the
# proof's two parts) and not yet let through (a check started again after a reload is
# logged again), so nothing is let through ahead
RELEASED=0
release() {
        all=$(sed -n 's/.*being verified (\([0-9]*\) checks)$/\1/p' "$T/d.log" | awk '{ s += $1 } END { print s + 0 }')
        [ "$all" -gt "$RELEASED" ] && printf "%$((all - RELEASED))s" '' >"$T/gate"
        RELEASED=$all
}
# served NAME: (letting the checks through as they come) NAME printed the value
served() { release; has_line "$T/$1.out" '^21$'; }
conf() { # MAX UID_MAX
        printf '%s\n' "auth:
  tokens: accept
  audience: hub1
  issuers:
    acme: $T/iss.key.pub
  verify_threads: 1
  max_verifying: $1
  uid_max_verifying: $2
limits:
  auth_timeout_ms: 120000
log:
  level: debug"
}

mkfifo "$T/gate" || { bad "mkfifo"; finish; }
export HYBRID_TEST_VERIFY_GATE="$T/gate"
start_daemon d "$(conf 3 2)" || finish
unset HYBRID_TEST_VERIFY_GATE
hy store put /sensors/t 21 >/dev/null # no token: the uid policy, no signature to check

# uid_max_verifying: two connects of this uid held, the third refused 429
bg r1 tok store get /sensors/t
in_flight 1 || bad "first connect being verified"
bg r2 tok store get /sensors/t
in_flight 2 || bad "second connect being verified"
# (the CLI exits 3 when it cannot connect, the refusal's status in its message)
expect_err "a third connect of the uid: 429" 3 '^hybrid: store: 429 ' tok store get /sensors/t
check "... logged with its reason" grep -q 'auth refused for uid [0-9]* pid [0-9]*: 429 too many token verifications of this uid at once' "$T/d.log"
check "the two held connects are not served yet" sh -c "[ ! -s '$T/r1.out' ] && [ ! -s '$T/r2.out' ] && ! grep -q 'connected (uid [0-9]* pid [0-9]*) with token' '$T/d.log'"
N=2
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
        mkdir -p "$NOBODY_DIR" && cp "$T/good" "$T/holder.key" "$NOBODY_DIR/" &&
                chown 65534 "$NOBODY_DIR/good" "$NOBODY_DIR/holder.key" || bad "stage the token for uid 65534"
        bg n1 as_nobody "$HYBRID" --bus "$SOCK" --token "$NOBODY_DIR/good" --key "$NOBODY_DIR/holder.key" store get /sensors/t
        N=3
        in_flight 3 || bad "another uid's connect is taken while this uid is at its bound"
        check "... and not refused" sh -c "! grep -q 'auth refused for uid 65534' '$T/d.log'"
else
        echo "# not root (or no setpriv): another uid's turn not tried"
fi

# max_verifying lowered by a reload to what is in flight: the next connect is 503
conf "$N" 8 >"$T/d.yaml"
kill -HUP "$DPID"
wait_until 30 has_line "$T/d.log" 'configuration reloaded' || bad "reloaded"
expect_err "a connect over max_verifying: 503" 3 '^hybrid: store: 503 ' tok store get /sensors/t
check "... logged with its reason" grep -q 'auth refused for uid [0-9]* pid [0-9]*: 503 too many token verifications at once' "$T/d.log"

# the gate opens: the held connects are verified (again, under the reloaded configuration)
for n in r1 r2 $( [ "$N" = 3 ] && echo n1 ); do
        wait_until 60 served "$n" || true
        expect "held connect $n served once verified" 0 "21" cat "$T/$n.out"
done
check "no 401 for them" sh -c "! grep -q ': 401 ' '$T/d.log'"
check "verified again after the reload" [ "$(grep -c 'token being verified (2 checks)' "$T/d.log")" -ge "$N" ]
bg after tok store get /sensors/t
wait_until 60 served after || true
expect "a connect after them (the token now seen before)" 0 "21" cat "$T/after.out"

# a peer that goes away while its token is checked
bg gone tok store get /sensors/t
GONE=$BPID
in_flight $((2 * N + 2)) || bad "the going peer is being verified"
check "the going peer is held" kill -0 "$GONE"
kill -KILL "$GONE"
wait "$GONE" 2>/dev/null
release
bg next tok store get /sensors/t
wait_until 60 served next || true
expect "served on after a peer left during its verification" 0 "21" cat "$T/next.out"
check "the daemon runs" kill -0 "$DPID"

# a daemon stopped while a token is checked exits 0
bg last tok store get /sensors/t
in_flight $((2 * N + 4)) || bad "the last peer is being verified"
check "the last peer is held" kill -0 "$BPID"
stop "$DPID"
check "stopped during a verification: exit 0" [ "$STOP_RC" = 0 ]
check "no sanitizer report" sh -c "! grep -q 'Sanitizer' '$T/d.log'"
finish
