#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A third-party WebSocket client of the edge's /bus/ws (doc/edge.md "WebSocket"): Debian's
Python `websockets` speaking our bus packets (doc/protocol.md "Frame"), one packet per binary
message, with the token handshake built from the documented bytes (doc/token.md "Handshake")
with Python `cryptography`, channel binding b"ws-none".  Raw sockets for what `websockets`
never sends (unmasked frames, half-sent requests).

    edge-ws.py MODE URL TOKENDIR [ARGS...]

TOKENDIR holds good (a token of alice), rogue (an unknown issuer's), holder.key.  Each mode
prints "ok <case>" / "FAIL <case>: why" lines and exits 1 on a failure."""
import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawbus import (AUTH, AUTH_RESULT, CALL, CHALLENGE, ERROR, EVENT, HDR, PING, PONG,  # noqa: E402
                    RESULT, frame, say)

try:
    import websockets
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
except ImportError as e:  # scripts/bootstrap.sh: python3-websockets, python3-cryptography
    print(f"# skipped: {e}")
    sys.exit(77)

N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
LABEL = b"HYBRID-TOKEN-PROOF-1\x00"
SUB = "hybrid.bus.v1"
BUILTIN = "@localhost/org.hybridos.bus/builtin"
EDGE = "@localhost/org.example.edge/e1"
WAIT = 20.0


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def proof(key, audience, nb, nc, token, binding):
    aud = audience.encode()
    t = hashlib.sha256(LABEL + len(aud).to_bytes(2, "big") + aud + nb + nc +
                       hashlib.sha256(token.encode()).digest() +
                       len(binding).to_bytes(2, "big") + binding).digest()
    r, s = decode_dss_signature(key.sign(t, ec.ECDSA(hashes.SHA256())))
    s = min(s, N - s)
    return b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def parse(m):
    """One message = one packet: the packet as a dict."""
    n, ty, fl, st, cid, tmo, fl_, tl, ml, info, aux = HDR.unpack(m[:HDR.size])
    p = HDR.size
    frm = m[p:p + fl_]
    p += fl_
    to = m[p:p + tl].decode()
    p += tl
    mem = m[p:p + ml].decode(errors="replace")
    p += ml
    body = m[p:p + n]
    assert p + n == len(m), "a message holds exactly one packet"
    return dict(type=ty, flags=fl, status=st, call_id=cid, frm=frm, to=to, member=mem, body=body)


class Dir:
    def __init__(self, d):
        self.d = d
        self.token = {k: open(os.path.join(d, k)).read().strip() for k in ("good", "rogue")}
        with open(os.path.join(d, "holder.key"), "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), None)


class Bus:
    """A bus session over one WebSocket."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 1

    async def recv(self, types=None, timeout=WAIT):
        while True:
            m = await asyncio.wait_for(self.ws.recv(), timeout)
            assert isinstance(m, bytes), "binary messages only"
            p = parse(m)
            if p["type"] == PING:
                await self.ws.send(frame(PONG))
                continue
            if types is None or p["type"] in types:
                return p

    async def auth(self, td, token="good", app="org.example.ws", runner=None, binding=b"ws-none"):
        ch = await self.recv({CHALLENGE})
        c = json.loads(ch["body"])
        nc = os.urandom(32)
        tok = td.token[token] if token else None
        body = {"protocol": "HYBRID", "version": 1, "app": app,
                "runner": runner or "w%d_%s" % (os.getpid(), os.urandom(6).hex())}
        if tok:
            body.update(token=tok, nonce=nc.hex(),
                        proof=proof(td.key, c["audience"], bytes.fromhex(c["nonce"]), nc, tok,
                                    binding))
        await self.ws.send(frame(AUTH, json.dumps(body)))
        r = await self.recv({AUTH_RESULT, ERROR})
        if r["type"] == AUTH_RESULT and r["status"] == 200:
            self.endpoint = json.loads(r["body"])["endpoint"]
        return r["status"], r

    async def call(self, to, method, body="{}", timeout=5000, flags=0):
        cid = self.next_id
        self.next_id += 1
        await self.ws.send(frame(CALL, body, to=to, member=method, call_id=cid, timeout=timeout,
                                 flags=flags))
        while True:
            p = await self.recv({RESULT})
            if p["call_id"] == cid:
                return p


def connect(url, **kw):
    kw.setdefault("subprotocols", [SUB])
    return websockets.connect(url, compression=None, max_size=None, open_timeout=WAIT,
                              close_timeout=WAIT, **kw)


async def closed_with(ws, timeout=WAIT):
    """The close code the server sent (None: it did not close)."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed as e:
        return e.rcvd.code if e.rcvd else 1006
    except asyncio.TimeoutError:
        return None


async def session(url, td, local_addr=None, **kw):
    ws = await connect(url, **({"local_addr": local_addr} if local_addr else {}))
    b = Bus(ws)
    st, _ = await b.auth(td, **kw)
    return ws, b, st


# ------------------------------------------------------------------ modes

async def m_basic(url, td, args):
    hybrid, sock = args[0], args[1]
    ws, b, st = await session(url, td)
    say(st == 200, "AUTH with a token, binding ws-none: 200", f"got {st}")
    if st != 200:
        return
    say(ws.subprotocol == SUB, "the server answers the subprotocol " + SUB)
    r = await b.call(EDGE, "whoami", '{"x":1}')
    j = json.loads(r["body"]) if r["status"] == 200 else {}
    say(r["status"] == 200 and j.get("transport") == "ws" and j.get("principal") == "alice"
        and j.get("params") == {"x": 1},
        "call of a Unix peer's procedure; it sees transport ws, principal alice",
        f"{r['status']} {r['body']!r}")
    r = await b.call(EDGE, "hold", "{}", timeout=300)
    say(r["status"] == 504, "a call past its deadline: 504", f"got {r['status']}")
    r = await b.call("@localhost/org.example.edge/e2", "whoami", "{}")
    say(r["status"] == 403, "a call the token does not grant: 403", f"got {r['status']}")
    # the store: a read the token grants, a write it does not
    r = await b.call(BUILTIN, "storeRead", "/ws/hello", flags=1)
    say(r["status"] == 200 and r["body"] == b"5", "storeRead over ws", f"{r['status']} {r['body']!r}")
    r = await b.call(BUILTIN, "storeWrite", "/ws/hello\n6", flags=1)
    say(r["status"] == 403, "storeWrite the token does not grant: 403", f"{r['status']}")
    # a procedure served over ws, called from the Unix side by the CLI
    r = await b.call(BUILTIN, "registerProcedure", json.dumps({"methodName": "add"}))
    say(r["status"] == 200, "registerProcedure over ws", f"{r['status']} {r['member']}")
    proc = await asyncio.create_subprocess_exec(
        hybrid, "--bus", sock, "call", b.endpoint, "add", '{"a":2,"b":3}',
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got = await b.recv({CALL})
    params = json.loads(got["body"])
    await ws.send(frame(RESULT, json.dumps({"sum": params["a"] + params["b"]}),
                        call_id=got["call_id"], status=200))
    out, err = await asyncio.wait_for(proc.communicate(), WAIT)
    say(proc.returncode == 0 and json.loads(out or b"null") == {"sum": 5},
        "hybrid call (Unix socket) of a procedure served over ws", f"{out!r} {err!r}")
    # an event of the Unix peer, subscribed over ws
    r = await b.call(BUILTIN, "subscribeEvent",
                     json.dumps({"endpointName": EDGE, "bubbleName": "tick"}))
    say(r["status"] == 200, "subscribeEvent over ws", f"{r['status']} {r['member']}")
    ev = await b.recv({EVENT})
    say(ev["member"] == "tick" and "n" in json.loads(ev["body"]), "an event arrives over ws",
        repr(ev))
    await ws.close()
    # wrong token: 401, and the connection ends
    ws, b, st = await session(url, td, token="rogue")
    say(st == 401, "a token of an unknown issuer: 401", f"got {st}")
    code = await closed_with(ws)
    say(code is not None, "the connection is closed after the 401", f"{code}")
    # a proof bound to the Unix binding instead of ws-none: 401
    ws, b, st = await session(url, td, binding=b"unix-uid:%d" % os.geteuid())
    say(st == 401, "a proof bound to unix-uid over ws: 401", f"got {st}")
    await ws.close()
    # no token at all: 401 (remote peers must authenticate with a token)
    ws, b, st = await session(url, td, token=None)
    say(st == 401, "no token over ws: 401 (no uid policy for remote peers)", f"got {st}")
    await ws.close()


async def m_basic_auth(url, td, args):
    ws, b, st = await session(url, td)
    say(st == 200, "a session authenticates", f"{st}")
    await ws.close()


async def m_hostile(url, td, args):
    port = int(url.split(":")[2].split("/")[0])
    # no subprotocol: HTTP 400
    try:
        ws = await connect(url, subprotocols=None)
        say(False, "an upgrade without the subprotocol is refused 400", "accepted")
        await ws.close()
    except websockets.InvalidStatusCode as e:
        say(e.status_code == 400, "an upgrade without the subprotocol is refused 400",
            f"{e.status_code}")
    # subprotocol names are compared case-sensitively (RFC 6455 11.5)
    st = http_status(port, b"GET /bus/ws HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n"
                     b"Connection: upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Protocol: hybrid.Bus.v1\r\n\r\n")
    say(st == 400, "the subprotocol offered as hybrid.Bus.v1: 400", f"{st}")
    # a plain GET on /bus/ws: 426
    st = http_status(port, b"GET /bus/ws HTTP/1.1\r\nHost: x\r\n\r\n")
    say(st == 426, "a plain GET of /bus/ws: 426 Upgrade Required", f"{st}")
    st = http_status(port, b"GET /bus/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Protocol: hybrid.bus.v1\r\n\r\n")
    say(st == 426, "Sec-WebSocket-Version 8: 426", f"{st}")
    st = http_status(port, b"GET /bus/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: c2hvcnQ=\r\n"
                     b"Sec-WebSocket-Protocol: hybrid.bus.v1\r\n\r\n")
    say(st == 400, "a Sec-WebSocket-Key that is not 16 bytes: 400", f"{st}")
    # RFC 6455's own example: the accept value of its sample key
    raw = raw_upgrade(port)
    say(raw is not None and b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in raw[0] and b" 101 " in raw[0],
        "101 with the Sec-WebSocket-Accept of RFC 6455's example", repr(raw and raw[0]))
    if raw:
        s = raw[1]
        # an unmasked frame from a client: 1002
        s.sendall(bytes([0x82, 4]) + b"abcd")
        code = read_close(s)
        say(code == 1002, "an unmasked client frame: close 1002", f"{code}")
        s.close()
    # a control frame without FIN (control frames are never fragmented): failed, the
    # connection closed after a close frame
    raw = raw_upgrade(port)
    if raw:
        s = raw[1]
        s.sendall(masked(0x09, b"p"))
        code = read_close(s)
        say(code in (1002, 1005), "a fragmented control frame: a close frame, then the end",
            f"{code}")
        s.close()
    # a text message: 1003
    ws = await connect(url)
    await ws.send("hello")
    code = await closed_with(ws)
    say(code == 1003, "a text message: close 1003", f"{code}")
    # a message that is not exactly one packet: 1007
    ws = await connect(url)
    await ws.send(frame(PONG) + frame(PONG))
    code = await closed_with(ws)
    say(code == 1007, "two packets in one message: close 1007", f"{code}")
    ws = await connect(url)
    await ws.send(b"\x01\x02\x03")
    code = await closed_with(ws)
    say(code == 1007, "a message shorter than a packet header: close 1007", f"{code}")
    # a message over limits.max_frame: 1009 (max_body 64K in the test's configuration)
    ws = await connect(url)
    await ws.send(b"\0" * (300 * 1024))
    code = await closed_with(ws)
    say(code == 1009, "a message over the frame limit: close 1009", f"{code}")
    # announced over the limit in a fragment header, without sending the payload: 1009 at once
    raw = raw_upgrade(port)
    if raw:
        s = raw[1]
        s.sendall(masked(0x82, b"", announce=10 * 1024 * 1024) + b"abcd")
        code = read_close(s)
        say(code == 1009, "a frame header announcing 10 MiB: close 1009 at its first bytes",
            f"{code}")
        s.close()
    # fragmentation is reassembled: a packet in three fragments
    ws, b, st = await session(url, td)
    pong = await ws.ping(b"are you there")
    try:
        await asyncio.wait_for(pong, WAIT)
        say(True, "a WebSocket ping is answered with its pong")
    except asyncio.TimeoutError:
        say(False, "a WebSocket ping is answered with its pong", "no pong")
    pkt = frame(CALL, '{"f":1}', to=EDGE, member="whoami", call_id=9, timeout=5000)
    await ws.send([pkt[:10], pkt[10:40], pkt[40:]])
    r = await b.recv({RESULT})
    say(r["status"] == 200 and r["call_id"] == 9, "a packet sent in three fragments",
        f"{r['status']}")
    await ws.close()


async def m_preauth(url, td, args):
    cap = int(args[0])
    held = []
    for i in range(cap):
        held.append(await connect(url))
    try:
        ws = await connect(url)
        say(False, f"connection {cap + 1} not yet authenticated from one address: 503",
            "accepted")
        await ws.close()
    except websockets.InvalidStatusCode as e:
        say(e.status_code == 503, f"connection {cap + 1} not yet authenticated from one "
            "address: 503", f"{e.status_code}")
    # one authenticates: it leaves the count, a new connection is accepted
    b = Bus(held[0])
    st, _ = await b.auth(td)
    say(st == 200, "one of them authenticates", f"{st}")
    ws = await connect(url)
    say(ws.open, "then another connection is accepted")
    held.append(ws)
    # the handshake timeout (limits.auth_timeout_ms): the silent ones are closed 1008
    code = await closed_with(held[1])
    say(code == 1008, "no AUTH within limits.auth_timeout_ms: close 1008", f"{code}")
    for w in held:
        await w.close()


async def m_total(url, td, args):
    """limits.ws_max_per_address (args[0]) from 127.0.0.1, then limits.ws_max_connections
    (args[1]) in all with the other loopback addresses as sources."""
    per, cap = int(args[0]), int(args[1])
    held = []

    async def one(src):
        ws, b, st = await session(url, td, local_addr=(src, 0))
        if st != 200:
            raise RuntimeError(f"session from {src}: {st}")
        held.append(ws)

    for i in range(per):
        await one("127.0.0.1")
    try:
        await one("127.0.0.1")
        say(False, f"WebSocket connection {per + 1} from one address: 503", "accepted")
    except websockets.InvalidStatusCode as e:
        say(e.status_code == 503, f"WebSocket connection {per + 1} from one address: 503",
            f"{e.status_code}")
    n = per
    while n < cap:
        n += 1
        await one("127.0.0.%d" % n)
    say(True, f"other addresses are served up to {cap} connections in all")
    try:
        await one("127.0.0.%d" % (cap + 1))
        say(False, f"WebSocket connection {cap + 1} in all: 503", "accepted")
    except websockets.InvalidStatusCode as e:
        say(e.status_code == 503, f"WebSocket connection {cap + 1} in all: 503",
            f"{e.status_code}")
    await held.pop().close()
    ok = False
    for i in range(100):  # the server sees the close at its own pace
        try:
            await one("127.0.0.%d" % (cap + 1))
            ok = True
            break
        except websockets.InvalidStatusCode:
            await asyncio.sleep(0.1)
    say(ok, "after one closes, a new one is served")
    for w in held:
        await w.close()


async def m_idle(url, td, args):
    """Opens N authenticated idle sessions; prints the daemon's VmRSS growth per session."""
    n, pid = int(args[0]), int(args[1])
    held = []
    for i in range(20):  # warm up the allocator
        ws, b, st = await session(url, td)
        held.append(ws)
    before = rss(pid)
    for i in range(n):
        ws, b, st = await session(url, td)
        if st != 200:
            say(False, "idle sessions authenticate", f"{st}")
            return
        held.append(ws)
    await asyncio.sleep(0.5)
    per = (rss(pid) - before) * 1024 / n
    print(f"# {n} idle WebSocket sessions: {per:.0f} bytes of daemon RSS each")
    say(per <= 32 * 1024, f"an idle WebSocket session costs <= 32 KiB of the daemon ({per:.0f})")
    for w in held:
        await w.close()


async def m_slowloris(url, td, args):
    """A request to /bus/ws sent half: the server ends it (the HTTP slow-client bound) while a
    session is served meanwhile."""
    port = int(url.split(":")[2].split("/")[0])
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(b"GET /bus/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
    ws, b, st = await session(url, td)
    say(st == 200, "a session is served while a request is held half-sent", f"{st}")
    await ws.close()
    try:
        d = s.recv(4096)
        while d and b"\r\n\r\n" not in d:
            d += s.recv(4096)
        gone = True
    except (ConnectionResetError, socket.timeout):
        gone = False if isinstance(sys.exc_info()[1], socket.timeout) else True
    say(gone, "the half-sent upgrade request is ended by the server")


async def m_slow(url, td, args):
    """A session that sends calls and never reads: dropped at limits.send_queue_bytes."""
    port = int(url.split(":")[2].split("/")[0])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(WAIT)
    s.connect(("127.0.0.1", port))
    s.sendall(UPGRADE)
    rd = Reader(s)
    head = rd.head()
    say(b" 101 " in head, "raw upgrade", repr(head[:40]))
    ch = parse(rd.message())
    c = json.loads(ch["body"])
    nc = os.urandom(32)
    tok = td.token["good"]
    s.sendall(masked(0x82, frame(AUTH, json.dumps({
        "protocol": "HYBRID", "version": 1, "app": "org.example.ws", "runner": "slow",
        "token": tok, "nonce": nc.hex(),
        "proof": proof(td.key, c["audience"], bytes.fromhex(c["nonce"]), nc, tok,
                       b"ws-none")}))))
    r = parse(rd.message())
    say(r["type"] == AUTH_RESULT and r["status"] == 200, "the raw session authenticates",
        f"{r['status']}")
    sent = 0
    try:
        for i in range(400):  # 24 MB of answers: far over the queue and the kernel's buffers
            s.sendall(masked(0x82, frame(CALL, "/ws/big", to=BUILTIN, member="storeRead",
                                         call_id=i + 1, timeout=60000, flags=1)))
            sent += 1
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    # now read: the session was cut off as a slow reader; its last packet says why
    results, last, code = 0, None, None
    s.settimeout(WAIT)
    try:
        while True:
            rd.fill(2)
            op = rd.buf[0] & 0x0F
            m = rd.message()
            if op == 0x8:
                code = struct.unpack(">H", m[:2])[0] if len(m) >= 2 else 1005
                break
            p = parse(m)
            if p["type"] == RESULT:
                results += 1
            last = p
    except (EOFError, ConnectionResetError, socket.timeout):
        pass
    say(results < sent, f"a client that does not read is cut off ({sent} calls sent, "
        f"{results} answers read back)")
    say(last is not None and last["type"] == ERROR and last["status"] == 507 and
        "send_queue_bytes" in last["member"],
        "its last packet is ERROR 507 naming limits.send_queue_bytes, as for a Unix peer",
        repr(last and (last["type"], last["status"], last["member"])))
    say(code == 1000, "then the close", f"{code}")


async def m_pingflood(url, td, args):
    """A client that sends pings and never reads their pongs: the server stops reading it
    (bounded pongs waiting) instead of queueing a pong for each of 40 MB of pings."""
    port, pid = int(url.split(":")[2].split("/")[0]), int(args[0])
    raw = raw_upgrade(port)
    if not raw:
        say(False, "raw upgrade for the ping flood")
        return
    s = raw[1]
    ping = masked(0x89, b"p" * 125)
    chunk = ping * 512  # 67 KB
    total = 40 * 1024 * 1024
    before = rss(pid)
    s.settimeout(2.0)  # a server that stopped reading us: the send blocks
    sent = 0
    try:
        while sent < total:
            s.sendall(chunk)
            sent += len(chunk)
    except (socket.timeout, BrokenPipeError, ConnectionResetError):
        pass
    grown = rss(pid) - before
    print(f"# ping flood: {sent} bytes of pings sent, daemon RSS +{grown} KiB")
    say(sent < total, f"the server stops reading a client that does not take its pongs "
        f"({sent} of {total} bytes of pings sent)")
    if os.environ.get("HYB_IT_SANITIZED") != "1":  # ASan's quarantine and shadow inflate RSS
        say(grown < 16 * 1024, f"the pongs waiting stay bounded (daemon RSS +{grown} KiB)")
    s.close()
    ws, b, st = await session(url, td)
    say(st == 200, "the daemon serves others after the ping flood", f"{st}")
    await ws.close()


async def m_fragments(url, td, args):
    """A message sent as a flood of 1-byte fragments, each under the size limit: every
    fragment would cost the server a buffer of its own (~50 times its payload), so past 1024
    fragments the message is refused with close 1009 (doc/edge.md), the daemon's memory stays
    bounded, and it keeps serving others."""
    port, pid, n = int(url.split(":")[2].split("/")[0]), int(args[0]), int(args[1])
    raw = raw_upgrade(port)
    if not raw:
        say(False, "raw upgrade for the fragment flood")
        return
    s = raw[1]
    before = rss(pid)
    frags = [masked(0x02, b"\0")] + [masked(0x00, b"\0")] * (n - 1)
    data = b"".join(frags) + masked(0x89, b"after")  # the pong says all was read
    s.settimeout(WAIT)
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass  # refused midway: the close frame tells why
    what, code = read_close_or_pong(s)
    grown = rss(pid) - before
    print(f"# fragment flood: {n} fragments of 1 byte, {what} {code}, daemon RSS +{grown} KiB")
    say(what == "close" and code == 1009,
        f"a message of {n} fragments is refused with close 1009", f"{what} {code}")
    if os.environ.get("HYB_IT_SANITIZED") != "1":  # ASan's quarantine and shadow inflate RSS
        say(grown < 2 * 1024, f"the fragments do not pile up (daemon RSS +{grown} KiB)")
    s.close()
    # many fragments, but within the bound, still make one message
    raw = raw_upgrade(port)
    s = raw[1]
    s.sendall(masked(0x02, b"\0", ) + masked(0x00, b"\0") * 1022 + masked(0x80, b"\0")
              + masked(0x89, b"after"))
    what, code = read_close_or_pong(s)
    say(what == "close" and code == 1007,
        "1024 fragments make one message (refused 1007: 1024 bytes are no packet)", f"{what} {code}")
    s.close()
    ws, b, st = await session(url, td)
    say(st == 200, "the daemon serves others after the fragment flood", f"{st}")
    await ws.close()


async def m_wss(url, td, args):
    """wss:// through pyOpenSSL (Python's ssl has no exporter API): the proof bound to the
    RFC 9266 tls-exporter of this TLS session; a proof bound to ws-none is refused there."""
    try:
        from OpenSSL import SSL
    except ImportError as e:  # scripts/bootstrap.sh: python3-openssl
        say(False, "pyOpenSSL for wss", str(e))
        return
    ca, port = args[0], int(url.split(":")[2].split("/")[0])
    import signal
    signal.alarm(int(3 * WAIT))  # a server that stops answering fails the test, not hangs it

    def tls_session():
        ctx = SSL.Context(SSL.TLSv1_2_METHOD)
        ctx.load_verify_locations(ca)
        ctx.set_verify(SSL.VERIFY_PEER, lambda *a: a[-1])
        s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        s.setblocking(True)  # pyOpenSSL wants a blocking socket (SIGALRM bounds the wait)
        c = SSL.Connection(ctx, s)
        c.set_tlsext_host_name(b"localhost")
        c.set_connect_state()
        c.do_handshake()
        c.sendall(UPGRADE)
        return c

    for binding_kind in ("tls-exporter", "ws-none", "other-session"):
        c = tls_session()
        rd = Reader(c)
        head = rd.head()
        say(b" 101 " in head and b"hybrid.bus.v1" in head, f"wss upgrade ({binding_kind})",
            repr(head[:60]))
        ekm = c.export_keying_material(b"EXPORTER-Channel-Binding", 32)
        if binding_kind == "tls-exporter":
            binding = b"tls-exporter:" + b64u(ekm).encode()
        elif binding_kind == "ws-none":
            binding = b"ws-none"
        else:  # the exporter of another TLS session
            other = tls_session()
            binding = b"tls-exporter:" + b64u(
                other.export_keying_material(b"EXPORTER-Channel-Binding", 32)).encode()
            other.close()
        ch = parse(rd.message())
        cj = json.loads(ch["body"])
        nc = os.urandom(32)
        tok = td.token["good"]
        c.sendall(masked(0x82, frame(AUTH, json.dumps({
            "protocol": "HYBRID", "version": 1, "app": "org.example.ws",
            "runner": "wss" + os.urandom(4).hex(), "token": tok, "nonce": nc.hex(),
            "proof": proof(td.key, cj["audience"], bytes.fromhex(cj["nonce"]), nc, tok,
                           binding)}))))
        r = parse(rd.message())
        if binding_kind != "tls-exporter":
            say(r["status"] == 401, f"wss: a proof bound to {binding_kind}: 401",
                f"{r['status']}")
            c.close()
            continue
        say(r["status"] == 200, "wss: a proof bound to the TLS exporter: 200", f"{r['status']}")
        c.sendall(masked(0x82, frame(CALL, '{"s":1}', to=EDGE, member="whoami", call_id=5,
                                     timeout=5000)))
        while True:
            p = parse(rd.message())
            if p["type"] == RESULT:
                break
        j = json.loads(p["body"]) if p["status"] == 200 else {}
        say(j.get("transport") == "wss" and j.get("principal") == "alice",
            "wss: the callee sees transport wss", repr(p["body"]))
        c.sendall(masked(0x88, struct.pack(">H", 1000)))
        say(read_close_tls(rd) == 1000, "wss: the close handshake")
        c.close()


def read_close_tls(rd):
    try:
        while True:
            rd.fill(2)
            if rd.buf[0] & 0x0F == 0x8:
                m = rd.message()
                return struct.unpack(">H", m[:2])[0] if len(m) >= 2 else 1005
            rd.message()
    except Exception:
        return None


class Reader:
    def __init__(self, s):
        self.s = s
        self.buf = b""

    def fill(self, n):
        while len(self.buf) < n:
            try:
                d = self.s.recv(65536)
            except Exception as e:  # pyOpenSSL: ZeroReturnError, SysCallError
                if type(e).__name__ in ("ZeroReturnError", "SysCallError"):
                    raise EOFError
                raise
            if not d:
                raise EOFError
            self.buf += d

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            self.fill(len(self.buf) + 1)
        h, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return h

    def message(self):
        """One unfragmented server message's payload."""
        self.fill(2)
        n, p = self.buf[1] & 0x7F, 2
        if n == 126:
            self.fill(4)
            n, p = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self.fill(10)
            n, p = struct.unpack(">Q", self.buf[2:10])[0], 10
        self.fill(p + n)
        m, self.buf = self.buf[p:p + n], self.buf[p + n:]
        return m


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ------------------------------------------------------------------ raw sockets

def http_status(port, req):
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    s.sendall(req)
    data = b""
    while b"\r\n" not in data:
        d = s.recv(4096)
        if not d:
            break
        data += d
    s.close()
    try:
        return int(data.split(b" ")[1])
    except (IndexError, ValueError):
        return None


UPGRADE = (b"GET /bus/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
           b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Protocol: chat, hybrid.bus.v1\r\n\r\n")


def raw_upgrade(port):
    """A completed upgrade with RFC 6455's sample key: (response head, socket)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    s.sendall(UPGRADE)
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(4096)
        if not d:
            return None
        data += d
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, s


def masked(op, payload, announce=None):
    n = len(payload) if announce is None else announce
    if n < 126:
        h = bytes([op, 0x80 | n])
    elif n < 65536:
        h = bytes([op, 0x80 | 126]) + struct.pack(">H", n)
    else:
        h = bytes([op, 0x80 | 127]) + struct.pack(">Q", n)
    mask = os.urandom(4)
    return h + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_close(s):
    """Reads server frames until a close frame: its code (None: the socket just ended)."""
    return read_close_or_pong(s, pong=False)[1]


def read_close_or_pong(s, pong=True):
    """Reads server frames until a close frame or (with pong) a pong: ("close", code),
    ("pong", None), or (None, None) when the socket just ended."""
    buf = b""
    end = time.monotonic() + WAIT
    while time.monotonic() < end:
        while len(buf) >= 2:
            op, n = buf[0] & 0x0F, buf[1] & 0x7F
            p = 2
            if n == 126:
                if len(buf) < 4:
                    break
                n = struct.unpack(">H", buf[2:4])[0]
                p = 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n = struct.unpack(">Q", buf[2:10])[0]
                p = 10
            if len(buf) < p + n:
                break
            payload = buf[p:p + n]
            buf = buf[p + n:]
            if op == 0x8:
                return "close", (struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005)
            if op == 0xA and pong:
                return "pong", None
        try:
            d = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return None, None
        if not d:
            return None, None
        buf += d
    return None, None


MODES = {"basic": m_basic, "basic-auth": m_basic_auth, "hostile": m_hostile, "preauth": m_preauth, "total": m_total,
         "idle": m_idle,
         "slow": m_slow, "pingflood": m_pingflood, "fragments": m_fragments, "wss": m_wss, "slowloris": m_slowloris}


def main():
    mode, url, d = sys.argv[1:4]
    td = Dir(d)
    try:
        asyncio.run(MODES[mode](url, td, sys.argv[4:]))
    except Exception as e:  # a failure of the client itself is a failed case, said so
        import traceback
        traceback.print_exc()
        say(False, f"{mode} ran to its end", repr(e))
    sys.exit(1 if __import__("rawbus").failed else 0)


if __name__ == "__main__":
    main()
