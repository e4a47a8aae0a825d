#!/bin/sh
# SPDX-License-Identifier: MIT
# hybridd killed with -9 while a client writes at durability full: every write the client saw
# acknowledged is there after the restart.  ROUNDS rounds (default 20; `meson test` runs 3):
#   ROUNDS=20 HYBRIDD=... HYBRID=... HYB_IT_DIR=tests/integration sh kill9-store.sh
. "$(dirname "$0")/lib.sh"
unset HYBRID_BUS HYBRID_DB
ROUNDS=${ROUNDS:-20}
CONF="store:
  path: $T/k.db
  durability: full"
total=0
r=1
while [ "$r" -le "$ROUNDS" ]; do
        start_daemon k "$CONF" || finish
        : >"$T/acked"
        # The writer records a key only once its put returned 0 (acknowledged).
        (
                i=0
                while "$HYBRID" --bus "$SOCK" store put "/r$r/k$i" "$i" 2>/dev/null; do
                        echo "$i" >>"$T/acked"
                        i=$((i + 1))
                done
        ) &
        WPID=$!
        sleep 0.4
        kill -KILL "$DPID"
        wait "$DPID" 2>/dev/null
        wait "$WPID"
        rm -f "$SOCK"
        n=$(wc -l <"$T/acked")
        start_daemon k "$CONF" || finish
        "$HYBRID" --bus "$SOCK" store get "/r$r/+" >"$T/got" 2>"$T/err"
        missing=0
        while read -r i; do
                grep -q "^/r$r/k$i	$i\$" "$T/got" || missing=$((missing + 1))
        done <"$T/acked"
        if [ "$n" -gt 0 ] && [ "$missing" -eq 0 ]; then
                ok "round $r: $n acknowledged writes, all present after kill -9"
        else
                bad "round $r: $n acknowledged, $missing missing" "$(head -c 300 "$T/err")"
        fi
        total=$((total + n))
        stop "$DPID"
        r=$((r + 1))
done
echo "# $total acknowledged writes over $ROUNDS rounds"
finish
