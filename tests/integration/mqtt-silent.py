#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# A stand-in MQTT 5 broker that accepts a connection (CONNACK) and then answers nothing:
# no SUBACK, no PUBACK.  cluster-embed.sh points a program without a daemon at it to see
# its reads end at their deadline.  Usage: mqtt-silent.py PORTFILE NOTEFILE: listens on a
# free loopback port (written to PORTFILE), appends to NOTEFILE the topic filters
# of each SUBSCRIBE; stops
# by itself after 60 s.
import os
import socket
import sys
import threading
import time


def read_packet(c):
    h = c.recv(1)
    if not h:
        return None, b""
    mult, n = 1, 0
    while True:
        b = c.recv(1)
        if not b:
            return None, b""
        n += (b[0] & 0x7F) * mult
        mult *= 128
        if not b[0] & 0x80:
            break
    body = b""
    while len(body) < n:
        chunk = c.recv(n - len(body))
        if not chunk:
            return None, b""
        body += chunk
    return h[0], body


def filters(body):
    # packet id, then MQTT 5 properties (a varint length), then (filter, options) pairs
    i, mult, n = 2, 1, 0
    while True:
        b = body[i]
        i += 1
        n += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    i += n
    out = []
    while i + 2 <= len(body):
        ln = body[i] * 256 + body[i + 1]
        out.append(body[i + 2:i + 2 + ln].decode("utf-8", "replace"))
        i += 2 + ln + 1
    return out


def serve(c, note):
    try:
        while True:
            t, body = read_packet(c)
            if t is None:
                return
            if t >> 4 == 1:  # CONNECT
                c.sendall(bytes([0x20, 3, 0, 0, 0]))
            elif t >> 4 == 8:  # SUBSCRIBE: its filters noted, never answered
                with open(note, "a") as f:
                    for flt in filters(body):
                        f.write(flt + "\n")
    except OSError:
        return


s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("%d\n" % s.getsockname()[1])
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.settimeout(1)
end = time.monotonic() + 60
while time.monotonic() < end:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    threading.Thread(target=serve, args=(c, sys.argv[2]), daemon=True).start()
