# SPDX-License-Identifier: MIT
"""Direct channels under a hostile local user (bench/hostile-channels.sh): K connections of
the attacker's uid open a channel to one raw service and close it again (closeChannel),
never reading their sockets, until the broker refuses (at most N opens each); then a
bystander of another uid opens one channel to that service.

    hostile-channels.py SOCKET K N BYSTANDER_CMD...

Prints "accepted <opens accepted in all>" and the bystander's line: "bystander <status>
<ends received> <status message>" (an open answered 200 comes with exactly one end).
"""
import array
import json
import socket
import subprocess
import sys

from rawbus import (BUILTIN, CALL, CHANNEL, HDR, RESULT, auth, call, frame)

SVC = "@localhost/org.example.svc/main"


def bystander(path):
    c = auth(path, "org.example.bystander", "main", timeout=30)
    c.send(frame(CALL, json.dumps({"endpoint": SVC}), to=BUILTIN, member="openChannel",
                 call_id=5))
    ends, buf, status, msg = 0, c.buf, None, ""
    while status is None:
        d, anc, _, _ = c.s.recvmsg(1 << 16, socket.CMSG_SPACE(4 * 64))
        if not d:
            break
        for lvl, ty, data in anc:
            if lvl == socket.SOL_SOCKET and ty == socket.SCM_RIGHTS:
                a = array.array("i")
                a.frombytes(data[:len(data) - len(data) % 4])
                ends += len(a)
                for fd in a:
                    socket.close(fd)
        buf += d
        while len(buf) >= HDR.size:
            n, ty, _, st, cid, _, fl, tl, ml, _, _ = HDR.unpack(buf[:HDR.size])
            total = HDR.size + fl + tl + ml + n
            if len(buf) < total:
                break
            if ty == RESULT and cid == 5:
                status = st
                msg = buf[HDR.size + fl + tl:HDR.size + fl + tl + ml].decode(errors="replace")
            buf = buf[total:]
    print("bystander %s %d %s" % (status, ends, msg), flush=True)


def attack(path, k, n, cmd):
    svc = auth(path, "org.example.svc", "main", timeout=30)
    call(svc, BUILTIN, "registerProcedure", '{"methodName":"add","forApp":"*"}', cid=1)
    clis = [auth(path, "org.example.pin", "c%d" % j, timeout=30) for j in range(k)]
    cid, accepted = 10, 0
    for cli in clis:
        for _ in range(n):
            cli.send(frame(CALL, json.dumps({"endpoint": SVC}), to=BUILTIN,
                           member="openChannel", call_id=cid))
            # the broker handles one peer's frames in order: once this call reaches the
            # service, the open was handled (an accepted one reached the service first)
            cli.send(frame(CALL, "{}", to=SVC, member="add", call_id=cid + 1, timeout=60000))
            cid += 2
            chid = 0
            while True:
                f = svc.recv_type({CHANNEL, CALL})
                if f["type"] == CHANNEL and f["member"] == "open":
                    chid = f["call_id"]
                if f["type"] == CALL:
                    svc.send(frame(RESULT, "{}", call_id=f["call_id"], status=200))
                    break
            if not chid:
                break
            accepted += 1
            cli.send(frame(CALL, json.dumps({"channel": chid}), to=BUILTIN,
                           member="closeChannel", call_id=cid))
            cid += 1
            while svc.recv_type({CHANNEL})["member"] != "close":
                pass
    print("accepted %d" % accepted, flush=True)
    # the attackers keep their sockets unread while the bystander tries
    subprocess.run(cmd, check=False)


if __name__ == "__main__":
    if sys.argv[2] == "bystander":
        bystander(sys.argv[1])
    else:
        attack(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
