#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Writes the seed corpus of fuzz_token.c (tests/fuzz/corpus/token/) with Debian's
# python3-cryptography, from the fixed keys in fuzz_token.c: valid tokens of 1 to 3
# blocks and near misses (mode 0), block-0 header+claims texts (mode 1), attenuation
# claims (mode 2), revocation feed entries.  Run from anywhere; rewrites the directory's seeds.
import base64
import hashlib
import json
import os
import re

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "token")
NOW = 1800000000
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def pem(name):
    src = open(os.path.join(HERE, "fuzz_token.c")).read()
    body = re.search(name + r'_pem\[\] =\n(.*?);', src, re.S).group(1)
    text = "".join(re.findall(r'"(.*?)"', body)).replace("\\n", "\n")
    return serialization.load_pem_private_key(text.encode(), None)


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def js(o):
    return json.dumps(o, separators=(",", ":"))


def jwk(k):
    n = k.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64u(n.x.to_bytes(32, "big")),
            "y": b64u(n.y.to_bytes(32, "big"))}


def kid(k):
    j = jwk(k)
    return b64u(hashlib.sha256(js({c: j[c] for c in ("crv", "kty", "x", "y")}).encode()).digest())


def sign(k, hdr, claims):
    h, p = b64u(hdr.encode()), b64u(claims.encode())
    r, s = decode_dss_signature(k.sign(f"{h}.{p}".encode(), ec.ECDSA(hashes.SHA256())))
    s = min(s, N - s)
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{h}.{p}.{b64u(sig)}", sig


issuer, holder = pem("issuer"), pem("holder")
holder2 = ec.derive_private_key(7, ec.SECP256R1())
holder3 = ec.derive_private_key(11, ec.SECP256R1())
H0 = js({"alg": "ES256", "typ": "hyb-auth+jwt", "kid": kid(issuer)})
HA = js({"alg": "ES256", "typ": "hyb-att+jwt"})
C0 = js({"v": 1, "iss": "hub", "sub": "fuzz", "aud": ["hub-a", "hub-b"], "iat": NOW, "nbf": NOW,
         "exp": NOW + 3600, "jti": "seedseedseedseedseed01", "cnf": {"jwk": jwk(holder)},
         "cap": [{"resource": "/home/#", "actions": ["read", "sub", "write"]},
                 {"resource": "bus://hub/+/+/#", "actions": ["call"]}], "dlg": 3, "epo": 0})


def att(prev_sig, new_holder, **extra):
    return js(dict({"v": 1, "prv": b64u(hashlib.sha256(prev_sig).digest()),
                    "cnf": {"jwk": jwk(new_holder)}}, **extra))


seeds = {}
b0, s0 = sign(issuer, H0, C0)
seeds["0-one-block"] = b"\0" + b0.encode()
a1 = att(s0, holder2, cap=[{"resource": "/home/kitchen/#", "actions": ["read"]}], exp=NOW + 600)
b1, s1 = sign(holder, HA, a1)
seeds["0-two-blocks"] = b"\0" + f"{b0}~{b1}".encode()
b2, _ = sign(holder2, HA, att(s1, holder3, aud="hub-a", dlg=0))
seeds["0-three-blocks"] = b"\0" + f"{b0}~{b1}~{b2}".encode()
seeds["0-bad-signer"] = b"\0" + f"{b0}~{sign(holder2, HA, a1)[0]}".encode()
seeds["0-alg-none"] = b"\0" + f"{b64u(js({'alg': 'none'}).encode())}.{b0.split('.')[1]}.".encode()
seeds["0-garbage"] = b"\0a.b.c~d.e.f"
seeds["1-block0"] = b"\1" + f"{H0}\n{C0}".encode()
seeds["1-extra-header"] = b"\1" + (H0[:-1] + ',"jku":"https://x"}\n' + C0).encode()
seeds["1-float-exp"] = b"\1" + f"{H0}\n{C0.replace(str(NOW + 3600), str(NOW + 3600) + '.0')}".encode()
seeds["1-dup-key"] = b"\1" + f"{H0}\n{C0[:-1]},\"sub\":\"root\"}}".encode()
seeds["1-deep"] = b"\1" + f"{H0}\n{{\"x\":{'[' * 40}{']' * 40}}}".encode()
seeds["2-narrow"] = b"\2" + a1.encode()
seeds["2-widen"] = b"\2" + att(s0, holder2, cap=[{"resource": "#", "actions": ["admin", "read"]}],
                               aud=["hub-a", "hub-z"], exp=NOW + 999999, dlg=3).encode()
seeds["2-bus"] = b"\2" + att(s0, holder2, cap=[{"resource": "bus://hub/app/r1/+",
                                                "actions": ["call"]}]).encode()
# Revocation feed entries (every text is also offered to a feed): mode 1 header+claims
# signed by the issuer, and one whole entry for mode 0.
HR = js({"alg": "ES256", "typ": "hyb-rev+jwt", "kid": kid(issuer)})
seeds["1-feed-jti"] = b"\1" + f"{HR}\n{js({'v': 1, 'seq': 1, 'iat': NOW, 'jti': 'abc'})}".encode()
seeds["1-feed-epoch-gap"] = b"\1" + f"{HR}\n{js({'v': 1, 'seq': 7, 'iat': NOW, 'min_epo': 3})}".encode()
seeds["0-feed-entry"] = b"\0" + sign(issuer, HR, js({"v": 1, "seq": 1, "iat": NOW,
                                                      "holder": kid(holder)}))[0].encode()

os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    os.unlink(os.path.join(OUT, f))
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"{len(seeds)} seeds in {OUT}")
