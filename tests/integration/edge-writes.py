#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# HTTP/1.1 keep-alive against hybridd's edge (edge-writes.sh): the answers of
# POST /bus/org.example.edge/e1/whoami (bus-probe edge-server: the params as they came,
# doc/edge.md "One request responder") over one connection, written by the edge in the turn
# the answer came in.  Modes (each prints "ok ..." lines, exits 1 at the first wrong answer):
#   seq PORT N        N requests one after the other on one keep-alive connection; prints
#                     "ready" once the connection is open and waits for a line on stdin first
#   pipeline PORT N   N requests in one send, N answers in order
#   close PORT        "Connection: close": the answer, then the end of the stream
#   big PORT PATH N   two answers {"big": N times "x"} of `hybrid serve` at PATH to a client
#                     with a small receive buffer: each written in several parts
import json
import socket
import sys

PATH = "/bus/org.example.edge/e1/whoami"


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def connect(port, rcvbuf=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(60)
    s.connect(("127.0.0.1", port))
    return s


def request(body, close=False, path=PATH):
    b = json.dumps(body).encode()
    head = "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" % path
    head += "Content-Length: %d\r\n" % len(b)
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + b


class Reader:
    def __init__(self, s):
        self.s, self.buf = s, b""

    def fill(self):
        d = self.s.recv(65536)
        if not d:
            return False
        self.buf += d
        return True

    def answer(self):
        """One answer: (status, headers dict, body)."""
        while b"\r\n\r\n" not in self.buf:
            if not self.fill():
                fail("the connection ended before an answer's headers")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "-1"))
        if n < 0:
            fail("an answer without Content-Length: %r" % head)
        while len(self.buf) < n:
            if not self.fill():
                fail("the connection ended in an answer's body")
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, hdrs, body

    def eof(self):
        return not self.buf and not self.fill()


def check(st, body, want):
    if st != 200:
        fail("status %d: %r" % (st, body[:200]))
    got = json.loads(body)
    if got.get("transport") != "http" or got.get("params") != want:
        fail("answer %r, wanted the params %r over http" % (body[:200], want))


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "seq":
        n = int(sys.argv[3])
        s = connect(port)
        r = Reader(s)
        s.sendall(request({"i": -1}))   # the connection counted, its first answer in
        st, _, body = r.answer()
        check(st, body, {"i": -1})
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range(n):
            s.sendall(request({"i": i}))
            st, _, body = r.answer()
            check(st, body, {"i": i})
        print("ok %d answers in turn on one connection" % n)
    elif mode == "pipeline":
        n = int(sys.argv[3])
        s = connect(port)
        s.sendall(b"".join(request({"p": i}) for i in range(n)))
        r = Reader(s)
        for i in range(n):
            st, _, body = r.answer()
            check(st, body, {"p": i})
        print("ok %d pipelined answers in order" % n)
    elif mode == "close":
        s = connect(port)
        s.sendall(request({"c": 1}, close=True))
        r = Reader(s)
        st, _, body = r.answer()
        check(st, body, {"c": 1})
        if not r.eof():
            fail("the connection stays open after Connection: close")
        print("ok Connection: close answered, then closed")
    elif mode == "big":
        path, size = sys.argv[3], int(sys.argv[4])
        s = connect(port, rcvbuf=4096)
        r = Reader(s)
        for i in range(2):
            s.sendall(request({}, path=path))
            st, _, body = r.answer()
            if st != 200 or json.loads(body) != {"big": "x" * size}:
                fail("answer %d of %s: status %d, %d bytes" % (i, path, st, len(body)))
        print("ok two answers of %d bytes whole on one connection" % len(body))
    else:
        fail("unknown mode " + mode)


main()
