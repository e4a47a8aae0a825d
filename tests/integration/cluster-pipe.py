# SPDX-License-Identifier: MIT
"""Pipelined cluster writes (doc/cluster.md "QoS 1"): a peer of daemon A writes N values of
the cluster scope in one go, a peer of daemon B subscribes to them.  Each write is answered
200 (at the broker's PUBACK) and B's subscriber gets every value once, in the order A took
the writes: what B's daemon reads from the broker in one go is delivered together, and
nothing is lost or doubled.  Prints "ok <case>" or "FAIL <case>: why" lines (rawbus.py's).

    cluster-pipe.py SOCKET_A SOCKET_B N
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rawbus  # noqa: E402
from rawbus import BUILTIN, CALL, ERROR, EVENT, RESULT, auth, frame, say  # noqa: E402


def main(sock_a, sock_b, n):
    n = int(n)
    b = auth(sock_b, "org.example.pipe", "reader", timeout=30.0)
    b.send(frame(CALL, "7 0 //pipe/#", to=BUILTIN, member="storeSubscribe", call_id=1,
                 timeout=10000, flags=1))
    f = b.recv_type({RESULT, ERROR})
    say(f["type"] == RESULT and f["status"] == 200, "B's subscription to //pipe/# is ready",
        repr(f))
    a = auth(sock_a, "org.example.pipe", "writer", timeout=30.0)
    keys = ["//pipe/k%d" % (i % 3) for i in range(n)]
    a.send(b"".join(frame(CALL, "%s\n%d" % (keys[i], i), to=BUILTIN, member="storeWrite",
                          call_id=100 + i, timeout=20000, flags=1) for i in range(n)))
    answers = {}
    for _ in range(n):
        f = a.recv_type({RESULT, ERROR})
        answers[f["call_id"]] = f["status"]
    bad = [i for i in range(n) if answers.get(100 + i) != 200]
    say(not bad, "A answers the %d writes written at once with 200" % n,
        "call %d: %r" % (bad[0], answers.get(100 + bad[0])) if bad else "")
    got = []
    for _ in range(n):
        f = b.recv_type({EVENT, ERROR})
        if f["type"] != EVENT:
            break
        got.append(f["body"])
    want = [("%s\n%d" % (keys[i], i)).encode() for i in range(n)]
    diff = [i for i in range(min(len(got), n)) if got[i] != want[i]]
    say(got == want, "B's subscriber gets the %d values once each, in A's order" % n,
        "%d received; first difference at %d: got %r, wanted %r" %
        (len(got), diff[0], got[diff[0]], want[diff[0]]) if diff else
        "%d received of %d" % (len(got), n))
    # a last write: the next thing B's subscriber gets is it, not a copy of an earlier one
    a.send(frame(CALL, "//pipe/end\ntrue", to=BUILTIN, member="storeWrite", call_id=99,
                 timeout=20000, flags=1))
    f = a.recv_type({RESULT, ERROR})
    say(f["type"] == RESULT and f["status"] == 200, "A answers one more write", repr(f))
    f = b.recv_type({EVENT, ERROR})
    say(f["type"] == EVENT and f["body"] == b"//pipe/end\ntrue",
        "B's next value is that write (no value delivered twice)", repr(f))
    a.close()
    b.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
    sys.exit(1 if rawbus.failed else 0)
