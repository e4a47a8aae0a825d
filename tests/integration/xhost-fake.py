#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# xhost-fake.py PORT HOST TARGET APP RUNNER METHOD N: an MQTT client posing as cluster host
# HOST (doc/cluster.md "Topics"): subscribes <P>reply/HOST, then sends N CALLs of METHOD to
# @TARGET/APP/RUNNER one after the other on <P>call/TARGET (call ids 1..N), each once its
# answer to the previous one came.  Prints one line "ID STATUS" per RESULT received, until
# the RESULT of call N.  Since the target answers its calls in order, every RESULT of calls
# 1..N-1 has come by then.  Exits 0 then, 1 after 30 s without it.
import struct
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

port, me, target, app, runner, method, n = sys.argv[1:8]
port, n = int(port), int(n)
HDR = struct.Struct("<IBBHQIHHHHI")
CALL, RESULT = 4, 5
got = threading.Event()
last = threading.Event()
subacked = threading.Event()


def frame(ty, frm, to, member, body, call_id, timeout):
    f, t, m = frm.encode(), to.encode(), member.encode()
    return HDR.pack(len(body), ty, 0, 0, call_id, timeout, len(f), len(t), len(m), 0, 0) + f + t + m + body


def on_connect(c, ud, flags, rc, props=None):
    c.subscribe("_hybrid/reply/" + me, qos=1)


def on_subscribe(c, ud, mid, rcs, props=None):
    subacked.set()


def on_message(c, ud, msg):
    p = msg.payload
    if len(p) < HDR.size:
        return
    blen, ty, fl, st, cid = HDR.unpack_from(p)[:5]
    if ty != RESULT:
        return
    print(cid, st, flush=True)
    got.set()
    if cid == n:
        last.set()


c = mqtt.Client(client_id="fake-" + me, protocol=mqtt.MQTTv5)
c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
c.connect("127.0.0.1", port)
c.loop_start()
deadline = time.monotonic() + 30
if not subacked.wait(30):
    sys.exit(1)
for i in range(1, n + 1):
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "_hybrid/reply/" + me
    props.CorrelationData = struct.pack("<Q", i)
    body = frame(CALL, "@%s/org.example.fake/main" % me, "@%s/%s/%s" % (target, app, runner), method, b"{}",
                 i, 10000)
    got.clear()
    c.publish("_hybrid/call/" + target, body, qos=1, properties=props)
    if not got.wait(max(0.0, deadline - time.monotonic())):
        sys.exit(1)
ok = last.wait(max(0.0, deadline - time.monotonic()))
c.loop_stop()
sys.exit(0 if ok else 1)
