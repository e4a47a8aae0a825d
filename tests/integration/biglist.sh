#!/bin/sh
# SPDX-License-Identifier: MIT
# Huge registrations and big builtin lists against a real hybridd: a policy over
# limits.max_policy_bytes is refused (413); 1 024 procedures are listed in bounded
# pages (doc/protocol.md "List pages") by four readers at once while a bystander
# echoes; an unpaged list over one page is refused, not built.  The daemon's RSS
# (from /proc) and the bystander's latency are printed, never asserted.
. "$(dirname "$0")/lib.sh"

start_daemon big "limits:
  max_policy_bytes: 4K" || finish
run "$PYTHON" "$HYB_IT_DIR/biglist.py" run "$SOCK" "$DPID" 64 16 4000 4096
cat "$T/out"
if [ "$RC" -eq 0 ]; then ok "biglist.py: every case passed"; else bad "biglist.py" "$(cat "$T/err")"; fi
check "hybridd survived the lists" kill -0 "$DPID"

# hybrid list follows the pages: all 300 procedures of one endpoint (about 900 KiB of
# policies, several pages) are shown, in text and in JSON.
bg hold "$PYTHON" "$HYB_IT_DIR/biglist.py" hold "$SOCK" 300 3000
ready hold || bad "300 procedures registered" "$(cat "$T/hold.err" "$T/hold.out")"
run hy list --json @localhost/org.example.many/m
n=$("$PYTHON" -c 'import json,sys; d=json.load(sys.stdin); print(len({p["procedureName"] for p in d[0]["procedures"]}))' <"$T/out" 2>/dev/null)
check "hybrid list --json <endpoint> shows all 300 procedures (got ${n:-none}, exit $RC)" test "$RC" -eq 0 -a "${n:-0}" -eq 300
run hy list
n=$(grep -c '^  procedure p[0-9]' "$T/out")
check "hybrid list shows all 300 procedures (got $n, exit $RC)" test "$RC" -eq 0 -a "$n" -eq 300
finish
