#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# xhost-secret.py PORT SECRET_FILE: a client of the MQTT broker at 127.0.0.1:PORT against
# host a, whose calls between hosts are signed with the secret in SECRET_FILE
# (doc/cluster.md "Signed calls").  Prints "ready" on stderr once subscribed to a's call
# topic, then waits (30 s at most) for a call of host b carrying a token, and tries with it
# what a client that can read a's call topic could: the token in calls of its own (unsigned,
# a wrong MAC, a MAC of another secret), calls signed with the documented MAC but too old or
# from the future, and b's call itself sent again once b's last 64 calls moved on (with its
# "seq" property, and without).  Prints
# one "ok - ..." or "FAIL - ..." line per case; exits 1 if any failed.
import hashlib
import hmac
import os
import struct
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

port, secret_file = int(sys.argv[1]), sys.argv[2]
with open(secret_file, "rb") as f:
    SECRET = f.read().rstrip(b"\r\n")
HDR = struct.Struct("<IBBHQIHHHHI")
CALL, RESULT = 4, 5
APP = "org.hybridos.cli"
lock = threading.Condition()
captured = []
slow = []  # (payload, properties) of calls of method "wait"
results = {}  # call id -> [status, ...]
subacks = threading.Event()
nsub = [0]
failed = [0]


def say(ok, what, detail=""):
    print(("ok - " if ok else "FAIL - ") + what + (": " + detail if detail and not ok else ""), flush=True)
    if not ok:
        failed[0] += 1


def frame(ty, frm, to, member, body, call_id, timeout, status=0):
    f, t, m = frm.encode(), to.encode(), member.encode()
    return HDR.pack(len(body), ty, 0, status, call_id, timeout, len(f), len(t), len(m), 0, 0) + f + t + m + body


def mac_of(secret, topic, rt, ts, corr, token, payload):
    """doc/cluster.md "Signed calls": HMAC-SHA256 over the NUL-separated fields."""
    msg = b"\0".join([b"hybrid-call-1", topic.encode(), rt.encode(), ts.encode(), corr.hex().encode(),
                      token.encode(), payload])
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def on_connect(c, ud, flags, rc, props=None):
    for t in ("_hybrid/call/a", "_hybrid/reply/b", "_hybrid/reply/c"):
        c.subscribe(t, qos=1)


def on_subscribe(c, ud, mid, rcs, props=None):
    nsub[0] += 1
    if nsub[0] == 3:
        subacks.set()


def on_message(c, ud, msg):
    p = msg.payload
    if len(p) < HDR.size:
        return
    ty, st, cid = HDR.unpack_from(p)[1], HDR.unpack_from(p)[3], HDR.unpack_from(p)[4]
    with lock:
        if msg.topic == "_hybrid/call/a" and ty == CALL:
            fl, tl, ml = HDR.unpack_from(p)[6:9]
            if p[HDR.size + fl + tl:HDR.size + fl + tl + ml] == b"wait":
                slow.append((p, msg.properties))
            up = dict(getattr(msg.properties, "UserProperty", []) or [])
            if "token" in up and p[HDR.size:].find(b"@b/") >= 0:
                captured.append((p, msg.properties))
        elif msg.topic.startswith("_hybrid/reply/") and ty == RESULT:
            results.setdefault(cid, []).append(st)
        lock.notify_all()


def wait_for(pred, secs=20):
    end = time.monotonic() + secs
    with lock:
        while not pred():
            left = end - time.monotonic()
            if left <= 0:
                return False
            lock.wait(left)
    return True


def call(c, me, method, token=None, sign=None, ts_shift_ms=0, mac=None, cid=None):
    """Sends a CALL from @me/APP/x to @a/APP/srv; sign: the secret to sign with (None: no
    ts/mac).  Returns its call id."""
    cid = cid or int.from_bytes(os.urandom(8), "little")
    topic, rt = "_hybrid/call/a", "_hybrid/reply/" + me
    payload = frame(CALL, "@%s/%s/x" % (me, APP), "@a/%s/srv" % APP, method, b"{}", cid, 10000)
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = rt
    props.CorrelationData = struct.pack("<Q", cid)
    up = []
    if token:
        up.append(("token", token))
    if sign is not None or mac is not None:
        ts = str(int(time.time() * 1000) + ts_shift_ms)
        up.append(("ts", ts))
        up.append(("mac", mac or mac_of(sign, topic, rt, ts, props.CorrelationData, token or "", payload)))
    if up:
        props.UserProperty = up
    c.publish(topic, payload, qos=1, properties=props)
    return cid


def status_of(cid, secs=20):
    if not wait_for(lambda: cid in results, secs):
        return None
    return results[cid][0]


c = mqtt.Client(client_id="secret-thief", protocol=mqtt.MQTTv5)
c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
c.connect("127.0.0.1", port)
c.loop_start()
if not subacks.wait(30):
    print("FAIL - subscribed to the broker", flush=True)
    sys.exit(1)
print("ready", file=sys.stderr, flush=True)
if not wait_for(lambda: captured, 30):
    print("FAIL - a call of b with a token seen on _hybrid/call/a", flush=True)
    sys.exit(1)
payload, props = captured[0]
up = dict(props.UserProperty)
token = up["token"]
b_cid = HDR.unpack_from(payload)[4]
say("ts" in up and "mac" in up, "b's call carries the user properties ts and mac")
say(up.get("mac") == mac_of(SECRET, "_hybrid/call/a", props.ResponseTopic, up.get("ts", ""),
                            props.CorrelationData, token, payload),
    "... and its mac is the HMAC-SHA256 doc/cluster.md describes")
say(wait_for(lambda: b_cid in results) and results[b_cid] == [200], "b's own call is answered 200")

# the stolen token in calls of our own
st = status_of(call(c, "c", "getX", token=token))
say(st == 401, "the stolen token in an unsigned call: 401", "status %s" % st)
st = status_of(call(c, "c", "getX", token=token, mac="0" * 64))
say(st == 401, "... with a wrong mac: 401", "status %s" % st)
st = status_of(call(c, "c", "getX", token=token, sign=b"not the cluster's secret"))
say(st == 401, "... signed with another secret: 401", "status %s" % st)
st = status_of(call(c, "b", "getX", token=token, sign=b"not the cluster's secret"))
say(st == 401, "... posing as host b: 401", "status %s" % st)

# the documented MAC with the right secret: taken; its time checked
st = status_of(call(c, "c", "getX", sign=SECRET))
say(st == 200, "a call signed as doc/cluster.md says: 200", "status %s" % st)
st = status_of(call(c, "c", "getX", sign=SECRET, ts_shift_ms=-120000))
say(st == 401, "a signed call 120 s old: 401", "status %s" % st)
st = status_of(call(c, "c", "getX", sign=SECRET, ts_shift_ms=120000))
say(st == 401, "a signed call 120 s in the future: 401", "status %s" % st)

# b's call again, verbatim: first within b's last 64 calls (taken as a redelivery, run once:
# no second answer), then after 70 more calls of b
c.publish("_hybrid/call/a", payload, qos=1, properties=props)
ok = True
for i in range(70):
    st = status_of(call(c, "b", "getX", sign=SECRET))
    ok = ok and st == 200
say(ok, "70 signed calls as host b: 200 each")
say(results[b_cid] == [200], "b's call sent again at once runs once (no second answer)",
    "answers %s" % results[b_cid])
# as it was (with b's "seq"): taken as a copy of a message that came, dropped; without
# "seq" (which the MAC does not cover): a's replay cache refuses it
c.publish("_hybrid/call/a", payload, qos=1, properties=props)
bare = Properties(PacketTypes.PUBLISH)
bare.ResponseTopic = props.ResponseTopic
bare.CorrelationData = props.CorrelationData
bare.UserProperty = [(k, v) for k, v in props.UserProperty if k != "seq"]
c.publish("_hybrid/call/a", payload, qos=1, properties=bare)
say(wait_for(lambda: len(results[b_cid]) >= 2) and results[b_cid] == [200, 401],
    "b's call replayed after b's 70 later calls: dropped as a copy with its seq, 401 without",
    "answers %s" % results.get(b_cid))

# an answer forged for b's call to a slow endpoint of a: b drops it (unsigned), its call
# ends at its deadline (the shell checks)
print("forge", file=sys.stderr, flush=True)
if wait_for(lambda: slow, 30):
    p, props = slow[0]
    cid = HDR.unpack_from(p)[4]
    fl, tl = HDR.unpack_from(p)[6:8]
    caller = p[HDR.size:HDR.size + fl].decode()
    rp = Properties(PacketTypes.PUBLISH)
    rp.CorrelationData = props.CorrelationData
    c.publish("_hybrid/reply/b", frame(RESULT, "@a/%s/slow" % APP, caller, "wait", b'{"forged":1}', cid, 0, 200),
              qos=1, properties=rp)
    say(True, "a RESULT forged for b's call to a's slow endpoint sent")
else:
    say(False, "b's call to a's slow endpoint seen")
c.loop_stop()
sys.exit(1 if failed[0] else 0)
