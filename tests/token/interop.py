#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""An independent implementation for the key tests (tests/token/test_keys.c):
Python `cryptography` and PyJWT (Debian's python3-cryptography, python3-jwt)
make keys and signatures ours must read, and check what ours makes.

  interop.py genkeys DIR            P-256 keys in every file form, plus P-384/RSA ones
  interop.py sign PRIVFILE MSGFILE  prints the raw r||s hex of a signature, low-S,
                                    and on a second line the same signature high-S
  interop.py verify PUBFILE MSGFILE SIGHEX   exit 0 when the raw r||s verifies
  interop.py jws PUBFILE TOKEN      PyJWT decodes the ES256 JWS; prints its claims
  interop.py thumbprint X Y         the RFC 7638 thumbprint of an EC P-256 JWK
"""
import base64
import hashlib
import json
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature, encode_dss_signature)

# order of the P-256 group (SEC 2, section 2.4.2)
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def genkeys(d):
    k = ec.generate_private_key(ec.SECP256R1())
    write(d + "/py-pkcs8.pem", k.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    write(d + "/py-sec1.pem", k.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.TraditionalOpenSSL,
                                              serialization.NoEncryption()))
    write(d + "/py-spki.pem", k.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    n = k.private_numbers()
    x = n.public_numbers.x.to_bytes(32, "big")
    y = n.public_numbers.y.to_bytes(32, "big")
    dd = n.private_value.to_bytes(32, "big")
    write(d + "/py-priv.jwk", json.dumps({"kty": "EC", "crv": "P-256", "x": b64u(x),
                                          "y": b64u(y), "d": b64u(dd)}).encode())
    write(d + "/py-pub.jwk", json.dumps({"kty": "EC", "crv": "P-256", "x": b64u(x),
                                         "y": b64u(y)}).encode())
    k384 = ec.generate_private_key(ec.SECP384R1())
    write(d + "/py-p384.pem", k384.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    r = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write(d + "/py-rsa.pem", r.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    # the thumbprint, computed here from the canonical JSON (RFC 7638 section 3.2)
    canon = '{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' % (b64u(x), b64u(y))
    write(d + "/py-kid", b64u(hashlib.sha256(canon.encode()).digest()).encode())


def load_priv(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def load_pub(path):
    """The public key of a public or a private key file."""
    with open(path, "rb") as f:
        data = f.read()
    if b"PRIVATE KEY" in data:
        return serialization.load_pem_private_key(data, password=None).public_key()
    return serialization.load_pem_public_key(data)


def sign(priv, msgfile):
    k = load_priv(priv)
    with open(msgfile, "rb") as f:
        msg = f.read()
    r, s = decode_dss_signature(k.sign(msg, ec.ECDSA(hashes.SHA256())))
    low, high = min(s, N - s), max(s, N - s)
    print((r.to_bytes(32, "big") + low.to_bytes(32, "big")).hex())
    print((r.to_bytes(32, "big") + high.to_bytes(32, "big")).hex())


def verify(pub, msgfile, sighex):
    sig = bytes.fromhex(sighex)
    if len(sig) != 64:
        sys.exit(1)
    with open(msgfile, "rb") as f:
        msg = f.read()
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    load_pub(pub).verify(der, msg, ec.ECDSA(hashes.SHA256()))  # raises InvalidSignature


def jws(pub, token):
    import jwt
    with open(pub, "rb") as f:
        claims = jwt.decode(token, f.read(), algorithms=["ES256"],
                            options={"verify_aud": False})
    print(json.dumps(claims, sort_keys=True))


def thumbprint(x, y):
    canon = '{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' % (x, y)
    print(b64u(hashlib.sha256(canon.encode()).digest()))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"genkeys": genkeys, "sign": sign, "verify": verify, "jws": jws,
     "thumbprint": thumbprint}[cmd](*args)


if __name__ == "__main__":
    main()
