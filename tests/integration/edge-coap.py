#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The CoAP edge over raw UDP (doc/edge.md "CoAP"), against a running hybridd whose
listen.coap is 127.0.0.1:PORT, edge.anonymous granting /store/public/#, /watch/public/#
and /bus/org.example.edge/+/hold (a procedure that never answers):

    edge-coap.py MODE PORT [ARGS...]

Each mode prints "ok <case>" / "FAIL <case>: why" lines; exit 1 on a failure.  The
datagrams are built here from RFC 7252 (and RFC 7641 for Observe), not by libcoap.
  hostile            garbage datagrams, truncated headers, tokens longer than 8 bytes,
                     truncated and reserved option encodings, a payload marker without a
                     payload, options of thousands of bytes: the daemon answers a valid
                     request from another socket after each
  pending            16 calls of hold from 127.0.0.21 wait (empty ACKs); the 17th is 5.03;
                     127.0.0.22 is served meanwhile
  observers          8 observations from 127.0.0.31 are registered; the 9th is 5.03;
                     127.0.0.32 observes meanwhile; one deregistered (Observe 1) makes room
                     for one; once the 8 are reset (RST) and a change is made, 127.0.0.31
                     observes again
  totals             the bounds in all: 128 Block1 uploads under way from 127.0.1.1..8, the
                     129th (127.0.1.9) 5.03; 64 observations from 127.0.2.1..8, the 65th 5.03
  slow LOG           an observer that acknowledges nothing while 40 changes are made: its
                     subscription ends (5.03 "did not keep up") once 32 notifications
                     wait, the daemon logs it, and serves others
"""
import os
import random
import socket
import struct
import subprocess
import sys
import time

HOST = "127.0.0.1"
fails = 0
CON, NON, ACK, RST = 0, 1, 2, 3
GET, POST, PUT, DELETE = 1, 2, 3, 4


def say(ok, case, why=""):
    global fails
    if ok:
        print("ok " + case)
    else:
        fails += 1
        print("FAIL %s: %s" % (case, why))
    sys.stdout.flush()


def opt_enc(n):
    if n < 13:
        return n, b""
    if n < 269:
        return 13, bytes([n - 13])
    return 14, struct.pack("!H", n - 269)


def build(mtype, code, mid, token=b"", opts=(), payload=b""):
    """A CoAP message (RFC 7252 section 3); opts: (number, bytes) in any order."""
    out = bytes([0x40 | (mtype << 4) | len(token), code]) + struct.pack("!H", mid) + token
    last = 0
    for num, val in sorted(opts, key=lambda o: o[0]):
        d, dx = opt_enc(num - last)
        l, lx = opt_enc(len(val))
        out += bytes([(d << 4) | l]) + dx + lx + val
        last = num
    if payload:
        out += b"\xff" + payload
    return out


def path_opts(path):
    return [(11, seg.encode()) for seg in path.strip("/").split("/")]


def parse(d):
    """(type, code, mid, token, options dict num -> [bytes], payload) or None."""
    if len(d) < 4 or d[0] >> 6 != 1:
        return None
    tkl = d[0] & 15
    mtype, code, mid = (d[0] >> 4) & 3, d[1], struct.unpack("!H", d[2:4])[0]
    token, i, num, opts = d[4:4 + tkl], 4 + tkl, 0, {}
    while i < len(d) and d[i] != 0xFF:
        b = d[i]
        i += 1
        dl, ll = b >> 4, b & 15
        vals = []
        for x in (dl, ll):
            if x == 13:
                vals.append(d[i] + 13)
                i += 1
            elif x == 14:
                vals.append(struct.unpack("!H", d[i:i + 2])[0] + 269)
                i += 2
            else:
                vals.append(x)
        num += vals[0]
        opts.setdefault(num, []).append(d[i:i + vals[1]])
        i += vals[1]
    payload = d[i + 1:] if i < len(d) else b""
    return mtype, code, mid, token, opts, payload


def code_str(c):
    return "%d.%02d" % (c >> 5, c & 31)


class Peer:
    def __init__(self, port, src=HOST):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((src, 0))
        self.s.settimeout(30)
        self.dst = (HOST, port)
        self.mid = random.randrange(0, 60000)

    def send(self, data):
        self.s.sendto(data, self.dst)

    def next_mid(self):
        self.mid = (self.mid + 1) & 0xFFFF
        return self.mid

    def recv(self, timeout=30):
        self.s.settimeout(timeout)
        try:
            d, _ = self.s.recvfrom(65536)
        except socket.timeout:
            return None
        return parse(d)

    def request(self, code, path, token, mtype=CON, opts=(), payload=b"", timeout=30):
        """Sends a request; returns its response (piggybacked or separate, ACKed)."""
        mid = self.next_mid()
        self.send(build(mtype, code, mid, token, list(path_opts(path)) + list(opts), payload))
        end = time.time() + timeout
        while time.time() < end:
            m = self.recv(max(0.1, end - time.time()))
            if m is None:
                return None
            t, c, rmid, tok, o, p = m
            if t == CON:
                self.send(build(ACK, 0, rmid))
            if c != 0 and tok == token:
                return m
        return None


def served(port, src="127.0.0.2", case="another client is served"):
    p = Peer(port, src)
    m = p.request(GET, "/store/public/probe", os.urandom(4))
    say(m is not None and code_str(m[1]) in ("2.05", "4.04"), case,
        "no answer" if m is None else code_str(m[1]))


def hostile(port):
    p = Peer(port, "127.0.0.5")  # its half-made uploads count against 127.0.0.5 only
    bad = [
        b"",
        b"\x40",                                   # a truncated header
        b"\x00\x01\x00\x01",                       # version 0
        b"\x4f\x01\x00\x01" + b"A" * 15,           # token length 15 (reserved)
        b"\x49\x01\x00\x01" + b"T" * 9,            # token length 9 (reserved)
        b"\x40\x01\x00\x02\xd0",                   # option delta 13 without its byte
        b"\x40\x01\x00\x03\xe0\x01",               # option delta 14 with one byte of two
        b"\x40\x01\x00\x04\xf0",                   # option delta 15 (reserved)
        b"\x40\x01\x00\x05\x0f",                   # option length 15 (reserved)
        b"\x40\x01\x00\x06\xbd",                   # Uri-Path, length 13: its byte missing
        b"\x40\x01\x00\x07\xb5abc",                # Uri-Path of 5 bytes, 3 there
        b"\x40\x01\x00\x08\xff",                   # a payload marker without payload
        b"\x40\x02\x00\x09" + b"\xff" * 40,        # markers everywhere
        b"\x40\xe0\x00\x0a",                       # a response code sent to the server
        b"\x60\x00\x00\x0b",                       # an ACK for nothing
        b"\x70\x00\x00\x0c",                       # an RST for nothing
        build(CON, GET, 13, b"t", [(11, b"store"), (11, b"public"), (11, b"x" * 3000)]),
        build(CON, GET, 14, b"t", [(11, b"bus")] + [(15, b"k%d=%s" % (i, b"v" * 200)) for i in range(40)]),
        build(CON, POST, 15, b"t", path_opts("/bus/org.example.edge/e1/hold") + [(65001, b"9" * 40)], b"{}"),
        build(CON, GET, 16, b"t", path_opts("/store/public/a") + [(2049, b"critical unknown")]),
        build(CON, PUT, 17, b"t", path_opts("/store/public/a") + [(27, b"\x0e")], b"{" * 10),
        build(CON, PUT, 18, b"t", path_opts("/store/public/a") + [(27, b"\xff\xff\xfe"), (60, b"\xff\xff\xff\xff")], b"x" * 1024),
        build(CON, GET, 19, b"t", path_opts("/watch/public/#") + [(6, b"\x00\x00\x00\x00")]),
        build(CON, 7, 20, b"t", path_opts("/store/public/a")),   # method 0.07
    ]
    rnd = random.Random(7)
    for _ in range(200):
        bad.append(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 64))))
    for d in bad:
        p.send(d)
    served(port, "127.0.0.6", "after %d hostile datagrams the daemon answers a valid request" % len(bad))
    # answers to the well-formed odd ones were error codes, never 2.xx for the critical unknown
    q = Peer(port, "127.0.0.6")
    m = q.request(GET, "/store/public/a", b"u", opts=[(2049, b"x")])
    say(m is not None and code_str(m[1]) == "4.02", "an unknown critical option: 4.02 Bad Option",
        "no answer" if m is None else code_str(m[1]))


def pending(port):
    p = Peer(port, "127.0.0.21")
    acks = 0
    for i in range(16):
        tok = b"p%02d" % i
        p.send(build(CON, POST, p.next_mid(), tok,
                     path_opts("/bus/org.example.edge/e1/hold") + [(65001, b"20000")], b"{}"))
        m = p.recv(30)
        if m and m[0] == ACK and m[1] == 0:
            acks += 1
    say(acks == 16, "16 calls from 127.0.0.21 wait for the callee (empty ACKs)", "%d ACKs" % acks)
    m = p.request(POST, "/bus/org.example.edge/e1/hold", b"p16",
                  opts=[(65001, b"20000")], payload=b"{}", timeout=30)
    say(m is not None and code_str(m[1]) == "5.03" and b"pending" in m[5],
        "the 17th pending request of 127.0.0.21: 5.03", repr(m))
    served(port, "127.0.0.22", "127.0.0.22 is served while 127.0.0.21 has 16 pending")


def observe(p, path, tok):
    """Registers; returns the registration's answer."""
    return p.request(GET, path, tok, opts=[(6, b"")])


def observers(port):
    ps = []
    okc = 0
    for i in range(8):
        p = Peer(port, "127.0.0.31")
        m = observe(p, "/watch/public/o/#", b"o%d" % i)
        if m and code_str(m[1]) == "2.05" and 6 in m[4]:
            okc += 1
        ps.append(p)
    say(okc == 8, "8 observations from 127.0.0.31 registered (2.05 with Observe)", "%d" % okc)
    p9 = Peer(port, "127.0.0.31")
    m = observe(p9, "/watch/public/o/#", b"o9")
    say(m is not None and code_str(m[1]) == "5.03", "the 9th observation of 127.0.0.31: 5.03",
        repr(m))
    o2 = Peer(port, "127.0.0.32")
    m = observe(o2, "/watch/public/o/#", b"x2")
    say(m is not None and code_str(m[1]) == "2.05", "127.0.0.32 observes meanwhile", repr(m))
    # a deregistration (GET with Observe 1, the same token) frees its place at once
    m = ps[0].request(GET, "/watch/public/o/#", b"o0", opts=[(6, b"\x01")])
    say(m is not None and code_str(m[1]) == "2.05" and 6 not in m[4],
        "a deregistration (Observe 1) is answered 2.05 without Observe", repr(m))
    m = observe(p9, "/watch/public/o/#", b"o9b")
    say(m is not None and code_str(m[1]) == "2.05",
        "... and 127.0.0.31 has room for one more observation", repr(m))
    ps[0] = p9
    # each of the 8 resets the next notification: libcoap drops them, the edge frees them
    w = Peer(port, "127.0.0.33")
    w.request(PUT, "/store/public/o/v", b"w1", payload=b"1")
    for p in ps:
        m = p.recv(30)
        if m and m[0] == CON:
            p.send(build(RST, 0, m[2]))
    w.request(PUT, "/store/public/o/v", b"w2", payload=b"2")
    deadline, m = time.time() + 30, None
    while time.time() < deadline:
        p10 = Peer(port, "127.0.0.31")
        m = observe(p10, "/watch/public/o/#", b"o10")
        if m is not None and code_str(m[1]) == "2.05":
            break
        time.sleep(0.5)
    say(m is not None and code_str(m[1]) == "2.05",
        "after the 8 reset their notifications, 127.0.0.31 observes again", repr(m))


def slow(port, log):
    p = Peer(port, "127.0.0.41")
    m = observe(p, "/watch/public/slow/#", b"s1")
    say(m is not None and code_str(m[1]) == "2.05", "the slow observer is registered", repr(m))
    w = Peer(port, "127.0.0.42")
    for i in range(40):
        r = w.request(PUT, "/store/public/slow/v%d" % i, b"w%d" % i, payload=b"%d" % i)
        if r is None or code_str(r[1]) != "2.04":
            say(False, "the writer's PUT %d" % i, repr(r))
            return
    deadline = time.time() + 30
    logged = False
    while time.time() < deadline and not logged:
        with open(log, errors="replace") as f:
            logged = "notifications waiting" in f.read()
        time.sleep(0.1)
    say(logged, "the daemon logs the observer that did not keep up")
    # now acknowledge: the first notification (retransmitted meanwhile), then the end
    got, end = [], None
    deadline = time.time() + 60
    while time.time() < deadline and end is None:
        m = p.recv(max(0.1, deadline - time.time()))
        if m is None:
            break
        if m[0] == CON:
            p.send(build(ACK, 0, m[2]))
        if m[1] == 0 or m[3] != b"s1":
            continue
        if code_str(m[1]) == "2.05":
            if m[5] not in got:
                got.append(m[5])
        else:
            end = m
    say(end is not None and code_str(end[1]) == "5.03" and b"did not keep up" in end[5],
        "the subscription ends with 5.03 'did not keep up'", repr(end))
    say(1 <= len(got) <= 33, "at most 32 queued notifications (+ the one in flight) reached it "
        "(%d of 40)" % len(got), "%d" % len(got))
    served(port, "127.0.0.43", "the daemon serves others after")


def totals(port):
    """The bounds in all, from many addresses: 128 pending (uploads here) and 64 observers."""
    n = 0
    peers = []
    for a in range(1, 9):
        p = Peer(port, "127.0.1.%d" % a)
        peers.append(p)
        for i in range(16):
            # the first 16-byte block of a Block1 upload (RFC 7959: NUM 0, M, SZX 0)
            m = p.request(PUT, "/store/public/up/%d/%d" % (a, i), b"u%d" % i,
                          opts=[(27, b"\x08")], payload=b"[" + b"1," * 7 + b"1")
            if m is not None and code_str(m[1]) == "2.31":
                n += 1
    say(n == 128, "128 uploads from 8 addresses under way (2.31 Continue)", "%d" % n)
    p = Peer(port, "127.0.1.9")
    m = p.request(PUT, "/store/public/up/9/0", b"u9", opts=[(27, b"\x08")],
                  payload=b"[" + b"1," * 7 + b"1")
    say(m is not None and code_str(m[1]) == "5.03",
        "the 129th pending request or upload, from a 9th address: 5.03", repr(m))
    n = 0
    for a in range(1, 9):
        for i in range(8):
            p = Peer(port, "127.0.2.%d" % a)
            peers.append(p)
            m = observe(p, "/watch/public/t/#", b"t%d" % i)
            if m is not None and code_str(m[1]) == "2.05":
                n += 1
    say(n == 64, "64 observations from 8 addresses registered", "%d" % n)
    p = Peer(port, "127.0.2.9")
    m = observe(p, "/watch/public/t/#", b"t9")
    say(m is not None and code_str(m[1]) == "5.03",
        "the 65th observation, from a 9th address: 5.03", repr(m))
    for q in peers:  # their observations end: libcoap resets nothing, the edge frees them
        q.s.close()


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "totals":
        totals(port)
    elif mode == "hostile":
        hostile(port)
    elif mode == "pending":
        pending(port)
    elif mode == "observers":
        observers(port)
    elif mode == "slow":
        slow(port, sys.argv[3])
    else:
        print("unknown mode " + mode)
        return 2
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
