#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Makes one revocation feed entry with Python `cryptography`, independently of libhybrid:
token-feed-entry.py KEY.pem SEQ JTI -> prints the entry (doc/token.md "Revocation feed"):
a JWS with the header {"alg":"ES256","typ":"hyb-rev+jwt","kid":<RFC 7638 thumbprint>}
and the claims {"v":1,"seq":SEQ,"iat":<now>,"jti":JTI}, signed ES256 (raw r||s, low-S).
Used by token-revoke.sh to deliver entries the CLI would not make: a rollback (an
older seq, validly signed) and a gap (a seq beyond the head).
token-feed-entry.py KEY.pem --range FIRST LAST -> prints a JSON array of the entries
FIRST..LAST (jti "bulk-<seq>") as `hybrid token feed --json` prints a feed, for
`hybrid token feed --push`."""
import base64
import hashlib
import json
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_json(obj):
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def thumbprint(pub):
    n = pub.public_numbers()
    text = json.dumps({"crv": "P-256", "kty": "EC", "x": b64u(n.x.to_bytes(32, "big")),
                       "y": b64u(n.y.to_bytes(32, "big"))}, separators=(",", ":"))
    return b64u(hashlib.sha256(text.encode()).digest())


def entry(priv, hdr, seq, jti):
    claims = {"v": 1, "seq": seq, "iat": int(time.time()), "jti": jti}
    signed = f"{b64u_json(hdr)}.{b64u_json(claims)}"
    r, s = decode_dss_signature(priv.sign(signed.encode(), ec.ECDSA(hashes.SHA256())))
    if s > N // 2:
        s = N - s
    return f"{signed}.{b64u(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def main():
    with open(sys.argv[1], "rb") as f:
        priv = serialization.load_pem_private_key(f.read(), password=None)
    hdr = {"alg": "ES256", "typ": "hyb-rev+jwt", "kid": thumbprint(priv.public_key())}
    if sys.argv[2] == "--range":
        seqs = range(int(sys.argv[3]), int(sys.argv[4]) + 1)
        json.dump([{"seq": n, "entry": entry(priv, hdr, n, f"bulk-{n}")} for n in seqs], sys.stdout)
    else:
        print(entry(priv, hdr, int(sys.argv[2]), sys.argv[3]))


main()
