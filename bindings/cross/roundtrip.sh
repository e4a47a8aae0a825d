#!/bin/sh
# SPDX-License-Identifier: MIT
# roundtrip.sh - int64 and double values round-trip exactly C -> Python -> Node -> Lua -> C
# through a real hybridd's store, JSON text and echo procedures served in each language
# (bindings/cross/README.md).  RT_N values (default 10 000), RT_SEED (default: random, printed).
#
#   C (rt gen) writes /rt/c  --python reads it, sends each list through Lua's echo--> /rt/py
#   --node reads /rt/py, through Python's echo--> /rt/node  --lua reads it, through Node's
#   echo--> /rt/lua;  rt check compares /rt/c, /rt/py (exact), /rt/node, /rt/lua (the JS
#   rule), the JSON text of every value and chunk, and the values sent from C through the
#   echo of each language (C's own, Python's and Lua's exact, Node's by the JS rule).
#
# The JS rule (the node binding's, doc/node.md): JavaScript has one number type, so a real
# holding an integral value in the safe range (|v| <= 2^53-1, not -0.0) reads as a plain
# Number and is written back as an int.  rt check expects exactly that after a JS leg and
# exact kind and bits for every other value; peer.js checks how the edge values read there.
#
# Environment (bindings/cross/meson.build): HYBRIDD HYBRID HYB_IT_DIR RT PYTHON NODE LUA,
# PYTHONPATH, HYBRID_NODE_PACKAGE, LUA_PATH, LUA_CPATH, HYBRID_LIBRARY.  Exit 77 (skipped)
# when a binding was not built.
. "$HYB_IT_DIR/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

N=${RT_N:-10000}
SEED=${RT_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "# $N values, seed $SEED (repeat with RT_SEED=$SEED RT_N=$N)"
for b in "${LUA_BINDING_DIR:-}" "${NODE_BINDING_DIR:-}" "${PY_BINDING_DIR:-}" "${NODE:-}" "${LUA:-}"; do
        [ -n "$b" ] && [ -e "$b" ] || { echo "# skipped: a binding is not built"; exit 77; }
done

start_daemon rt "store:
  durability: memory
limits:
  max_pending_calls: 4096" || finish

bg pyecho "$PYTHON" "$HERE/peer.py" echo "$SOCK" org.example.py.rtecho
bg nodeecho "$NODE" "$HERE/peer.js" echo "$SOCK" org.example.node.rtecho
bg luaecho "$LUA" "$HERE/peer.lua" echo "$SOCK" org.example.lua.rtecho
bg cecho "$RT" serve "$SOCK" org.example.c.rtecho
for s in pyecho nodeecho luaecho cecho; do
        ready $s || { bad "$s serves echo" "$(cat "$T/$s.err")"; finish; }
done
EP_PY=$(head -n1 "$T/pyecho.out") EP_NODE=$(head -n1 "$T/nodeecho.out")
EP_LUA=$(head -n1 "$T/luaecho.out") EP_C=$(head -n1 "$T/cecho.out")

leg() {
        d=$1; shift
        run "$@"
        if [ "$RC" = 0 ]; then
                ok "$d"
        else
                bad "$d" "$(cat "$T/out" "$T/err" | head -n 30)"
                echo "# seed $SEED"
                finish
        fi
}
leg "C writes $N values to /rt/c" "$RT" gen "$SOCK" /rt/c "$SEED" "$N"
leg "Python copies /rt/c to /rt/py through Lua's echo" \
        "$PYTHON" "$HERE/peer.py" copy "$SOCK" /rt/c /rt/py "$EP_LUA"
leg "Node copies /rt/py to /rt/node through Python's echo (edge values read by the JS rule)" \
        "$NODE" "$HERE/peer.js" copy "$SOCK" /rt/py /rt/node "$EP_PY"
leg "Lua copies /rt/node to /rt/lua through Node's echo" \
        "$LUA" "$HERE/peer.lua" copy "$SOCK" /rt/node /rt/lua "$EP_NODE"
run "$RT" check "$SOCK" "$SEED" "$N" -x /rt/c -x /rt/py -j /rt/node -j /rt/lua \
        -e "$EP_C" -e "$EP_PY" -e "$EP_LUA" -E "$EP_NODE"
sed 's/^/    /' "$T/out"
if [ "$RC" = 0 ]; then
        ok "C reads every copy back: kind and bits exact (the JS rule after Node), JSON and echo legs"
else
        bad "C reads every copy back exactly" "$(cat "$T/err")"
        echo "# seed $SEED (repeat with RT_SEED=$SEED RT_N=$N)"
fi
finish
