#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The source addresses the edge's per-address bounds count by (doc/edge.md "Source
addresses"): an IPv6 peer by its /64, an IPv4-mapped one as its IPv4 address.  Run by
edge-addr.sh in a network namespace of its own where lo holds A and B (one /64) and C
(another /64), against a hybridd listening on [::] (dual stack):

    edge-addr.py MODE PORT A B C

Modes (each prints "ok <case>" / "FAIL <case>: why" lines; exit 1 on a failure):
  http   32 keep-alive connections from A, each served once and held: a connection from B
         (the same /64) is answered 503; one from C is served.  32 from 127.0.0.1 (IPv4,
         through the dual-stack listener: ::ffff:127.0.0.1) held: 127.0.0.2 and ::1 are
         served (all three lie in ::/64 as IPv6 addresses), another from 127.0.0.1 is 503.
  ws     4 WebSocket upgrades from A not authenticated (limits.ws_preauth_per_address 4):
         an upgrade from B is answered 503, one from C 101.
  unsent 32 connections from A that send nothing (the cap of one source address): one more
         from B is closed unanswered while the 32 stay open; one from C is not closed.
"""
import base64
import os
import socket
import sys

fails = 0


def say(ok, case, why=""):
    global fails
    if ok:
        print("ok " + case)
    else:
        fails += 1
        print("FAIL %s: %s" % (case, why))


def conn(port, src):
    fam = socket.AF_INET6 if ":" in src else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(30)
    s.connect((src if fam == socket.AF_INET6 else "127.0.0.1", port))
    return s


def status_of(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


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
            b = s.recv(4096)
            if not b:
                break
            rest += b
    except (socket.timeout, ConnectionResetError):
        return 0
    return status_of(resp)


def get_from(port, src):
    s = conn(port, src)
    st = keepalive_get(s)
    s.close()
    return st


def hold(port, src, n):
    socks = []
    for _ in range(n):
        s = conn(port, src)
        st = keepalive_get(s)
        if st != 404:
            say(False, "connection %d from %s served" % (len(socks) + 1, src), "status %d" % st)
            return socks
        socks.append(s)
    return socks


def mode_http(port, a, b, c):
    held = hold(port, a, 32)
    say(len(held) == 32, "32 keep-alive connections from %s held" % a)
    st = get_from(port, b)
    say(st == 503, "%s, in the same /64 as %s, is refused (503)" % (b, a), "status %d" % st)
    st = get_from(port, c)
    say(st == 404, "%s, in another /64, is served" % c, "status %d" % st)
    held4 = hold(port, "127.0.0.1", 32)
    say(len(held4) == 32, "32 keep-alive connections from 127.0.0.1 held (dual stack: ::ffff:127.0.0.1)")
    st = get_from(port, "127.0.0.2")
    say(st == 404, "127.0.0.2 is served: an IPv4-mapped address counts as its IPv4 address",
        "status %d" % st)
    st = get_from(port, "::1")
    say(st == 404, "::1 is served: not the IPv4 peers' count", "status %d" % st)
    st = get_from(port, "127.0.0.1")
    say(st == 503, "a 33rd from 127.0.0.1 is refused (503)", "status %d" % st)
    for s in held + held4:
        s.close()


def upgrade(port, src):
    """A WebSocket upgrade of /bus/ws from src: (status, socket)."""
    s = conn(port, src)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /bus/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Protocol: hybrid.bus.v1\r\n\r\n" % key).encode())
    resp = b""
    try:
        while b"\r\n\r\n" not in resp:
            got = s.recv(4096)
            if not got:
                break
            resp += got
    except (socket.timeout, ConnectionResetError):
        pass
    return status_of(resp), s


def mode_ws(port, a, b, c):
    held = []
    for i in range(4):
        st, s = upgrade(port, a)
        say(st == 101, "upgrade %d from %s: 101" % (i + 1, a), "status %d" % st)
        held.append(s)
    st, s = upgrade(port, b)
    s.close()
    say(st == 503, "an upgrade from %s, in the same /64, while 4 wait for their AUTH: 503" % b,
        "status %d" % st)
    st, s = upgrade(port, c)
    s.close()
    say(st == 101, "an upgrade from %s, in another /64: 101" % c, "status %d" % st)
    for s in held:
        s.close()


def closed_unanswered(s, wait=30):
    s.settimeout(wait)
    try:
        got = s.recv(100)
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return got == b""


def open_now(s):
    """The daemon has not closed s (nothing to read, no EOF)."""
    s.setblocking(False)
    try:
        ok = bool(s.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        ok = True
    except OSError:
        ok = False
    s.setblocking(True)
    s.settimeout(30)
    return ok


def mode_unsent(port, a, b, c):
    held = [conn(port, a) for _ in range(32)]
    sb = conn(port, b)
    closed = closed_unanswered(sb)
    sb.close()
    alive = sum(open_now(s) for s in held)
    say(closed and alive == 32, "a connection from %s without a request, in the same /64 as "
        "32 such from %s, is closed while the 32 are open" % (b, a),
        "closed %s, %d of 32 open" % (closed, alive))
    sc = conn(port, c)
    st = keepalive_get(sc)
    sc.close()
    say(st == 404, "one from %s, another /64, is served" % c, "status %d" % st)
    for s in held:
        s.close()


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    a, b, c = sys.argv[3:6]
    {"http": mode_http, "ws": mode_ws, "unsent": mode_unsent}[mode](port, a, b, c)
    return 1 if fails else 0


sys.exit(main())
