# SPDX-License-Identifier: MIT
"""A cluster write over 1 MiB of JSON through a daemon (doc/cluster.md "Bounds"): no host
takes a message over 1 MiB, so the daemon refuses the write with 413 instead of answering
200 for a value no read would ever see; one of exactly 1 MiB is taken and reads back.
Prints "ok <case>" or "FAIL <case>: why" lines (rawbus.py's).

    cluster-big.py SOCKET
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rawbus  # noqa: E402
from rawbus import BUILTIN, CALL, ERROR, RESULT, auth, frame, say  # noqa: E402


def main(sock):
    a = auth(sock, "org.example.big", "writer", timeout=30.0)
    big = "'" + "a" * (1024 * 1024 + 16) + "'"  # a str (mm-ADT): its JSON has two quotes
    a.send(frame(CALL, "//bigd/x\n" + big, to=BUILTIN, member="storeWrite", call_id=1,
                 timeout=20000, flags=1))
    f = a.recv_type({RESULT, ERROR})
    say(f["status"] == 413 and b"1048576" in f["member"].encode(),
        "a write of 1 MiB + 18 bytes of JSON is refused 413 naming the limit", repr(f)[:300])
    fit = "'" + "a" * (1024 * 1024 - 2) + "'"
    a.send(frame(CALL, "//bigd/y\n" + fit, to=BUILTIN, member="storeWrite", call_id=2,
                 timeout=20000, flags=1))
    f = a.recv_type({RESULT, ERROR})
    say(f["type"] == RESULT and f["status"] == 200, "a write of exactly 1 MiB of JSON is taken",
        repr(f)[:300])
    a.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
