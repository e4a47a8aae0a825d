# SPDX-License-Identifier: MIT
"""Cluster writes read together with other frames (doc/cluster.md, "Cost on the wire"): the
PUBLISH of a cluster write that is not the last frame of what daemon A read at once waits
for the end of that read, to leave with the others.  Here the frames after it are no
cluster writes (a host-scope write): it must still leave by itself, answered and delivered,
with no later publication to carry it.  A peer of daemon B subscribes; prints "ok <case>"
or "FAIL <case>: why" lines (rawbus.py's).

    cluster-held.py SOCKET_A SOCKET_B
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rawbus  # noqa: E402
from rawbus import BUILTIN, CALL, ERROR, EVENT, RESULT, auth, frame, say  # noqa: E402


def main(sock_a, sock_b):
    b = auth(sock_b, "org.example.held", "reader", timeout=30.0)
    b.send(frame(CALL, "7 0 //held/#", to=BUILTIN, member="storeSubscribe", call_id=1,
                 timeout=10000, flags=1))
    f = b.recv_type({RESULT, ERROR})
    say(f["type"] == RESULT and f["status"] == 200, "B's subscription to //held/# is ready",
        repr(f))
    a = auth(sock_a, "org.example.held", "writer", timeout=30.0)
    for rnd in range(3):
        # one send: a cluster write, then a host-scope write (nothing more is published)
        a.send(frame(CALL, "//held/x\n%d" % rnd, to=BUILTIN, member="storeWrite",
                     call_id=10 + 2 * rnd, timeout=20000, flags=1) +
               frame(CALL, "/held/local\n%d" % rnd, to=BUILTIN, member="storeWrite",
                     call_id=11 + 2 * rnd, timeout=20000, flags=1))
        answers = {}
        for _ in range(2):
            f = a.recv_type({RESULT, ERROR})
            answers[f["call_id"]] = f["status"]
        say(answers == {10 + 2 * rnd: 200, 11 + 2 * rnd: 200},
            "round %d: A answers both writes 200 (the cluster one at the broker's PUBACK)" % rnd,
            repr(answers))
        f = b.recv_type({EVENT, ERROR})
        say(f["type"] == EVENT and f["body"] == ("//held/x\n%d" % rnd).encode(),
            "round %d: B's subscriber gets //held/x %d" % (rnd, rnd), repr(f))
    a.close()
    b.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
    sys.exit(1 if rawbus.failed else 0)
