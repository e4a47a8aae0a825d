#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of fuzz_auth (tests/fuzz/corpus/auth/): see the input format at
the top of fuzz_auth.c.  Byte 0 bit 0 set: a raw AUTH body; clear: a structured AUTH whose
flags byte asks for a correct proof (1), another uid (2), the app the token covers (4), the
harness's valid token (8) with 3-byte edits (offset lo, offset hi, xor; 0 truncates), a
proof by another key (16), the token announced first (32), the harness's valid token
announced instead (64).  Usage: auth-seeds.py [DIR]"""
import os
import sys

d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "auth")
AUTH = b'{"protocol":"HYBRID","version":1,"app":"org.hybridos.cli","runner":"r"'
seeds = {
    "raw-no-token": b"\x01" + AUTH + b"}",
    "raw-token-junk": b"\x01" + AUTH + b',"token":"a.b.c","nonce":"00","proof":"x"}',
    "raw-token-number": b'\x01{"protocol":"HYBRID","version":1,"app":"a","runner":"r","token":5}',
    "good-cli": b"\x00\x09",
    "good-app": b"\x00\x0d",
    "good-wrong-uid": b"\x00\x0b",
    "good-other-key": b"\x00\x19",
    "good-no-proof": b"\x00\x08",
    "good-truncated": b"\x00\x09\x40\x00\x00",
    "good-bitflip-payload": b"\x00\x09\x60\x00\x01",
    "good-bitflip-sig": b"\x00\x09\x10\x01\x04",
    "text-token": b"\x00\x01eyJhbGciOiJub25lIn0.e30.",
    "announced-good": b"\x00\x29",
    "announced-other-key": b"\x00\x39",
    "announced-bitflip-sig": b"\x00\x29\x10\x01\x04",
    "announced-valid-auth-edited": b"\x00\x69\x60\x00\x01",
}
os.makedirs(d, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
