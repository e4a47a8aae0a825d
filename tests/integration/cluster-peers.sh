#!/bin/sh
# SPDX-License-Identifier: MIT
# Other clients of the MQTT broker (doc/cluster.md), against one hybridd, host a.
# 1-2. Overlapping subscriptions: a broker such as mosquitto sends a message once per
# subscription of the client that matches it, so a host whose peers watch //+/# (filter
# +/#, which also matches _hybrid/call/<host>), //k/# and //k/t gets three copies of each
# message.  Each must still count once: a call from another host runs once and is
# answered once, and a subscriber gets a transient message once.
# 3. A huge payload published by any client costs the host nothing (MQTT 5 Maximum Packet
# Size: the broker drops it for this host).
# 4. A forged presence "offline" of host a (retained, as a's will is) makes host b take a
# for gone: a, still connected, says "online" again, and b's calls reach a again.
# 5. The broker restarts without persistence (no session, no retained message): a's
# mirror is resynchronised, a value no longer retained is gone from it too.
# Skipped (77) when mosquitto or mosquitto-clients are not installed.
. "$HYB_IT_DIR/lib.sh"

need_mosquitto
start_mosquitto || finish
PORT=$MQ_PORT MPID=$MQPID

start_daemon a "host: a
cluster: {broker: \"mqtt://127.0.0.1:$PORT\"}
policy:
  store:
    - {uid: 0, furi: \"//+/#\", allow: [read, write, delete, subscribe]}" || finish
connected() { grep -q "cluster: connected to" "$T/a.log"; }
check "a connects to the broker" wait_until 20 connected

serve_bg srv getX '{"x":42}' --runner srv || finish
for w in all:'//+/#' k:'//k/#' kt:'//k/t'; do
        bg "w${w%%:*}" hy store watch "${w#*:}"
        check "a's watch ${w#*:} is ready" ready "w${w%%:*}"
done

# 1. three calls of a fake host c, one after the other: one RESULT each, all 200
if "$PYTHON" "$HYB_IT_DIR/xhost-fake.py" "$PORT" c a org.hybridos.cli srv getX 3 >"$T/fake.out" 2>"$T/fake.err"; then
        printf '1 200\n2 200\n3 200\n' >"$T/fake.want"
        check "each call of another host runs once and is answered once" cmp -s "$T/fake.want" "$T/fake.out"
        cmp -s "$T/fake.want" "$T/fake.out" || sed 's/^/    # got: /' "$T/fake.out"
else
        bad "the fake host c gets the answers of its calls" "$(cat "$T/fake.out" "$T/fake.err")"
fi

# 2. two transient messages on k/t: each watcher gets each once (the second one marks the end)
mosquitto_pub -p "$PORT" -t k/t -m 1 -q 1 || bad "mosquitto_pub k/t 1"
mosquitto_pub -p "$PORT" -t k/t -m '"end"' -q 1 || bad "mosquitto_pub k/t end"
for w in all k kt; do
        if wait_until 20 has_line "$T/w$w.out" end; then
                printf '//k/t\t1\n//k/t\t'"'"'end'"'"'\n' >"$T/w$w.want"
                check "watcher $w gets each transient message once" cmp -s "$T/w$w.want" "$T/w$w.out"
                cmp -s "$T/w$w.want" "$T/w$w.out" || sed 's/^/    # got: /' "$T/w$w.out"
        else
                bad "watcher $w gets the messages" "$(cat "$T/w$w.out" "$T/w$w.err")"
        fi
done

# 3. 48 MiB published on k/t (the broker's default limit is 256 MiB), then a small marker:
# once the marker came, a's peak RSS has not grown by the payload
APID=$DPID
hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$APID/status"; }
H0=$(hwm)
head -c 50331648 /dev/zero | tr '\0' x | mosquitto_pub -p "$PORT" -t k/t -q 1 -s || bad "mosquitto_pub 48 MiB"
mosquitto_pub -p "$PORT" -t k/t -m '"after"' -q 1 || bad "mosquitto_pub k/t after"
if wait_until 30 has_line "$T/wk.out" after; then
        H1=$(hwm)
        check "a 48 MiB message of another client: a's peak RSS grows < 16 MiB ($H0 -> $H1 KiB)" \
                [ $((H1 - H0)) -lt 16384 ]
else
        bad "the marker after the big message reaches a's watcher" "$(cat "$T/wk.out" "$T/wk.err")"
fi

# 4. host b, whose calls to a work; then another client publishes a's presence "offline"
start_daemon b "host: b
cluster: {broker: \"mqtt://127.0.0.1:$PORT\"}" || finish
SOCK=$T/b.sock
call_ok() { hy call @a/org.hybridos.cli/srv getX --timeout 2000 >/dev/null 2>&1; }
check "b calls a" wait_until 20 call_ok
mosquitto_pub -p "$PORT" -r -q 1 -t _hybrid/presence/a -m offline || bad "mosquitto_pub the forged offline"
b_saw() { grep -q "cluster: host a left" "$T/b.log"; }
check "b takes the forged offline" wait_until 20 b_saw
presence() { [ "$(mosquitto_sub -p "$PORT" -t _hybrid/presence/a -C 1 -W 5 2>/dev/null)" = online ]; }
check "a says online again (its retained presence)" wait_until 10 presence
check "b's calls reach a again" wait_until 10 call_ok

# 5. //k/gone mirrored on a (under its watch //k/#), then a broker without it
SOCK=$T/a.sock
mosquitto_pub -p "$PORT" -r -q 1 -t k/gone -m 7 || bad "mosquitto_pub -r k/gone 7"
gone_is() { [ "$(hy store get //k/gone 2>/dev/null)" = "$1" ]; }
check "a mirrors //k/gone = 7" wait_until 20 gone_is 7
stop_mosquitto
start_mosquitto || finish
new_sessions() { [ "$(grep -c 'session new' "$T/a.log")" -ge 2 ]; }
check "a connects again to the restarted broker (a new session)" wait_until 30 new_sessions
absent() { hy store get //k/gone >/dev/null 2>&1; [ $? = 1 ]; }
check "... and //k/gone, no longer retained, is gone from a's mirror" wait_until 20 absent
check "a's watcher of //k/# is told of the delete" wait_until 20 has_line "$T/wk.out" "^//k/gone	noobj\$"
kill -0 "$APID" 2>/dev/null
check "a still runs" [ $? = 0 ]
finish
