#!/bin/sh
# SPDX-License-Identifier: MIT
# cross.sh - procedures served in Python, Node and Lua called from each other language and from
# C (`hybrid call`), their errors (a policy's 400, a raised 403) carried across with the same
# status and code, and events fired in one language received in another
# (bindings/cross/README.md).  Expected answers follow from what the peers serve (peer.py's
# header): add {a, b} -> {sum: a+b, lang}, deny -> 403; statuses and codes from doc/common.md's
# table (400 HYB_E_BAD_REQUEST, 403 HYB_E_FORBIDDEN); tokens issued in one language, verified
# in another and presented by a third (401 without one or with the wrong key, 403 outside its
# capabilities: doc/token.md, "What each operation needs").
#
# Environment: as roundtrip.sh.  Exit 77 (skipped) when a binding was not built.
. "$HYB_IT_DIR/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
for b in "${LUA_BINDING_DIR:-}" "${NODE_BINDING_DIR:-}" "${PY_BINDING_DIR:-}" "${NODE:-}" "${LUA:-}"; do
        [ -n "$b" ] && [ -e "$b" ] || { echo "# skipped: a binding is not built"; exit 77; }
done

start_daemon cross "store:
  durability: memory" || finish

# peer LANG ARGS...: runs the peer of LANG (py, node, lua)
peer() {
        l=$1; shift
        case $l in
        py) "$PYTHON" "$HERE/peer.py" "$@" ;;
        node) "$NODE" "$HERE/peer.js" "$@" ;;
        lua) "$LUA" "$HERE/peer.lua" "$@" ;;
        esac
}
name() { case $1 in py) echo python ;; *) echo "$1" ;; esac; }

# peer_cmd LANG: the interpreter and script of LANG's peer
peer_cmd() {
        case $1 in
        py) echo "$PYTHON $HERE/peer.py" ;;
        node) echo "$NODE $HERE/peer.js" ;;
        lua) echo "$LUA $HERE/peer.lua" ;;
        esac
}
langs=${CROSS_LANGS:-py node lua} # CROSS_LANGS: a subset, to debug one binding
for l in $langs; do
        # shellcheck disable=SC2046 # the command is words without spaces (paths of the build)
        bg "srv$l" $(peer_cmd $l) serve "$SOCK" "org.example.$l.cross"
done
for l in $langs; do
        ready "srv$l" || { bad "the $(name $l) peer serves add and deny" "$(cat "$T/srv$l.err")"; finish; }
        eval "EP_$l=\$(head -n1 \"\$T/srv$l.out\")"
done
ep() { eval "echo \$EP_$1"; }

# --- every language calls every other language's procedures
for caller in $langs; do
        for callee in $langs; do
                [ "$caller" = "$callee" ] && continue
                e=$(ep $callee)
                expect "$(name $caller) calls $(name $callee)'s add" 0 "ok lang=$(name $callee) sum=5" \
                        peer "$caller" call "$SOCK" "$e" add '{"a":2,"b":3}'
                expect "$(name $caller) gets 400 HYB_E_BAD_REQUEST from $(name $callee)'s policy" 1 \
                        "error 400 HYB_E_BAD_REQUEST" peer "$caller" call "$SOCK" "$e" add '{"a":"x","b":3}'
                expect "$(name $caller) gets the 403 $(name $callee)'s procedure raised" 1 \
                        "error 403 HYB_E_FORBIDDEN" peer "$caller" call "$SOCK" "$e" deny '{"why":1}'
        done
done

# --- C (the hybrid CLI) calls each language: the body as the callee encoded it, compared as JSON
json_eq() { "$PYTHON" -c 'import json,sys; sys.exit(json.loads(sys.argv[1]) != json.loads(sys.argv[2]))' "$1" "$2"; }
for callee in $langs; do
        e=$(ep $callee)
        run "$HYBRID" --bus "$SOCK" call "$e" add '{"a":40,"b":2}'
        if [ "$RC" = 0 ] && json_eq "$(OUT)" "{\"sum\": 42, \"lang\": \"$(name $callee)\"}"; then
                ok "hybrid call (C) calls $(name $callee)'s add"
        else
                bad "hybrid call (C) calls $(name $callee)'s add" "exit $RC: $(OUT) $(cat "$T/err")"
        fi
        expect_err "hybrid call (C) gets $(name $callee)'s 403 with its message" 1 \
                "403.*denied by $(name $callee)" "$HYBRID" --bus "$SOCK" call "$e" deny '{"why":1}'
        expect_err "hybrid call (C) gets 400 from $(name $callee)'s policy" 1 "^hybrid: call: 400 " \
                "$HYBRID" --bus "$SOCK" call "$e" add '{"a":1.5,"b":2}'
done

# --- a binary body (Python sends bytes) reaches a Lua procedure as a string of its bytes
case " $langs " in *" lua "*)
        expect "a binary body from Python reaches Lua's procedure as its bytes" 0 \
                "[('first', 0), ('last', 16), ('n', 3)]" "$PYTHON" -c 'import sys, hybrid
with hybrid.Bus(socket=sys.argv[1], app="org.example.py.bytes") as b:
    print(sorted(b.call(sys.argv[2], "bytes", b"\x00\xff\x10", timeout=30.0).items()))' \
                "$SOCK" "$(ep lua)" ;;
esac

# --- events in a ring, Python -> Node -> Lua -> Python, each listener subscribed by glob before the
# generator exists (a standing pattern), each firer counting one delivery
set -- $langs
first=$1 ring=""
while [ $# -gt 1 ]; do ring="$ring $1 $2"; shift; done
set -- $ring $1 $first
while [ $# -gt 0 ]; do
        from=$1 to=$2; shift 2
        bubble=TEMP_$(echo "$from" | tr a-z A-Z)
        bg "lst$to" $(peer_cmd $to) listen "$SOCK" "org.example.$to.listener" \
                "@localhost/org.example.$from.*/*" "$bubble"
        ready "lst$to" || { bad "the $(name $to) listener subscribes" "$(cat "$T/lst$to.err")"; continue; }
        run $(peer_cmd $from) fire "$SOCK" "org.example.$from.sensor" "$bubble" c 21
        [ "$RC" = 0 ] || bad "$(name $from) fires $bubble" "$(cat "$T/out" "$T/err")"
        wait_until 20 has_line "$T/lst$to.out" '^event '
        expect "$(name $to) receives the event $(name $from) fired" 0 \
                "event @localhost/org.example.$from.sensor/ $bubble c=21" \
                sed -E 's|^(event @localhost/[^/]*/)[^ ]*|\1|' "$T/lst$to.out"
done

# --- tokens across the languages: issued in X for Y's key, verified in Z, presented by Y to a
# hybridd that requires tokens (doc/token.md), read back by C (the hybrid tool) with it
"$HYBRID" token keygen "$T/iss.key" >/dev/null || { bad "hybrid token keygen"; finish; }
for l in $langs; do
        run $(peer_cmd $l) keygen "$T/$l.key"
        if [ "$RC" = 0 ] && [ -s "$T/$l.key" ] && [ -s "$T/$l.key.pub" ]; then
                ok "$(name $l) writes a key pair (PATH, PATH.pub)"
        else
                bad "$(name $l) writes a key pair" "$(cat "$T/out" "$T/err")"
        fi
done
start_daemon tok "auth:
  tokens: require
  audience: hub1
  issuers:
    acme: $T/iss.key.pub
store:
  durability: memory" || finish
set -- $langs
ring="$* $*"
for x in $langs; do
        set -- $ring
        while [ "$1" != "$x" ]; do shift; done
        y=$2 z=$3
        tf=$T/token-$x-$y
        run $(peer_cmd $x) tokissue "$T/iss.key" "$T/$y.key.pub" "issued-by-$(name $x)" "$tf"
        if [ "$RC" = 0 ]; then ok "$(name $x) issues a token for $(name $y)'s key"
        else bad "$(name $x) issues a token for $(name $y)'s key" "$(cat "$T/out" "$T/err")"; fi
        expect "$(name $z) verifies the token $(name $x) issued" 0 \
                "ok sub=issued-by-$(name $x) iss=acme" peer "$z" tokverify "$tf" "$T/iss.key.pub"
        expect "$(name $y) writes and reads the store with it" 0 "ok by-$(name $y)" \
                peer "$y" tokstore "$SOCK" "$tf" "$T/$y.key" "/x/$y" "by-$(name $y)"
        expect "$(name $y) gets 403 HYB_E_FORBIDDEN outside its caps" 1 "error 403 HYB_E_FORBIDDEN" \
                peer "$y" tokstore "$SOCK" "$tf" "$T/$y.key" "/y/$y" "no"
        expect "$(name $y) gets 401 HYB_E_UNAUTHORIZED without a token" 1 \
                "error 401 HYB_E_UNAUTHORIZED" peer "$y" tokstore "$SOCK" - - "/x/$y" "no"
        expect "$(name $z) gets 401 HYB_E_UNAUTHORIZED with its own key and that token" 1 \
                "error 401 HYB_E_UNAUTHORIZED" peer "$z" tokstore "$SOCK" "$tf" "$T/$z.key" "/x/$z" "no"
        expect "hybrid store get (C) with that token reads what $(name $y) wrote" 0 "'by-$(name $y)'" \
                "$HYBRID" --bus "$SOCK" --token "$tf" --key "$T/$y.key" store get "/x/$y"
done
finish
