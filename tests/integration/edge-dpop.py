#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A DPoP proof (RFC 9449) for the HTTP edge, built independently of our library with
Python `cryptography` from the scheme doc/edge.md describes:

    edge-dpop.py METHOD URL TOKENFILE KEYFILE [--iat-offset S] [--jti J] [--no-ath]
                 [--typ T] [--tamper]

prints the compact JWS: header {"typ":"dpop+jwt","alg":"ES256","jwk":<the public key of
KEYFILE>}, claims {"htm","htu","iat","jti","ath"} (ath: base64url SHA-256 of the token text),
signed ES256 (raw r||s) by KEYFILE.  --tamper changes the claims after signing."""
import base64
import hashlib
import json
import os
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def main():
    args = sys.argv[1:]
    opts = {"--iat-offset": "0", "--jti": None, "--typ": "dpop+jwt"}
    flags = set()
    pos = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in opts:
            opts[a] = args[i + 1]
            i += 2
        elif a.startswith("--"):
            flags.add(a)
            i += 1
        else:
            pos.append(a)
            i += 1
    method, url, tokfile, keyfile = pos
    with open(tokfile) as f:
        token = f.read().strip()
    with open(keyfile, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    nums = key.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "x": b64u(nums.x.to_bytes(32, "big")),
           "y": b64u(nums.y.to_bytes(32, "big"))}
    header = {"typ": opts["--typ"], "alg": "ES256", "jwk": jwk}
    claims = {"htm": method, "htu": url, "iat": int(time.time()) + int(opts["--iat-offset"]),
              "jti": opts["--jti"] or b64u(os.urandom(16))}
    if "--no-ath" not in flags:
        claims["ath"] = b64u(hashlib.sha256(token.encode()).digest())
    signing_input = (b64u(json.dumps(header).encode()) + "." +
                     b64u(json.dumps(claims).encode()))
    der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if "--tamper" in flags:
        claims["htm"] = "DELETE" if method != "DELETE" else "GET"
        signing_input = (b64u(json.dumps(header).encode()) + "." +
                         b64u(json.dumps(claims).encode()))
    print(signing_input + "." + b64u(sig))


if __name__ == "__main__":
    main()
