#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The token handshake built independently (doc/token.md "Handshake"): Python
`cryptography` makes the proof of possession from the documented bytes, over a
raw socket (rawbus.py), so the daemon's side is checked against the text of the
documentation and not against our own client library.

    token-proof.py MODE SOCKET TOKENFILE KEYFILE [ARGS...]

Modes (each prints "ok <case>" / "FAIL <case>: why" lines; exit 1 on a failure):
  good                  a correct proof: 200
  binding UID           the proof names uid UID as the channel binding
  wrongkey OTHERKEY     the proof signed by OTHERKEY: 401
  replay                a proof for another connection's nonce: 401; the same AUTH
                        twice: never a second 200; a proof for a used nonce: 401
  late SECONDS          a correct AUTH after SECONDS: the connection is closed
  oversized             a 5000-byte token, a 9000-byte AUTH packet: 401
  expect STATUS         a correct proof; the AUTH_RESULT status must be STATUS
"""
import base64
import hashlib
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rawbus  # noqa: E402
from rawbus import AUTH, AUTH_RESULT, CHALLENGE, Conn, frame, say  # noqa: E402

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
except ImportError as e:  # scripts/bootstrap.sh test installs python3-cryptography
    print(f"# skipped: {e}")
    sys.exit(77)

N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
LABEL = b"HYBRID-TOKEN-PROOF-1\x00"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def transcript(audience, nb, nc, token, uid):
    """SHA-256 of the documented bytes."""
    aud = audience.encode()
    binding = b"unix-uid:%d" % uid
    return hashlib.sha256(LABEL + len(aud).to_bytes(2, "big") + aud + nb + nc +
                          hashlib.sha256(token.encode()).digest() +
                          len(binding).to_bytes(2, "big") + binding).digest()


def sign(key, msg):
    """ES256 of msg: raw r||s, low-S, base64url."""
    r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
    if s > N // 2:
        s = N - s
    return b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def challenge(path):
    c = Conn(path, 5.0)
    ch = c.recv()
    assert ch["type"] == CHALLENGE, ch
    c.ch = json.loads(ch["body"])
    c.nb = bytes.fromhex(c.ch["nonce"])
    return c


def auth_body(c, token, key, uid=None, nb=None, runner=None):
    nc = os.urandom(32)
    t = transcript(c.ch["audience"], nb or c.nb, nc, token, os.geteuid() if uid is None else uid)
    return json.dumps({"protocol": "HYBRID", "version": 1, "app": "org.hybridos.cli",
                       "runner": runner or "py%d_%d" % (os.getpid(), id(c) % 100000),
                       "token": token, "nonce": nc.hex(), "proof": sign(key, t)})


def result(c):
    """The AUTH_RESULT status, or None when the broker closed without one."""
    try:
        f = c.recv_type({AUTH_RESULT, rawbus.ERROR})
        return f["status"]
    except (EOFError, ConnectionResetError, socket.timeout, TimeoutError):
        return None


def load(keyfile):
    with open(keyfile, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def main():
    mode, path, tokfile, keyfile = sys.argv[1:5]
    args = sys.argv[5:]
    token = open(tokfile).read().strip()
    key = load(keyfile)
    if mode in ("good", "expect"):
        want = int(args[0]) if mode == "expect" else 200
        c = challenge(path)
        c.send(frame(AUTH, auth_body(c, token, key)))
        st = result(c)
        say(st == want, f"a proof from the documented bytes gets {want}", f"got {st}")
    elif mode == "binding":
        c = challenge(path)
        c.send(frame(AUTH, auth_body(c, token, key, uid=int(args[0]))))
        st = result(c)
        say(st == 401, f"a proof bound to uid {args[0]} presented by uid {os.geteuid()} is 401",
            f"got {st}")
    elif mode == "wrongkey":
        c = challenge(path)
        c.send(frame(AUTH, auth_body(c, token, load(args[0]))))
        st = result(c)
        say(st == 401, "a proof by another key than the holder's is 401", f"got {st}")
    elif mode == "replay":
        a, b = challenge(path), challenge(path)
        body_a = auth_body(a, token, key)
        b.send(frame(AUTH, body_a))
        st = result(b)
        say(st == 401, "a proof for another connection's nonce is 401", f"got {st}")
        a.send(frame(AUTH, body_a))
        st = result(a)
        say(st == 200, "the same proof on its own connection is 200", f"got {st}")
        a.send(frame(AUTH, body_a))
        say(a.closed(3.0) is True, "a second AUTH on that connection closes it")
        c = challenge(path)
        c.send(frame(AUTH, auth_body(c, token, key, nb=a.nb)))
        st = result(c)
        say(st == 401, "a proof for a nonce already used is 401", f"got {st}")
    elif mode == "late":
        c = challenge(path)
        body = auth_body(c, token, key)
        time.sleep(float(args[0]))
        try:
            c.send(frame(AUTH, body))
            st = result(c)
        except (BrokenPipeError, ConnectionResetError):
            st = None
        say(st is None, "a correct AUTH after auth_timeout_ms gets nothing", f"got {st}")
    elif mode == "oversized":
        c = challenge(path)
        big = token + "~" + "A" * (5000 - len(token))
        c.send(frame(AUTH, auth_body(c, big, key)))
        st = result(c)
        say(st == 401, "a 5000-byte token is 401", f"got {st}")
        c = challenge(path)
        body = json.loads(auth_body(c, token, key))
        body["pad"] = "x" * 9000
        c.send(frame(AUTH, json.dumps(body)))
        st = result(c)
        say(st == 401, "a 9000-byte AUTH packet is 401", f"got {st}")
        c = challenge(path)
        body = json.loads(auth_body(c, token, key))
        body["nonce"] = 5
        c.send(frame(AUTH, json.dumps(body)))
        st = result(c)
        say(st == 401, "a token with a malformed nonce is 401", f"got {st}")
    elif mode == "early":
        # the token announced ahead of its AUTH (doc/protocol.md "Handshake"); args[0]:
        # another valid token of the same holder, args[1]: a token whose signature fails
        other = open(args[0]).read().strip()
        forged = open(args[1]).read().strip()
        def announce(c, tok):
            c.send(frame(AUTH, json.dumps({"protocol": "HYBRID", "version": 1, "token": tok,
                                           "early": True})))
        c = challenge(path)
        say(c.ch.get("earlyToken") is True, "the challenge offers the announcement",
            f"challenge {c.ch}")
        announce(c, token)
        c.send(frame(AUTH, auth_body(c, token, key)))
        st = result(c)
        say(st == 200, "announced, then AUTH with that token and its proof: 200", f"got {st}")
        c = challenge(path)
        announce(c, token)
        time.sleep(0.3)  # its checks done before the AUTH comes (either order must hold)
        c.send(frame(AUTH, auth_body(c, token, key)))
        st = result(c)
        say(st == 200, "announced, AUTH after the checks ran: 200", f"got {st}")
        c = challenge(path)
        announce(c, other)
        c.send(frame(AUTH, auth_body(c, token, key)))
        st = result(c)
        say(st == 401, "AUTH with another token than the announced one: 401", f"got {st}")
        c = challenge(path)
        announce(c, forged)
        c.send(frame(AUTH, auth_body(c, forged, key)))
        st = result(c)
        say(st == 401, "a forged token announced, then its AUTH: 401", f"got {st}")
        # block 0's signature changed (one character inside it): its check fails
        bad_sig = token[:-20] + ("A" if token[-20] != "A" else "B") + token[-19:]
        c = challenge(path)
        announce(c, bad_sig)
        c.send(frame(AUTH, auth_body(c, bad_sig, key)))
        st = result(c)
        say(st == 401, "a token with a bad signature announced, then its AUTH: 401", f"got {st}")
        c = challenge(path)
        announce(c, token)
        announce(c, token)
        st = result(c)
        say(st == 401, "a second announcement on a connection: 401", f"got {st}")
        c = challenge(path)
        announce(c, token)
        c.send(frame(AUTH, json.dumps({"protocol": "HYBRID", "version": 1,
                                       "app": "org.hybridos.cli", "runner": "pyx%d" % os.getpid()})))
        st = result(c)
        say(st == 401, "announced, then an AUTH without token: 401", f"got {st}")
        c = challenge(path)
        announce(c, token)
        body = json.loads(auth_body(c, token, key))
        body["proof"] = sign(key, b"something else")
        c.send(frame(AUTH, json.dumps(body)))
        st = result(c)
        say(st == 401, "announced, then a proof over other bytes: 401", f"got {st}")
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        sys.exit(2)
    sys.exit(1 if rawbus.failed else 0)


if __name__ == "__main__":
    main()
