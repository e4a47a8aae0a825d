#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The bounds of the HTTP edge (doc/edge.md "Limits") over raw sockets, against a
running hybridd:

    edge-limits.py MODE PORT [ARGS...]

Modes (each prints "ok <case>" / "FAIL <case>: why" lines; exit 1 on a failure):
  headers             a request whose headers pass 16 KiB: refused (4xx), the next served
  malformed           garbage request lines, a bad version, a NUL: 400 or a close, never a hang
  slow                a request line sent and nothing more: closed by the daemon (within 60 s)
  per-address         32 keep-alive connections from 127.0.0.1, each served once and held
                      open: the 33rd is answered 503 and closed, another address is served,
                      and 127.0.0.1 is served again once one of the 32 closed
  total               256 such connections from 127.0.0.2..9, idle: the 257th (from
                      127.0.0.10) is served and the least recently used idle connection of
                      an address holding the most is closed for it; a host at its 32 is 503
  framing             requests framed two ways (RFC 9112 3.2, 6.3): two Content-Length
                      headers, a Content-Length that is not digits ("+1"), two Host
                      headers: 400 and the connection closed (what follows on it is
                      not read as a request), nothing written
  unsent              32 connections from 127.0.0.41 that send nothing are held; the 33rd
                      is closed unanswered while the 32 are still open (so by the cap, not
                      by the timeout); another address is served; a request on one of the
                      32 is served; 256 such connections from 127.0.0.50..57: the 257th
                      (127.0.0.58) is served and one of the 256 closed for it; 32 more from
                      127.0.0.58 keep at least floor(256/9) places; served again once they
                      closed
  slow-sse PATH N     an SSE client of GET PATH that does not read while N values of 16 KiB
                      are PUT to /store/public/big/<i>: the daemon ends the stream (its
                      session cut off like a slow subscriber: event "error", or the write
                      timeout closes it), the client got less than was written, and the
                      daemon keeps serving
"""
import re
import socket
import sys
import time

HOST = "127.0.0.1"
fails = 0


def say(ok, case, why=""):
    global fails
    if ok:
        print("ok " + case)
    else:
        fails += 1
        print("FAIL %s: %s" % (case, why))


def conn(port, src=None, timeout=30):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    s.connect((HOST, port))
    return s


def read_all(s, limit=1 << 20, end=None):
    """Everything until the peer closes or sends end (or the timeout)."""
    out = b""
    try:
        while len(out) < limit:
            b = s.recv(65536)
            if not b:
                break
            out += b
            if end and out.endswith(end):
                break
    except socket.timeout:
        return out, False
    except ConnectionResetError:
        return out, True
    return out, True


def status_of(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def request(port, raw, src=None):
    s = conn(port, src)
    s.sendall(raw)
    resp, closed = b"", False
    try:
        while b"\r\n\r\n" not in resp:
            b = s.recv(65536)
            if not b:
                closed = True
                break
            resp += b
    except (socket.timeout, ConnectionResetError):
        closed = True
    s.close()
    return status_of(resp), resp


def served(port):
    st, _ = request(port, b"GET /store/public/none HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return st == 404


def closed_unanswered(s, wait=30):
    """The daemon closes s without a byte of answer."""
    s.settimeout(wait)
    try:
        b = s.recv(100)
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return b == b""


def mode_headers(port):
    big = b"X-Filler: " + b"a" * 17000 + b"\r\n"
    st, _ = request(port, b"GET /store/public/x HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
    say(st in (400, 413, 431) or st == 0, "headers over 16 KiB refused", "status %d" % st)
    say(served(port), "served after the big headers")


def mode_malformed(port):
    cases = [b"\x00\x01\x02\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
             b"GET /store/public/%00 HTTP/1.1\r\nHost: x\r\n\r\n",
             b"POST /bus/a/b/c HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
             b"GET /bus/%zz/b/c HTTP/1.1\r\nHost: x\r\n\r\n",
             b"GET " + b"/x" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"]
    for i, raw in enumerate(cases):
        st, _ = request(port, raw)
        say(st == 0 or 400 <= st < 500, "malformed request %d: 4xx or closed" % i, "status %d" % st)
    say(served(port), "served after the malformed requests")


def mode_slow(port):
    s = conn(port)
    s.sendall(b"GET /store/public/x HTTP/1.1\r\n")
    say(closed_unanswered(s, 60), "a client that stops sending its headers is closed")
    s.close()
    s = conn(port)
    s.sendall(b"PUT /store/public/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n12")
    ok = False
    s.settimeout(60)
    try:
        b = s.recv(4096)
        ok = b == b"" or status_of(b) in (400, 408)
    except ConnectionResetError:
        ok = True
    except socket.timeout:
        ok = False
    say(ok, "a client that stops sending its body is closed")
    s.close()
    say(served(port), "served after the slow clients")


def keepalive_get(s):
    """One keep-alive request on s: its status (0 if closed before an answer)."""
    s.sendall(b"GET /store/public/none HTTP/1.1\r\nHost: x\r\n\r\n")
    resp = b""
    try:
        while b"\r\n\r\n" not in resp:
            b = s.recv(4096)
            if not b:
                return 0
            resp += b
        head, _, rest = resp.partition(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
        while len(rest) < n:
            rest += s.recv(4096)
    except (socket.timeout, ConnectionResetError):
        return 0
    return status_of(resp)


def hold(port, src, n):
    """n connections from src, each counted by one served request and held open."""
    socks = []
    for _ in range(n):
        s = conn(port, src)
        st = keepalive_get(s)
        if st != 404:
            say(False, "held connection %d from %s served" % (len(socks), src), "status %d" % st)
        socks.append(s)
    return socks


def refused(port, src):
    s = conn(port, src)
    st = keepalive_get(s)
    closed = closed_unanswered(s)
    s.close()
    return st == 503 and closed


def mode_per_address(port):
    socks = hold(port, "127.0.0.1", 32)
    say(refused(port, "127.0.0.1"), "the 33rd connection from one address: 503, closed")
    say(all(keepalive_get(s) == 404 for s in socks[:3]), "the 32 are still served")
    other = conn(port, "127.0.0.2")
    other.sendall(b"GET /store/public/none HTTP/1.1\r\nHost: x\r\n\r\n")
    resp, _ = other.recv(4096), None
    say(status_of(resp) == 404, "another address is served meanwhile", repr(resp[:40]))
    other.close()
    socks.pop().close()
    ok = False
    for _ in range(100):  # the daemon sees the close when it next reads it
        if served(port):
            ok = True
            break
        time.sleep(0.05)
    say(ok, "once one closed, the address is served again")
    for s in socks:
        s.close()


def mode_total(port):
    held = {}
    for a in range(2, 10):
        held["127.0.0.%d" % a] = hold(port, "127.0.0.%d" % a, 32)
    # the 8 addresses hold all 256, idle: a newcomer from another address is served, and
    # the least recently used idle connection of an address holding the most is closed
    s = conn(port, "127.0.0.10")
    say(keepalive_get(s) == 404, "the 257th connection in all, from another address: served")
    gone = [(src, i) for src, socks in held.items() for i, c in enumerate(socks)
            if still_open([c]) == 0]
    say(len(gone) == 1, "one held connection was closed for it", "%s" % gone)
    say(len(gone) == 1 and gone[0][1] == 0, "the least recently used of its address", "%s" % gone)
    # one that is used again is no longer the least recently used one
    src = "127.0.0.9" if not gone or gone[0][0] != "127.0.0.9" else "127.0.0.8"
    say(keepalive_get(held[src][0]) == 404, "a held connection is served again")
    s2 = conn(port, "127.0.0.11")
    say(keepalive_get(s2) == 404, "the 258th, from another address: served")
    gone2 = [(a, i) for a, socks in held.items() for i, c in enumerate(socks)
             if still_open([c]) == 0 and (a, i) not in gone]
    say(len(gone2) == 1 and gone2[0] != (src, 0), "one more closed, not the one just used",
        "%s" % gone2)
    # the newcomers hold 2 of 256: the 8 hosts cannot take them back (each holds more)
    say(refused(port, "127.0.0.2"), "a host holding its 32 gets no 33rd: 503, closed")
    say(keepalive_get(s) == 404 and keepalive_get(s2) == 404, "the newcomers are still served")
    s.close()
    s2.close()
    for socks in held.values():
        for c in socks:
            c.close()
    ok = False
    for _ in range(100):
        if served(port):
            ok = True
            break
        time.sleep(0.05)
    say(ok, "served again once they closed")


def still_open(socks):
    """How many of socks the daemon has not closed (nothing to read, no EOF)."""
    n = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1, socket.MSG_PEEK):
                n += 1
        except BlockingIOError:
            n += 1
        except OSError:
            pass
        s.setblocking(True)
        s.settimeout(30)
    return n


def mode_unsent(port):
    socks = [conn(port, "127.0.0.41") for _ in range(32)]
    s33 = conn(port, "127.0.0.41")
    closed = closed_unanswered(s33)
    s33.close()
    alive = still_open(socks)
    say(closed and alive == 32, "the 33rd connection without a request from one address is closed "
        "while the 32 are open", "closed %s, %d of 32 open" % (closed, alive))
    say(served(port), "another address is served meanwhile")
    say(keepalive_get(socks[0]) == 404, "a request on one of the 32 is served")
    for s in socks:
        s.close()
    # 8 addresses (a slowloris) hold all 256 places of connections without a request: a
    # newcomer from another address takes the place of the oldest of an address holding the
    # most, instead of being refused
    socks = []
    for a in range(50, 58):
        socks += [conn(port, "127.0.0.%d" % a) for _ in range(32)]
    s257 = conn(port, "127.0.0.58")
    st = keepalive_get(s257)  # answered: the daemon has seen its accept and what it closed
    alive = still_open(socks)
    say(st == 404 and alive == 255, "the 257th connection without a request (127.0.0.58) is kept "
        "and served; one of the 256 held by the 8 addresses closed for it",
        "status %d, %d of 256 open" % (st, alive))
    s257.close()
    # the bound a slowloris leaves a newcomer: 32 more from 127.0.0.58 (its own cap), while
    # the 8 addresses still hold 255; it keeps at least its share of the 256, floor(256/9)
    mine = [conn(port, "127.0.0.58") for _ in range(32)]
    barrier = conn(port, "127.0.0.59")
    say(keepalive_get(barrier) == 404, "a barrier request from 127.0.0.59 is served")
    barrier.close()
    kept, alive = still_open(mine), still_open(socks)
    print("# 127.0.0.58 keeps %d of 32, the 8 addresses %d of 256" % (kept, alive))
    say(kept >= 256 // 9 and kept + alive <= 256,
        "a newcomer keeps at least its share (%d) of the 256 places the slowloris held" % (256 // 9),
        "kept %d, the 8 addresses %d" % (kept, alive))
    for s in socks + mine:
        s.close()
    ok = False
    for _ in range(100):  # the daemon sees the closes when it next reads them
        if request(port, b"GET /store/public/none HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                   "127.0.0.58")[0] == 404:
            ok = True
            break
        time.sleep(0.05)
    say(ok, "served again once they closed")


def mode_slow_sse(port, path, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((HOST, port))
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.5)
    value = b'"' + b"v" * 16384 + b'"'
    for i in range(n):
        st, _ = request(port, b"PUT /store/public/big/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                        b"Content-Length: %d\r\n\r\n" % (i, len(value)) + value)
        if st != 200:
            say(False, "the writes are served while the SSE client does not read", "status %d" % st)
            break
    s.settimeout(60)
    # the chunked reply's last chunk, or the close of the connection
    got, ended = read_all(s, 1 << 30, b"\r\n0\r\n\r\n")
    say(ended, "the stream of the client that does not read is ended",
        "%d bytes read, neither closed nor ended" % len(got))
    say(b"event: error" in got or not got.endswith(b"0\r\n\r\n"),
        "an ended stream says why (event: error)", repr(got[-200:]))
    say(len(got) < n * len(value), "it got less than all that was written (%d bytes)" % len(got))
    s.close()
    say(served(port), "served after the slow SSE client")


def answers(port, raw):
    """Sends raw on a new connection, reads until the daemon closes it (30 s at most):
    (the statuses of the answers in order, closed by the daemon)."""
    s = conn(port)
    s.sendall(raw)
    data, closed = b"", False
    end = time.monotonic() + 30
    try:
        while time.monotonic() < end:
            b = s.recv(65536)
            if not b:
                closed = True
                break
            data += b
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    s.close()
    sts = [int(x) for x in re.findall(rb"HTTP/1\.[01] ([0-9]{3}) ", data)]
    return sts, closed


def mode_framing(port):
    nxt = b"GET /store/public/none HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    cases = [("two Content-Length headers",
              b"PUT /store/public/smug HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
              b"Content-Length: 2\r\n\r\n12" + nxt),
             ("a Content-Length of +1",
              b"PUT /store/public/smug HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n1" + nxt),
             ("two Host headers",
              b"PUT /store/public/smug HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 1\r\n\r\n1"
              + nxt)]
    for what, raw in cases:
        sts, closed = answers(port, raw)
        say(sts == [400] and closed, what + ": 400, the connection closed, the rest not served",
            "statuses %s, closed %s" % (sts, closed))
    st, _ = request(port, b"GET /store/public/smug HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    say(st == 404, "none of them wrote the store", "status %d" % st)
    sts, closed = answers(port, b"PUT /store/public/smug HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                          b"\r\n7" + nxt)
    say(sts == [200, 404], "one Content-Length of digits: served, and the next request too",
        "statuses %s" % sts)


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "slow-sse":
        mode_slow_sse(port, sys.argv[3], int(sys.argv[4]))
    else:
        {"headers": mode_headers, "malformed": mode_malformed, "slow": mode_slow,
         "per-address": mode_per_address, "framing": mode_framing, "unsent": mode_unsent, "total": mode_total}[mode](port)
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
