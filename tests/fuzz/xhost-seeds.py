#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Writes the seed corpus of fuzz_xhost.c (tests/fuzz/corpus/xhost/): chunks as that target
# reads them, frames as doc/protocol.md "Frame" lays them out.
import os
import struct
import sys

CALL, RESULT, CANCEL, EVENT = 4, 5, 6, 7


def frame(t, frm=b"", to=b"", member=b"", body=b"", call_id=0, status=0, timeout=0):
    return struct.pack("<IBBHQIHHHHI", len(body), t, 0, status, call_id, timeout, len(frm), len(to),
                       len(member), 0, 0) + frm + to + member + body


def chunk(sel, payload):
    return bytes([sel]) + struct.pack("<H", len(payload)) + payload


out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "xhost")
os.makedirs(out, exist_ok=True)
call = frame(CALL, b"@b/org.fuzz.x/main", b"@a/org.fuzz.a/c0", b"m", b"{}", call_id=7, timeout=1000)
seeds = {
    # a call to c0 (response topic, correlation data), one without correlation data
    # (dropped), then the first one's cancel
    "call": chunk(0 | 8 | 16, call) + chunk(0 | 8, call)
    + chunk(0, frame(CANCEL, b"@b/org.hybridos.bus/cluster", call_id=7, status=410)),
    # c0 calls @b/..., then b's answer and b leaving
    "out": chunk(7, frame(CALL, b"", b"@b/org.fuzz.x/main", b"m", b"{}", call_id=1, timeout=5000))
    + chunk(1 | 16, frame(RESULT, b"@b/org.fuzz.x/main", b"", b"", b"1", call_id=0, status=200))
    + chunk(2, b"offline"),
    # an event of b to c0's standing subscription, and one of a itself
    "event": chunk(3 | 64, frame(EVENT, b"@b/org.fuzz.x/main", b"", b"t", b"21.5"))
    + chunk(6, frame(EVENT, b"@a/org.fuzz.a/c0", b"", b"t", b"1")),
    # a token the target cannot verify, presence of a, junk
    "misc": chunk(4 | 8, call) + chunk(5, b"offline") + chunk(0, b"junk"),
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
