#!/bin/sh
# SPDX-License-Identifier: MIT
# At durability full hybridd commits a write (and its fsync) on the store's own thread:
# while a writer waits for its fsync, other peers are read and written to, and the writer
# is answered only once its write is on disk (doc/config.md "store").  The disk is made
# slow by fsync-hold.so (LD_PRELOAD): its fsync waits while $T/hold exists.
. "$(dirname "$0")/lib.sh"
unset HYBRID_BUS HYBRID_DB
[ -n "${HYB_FSYNC_SHIM:-}" ] && [ -f "$HYB_FSYNC_SHIM" ] || { bad "fsync-hold.so built"; finish; }
# An ASan build wants its runtime first among the preloaded libraries.
ASAN=$(ldd "$HYBRIDD" 2>/dev/null | awk '/libasan/ { print $3 }')
LD_PRELOAD="${ASAN:+$ASAN }$HYB_FSYNC_SHIM"
HYB_FSYNC_HOLD=$T/hold
export LD_PRELOAD HYB_FSYNC_HOLD
start_daemon f "store:
  path: $T/f.db
  durability: full" || finish
unset LD_PRELOAD
expect "a first write, on a disk that does not wait" 0 "" hy store put /seen 1
# a subscriber: the daemon then also polls its store file on its loop
bg watch hy store watch '/w/#'
check "a subscriber is ready" wait_until 20 has_line "$T/watch.err" ready
: >"$T/hold"
bg slow hy store put /slow 2
SLOWPID=$BPID
check "the second write's commit waits in its fsync" wait_until 20 test -e "$T/hold.waiting"
# While it waits: other peers are served, reads and the loop's own calls alike.
expect "a reader is served while the writer waits on fsync" 0 "1" timeout 20 "$HYBRID" --bus "$SOCK" store get /seen
expect "... and the daemon's counters" 0 "*" timeout 20 "$HYBRID" --bus "$SOCK" store get /sys/bus/connections
expect "a transient write is served while the writer waits" 0 "" timeout 20 "$HYBRID" --bus "$SOCK" store put /w/t 7 --transient
check "... and reaches the subscriber" wait_until 20 has_line "$T/watch.out" "^/w/t	7"
check "the writer is not answered before its fsync" kill -0 "$SLOWPID"
rm -f "$T/hold"
wait "$SLOWPID"
check "once the disk is done, the writer is answered" test "$?" -eq 0
stop "$DPID"
check "clean shutdown" test "$STOP_RC" -eq 0
# the write is on disk: a restart without the shim reads it
start_daemon f2 "store:
  path: $T/f.db
  durability: full" || finish
expect "the acknowledged write is there after a restart" 0 "2" hy store get /slow
stop "$DPID"
finish
