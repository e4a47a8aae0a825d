#!/bin/sh
# SPDX-License-Identifier: MIT
# auth.feed_peers (doc/token.md "Between daemons"): a fetch that waits on a feed peer that
# stalls does not hold up the daemon's stop.  Three peers that accept and never answer:
# one that sends no challenge, one that does the handshake and answers no call
# (listRevocations), a ws:// one that answers no upgrade.  Each time hybridd is started
# with that peer alone, the peer sees the fetch arrive, SIGTERM is sent, and hybridd must
# be gone within 5 s (its connect waits up to 15 s and a call up to its timeout: a stop
# that waited for them would take that long) and exit 0.
. "${HYB_IT_DIR:?}/lib.sh"
cd "$T" || exit 1
H=$HYBRID

"$H" token keygen "$T/hub.key" >/dev/null || bad "keygen hub"
"$H" token keygen "$T/feeder.key" >/dev/null || bad "keygen feeder"
"$H" token issue --key "$T/hub.key" --iss hub --sub feeder --aud far \
        --holder "$T/feeder.key.pub" --cap '/nothing=read' >"$T/feeder.tok" || bad "issue"

conf() { # PEER
        printf 'auth:\n  tokens: require\n  audience: here\n  issuers:\n    hub: %s\n  feed_peers:\n    - %s\n' \
                "$T/hub.key.pub" "$1"
}
gone() { ! kill -0 "$1" 2>/dev/null; }

# stalled NAME MODE WHERE PEER SEEN: a stall peer, hybridd asking it, SIGTERM once SEEN
stalled() {
        nm=$1 mode=$2 where=$3 peer=$4 seen=$5
        bg "$nm-peer" "$PYTHON" "$HYB_IT_DIR/token-feed-stall.py" "$mode" "$where"
        PPID_=$BPID
        if ! wait_secs 20 has_line "$T/$nm-peer.out" '^listening$'; then
                bad "$nm: the stalling peer listens" "$(cat "$T/$nm-peer.err")"
                return
        fi
        [ "$mode" = tcp ] && peer=$(printf '%s' "$peer" |
                sed "s|@PEER@|ws://127.0.0.1:$(cat "$where")/bus|")
        start_daemon "$nm" "$(conf "$peer")" || return
        check "$nm: the fetch reaches the peer and waits ($seen)" \
                wait_secs 20 has_line "$T/$nm-peer.out" "^$seen"
        kill -TERM "$DPID"
        check "$nm: hybridd exits within 5 s of SIGTERM" wait_secs 5 gone "$DPID"
        gone "$DPID" || kill -KILL "$DPID" 2>/dev/null
        wait "$DPID"
        check "$nm: ... with status 0" [ "$?" = 0 ]
        kill -TERM "$PPID_" 2>/dev/null
        wait "$PPID_" 2>/dev/null
}

stalled silent silent "$T/p-silent.sock" "$T/p-silent.sock" accepted
stalled mute mute "$T/p-mute.sock" "$T/p-mute.sock" 'call listRevocations'
stalled ws tcp "$T/ws.port" \
        "{bus: @PEER@, token: $T/feeder.tok, key: $T/feeder.key}" accepted
finish
