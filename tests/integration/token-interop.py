#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Token interop with an independent implementation: PyJWT and `cryptography`.

1. PyJWT verifies block 0 of a token made by `hybrid token issue` (and of an
   attenuated one) with the issuer's public key, and reads its claims.
2. A token made here (cryptography keys and PEM files, PyJWT for block 0, raw
   ECDSA for an attenuation block) is accepted by `hybrid token verify`, and
   refused once tampered with.

Usage: token-interop.py HYBRID   (exit 77: PyJWT or cryptography missing)
"""
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

try:
    import jwt
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
except ImportError as e:  # scripts/bootstrap.sh test installs python3-jwt python3-cryptography
    print(f"# skipped: {e}")
    sys.exit(77)

HYBRID = os.path.abspath(sys.argv[1])
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
failures = 0
passes = 0


def check(desc, cond, detail=""):
    global failures, passes
    if cond:
        passes += 1
        print(f"ok - {desc}")
    else:
        failures += 1
        print(f"FAIL - {desc}" + (f"\n    | {detail}" if detail else ""))


def hybrid(*args, stdin=None):
    p = subprocess.run([HYBRID, *args], input=stdin, capture_output=True, text=True)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_json(obj):
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def jwk_of(pub):
    n = pub.public_numbers()
    return {"kty": "EC", "crv": "P-256",
            "x": b64u(n.x.to_bytes(32, "big")), "y": b64u(n.y.to_bytes(32, "big"))}


def thumbprint(pub):
    j = jwk_of(pub)  # RFC 7638: the required members, sorted, no whitespace
    text = json.dumps({k: j[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    return b64u(hashlib.sha256(text.encode()).digest())


def es256_raw(priv, data):
    r, s = decode_dss_signature(priv.sign(data, ec.ECDSA(hashes.SHA256())))
    if s > N // 2:
        s = N - s  # low-S, as RFC 7518 verifiers here require
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def low_s(token):
    """PyJWT signs ES256 as ECDSA gives it: high-S about half the time.  Verifiers here accept
    only the low-S twin (s <= n/2) of a signature, so an issuer using PyJWT turns s into
    n - s when it is above n/2 (the same signature mathematically)."""
    h, p, s = token.split(".")
    raw = base64.urlsafe_b64decode(s + "==")
    sv = int.from_bytes(raw[32:], "big")
    if sv > N // 2:
        raw = raw[:32] + (N - sv).to_bytes(32, "big")
    return f"{h}.{p}.{b64u(raw)}"


def write_key(path, key, fmt):
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, fmt,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o600)
    with open(path + ".pub", "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))


with tempfile.TemporaryDirectory() as d:
    os.chdir(d)

    # --- 1. our tokens in PyJWT -------------------------------------------------
    for k in ("issuer", "alice", "guest"):
        rc, out, err = hybrid("token", "keygen", k + ".key")
        check(f"keygen {k}", rc == 0, err)
    rc, tok, err = hybrid("token", "issue", "--key", "issuer.key", "--iss", "hub", "--sub", "alice",
                          "--aud", "hub-a", "--holder", "alice.key.pub",
                          "--cap", "/sensors/#=read,sub", "--ttl", "600", "--dlg", "1")
    check("issue", rc == 0, err)
    with open("issuer.key.pub", "rb") as f:
        issuer_pub = serialization.load_pem_public_key(f.read())
    with open("alice.key.pub", "rb") as f:
        alice_pub = serialization.load_pem_public_key(f.read())
    try:
        claims = jwt.decode(tok, issuer_pub, algorithms=["ES256"], audience="hub-a")
        hdr = jwt.get_unverified_header(tok)
        check("PyJWT verifies block 0 with the issuer's public key", True)
    except jwt.PyJWTError as e:
        claims, hdr = {}, {}
        check("PyJWT verifies block 0", False, repr(e))
    check("PyJWT reads sub", claims.get("sub") == "alice", claims)
    check("PyJWT reads iss", claims.get("iss") == "hub", claims)
    check("exp, nbf, iat are integers", all(type(claims.get(c)) is int for c in ("exp", "nbf", "iat")),
          claims)
    check("lifetime is the --ttl", claims.get("exp", 0) - claims.get("iat", 0) == 600, claims)
    check("cap as issued", claims.get("cap") == [{"resource": "/sensors/#", "actions": ["sub", "read"]}],
          claims.get("cap"))
    check("cnf is the holder's public JWK", claims.get("cnf") == {"jwk": jwk_of(alice_pub)},
          claims.get("cnf"))
    check("header kid is the RFC 7638 thumbprint of the issuer key",
          hdr.get("kid") == thumbprint(issuer_pub), hdr)
    check("header alg ES256", hdr.get("alg") == "ES256", hdr)
    try:
        jwt.decode(tok, issuer_pub, algorithms=["ES256"], audience="hub-b")
        check("PyJWT refuses another audience", False)
    except jwt.InvalidAudienceError:
        check("PyJWT refuses another audience", True)
    rc, tok2, err = hybrid("token", "attenuate", "--key", "alice.key", "--holder", "guest.key.pub",
                           "--cap", "/sensors/kitchen/#=read", "-", stdin=tok + "\n")
    check("attenuate", rc == 0, err)
    block0 = tok2.split("~")[0]
    check("attenuation leaves block 0 as it was", block0 == tok)
    try:
        jwt.decode(block0, issuer_pub, algorithms=["ES256"], audience="hub-a")
        check("PyJWT verifies block 0 of the attenuated token", True)
    except jwt.PyJWTError as e:
        check("PyJWT verifies block 0 of the attenuated token", False, repr(e))
    # block 1 by hand: signed by alice's key over its own header.payload, prv = H(sig 0)
    h1, p1, s1 = tok2.split("~")[1].split(".")
    sig0 = base64.urlsafe_b64decode(tok.split(".")[2] + "==")
    c1 = json.loads(base64.urlsafe_b64decode(p1 + "=" * (-len(p1) % 4)))
    check("block 1 names the hash of block 0's signature",
          c1.get("prv") == b64u(hashlib.sha256(sig0).digest()), c1)
    raw1 = base64.urlsafe_b64decode(s1 + "==")
    try:
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
        alice_pub.verify(encode_dss_signature(int.from_bytes(raw1[:32], "big"),
                                              int.from_bytes(raw1[32:], "big")),
                         (h1 + "." + p1).encode(), ec.ECDSA(hashes.SHA256()))
        check("cryptography verifies block 1 with alice's key", True)
    except Exception as e:  # InvalidSignature
        check("cryptography verifies block 1 with alice's key", False, repr(e))

    # --- 2. tokens made here, checked by hybrid ----------------------------------
    iss_key = ec.generate_private_key(ec.SECP256R1())
    dev_key = ec.generate_private_key(ec.SECP256R1())
    app_key = ec.generate_private_key(ec.SECP256R1())
    write_key("py-issuer.pem", iss_key, serialization.PrivateFormat.TraditionalOpenSSL)  # SEC1
    write_key("py-dev.pem", dev_key, serialization.PrivateFormat.PKCS8)
    now = int(time.time())
    claims = {"v": 1, "iss": "py-hub", "sub": "device-7", "aud": ["hub-a", "hub-b"],
              "iat": now, "nbf": now, "exp": now + 900, "jti": b64u(os.urandom(16)),
              "cnf": {"jwk": jwk_of(dev_key.public_key())},
              "cap": [{"resource": "/sensors/+/temp", "actions": ["read", "write"]},
                      {"resource": "bus://hub/org.example/dev7/#", "actions": ["reg", "pub"]}],
              "dlg": 1, "epo": 0}
    ptok = low_s(jwt.encode(claims, iss_key, algorithm="ES256",
                            headers={"typ": "hyb-auth+jwt", "kid": thumbprint(iss_key.public_key())}))
    check("PyJWT itself verifies the token made here",
          jwt.decode(ptok, iss_key.public_key(), algorithms=["ES256"], audience="hub-a")["sub"]
          == "device-7")
    verify = ("token", "verify", "--trust", "py-hub=py-issuer.pem.pub", "--aud", "hub-b")
    rc, out, err = hybrid(*verify, "--check", "/sensors/attic/temp=write",
                          "--check", "bus://hub/org.example/dev7/alarm=pub", ptok)
    check("hybrid accepts a PyJWT-made token and its rights", rc == 0, err)
    res = json.loads(out) if rc == 0 else {}
    check("hybrid reports sub, exp and holder", res.get("sub") == "device-7" and
          res.get("exp") == now + 900 and res.get("holder") == thumbprint(dev_key.public_key()), res)
    rc, out, err = hybrid(*verify, "--check", "/sensors/attic/humidity=read", ptok)
    check("a right the Python token does not grant is refused", rc == 1, err)
    rc, out, err = hybrid("token", "verify", "--trust", "py-hub=py-issuer.pem.pub", "--aud", "hub-c",
                          ptok)
    check("audience not in the Python token is refused", rc == 1, err)

    # tampered: claims changed without re-signing, and the signature of the original
    h, p, s = ptok.split(".")
    evil = dict(claims, cap=[{"resource": "#", "actions": ["admin"]}])
    rc, out, err = hybrid(*verify, f"{h}.{b64u_json(evil)}.{s}")
    check("tampered claims are refused", rc == 1 and "UNAUTHORIZED" in err, err)
    evil = dict(claims, exp=now + 86400)
    rc, out, err = hybrid(*verify, f"{h}.{b64u_json(evil)}.{s}")
    check("a later exp without a new signature is refused", rc == 1, err)
    # re-signed by a key that is not trusted for py-hub
    rogue = ec.generate_private_key(ec.SECP256R1())
    rtok = low_s(jwt.encode(claims, rogue, algorithm="ES256",
                            headers={"typ": "hyb-auth+jwt", "kid": thumbprint(iss_key.public_key())}))
    rc, out, err = hybrid(*verify, rtok)
    check("signed by an untrusted key under the trusted kid: refused", rc == 1, err)
    # a high-S twin of the valid signature
    raw = base64.urlsafe_b64decode(s + "==")
    hs = raw[:32] + (N - int.from_bytes(raw[32:], "big")).to_bytes(32, "big")
    rc, out, err = hybrid(*verify, f"{h}.{p}.{b64u(hs)}")
    check("the high-S form of a valid signature is refused", rc == 1, err)
    # PyJWT's own high-S signatures (about every other one) are refused as they are
    for _ in range(64):
        raw_tok = jwt.encode(claims, iss_key, algorithm="ES256",
                             headers={"typ": "hyb-auth+jwt", "kid": thumbprint(iss_key.public_key())})
        if raw_tok != low_s(raw_tok):
            break
    rc, out, err = hybrid(*verify, raw_tok)
    check("a high-S signature straight from PyJWT is refused", raw_tok != low_s(raw_tok) and rc == 1,
          err)
    rc, out, err = hybrid(*verify, low_s(raw_tok))
    check("... and accepted once normalised to low-S", rc == 0, err)
    # PyJWT's HS256 with the issuer's public key as the secret (key confusion)
    pem = iss_key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    import hmac
    hh = b64u_json({"alg": "HS256", "typ": "hyb-auth+jwt", "kid": thumbprint(iss_key.public_key())})
    mac = hmac.new(pem, f"{hh}.{p}".encode(), hashlib.sha256).digest()
    rc, out, err = hybrid(*verify, f"{hh}.{p}.{b64u(mac)}")
    check("HS256 keyed with the issuer's public key is refused", rc == 1, err)

    # an attenuation block made here: signed by the device key, new holder app_key
    att = {"v": 1, "prv": b64u(hashlib.sha256(raw).digest()),
           "cnf": {"jwk": jwk_of(app_key.public_key())},
           "cap": [{"resource": "/sensors/kitchen/temp", "actions": ["read"]}], "exp": now + 300}
    ah = b64u_json({"alg": "ES256", "typ": "hyb-att+jwt"})
    ap = b64u_json(att)
    ablock = f"{ah}.{ap}.{b64u(es256_raw(dev_key, f'{ah}.{ap}'.encode()))}"
    atok = ptok + "~" + ablock
    rc, out, err = hybrid(*verify, "--check", "/sensors/kitchen/temp=read", atok)
    check("hybrid accepts an attenuation made here", rc == 0, err)
    res = json.loads(out) if rc == 0 else {}
    check("its holder and exp are the attenuation's", res.get("holder") ==
          thumbprint(app_key.public_key()) and res.get("exp") == now + 300, res)
    rc, out, err = hybrid(*verify, "--check", "/sensors/kitchen/temp=write", atok)
    check("the attenuation took write away", rc == 1, err)
    bad_block = f"{ah}.{ap}.{b64u(es256_raw(app_key, f'{ah}.{ap}'.encode()))}"
    rc, out, err = hybrid(*verify, ptok + "~" + bad_block)
    check("an attenuation signed by the wrong key is refused", rc == 1, err)

print(f"# {passes} passed, {failures} failed")
sys.exit(1 if failures else 0)
