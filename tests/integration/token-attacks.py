#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Every token-level attack case of the token contract (doc/token.md "Hard limits",
"Headers", "Block 0 claims", "Attenuation blocks", "Verification") presented to a real
hybridd over a raw socket.  The bad tokens are built here with Python `cryptography`,
independently of our library; each comes with a correct proof of possession by the
token's last holder key, so only the token itself is wrong.  For every case: the peer
gets the one uniform refusal (AUTH_RESULT 401 "unauthorized", nothing else), the
daemon's log gains an "auth refused ... 401 <reason>" line naming the reason, and a
fresh connection with a good token is still served.  Every refusal frame must be the same,
byte for byte.  Then tokens revoked by feed entries made here (a jti, a holder key, an
epoch floor, an issuer key) and attenuations that try to forge lines in the daemon's log.

    token-attacks.py SOCKET DAEMON_LOG ISSUER_KEY OTHER_ISSUER_KEY AUDIENCE [OUTDIR]

ISSUER_KEY is trusted by the daemon as issuer "acme", OTHER_ISSUER_KEY as "beta".
With OUTDIR, also writes there guest.key and tokens that try to escalate by attenuation
(esc-*.tok: an extra action, a broader resource) for the caller to try operations with.
Prints "ok <case>" / "FAIL <case>: why" lines; exits 1 when a case failed.
"""
import base64
import hashlib
import importlib.util
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rawbus  # noqa: E402
from rawbus import AUTH, BUILTIN, frame, say  # noqa: E402

try:
    from cryptography.hazmat.primitives import hashes, hmac, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import (decode_dss_signature,
                                                                 encode_dss_signature)
except ImportError as e:  # scripts/bootstrap.sh test installs python3-cryptography
    print(f"# skipped: {e}")
    sys.exit(77)

_spec = importlib.util.spec_from_file_location("tokenproof", os.path.join(HERE, "token-proof.py"))
tp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tp)

N = tp.N
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
REFUSED = b"unauthorized"  # the body of the uniform 401


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jdump(o):
    return json.dumps(o, separators=(",", ":")).encode()


def pubnums(key):
    return key.public_key().public_numbers()


def jwk(key):
    n = pubnums(key)
    return {"kty": "EC", "crv": "P-256", "x": b64u(n.x.to_bytes(32, "big")),
            "y": b64u(n.y.to_bytes(32, "big"))}


def kid(key):
    j = jwk(key)
    return b64u(hashlib.sha256(('{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' %
                                (j["x"], j["y"])).encode()).digest())


def raw_rs(key, msg):
    r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
    if s > N // 2:
        s = N - s
    return r, s


def rs_bytes(r, s):
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def block(header, claims, key, sig=None):
    """One JWS block: header and claims are dicts or raw bytes; sig(r, s, signing_input)
    may rewrite the signature bytes."""
    h = header if isinstance(header, bytes) else jdump(header)
    c = claims if isinstance(claims, bytes) else jdump(claims)
    si = (b64u(h) + "." + b64u(c)).encode()
    r, s = raw_rs(key, si)
    sb = rs_bytes(r, s) if sig is None else sig(r, s, si)
    return si.decode() + "." + (sb if isinstance(sb, str) else b64u(sb))


def sig_of(blk):
    return base64.urlsafe_b64decode(blk.split(".")[2] + "==")


def main():
    sock, log, isskey, betakey, aud = sys.argv[1:6]
    outdir = sys.argv[6] if len(sys.argv) > 6 else None
    iss = tp.load(isskey)
    beta = tp.load(betakey)
    holder = ec.generate_private_key(ec.SECP256R1())
    guest = ec.generate_private_key(ec.SECP256R1())
    third = ec.generate_private_key(ec.SECP256R1())
    rogue = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())

    H0 = {"alg": "ES256", "typ": "hyb-auth+jwt", "kid": kid(iss)}
    H1 = {"alg": "ES256", "typ": "hyb-att+jwt"}

    def claims0(**kw):
        c = {"v": 1, "iss": "acme", "sub": "mallory", "aud": aud, "iat": now - 5,
             "exp": now + 600, "jti": b64u(os.urandom(16)), "cnf": {"jwk": jwk(holder)},
             "cap": [{"resource": "/sensors/#", "actions": ["read"]}], "dlg": 3, "epo": 0}
        for k, v in kw.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        return c

    def b0(header=None, claims=None, key=None, sig=None, **kw):
        return block(H0 if header is None else header,
                     claims0(**kw) if claims is None else claims, key or iss, sig)

    def att(prev, signer, new_holder, header=None, prv=None, **kw):
        c = {"v": 1, "prv": prv or b64u(hashlib.sha256(sig_of(prev)).digest()),
             "cnf": {"jwk": jwk(new_holder)}}
        c.update(kw)
        return block(H1 if header is None else header, c, signer)

    good = b0()
    assert len(good) < 4096

    # the log lines so far; each refusal must add one
    def log_lines():
        with open(log, errors="replace") as f:
            return [ln for ln in f if "auth refused for uid" in ln]

    def present(token, key):
        """AUTH with token and a correct proof by key; the AUTH_RESULT frame or None."""
        c = tp.challenge(sock)
        c.send(frame(AUTH, tp.auth_body(c, token, key)))
        try:
            f = c.recv_type({AUTH_RESULT_T, rawbus.ERROR})
        except Exception:
            f = None
        c.close()
        return f

    AUTH_RESULT_T = rawbus.AUTH_RESULT
    good_count = [0]
    first = {}  # the first refusal frame: every other must be the same, byte for byte

    def served():
        f = present(good, holder)
        good_count[0] += 1
        return f is not None and f["status"] == 200

    def attack(case, token, key, reason):
        """The token must be refused: uniform 401, reason logged, others served."""
        before = len(log_lines())
        f = present(token, key)
        st = None if f is None else f["status"]
        say(st == 401, f"{case}: 401", f"got {st}")
        if f is not None and st == 401:
            seen = (f["flags"], f["frm"], f["to"], f["member"], f["body"])
            first.setdefault("frame", seen)
            say(seen == first["frame"] and REFUSED in (f["member"].encode() + f["body"]),
                f"{case}: the same refusal as every other case", f"frame {f}")
        new = []
        for _ in range(40):
            new = log_lines()[before:]
            if new:
                break
            time.sleep(0.05)
        text = "".join(new)
        say(bool(new) and re.search(reason, text, re.I) is not None,
            f"{case}: reason logged (/{reason}/)", repr(text[-300:]))
        say(served(), f"{case}: a good token is still served")

    # --- the controls: what the attacks are variations of is accepted
    say(served(), "control: the good token (python-built) is accepted")
    for case, tok in (("exp in 30 s", b0(exp=now + 30)),
                      ("nbf 30 s ahead, within the 60 s leeway for clock skew", b0(nbf=now + 30))):
        f = present(tok, holder)
        say(f is not None and f["status"] == 200, f"control: {case}", f"got {f and f['status']}")
    chain = att(good, holder, guest, cap=[{"resource": "/sensors/t", "actions": ["read"]}])
    f = present(good + "~" + chain, guest)
    say(f is not None and f["status"] == 200, "control: a correct attenuation by the holder",
        f"got {f and f['status']}")

    # --- signatures
    p0 = good.split(".")
    cl = bytearray(base64.urlsafe_b64decode(p0[1] + "=="))
    cl[cl.index(b"mallory") + 6] ^= 0x01
    attack("payload bit flip", p0[0] + "." + b64u(bytes(cl)) + "." + p0[2], holder, "signature")
    sg = bytearray(sig_of(good))
    sg[10] ^= 0x80
    attack("signature bit flip", p0[0] + "." + p0[1] + "." + b64u(bytes(sg)), holder, "signature")
    attack("r/s swapped", b0(sig=lambda r, s, si: rs_bytes(s, r)), holder, "signature")
    attack("high-S", b0(sig=lambda r, s, si: rs_bytes(r, N - s)), holder, "signature")
    attack("r = s = 0", b0(sig=lambda r, s, si: bytes(64)), holder, "signature")
    attack("r = n", b0(sig=lambda r, s, si: rs_bytes(N, s)), holder, "signature")
    attack("s = n", b0(sig=lambda r, s, si: rs_bytes(r, N)), holder, "signature")
    attack("DER signature", b0(sig=lambda r, s, si: encode_dss_signature(r, s)), holder,
           "signature|size|part")

    # --- algorithms and headers
    attack("alg none, empty signature",
           b0(header={"alg": "none", "typ": "hyb-auth+jwt", "kid": kid(iss)}).rsplit(".", 1)[0] + ".",
           holder, "header|signature|size|part|base64")
    attack("alg none, with a signature",
           b0(header={"alg": "none", "typ": "hyb-auth+jwt", "kid": kid(iss)}), holder, "alg is not ES256")
    pem = iss.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)

    def hs256(r, s, si):
        m = hmac.HMAC(pem, hashes.SHA256())
        m.update(si)
        return m.finalize()
    attack("HS256 keyed with the issuer's public key",
           b0(header={"alg": "HS256", "typ": "hyb-auth+jwt", "kid": kid(iss)}, sig=hs256),
           holder, "header|signature|size|part")
    for alg in ("ES384", "RS256", "es256", "EdDSA"):
        attack(f"alg {alg}", b0(header={"alg": alg, "typ": "hyb-auth+jwt", "kid": kid(iss)}),
               holder, "alg")
    for extra, val in (("jku", "https://evil.example/keys"), ("jwk", jwk(rogue)),
                       ("x5u", "https://evil.example/cert"), ("x5c", ["AAAA"]),
                       ("crit", ["exp"]), ("cty", "JWT")):
        h = dict(H0)
        h[extra] = val
        attack(f"extra header member {extra}", b0(header=h), holder, "header|part has the wrong size")
    for k in ("../../../etc/hybrid/keys/acme.pub", "/dev/null", kid(iss) + "/.."):
        attack(f"path-like kid {k}", b0(header=dict(H0, kid=k)), holder, "header|kid|trust|key")
    attack("kid missing", b0(header={"alg": "ES256", "typ": "hyb-auth+jwt"}), holder, "header")
    attack("header member twice",
           b0(header=('{"alg":"ES256","typ":"hyb-auth+jwt","kid":"%s","alg":"none"}'
                      % kid(iss)).encode()), holder, "header|twice|duplicate")
    for typ in ("hyb-att+jwt", "hyb-rev+jwt", "JWT", "jwt"):
        attack(f"wrong typ {typ} for block 0", b0(header=dict(H0, typ=typ)), holder,
               "typ is not hyb-auth")
    attack("block 1 typed as an authority",
           good + "~" + att(good, holder, guest, header=dict(H1, typ="hyb-auth+jwt")), guest,
           "typ is not hyb-att")
    attack("block 1 with a kid", good + "~" + att(good, holder, guest, header=dict(H1, kid=kid(holder))),
           guest, "header")

    # --- issuer keys
    attack("unknown kid (a rogue key)", b0(header=dict(H0, kid=kid(rogue)), key=rogue), holder,
           "kid|trust|unknown|key")
    attack("kid of acme signed by a rogue key", b0(key=rogue), holder, "signature")
    attack("wrong issuer for the kid (beta's key, iss acme)",
           b0(header=dict(H0, kid=kid(beta)), key=beta), holder, "kid is not the key trusted|iss")
    attack("unknown issuer name", b0(iss="nobody"), holder, "iss|trust")

    # --- times
    attack("expired", b0(exp=now - 3600, iat=now - 7200), holder, "expired")
    attack("expired, just past the leeway", b0(exp=now - 75, iat=now - 200), holder, "expired")
    # the daemon's session ends at exp: at connect a token at or past its exp is refused
    attack("exp = now (boundary)", b0(exp=now, iat=now - 100), holder, "expired")
    attack("nbf past the leeway", b0(nbf=now + 120), holder, "not valid before")
    attack("not yet valid (nbf)", b0(nbf=now + 600), holder, "not valid before")
    attack("issued in the future", b0(iat=now + 600, exp=now + 1200), holder, "future")
    attack("no exp", b0(exp=None), holder, "exp")
    attack("no iat", b0(iat=None), holder, "iat")
    attack("lifetime over the cap (31 days)", b0(exp=now + 31 * 86400), holder, "lifetime|long|cap")
    attack("float exp", b0(exp=float(now + 600)), holder, "exp")
    attack("exponent exp", b0(claims=jdump(claims0()).replace(
        b'"exp":%d' % (now + 600), b'"exp":%de0' % (now + 600))), holder, "exp")
    attack("string exp", b0(exp=str(now + 600)), holder, "exp")
    attack("string nbf", b0(nbf=str(now - 10)), holder, "nbf")
    attack("boolean iat", b0(iat=True), holder, "iat")
    attack("exp before iat", b0(exp=now - 10, iat=now), holder, "exp|expired|lifetime")

    # --- audience and claims
    attack("wrong audience", b0(aud="hub-other"), holder, "aud")
    attack("audience list without us", b0(aud=["hub-other", "hub-third"]), holder, "aud")
    attack("empty audience list", b0(aud=[]), holder, "aud")
    attack("audience as a number", b0(aud=7), holder, "aud")
    attack("unknown claim", b0(admin=True), holder, "admin|claim|member")
    attack("v 2", b0(v=2), holder, r"\bv\b")
    attack("no jti", b0(jti=None), holder, "jti")
    attack("no cap", b0(cap=None), holder, "cap")
    attack("empty cap", b0(cap=[]), holder, "cap")
    attack("unknown action", b0(cap=[{"resource": "/sensors/#", "actions": ["root"]}]), holder,
           "action|cap")
    for res in ("home//temp", "home/%2F/temp", "home/../admin", "/sensors/./t", "/sensors/t?x=1"):
        attack(f"capability on {res}", b0(cap=[{"resource": res, "actions": ["read"]}]), holder,
               "resource|cap|pattern|canonical")
    attack("dlg 4", b0(dlg=4), holder, "dlg")
    attack("negative epo", b0(epo=-1), holder, "epo")

    # --- holder keys (cnf)
    def cnf_with(x, y):
        return {"jwk": {"kty": "EC", "crv": "P-256", "x": b64u(x.to_bytes(32, "big")),
                        "y": b64u(y.to_bytes(32, "big"))}}
    hn = pubnums(holder)
    attack("off-curve holder key", b0(cnf=cnf_with(hn.x, (hn.y + 1) % P)), holder, "cnf|curve|key")
    attack("holder key at infinity (0, 0)", b0(cnf=cnf_with(0, 0)), holder, "cnf|curve|key")
    attack("holder key coordinate = p", b0(cnf=cnf_with(P, hn.y)), holder, "cnf|curve|key")
    attack("holder key of another curve", b0(cnf={"jwk": dict(jwk(holder), crv="P-384")}), holder,
           "cnf|curve|key")
    attack("holder key with a private d", b0(cnf={"jwk": dict(jwk(holder), d=b64u(bytes(32)))}),
           holder, "cnf|key|member")
    attack("proof by the wrong key", good, guest, "proof of possession")

    # --- attenuation: escalation and broken chains
    wide = [{"resource": "/#", "actions": ["read", "write", "delete", "admin"]}]
    attack("attenuation with a later exp after block 0 expired",
           (lambda g: g + "~" + att(g, holder, guest, exp=now + 3600))(
               b0(exp=now - 3600, iat=now - 7200)), guest, "expired")
    attack("attenuation widening aud (block 0 for another verifier)",
           (lambda g: g + "~" + att(g, holder, guest, aud=aud))(b0(aud="hub-other")), guest, "aud")
    attack("attenuation raising dlg (block 0 dlg 1, three blocks)",
           (lambda g: (lambda a1: (lambda a2: g + "~" + a1 + "~" + a2)(
               att(a1, guest, third)))(att(g, holder, guest, dlg=3)))(b0(dlg=1)), third,
           "delegation|dlg")
    attack("attenuation without delegation (dlg 0)",
           (lambda g: g + "~" + att(g, holder, guest, cap=wide))(b0(dlg=0)), guest,
           "delegation|dlg")
    attack("attenuation signed by the wrong key", good + "~" + att(good, rogue, guest), guest,
           "signature")
    attack("attenuation with the wrong prv",
           good + "~" + att(good, holder, guest, prv=b64u(hashlib.sha256(b"x").digest())), guest,
           "prv")
    other = b0()
    attack("attenuation moved from another token", good + "~" + att(other, holder, guest), guest,
           "prv")
    a1 = att(good, holder, guest)
    a2 = att(a1, guest, third)
    attack("blocks reordered", good + "~" + a2 + "~" + a1, third, "prv|signature")
    attack("attenuation first", a1 + "~" + good, holder, "header|signature")
    attack("middle block dropped", good + "~" + a2, third, "prv|signature")
    attack("truncated: the last block cut, proof by its holder", good + "~" + a1, third,
           "proof of possession")
    attack("truncated inside a block", good + "~" + a1[:len(a1) // 2], guest,
           "size|part|base64|block|signature")
    attack("trailing ~", good + "~", holder, "size|part|block|empty")
    attack("attenuation with an unknown claim", good + "~" + att(good, holder, guest, admin=True),
           guest, "admin|claim|member")
    attack("attenuation with an off-curve holder",
           good + "~" + block(H1, {"v": 1, "prv": b64u(hashlib.sha256(sig_of(good)).digest()),
                                   "cnf": cnf_with(hn.x, (hn.y + 1) % P)}, holder), guest,
           "cnf|curve|key")
    g4 = b0(dlg=3)
    blocks = [g4]
    keys = [holder, guest, third, rogue, holder]
    for i in range(4):
        blocks.append(att(blocks[-1], keys[i], keys[i + 1]))
    attack("too many blocks (5)", "~".join(blocks), keys[4], "block|size")

    # --- encoding
    attack("base64url padding", p0[0] + "=." + p0[1] + "." + p0[2], holder, "not in a token")
    for ch in "+/":
        attack(f"standard base64 character {ch}", p0[0] + "." + p0[1][:7] + ch + p0[1][8:] + "." + p0[2],
               holder, "not in a token")
    last = p0[2][-1]
    nc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    noncanon = nc[nc.index(last) ^ 1]  # the same 2 meaningful bits with a low bit set
    attack("non-canonical base64url", p0[0] + "." + p0[1] + "." + p0[2][:-1] + noncanon, holder,
           "base64|canonical")
    attack("whitespace inside", p0[0] + "." + p0[1][:10] + " " + p0[1][10:] + "." + p0[2], holder,
           "not in a token")
    attack("empty header part", "." + p0[1] + "." + p0[2], holder, "part|size|header")
    attack("two parts", p0[0] + "." + p0[1], holder, "part|size|block")

    # --- malformed JSON, validly signed
    body = jdump(claims0())
    attack("claims JSON truncated", b0(claims=body[:-5]), holder, "json|claims|parse")
    attack("duplicate claim", b0(claims=body[:-1] + b',"sub":"root"}'), holder,
           "twice|duplicate|json|sub")
    attack("NUL in a claim", b0(claims=body.replace(b'"mallory"', b'"mall\\u0000ory"')), holder,
           "nul|json|sub|string")
    attack("invalid UTF-8", b0(claims=body.replace(b"mallory", b"mall\xc3\x28ory")), holder,
           "utf|json")
    deep = b"[" * 40 + b"]" * 40
    attack("deep nesting", b0(claims=body[:-1] + b',"x":' + deep + b"}"), holder,
           "nest|depth|json|claim")
    huge = jdump(claims0(cap=[{"resource": "/s/%d" % i, "actions": ["read"]} for i in range(40)]))
    attack("too many capabilities", b0(claims=huge), holder, "cap|size|json")
    attack("claims not an object", b0(claims=b"[1,2,3]"), holder, "json|object|claims")
    attack("header not JSON", b0(header=b"ES256"), holder, "header|json")

    # --- the log tells the truth: a holder (anyone with a token) signs attenuation blocks,
    # so their claim names and values must not start lines of their own in the daemon's log
    forged = "\nhybridd: notice: revocation entry 99 applied FORGED"
    attack("newline in an attenuation's claim name",
           good + "~" + att(good, holder, guest, **{"x" + forged: 1}), guest, "unexpected claim")
    attack("newline in an attenuation's resource",
           good + "~" + att(good, holder, guest, cap=[{"resource": "/x" + forged, "actions": ["read"]}]),
           guest, "resource")
    attack("escape sequence in an attenuation's claim name",
           good + "~" + att(good, holder, guest, **{"\x1b]0;owned\x07\x1b[2J": 1}), guest,
           "unexpected claim")
    with open(log, "rb") as f:
        lines = f.read().split(b"\n")
    say(not any(ln.startswith(b"hybridd: notice: revocation entry 99") for ln in lines),
        "no forged line in the daemon's log")
    say(not any(b"\x1b" in ln or b"\r" in ln for ln in lines),
        "no control character in the daemon's log")

    # --- revoked at connect: a token id, a holder key, an epoch floor, an issuer key; the
    # entries are made here and delivered over a token session (no capability needed)
    seq = [0]

    def revoke(signer, **what):
        seq[0] += 1
        e = block({"alg": "ES256", "typ": "hyb-rev+jwt", "kid": kid(signer)},
                  dict({"v": 1, "seq": seq[0], "iat": now}, **what), signer)
        c = tp.challenge(sock)
        c.send(frame(AUTH, tp.auth_body(c, good, holder)))
        f = c.recv_type({AUTH_RESULT_T})
        r = rawbus.call(c, BUILTIN, "deliverRevocation", json.dumps({"entry": e}), cid=5)
        c.close()
        ok = f["status"] == 200 and r["status"] == 200 and b'"applied"' in r["body"]
        say(ok, f"revocation entry {seq[0]} {sorted(what)} applied", f"{f['status']} {r}")

    victim = b0()
    revoke(iss, jti=json.loads(base64.urlsafe_b64decode(victim.split(".")[1] + "=="))["jti"])
    attack("revoked token id (jti)", victim, holder, "revoked")
    attack("revoked token id, attenuated after", victim + "~" + att(victim, holder, guest), guest,
           "revoked")
    lost = ec.generate_private_key(ec.SECP256R1())
    revoke(iss, holder=kid(lost))
    attack("revoked holder key (block 0)", b0(cnf={"jwk": jwk(lost)}), lost, "revoked")
    attack("revoked holder key (block 1)", good + "~" + att(good, holder, lost), lost, "revoked")
    beta_h0 = dict(H0, kid=kid(beta))
    revoke(beta, min_epo=3)
    attack("epoch below the issuer's floor", b0(header=beta_h0, key=beta, iss="beta", epo=2),
           holder, "revoked")
    ep3 = b0(header=beta_h0, key=beta, iss="beta", epo=3)
    f = present(ep3, holder)
    say(f is not None and f["status"] == 200, "control: an epoch at the floor is accepted",
        f"got {f and f['status']}")
    say(served(), "control: the floor of beta leaves acme's tokens alone")
    revoke(iss, issuer=kid(beta))
    attack("revoked issuer key (kid)", ep3, holder, "revoked")

    if outdir:
        # escalation by attenuation, for the CLI to try operations with (token-attacks.sh)
        with open(os.path.join(outdir, "guest.key"), "wb") as f:
            f.write(guest.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
        with open(os.path.join(outdir, "inject.tok"), "w") as f:
            f.write(good + "~" + att(good, holder, guest, **{"x" + forged + "\x1b[2J": 1}) + "\n")
        for name, c in (("extra-action", [{"resource": "/sensors/#", "actions": ["read", "write"]}]),
                        ("broader-cap", [{"resource": "/#", "actions": ["read"]}])):
            with open(os.path.join(outdir, f"esc-{name}.tok"), "w") as f:
                f.write(good + "~" + att(good, holder, guest, cap=c) + "\n")

    say(good_count[0] > 50, f"the good token was served between every attack ({good_count[0]})")
    return 1 if rawbus.failed else 0


if __name__ == "__main__":
    sys.exit(main())
