#!/bin/sh
# SPDX-License-Identifier: MIT
# Frames a peer writes together are answered together (doc/protocol.md "Store"): the answers,
# and the store messages of the peer's own subscription between them, come in write order;
# frames cut anywhere between the daemon's reads are answered as if whole, and forwarded
# whole, in order, to a service whose send queue holds them;
# a peer that pipelines reads of a large value and never reads the answers is cut off with
# send_queue_bytes (507) like any slow reader, and the daemon goes on serving.
. "$(dirname "$0")/lib.sh"
unset HYBRID_BUS HYBRID_DB
PY=$(command -v "$PYTHON" || echo /usr/bin/python3)

start_daemon pipe "store: {durability: memory}
limits: {max_body: 60K, max_frame: 128K, send_queue_bytes: 256K}" || finish
rawbus "500 writes and reads written at once: answers and messages in write order" \
        pipeline "$SOCK" 500
rawbus "frames cut anywhere between reads, or several in one: each answered once, in order" \
        split "$SOCK"
rawbus "calls forwarded to a service that reads none until all are written, whole and cut" \
        forward "$SOCK" 150 1
BIG=$("$PY" -c "print(\"'\" + 'a' * 30000 + \"'\")")
hy store put /big/v "$BIG" || bad "put /big/v"
rawbus "a peer writing 200 reads of 30 KB at once and reading nothing is cut off" \
        pipestall "$SOCK" /big/v 200 3
check "the daemon logged the cut-off with the quota" \
        grep -q "quota send_queue_bytes exceeded" "$T/pipe.log"
expect "the daemon still serves" 0 "$BIG" hy store get /big/v
rawbus "and answers a pipeline after it" pipeline "$SOCK" 20
stop "$DPID"

finish
