# SPDX-License-Identifier: MIT
"""A stand-in broker behind a WebSocket listener, for the client side of the WebSocket
transport (doc/bus.md "Remote brokers"): what a real daemon never does on purpose.

    ws-fake.py MODE PORTFILE LOG [HOLDER_PUB]

Listens on 127.0.0.1 ($WS_FAKE_HOST: another address), port 0; writes the port to PORTFILE once listening, then one line per
observation to LOG (flushed).  MODE:
  bus, wss   Python `websockets` (Debian's, a third-party implementation) with the
             subprotocol hybrid.bus.v1; the token handshake of doc/token.md (proof checked
             against HOLDER_PUB with the binding "ws-none" in mode bus); then CALLs by method:
             echo (RESULT with the body), pingme (a WebSocket ping and a bus PING first),
             split (the RESULT in a fragmented message), shatter (the RESULT as a
             message of one frame per byte, more than the client's 1024), two (two packets in one message),
             text (a text message), big (a message over the client's bound), bye (a close
             frame 1001), huge (a message announcing 64 MiB in its frame header, then its
             payload as fast as the client takes it, up to 48 MiB: logs "huge sent N"); the
             CHALLENGE announces maxBody $WS_FAKE_MAXBODY (default 1 MiB; a hostile server
             says 4294967295).  wss serves TLS with tests/edge/certs/server.pem.
  bad-accept, no-protocol, refuse-401, extension, huge-head
             a raw HTTP answer to the upgrade (logs the request's head first).
"""
import asyncio
import hashlib
import json
import os
import ssl
import struct
import sys

HDR = struct.Struct("<IBBHQIHHHHI")
CHALLENGE, AUTH, AUTH_RESULT, CALL, RESULT, CANCEL, EVENT, PING, PONG = range(1, 10)
PROTO = "hybrid.bus.v1"
MODE, PORTFILE, LOGFILE = sys.argv[1:4]
PUB = sys.argv[4] if len(sys.argv) > 4 else None
HOST = os.environ.get("WS_FAKE_HOST", "127.0.0.1")  # ::1 for the IPv6 cases
MAXBODY = int(os.environ.get("WS_FAKE_MAXBODY", str(1 << 20)))
log_f = open(LOGFILE, "a")


def log(line):
    log_f.write(line + "\n")
    log_f.flush()


def packet(ty, body=b"", frm="", to="", member="", call_id=0, status=0):
    if isinstance(body, str):
        body = body.encode()
    f, t, m = frm.encode(), to.encode(), member.encode()
    return HDR.pack(len(body), ty, 0, status, call_id, 0, len(f), len(t), len(m), 0, 0) + f + t + m + body


def parse(msg):
    """(fields, from, to, member, body), or None when msg is not exactly one packet."""
    if len(msg) < HDR.size:
        return None
    n, ty, fl, st, cid, tmo, fl_, tl, ml, info, aux = HDR.unpack(msg[:HDR.size])
    if HDR.size + fl_ + tl + ml + n != len(msg):
        return None
    o = HDR.size
    frm, to, mem = msg[o:o + fl_], msg[o + fl_:o + fl_ + tl], msg[o + fl_ + tl:o + fl_ + tl + ml]
    return (ty, cid, st), frm.decode(), to.decode(), mem.decode(), msg[o + fl_ + tl + ml:]


def check_proof(auth, nb, aud, binding):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    import base64
    pub = serialization.load_pem_public_key(open(PUB, "rb").read())
    nc = bytes.fromhex(auth["nonce"])
    t = hashlib.sha256(b"HYBRID-TOKEN-PROOF-1\0" + len(aud).to_bytes(2, "big") + aud + nb + nc
                       + hashlib.sha256(auth["token"].encode()).digest()
                       + len(binding).to_bytes(2, "big") + binding).digest()
    sig = base64.urlsafe_b64decode(auth["proof"] + "==")
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    try:
        pub.verify(encode_dss_signature(r, s), t, ec.ECDSA(hashes.SHA256()))
        return True
    except Exception:
        return False


async def bus_handler(ws, path=None):
    import websockets
    req = ws.request_headers
    log("upgrade path=%s protocol=%s offered=%s version=%s keylen=%d ext=%s" % (
        ws.path, ws.subprotocol, req.get("Sec-WebSocket-Protocol"),
        req.get("Sec-WebSocket-Version"), len(req.get("Sec-WebSocket-Key", "")),
        req.get("Sec-WebSocket-Extensions", "none")))
    nb = os.urandom(32)
    aud = b"fake-audience"
    await ws.send(packet(CHALLENGE, json.dumps({
        "protocol": "HYBRID", "version": 1, "maxBody": MAXBODY, "nonce": nb.hex(),
        "audience": aud.decode(), "tokens": "require"})))
    try:
        msg = await asyncio.wait_for(ws.recv(), 20)
        p = parse(msg) if isinstance(msg, bytes) else None
        if not p or p[0][0] != AUTH:
            log("FAIL auth: not one AUTH packet in a binary message")
            return
        auth = json.loads(p[4])
        if PUB and MODE == "bus":
            log("proof ws-none %s" % ("ok" if check_proof(auth, nb, aud, b"ws-none") else "BAD"))
        elif PUB:
            # wss: B is the TLS exporter, which Python's ssl cannot compute; it is not ws-none
            log("proof not-ws-none %s" % ("BAD" if check_proof(auth, nb, aud, b"ws-none") else "ok"))
        me = "@localhost/%s/%s" % (auth["app"], auth["runner"])
        await ws.send(packet(AUTH_RESULT, json.dumps({"endpoint": me}), status=200, member="ok"))
        while True:
            msg = await ws.recv()
            if not isinstance(msg, bytes):
                log("FAIL a text message from the client")
                continue
            p = parse(msg)
            if not p:
                log("FAIL a message that is not one packet (%d bytes)" % len(msg))
                continue
            (ty, cid, st), frm, to, mem, body = p
            if ty == PONG:
                log("bus pong")
                continue
            if ty != CALL:
                log("packet type %d" % ty)
                continue
            log("call %s %s" % (mem, body.decode(errors="replace")))
            res = packet(RESULT, body, frm=to, call_id=cid, status=200, member="ok")
            if mem == "pingme":
                pong = await ws.ping(b"are you there")
                await asyncio.wait_for(pong, 20)
                log("websocket pong")
                await ws.send(packet(PING))
            elif mem == "split":
                await ws.send([res[:10], res[10:40], res[40:]])
                continue
            elif mem == "shatter":
                await ws.send([res[i:i + 1] for i in range(len(res))])
                continue
            elif mem == "two":
                await ws.send(res + res)
                continue
            elif mem == "text":
                await ws.send("this is text")
                continue
            elif mem == "big":
                await ws.send(packet(RESULT, b"x" * ((16 << 20) + 10000), call_id=cid, status=200))
                continue
            elif mem == "huge":
                # one unmasked binary frame announcing 64 MiB, written raw: a client that
                # takes the announced size buffers what follows; one that bounds it closes
                sent = 0
                ws.transport.write(b"\x82\x7f" + struct.pack(">Q", 64 << 20))
                chunk = b"h" * (1 << 20)
                while sent < (48 << 20) and not ws.transport.is_closing() and ws.close_code is None:
                    if ws.transport.get_write_buffer_size() > (2 << 20):
                        await asyncio.sleep(0.01)
                        continue
                    ws.transport.write(chunk)
                    sent += len(chunk)
                log("huge sent %d" % sent)
                for _ in range(1500):  # 15 s for the client's close
                    if ws.close_code is not None or ws.transport.is_closing():
                        break
                    await asyncio.sleep(0.01)
                if ws.close_code is None:
                    ws.transport.close()
                    log("closed code=None")
                    return
                continue
            elif mem == "bye":
                await ws.close(1001, "going away")
                return
            await ws.send(res)
    except websockets.ConnectionClosed:
        pass
    finally:
        log("closed code=%s" % ws.close_code)


RAW = {
    "bad-accept": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: " + PROTO + "\r\n\r\n",
    "no-protocol": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n\r\n",
    "extension": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: " + PROTO + "\r\n"
                 "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    "refuse-401": "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    # a head that never ends within the client's bound (8 KiB): 100 KiB of headers
    "huge-head": "HTTP/1.1 101 Switching Protocols\r\n" + "X-Filler: %s\r\n" % ("y" * 1000) * 100 + "\r\n",
}


async def raw_handler(reader, writer):
    import base64
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    log("request %s" % lines[0])
    for h in ("host", "upgrade", "connection", "sec-websocket-version", "sec-websocket-protocol"):
        log("header %s: %s" % (h, hdrs.get(h)))
    key = hdrs.get("sec-websocket-key", "")
    log("key decodes to %d bytes" % len(base64.b64decode(key)))
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                           .encode()).digest()).decode()
    ans = RAW[MODE]
    writer.write((ans % accept if MODE in ("no-protocol", "extension") else ans).encode())
    await writer.drain()
    await asyncio.sleep(2)
    writer.close()


async def main():
    if MODE in ("bus", "wss"):
        import websockets
        ctx = None
        if MODE == "wss":
            certs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "edge", "certs")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(os.path.join(certs, "server.pem"), os.path.join(certs, "server.key"))
        server = await websockets.serve(bus_handler, HOST, 0, subprotocols=[PROTO],
                                        compression=None, max_size=1 << 25, ssl=ctx)
    else:
        server = await asyncio.start_server(raw_handler, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    with open(PORTFILE + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.rename(PORTFILE + ".tmp", PORTFILE)
    await asyncio.Future()


asyncio.run(main())
