#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Credentials over plain CoAP (doc/edge.md "CoAP credentials"), signed here with Python
`cryptography` from the scheme the doc describes, not by our library, against a running
hybridd (listen.coap 127.0.0.1:PORT, auth.audience hub1, bus-probe serving e1):

    edge-coap-auth.py MODE PORT DIR

DIR holds the keys (*.key, PKCS#8 PEM) and tokens (one per file) the shell test made.
Each mode prints "ok <case>" / "FAIL <case>: why"; exit 1 on a failure.
  main     upload (POST /authz-info), calls, the store, Observe with a token; and the
           refusals: none, denied 4.03, replayed, body swapped, wrong key, stale iat,
           expired token, unknown hash, another URI, a proof of a refused upload
  tokens   the bound of tokens kept: 4 of one address (a 5th replaces its oldest), 32 in
           all (one more replaces the least recently used)
  pending  16 authenticated calls of hold from one address wait; the 17th is 5.03
  revoke-before, revoke-after
           the token "rev" is uploaded and served; after `hybrid token revoke` of its jti
           (by the shell), the next request is 4.01
  expiry   an observation made with a token of 8 s ends (4.01) when it expires
  held     (the daemon's verifications held by HYBRID_TEST_VERIFY_GATE=DIR/gate) requests
           waiting for their check count as pending: 16 of one address, 128 in all, then
           5.03; once let through, all are served
"""
import hashlib
import importlib.util
import os
import struct
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

_spec = importlib.util.spec_from_file_location(
    "edge_coap", os.path.join(os.path.dirname(os.path.abspath(__file__)), "edge-coap.py"))
C = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(C)
CON, NON, ACK = C.CON, C.NON, C.ACK
GET, POST, PUT, DELETE = C.GET, C.POST, C.PUT, C.DELETE
OPT_PROOF, OPT_TIMEOUT = 65003, 65001
DIR = "."
say = C.say
code_str = C.code_str


def fails():
    return C.fails


def load_key(name):
    with open(os.path.join(DIR, name), "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def token(name):
    with open(os.path.join(DIR, name), "rb") as f:
        return f.read().strip()


def pct(b, query):
    """Percent-encodes all but unreserved, sub-delims, ":" and "@" (a query: also "/" and
    "?", and "&" is encoded), %XX in upper case."""
    keep = "-._~!$&'()*+,;=:@" + ("/?" if query else "")
    if query:
        keep = keep.replace("&", "")
    return "".join(chr(c) if (chr(c).isascii() and chr(c).isalnum()) or chr(c) in keep
                   else "%%%02X" % c for c in b)


def uri_of(port, path, queries=()):
    """RFC 7252 section 6.5: no Uri-Host, so the destination's address and port."""
    u = "coap://127.0.0.1" + ("" if port == 5683 else ":%d" % port)
    segs = [s for s in path.strip("/").split("/")] if path.strip("/") else []
    u += "".join("/" + pct(s.encode(), False) for s in segs) or "/"
    if queries:
        u += "?" + "&".join(pct(q.encode(), True) for q in queries)
    return u


def proof(key, code, uri, payload, tok_hash, iat=None, jti=None):
    """Option 65003: the token's SHA-256 (32) | iat (8) | jti (16) | ES256 r||s (64) over
    the signed input of the doc."""
    iat = int(time.time()) if iat is None else iat
    jti = jti or os.urandom(16)
    msg = (b"hybrid-coap-proof/1\0" + bytes([code]) + struct.pack("!H", len(uri)) +
           uri.encode() + hashlib.sha256(payload).digest() + tok_hash +
           struct.pack("!q", iat) + jti)
    r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
    return tok_hash + struct.pack("!q", iat) + jti + r.to_bytes(32, "big") + s.to_bytes(32, "big")


class Client(C.Peer):
    def __init__(self, port, src="127.0.0.1"):
        super().__init__(port, src)
        self.port = port
        self.n = 0

    def tok(self):
        self.n += 1
        return b"a%06d" % self.n

    def upload(self, tok, key, iat=None):
        """POST /authz-info, the token as payload (Block1 when over 512 bytes)."""
        uri = uri_of(self.port, "/authz-info")
        prf = proof(key, POST, uri, tok, hashlib.sha256(tok).digest(), iat)
        if len(tok) <= 512:
            return self.request(POST, "/authz-info", self.tok(), opts=[(OPT_PROOF, prf)],
                                payload=tok)
        m, ctok = None, self.tok()
        for num in range((len(tok) + 511) // 512):
            more = (num + 1) * 512 < len(tok)
            blk = bytes([(num << 4) | (8 if more else 0) | 5]) if num < 16 else \
                struct.pack("!H", (num << 4) | (8 if more else 0) | 5)
            opts = [(27, blk), (OPT_PROOF, prf)]
            m = self.request(POST, "/authz-info", ctok, opts=opts,
                             payload=tok[num * 512:(num + 1) * 512])
            if m is None or (more and code_str(m[1]) != "2.31"):
                return m
        return m

    def call(self, code, path, tok, key, payload=b"", queries=(), sign_payload=None,
             sign_path=None, iat=None, jti=None, observe=None, extra=(), raw_proof=None):
        uri = uri_of(self.port, sign_path or path, queries)
        th = hashlib.sha256(tok).digest()
        prf = raw_proof or proof(key, code, uri, payload if sign_payload is None else
                                 sign_payload, th, iat, jti)
        opts = [(OPT_PROOF, prf)] + [(15, q.encode()) for q in queries]
        if observe is not None:
            opts.append((6, observe))
        m = self.request(code, path, self.tok(), opts=opts + list(extra), payload=payload)
        return m, prf


def is_code(m, want, case, body=None):
    ok = m is not None and code_str(m[1]) == want and (body is None or body in m[5])
    say(ok, case, "no answer" if m is None else "%s %r" % (code_str(m[1]), m[5][:300]))


def main_mode(port):
    good, narrow, expired = token("good"), token("narrow"), token("expired")
    holder, other = load_key("holder.key"), load_key("other.key")
    p = Client(port, "127.0.0.1")

    # no credentials on a route edge.anonymous does not grant
    m = p.request(POST, "/bus/org.example.edge/e1/whoami", b"n0", payload=b"{}")
    is_code(m, "4.01", "no credentials: 4.01", b'"status":401')
    # a hash the daemon was never given
    m, _ = p.call(POST, "/bus/org.example.edge/e1/whoami", good, holder, b"{}")
    is_code(m, "4.01", "a token not uploaded yet: 4.01 'unknown token'", b"unknown token")
    # an upload whose proof is not the holder's is refused, and nothing is kept
    m = p.upload(good, other)
    is_code(m, "4.01", "an upload signed by another key: 4.01")
    m, _ = p.call(POST, "/bus/org.example.edge/e1/whoami", good, holder, b"{}")
    is_code(m, "4.01", "... and the token was not kept", b"unknown token")
    # the upload
    m = p.upload(good, holder)
    is_code(m, "2.01", "POST /authz-info with the token and its proof: 2.01 Created")
    # an allowed call: the callee sees transport coap and the token's sub
    m, prf = p.call(POST, "/bus/org.example.edge/e1/whoami", good, holder, b'{"a":[1,2]}')
    is_code(m, "2.05", "an allowed call: 2.05, as the token's principal",
            b'{"transport":"coap","principal":"alice","params":{"a":[1,2]}}')
    # the same proof again (a new message id and CoAP token): a replay
    m, _ = p.call(POST, "/bus/org.example.edge/e1/whoami", good, holder, b'{"a":[1,2]}',
                  raw_proof=prf)
    is_code(m, "4.01", "the same proof again (replayed): 4.01")
    # GET with Uri-Query params (the query is in the signed URI)
    m, _ = p.call(GET, "/bus/org.example.edge/e1/whoami", good, holder, queries=("n=5", "s=a&b"))
    is_code(m, "2.05", "GET with Uri-Query: the params, the query signed",
            b'"params":{"n":5,"s":"a&b"}')
    # the body swapped: signed for one payload, sent with another
    m, _ = p.call(PUT, "/store/sensors/t", good, holder, b"666", sign_payload=b"21.5")
    is_code(m, "4.01", "a body other than the one signed (swapped on the way): 4.01")
    # another URI than the one signed
    m, _ = p.call(PUT, "/store/sensors/t", good, holder, b"21.5", sign_path="/store/sensors/u")
    is_code(m, "4.01", "a proof for another URI: 4.01")
    # a query added on the way
    m, _ = p.call(GET, "/bus/org.example.edge/e1/whoami", good, holder, queries=("n=5",),
                  extra=[(15, b"x=1")])
    is_code(m, "4.01", "a Uri-Query added to a signed request: 4.01")
    # signed by a key that is not the holder's
    m, _ = p.call(PUT, "/store/sensors/t", good, other, b"21.5")
    is_code(m, "4.01", "a proof by another key: 4.01")
    # iat out of the window, either way
    m, _ = p.call(PUT, "/store/sensors/t", good, holder, b"21.5", iat=int(time.time()) - 300)
    is_code(m, "4.01", "a proof 300 s old: 4.01")
    m, _ = p.call(PUT, "/store/sensors/t", good, holder, b"21.5", iat=int(time.time()) + 300)
    is_code(m, "4.01", "a proof 300 s ahead: 4.01")
    # a proof option of the wrong length, or twice
    m, prf = p.call(GET, "/store/sensors/t", good, holder)
    m = p.request(GET, "/store/sensors/t", p.tok(), opts=[(OPT_PROOF, prf[:119])])
    is_code(m, "4.01", "a proof option of 119 bytes: 4.01")
    m, prf = p.call(GET, "/store/sensors/t", good, holder)
    m = p.request(GET, "/store/sensors/t", p.tok(), opts=[(OPT_PROOF, prf), (OPT_PROOF, prf)])
    is_code(m, "4.01", "the proof option twice: 4.01")
    # the store with the token's rights
    m, _ = p.call(PUT, "/store/sensors/t", good, holder, b"21.5")
    is_code(m, "2.04", "PUT /store/sensors/t with a token: 2.04 Changed")
    m, _ = p.call(GET, "/store/sensors/t", good, holder)
    is_code(m, "2.05", "GET /store/sensors/t with a token: 2.05 the value")
    say(m is not None and m[5] == b"21.5", "... the value written", repr(m and m[5]))
    m, _ = p.call(DELETE, "/store/sensors/t", good, holder)
    is_code(m, "2.02", "DELETE /store/sensors/t with a token: 2.02 Deleted")
    m, _ = p.call(GET, "/store/sensors/t", good, holder)
    is_code(m, "4.04", "GET after the delete: 4.04")
    # denied: a token that does not grant the call, nor the write
    m = p.upload(narrow, holder)
    is_code(m, "2.01", "the narrow token uploaded")
    m, _ = p.call(POST, "/bus/org.example.edge/e1/whoami", narrow, holder, b"{}")
    is_code(m, "4.03", "a call the token does not grant: 4.03", b'"status":403')
    m, _ = p.call(PUT, "/store/sensors/t", narrow, holder, b"1")
    is_code(m, "4.03", "a write the token does not grant: 4.03")
    m, _ = p.call(GET, "/store/other/x", good, holder)
    is_code(m, "4.03", "a fURI the token's capabilities do not cover: 4.03")
    # an expired token is refused at its upload
    while time.time() < os.path.getmtime(os.path.join(DIR, "expired")) + 3:
        time.sleep(0.2)  # its exp (1 s after it was made) has passed
    m = p.upload(expired, holder)
    is_code(m, "4.01", "an expired token's upload: 4.01")
    # an attenuated token (two blocks, > 1 KB) uploaded by Block1, by its new holder
    att, h2 = token("att"), load_key("holder2.key")
    say(len(att) > 1024, "the attenuated token is over 1 KB (%d bytes)" % len(att))
    m = p.upload(att, h2)
    is_code(m, "2.01", "a token over 1 KB uploaded in Block1 blocks: 2.01")
    m, _ = p.call(POST, "/bus/org.example.edge/e1/whoami", att, h2, b"{}")
    is_code(m, "2.05", "... and used with its holder's proof", b'"principal":"alice"')
    m, _ = p.call(POST, "/bus/org.example.edge/e1/whoami", att, holder, b"{}")
    is_code(m, "4.01", "... not with its former holder's")
    # Observe with a token
    o = Client(port, "127.0.0.1")
    m, _ = o.call(GET, "/watch/sensors/#", good, holder, observe=b"")
    is_code(m, "2.05", "Observe /watch/sensors/# with a token: 2.05 {}", b"{}")
    say(m is not None and 6 in m[4], "... with an Observe option", repr(m))
    otok = m[3] if m else b""
    m, _ = p.call(PUT, "/store/sensors/o", good, holder, b"7")
    is_code(m, "2.04", "a write the observer should see")
    got = None
    end = time.time() + 30
    while time.time() < end and got is None:
        n = o.recv(max(0.1, end - time.time()))
        if n is None:
            break
        if n[0] == CON:
            o.send(C.build(ACK, 0, n[2]))
        if n[3] == otok and n[1] != 0:
            got = n
    say(got is not None and code_str(got[1]) == "2.05" and
        got[5] == b'{"furi":"/sensors/o","value":7}',
        "the observer with a token is notified of the write", repr(got))
    m, _ = o.call(GET, "/watch/sensors/#", good, other, observe=b"")
    is_code(m, "4.01", "Observe with a proof by another key: 4.01")
    m, _ = o.call(GET, "/watch/secret/#", narrow, holder, observe=b"")
    is_code(m, "4.03", "Observe of what the token may not subscribe to: 4.03")
    # anonymous routes are still served without credentials
    m = p.request(PUT, "/store/public/x", b"an", payload=b"1")
    is_code(m, "2.04", "an anonymous route without credentials: 2.04")


def tokens_mode(port):
    holder = load_key("holder.key")
    toks = [token("bulk%d" % i) for i in range(34)]
    a0 = Client(port, "127.0.0.60")
    ok = sum(1 for t in toks[:5] if (lambda m: m and code_str(m[1]) == "2.01")(a0.upload(t, holder)))
    say(ok == 5, "5 tokens uploaded from 127.0.0.60", "%d" % ok)
    m, _ = a0.call(GET, "/store/sensors/t", toks[0], holder)
    is_code(m, "4.01", "its first is no longer kept (4 per address)", b"unknown token")
    n = 0
    for t in toks[1:5]:
        m, _ = a0.call(GET, "/store/sensors/t", t, holder)
        n += m is not None and code_str(m[1]) in ("2.05", "4.04")
    say(n == 4, "its 4 others are kept", "%d" % n)
    k = 5
    for a in range(1, 8):
        c = Client(port, "127.0.0.%d" % (60 + a))
        for _ in range(4):
            m = c.upload(toks[k], holder)
            k += 1
            if m is None or code_str(m[1]) != "2.01":
                say(False, "upload %d from 127.0.0.%d" % (k, 60 + a), repr(m))
    # 32 kept now; the one used least recently: toks[1] (127.0.0.60's were used before
    # the 7 others uploaded theirs)
    c = Client(port, "127.0.0.68")
    m = c.upload(toks[33], holder)
    is_code(m, "2.01", "a 33rd token uploaded from a 9th address")
    m, _ = c.call(GET, "/store/sensors/t", toks[33], holder)
    say(m is not None and code_str(m[1]) in ("2.05", "4.04"), "... and kept", repr(m))
    m, _ = c.call(GET, "/store/sensors/t", toks[1], holder)
    is_code(m, "4.01", "the token used least recently went (32 in all)", b"unknown token")
    n = 0
    for t in toks[2:33]:
        m, _ = c.call(GET, "/store/sensors/t", t, holder)
        n += m is not None and code_str(m[1]) in ("2.05", "4.04")
    say(n == 31, "the 31 others are kept", "%d" % n)


def pending_mode(port):
    good, holder = token("good"), load_key("holder.key")
    p = Client(port, "127.0.0.71")
    m = p.upload(good, holder)
    is_code(m, "2.01", "the token uploaded from 127.0.0.71")
    th = hashlib.sha256(good).digest()
    acks = 0
    for i in range(16):
        uri = uri_of(port, "/bus/org.example.edge/e1/hold")
        prf = proof(holder, POST, uri, b"{}", th)
        p.send(C.build(CON, POST, p.next_mid(), b"h%02d" % i,
                       C.path_opts("/bus/org.example.edge/e1/hold") +
                       [(OPT_PROOF, prf), (OPT_TIMEOUT, b"20000")], b"{}"))
        m = p.recv(30)
        if m and m[0] == ACK and m[1] == 0:
            acks += 1
    say(acks == 16, "16 authenticated calls from 127.0.0.71 wait (empty ACKs)", "%d" % acks)
    m, _ = p.call(POST, "/bus/org.example.edge/e1/hold", good, holder, b"{}",
                  extra=[(OPT_TIMEOUT, b"20000")])
    is_code(m, "5.03", "the 17th pending request of 127.0.0.71 (credentials or not): 5.03",
            b"pending")
    q = Client(port, "127.0.0.72")
    m, _ = q.call(POST, "/bus/org.example.edge/e1/whoami", good, holder, b"{}")
    is_code(m, "2.05", "127.0.0.72 is served meanwhile")


def held_mode(port):
    """The daemon's verifying threads read a byte of DIR/gate before each signature: while
    none is written, credentials wait to be checked."""
    good, holder = token("good"), load_key("holder.key")
    gate = os.open(os.path.join(DIR, "gate"), os.O_RDWR)  # no wait for a reader
    p = Client(port, "127.0.0.80")
    os.write(gate, b"xx")  # the upload: the token's signature and the proof's
    m = p.upload(good, holder)
    is_code(m, "2.01", "the token uploaded (2 signatures let through)")
    th = hashlib.sha256(good).digest()
    peers, sent = [], 0

    def burst(src, n):
        c = Client(port, src)
        acks = 0
        for i in range(n):
            path = "/store/sensors/h%d" % i
            prf = proof(holder, GET, uri_of(port, path), b"", th)
            c.send(C.build(CON, GET, c.next_mid(), b"g%03d" % i,
                           C.path_opts(path) + [(OPT_PROOF, prf)]))
            m = c.recv(30)
            acks += m is not None and m[0] == ACK and m[1] == 0
        peers.append((c, n))
        return acks
    acks = burst("127.0.0.81", 16)
    say(acks == 16, "16 requests of 127.0.0.81 wait for their check (empty ACKs)", "%d" % acks)
    m, _ = Client(port, "127.0.0.81").call(GET, "/store/sensors/x", good, holder)
    is_code(m, "5.03", "the 17th of 127.0.0.81 while they wait: 5.03, before any check",
            b"pending")
    acks = sum(burst("127.0.0.%d" % a, 16) for a in range(82, 89))
    say(acks == 112, "7 more addresses: 112 more wait (128 in all)", "%d" % acks)
    m, _ = Client(port, "127.0.0.89").call(GET, "/store/sensors/x", good, holder)
    is_code(m, "5.03", "the 129th waiting in all, from a 9th address: 5.03", b"pending")
    m = Client(port, "127.0.0.90").request(GET, "/watch/public/#", b"an", opts=[(6, b"")])
    is_code(m, "2.05", "an anonymous observation is registered meanwhile (a bound of its own)")
    os.write(gate, b"x" * 128)  # one signature each: the 128 are checked
    answered = 0
    for c, n in peers:
        seen = set()
        end = time.time() + 60
        while len(seen) < n and time.time() < end:
            m = c.recv(max(0.1, end - time.time()))
            if m is None:
                break
            if m[0] == CON:
                c.send(C.build(ACK, 0, m[2]))
            if m[1] != 0 and code_str(m[1]) == "4.04":
                seen.add(m[3])
        answered += len(seen)
    say(answered == 128, "once let through, the 128 are checked and served (4.04: nothing "
        "there)", "%d" % answered)
    os.close(gate)


def expiry_mode(port):
    """An observation made with a token of 8 s ends when the token expires."""
    short, holder = token("short"), load_key("holder.key")
    o = Client(port, "127.0.0.91")
    m = o.upload(short, holder)
    is_code(m, "2.01", "a token of 8 s uploaded")
    m, _ = o.call(GET, "/watch/sensors/#", short, holder, observe=b"")
    is_code(m, "2.05", "an observation with it registered")
    otok = m[3] if m else b""
    end, got = time.time() + 60, None
    while time.time() < end and got is None:
        n = o.recv(max(0.1, end - time.time()))
        if n is None:
            break
        if n[0] == CON:
            o.send(C.build(ACK, 0, n[2]))
        if n[3] == otok and n[1] != 0 and code_str(n[1]) != "2.05":
            got = n
    is_code(got, "4.01", "the observation ends with 4.01 once the token expired", b'"status":401')
    say(got is not None and 6 not in got[4], "... a final answer, without Observe", repr(got))


def revoke_mode(port, when):
    """The token "rev" is served before `hybrid token revoke` of its jti, refused after."""
    rev, holder = token("rev"), load_key("holder.key")
    p = Client(port, "127.0.0.92")
    if when == "before":
        m = p.upload(rev, holder)
        is_code(m, "2.01", "the token to revoke uploaded")
        m, _ = p.call(GET, "/store/sensors/t", rev, holder)
        say(m is not None and code_str(m[1]) in ("2.05", "4.04"), "... served before its "
            "revocation", repr(m))
    else:
        m, _ = p.call(GET, "/store/sensors/t", rev, holder)
        is_code(m, "4.01", "once revoked, the token kept is refused (revocation asked at each "
                "request)")


def main():
    global DIR
    mode, port, DIR = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    {"main": main_mode, "tokens": tokens_mode, "pending": pending_mode,
     "held": held_mode, "expiry": expiry_mode,
     "revoke-before": lambda port: revoke_mode(port, "before"),
     "revoke-after": lambda port: revoke_mode(port, "after")}[mode](port)
    return 1 if fails() else 0


if __name__ == "__main__":
    sys.exit(main())
