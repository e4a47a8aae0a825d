#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# mqtt-cut.py BROKER_PORT MODE TOPIC: a TCP proxy on a free loopback port between one MQTT
# client and the broker on BROKER_PORT, which cuts the connection once at the moment a QoS 1
# message on TOPIC has been taken but its PUBACK not yet delivered, so that MQTT redelivers
# it (DUP) on the next connection of the client's persistent session.
#
#   MODE sub: the broker's PUBLISH on TOPIC reaches the client; the client's PUBACK is
#             dropped and the connection cut: the broker sends the message again.
#   MODE pub: the client's PUBLISH on TOPIC reaches the broker; the broker's PUBACK is
#             dropped and the connection cut: the client sends the message again.
#
# Prints "port N" once listening, "cut" when it cut, then "redelivered" (sub) or "resent"
# (pub) when the message on TOPIC passes again with the DUP flag.  Every later connection
# is passed through untouched.  Runs until killed.
import socket
import sys
import threading

broker_port, mode, topic = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
lock = threading.Lock()
state = {"armed": True, "pid": None, "again": False}


def say(s):
    print(s, flush=True)


def packets(buf):
    """Whole MQTT packets at the start of buf: a list of (bytes, fixed header byte), rest."""
    out = []
    while len(buf) >= 2:
        n, mult, i = 0, 1, 1
        while True:
            if i >= len(buf):
                return out, buf
            b = buf[i]
            n += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
            if i > 4:
                raise ValueError("bad remaining length")
        if len(buf) < i + n:
            return out, buf
        out.append((buf[: i + n], i))
        buf = buf[i + n :]
    return out, buf


def publish_of(pkt, hl):
    """(topic, packet id, dup) of a QoS 1 PUBLISH, or None."""
    b0 = pkt[0]
    if b0 >> 4 != 3 or (b0 >> 1) & 3 != 1:
        return None
    tl = int.from_bytes(pkt[hl : hl + 2], "big")
    t = pkt[hl + 2 : hl + 2 + tl]
    pid = int.from_bytes(pkt[hl + 2 + tl : hl + 4 + tl], "big")
    return t, pid, bool(b0 & 8)


def puback_of(pkt, hl):
    if pkt[0] >> 4 != 4:
        return None
    return int.from_bytes(pkt[hl : hl + 2], "big")


def pump(src, dst, publisher_side, conn):
    """Copies src to dst packet by packet.  publisher_side: src sends the PUBLISH we watch
    (the broker in mode sub, the client in mode pub); the other side sends its PUBACK."""
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            buf += data
            pkts, buf = packets(buf)
            for pkt, hl in pkts:
                drop = False
                with lock:
                    if publisher_side:
                        p = publish_of(pkt, hl)
                        if p and p[0] == topic:
                            if state["armed"] and state["pid"] is None:
                                state["pid"] = p[1]
                            elif not state["armed"] and p[2] and not state["again"]:
                                state["again"] = True
                                say("redelivered" if mode == "sub" else "resent")
                    elif state["armed"] and state["pid"] is not None and puback_of(pkt, hl) == state["pid"]:
                        state["armed"] = False
                        drop = True
                if drop:
                    say("cut")
                    for s in conn:
                        try:
                            s.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                    return
                dst.sendall(pkt)
    except (OSError, ValueError):
        pass
    for s in conn:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(client):
    try:
        up = socket.create_connection(("127.0.0.1", broker_port))
    except OSError:
        client.close()
        return
    conn = (client, up)
    # mode sub: the broker publishes; mode pub: the client does
    a = threading.Thread(target=pump, args=(client, up, mode == "pub", conn), daemon=True)
    b = threading.Thread(target=pump, args=(up, client, mode == "sub", conn), daemon=True)
    a.start()
    b.start()
    a.join()
    b.join()
    client.close()
    up.close()


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(16)
say("port %d" % ls.getsockname()[1])
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
