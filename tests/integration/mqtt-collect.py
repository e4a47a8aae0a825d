#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# mqtt-collect.py PORT FILTER COUNT: subscribes FILTER on the broker at 127.0.0.1:PORT,
# prints "ready" on stderr once the broker's SUBACK came, then prints COUNT messages as
# "TOPIC PAYLOAD" lines (what mosquitto_sub -v prints) and exits 0; exits 1 after 30 s.
import sys

import paho.mqtt.client as mqtt

port, flt, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
seen = []


def on_connect(c, ud, flags, rc):
    c.subscribe(flt, qos=1)


def on_subscribe(c, ud, mid, granted):
    print("ready", file=sys.stderr, flush=True)


def on_message(c, ud, msg):
    print(msg.topic, msg.payload.decode("utf-8", "replace"), flush=True)
    seen.append(msg)
    if len(seen) >= count:
        c.disconnect()


c = mqtt.Client()
c.on_connect = on_connect
c.on_subscribe = on_subscribe
c.on_message = on_message
c.connect("127.0.0.1", port)
c.loop_start()
import time

deadline = time.monotonic() + 30
while len(seen) < count and time.monotonic() < deadline:
    time.sleep(0.02)
c.loop_stop()
sys.exit(0 if len(seen) >= count else 1)
