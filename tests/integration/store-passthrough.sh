#!/bin/sh
# SPDX-License-Identifier: MIT
# The broker never re-encodes a value it only forwards (issue 8; doc/protocol.md "Store"):
# transient and retained writes reach a store subscriber as the bytes the writer sent, in
# spellings the broker's formatter would not give (1.50, extra spaces, 1e2), while the store
# keeps the parsed value (a read answers 1.5-style canonical text) and a value that does not
# parse is refused, not forwarded.  With a memory store and with a file at durability normal.
. "$(dirname "$0")/lib.sh"
unset HYBRID_BUS HYBRID_DB
start_daemon mem "store:
  durability: memory" || finish
rawbus "memory store: forwarded values are the bytes received" passthrough "$SOCK"
stop "$DPID"

start_daemon file "store:
  path: $T/pt.db
  durability: normal" || finish
rawbus "file store: forwarded values are the bytes received" passthrough "$SOCK"
stop "$DPID"

finish
