# SPDX-License-Identifier: MIT
"""A feed peer that stalls (for token-feed-stop.sh): it accepts connections and keeps
them open without answering, so a daemon's auth.feed_peers fetch waits on it.

    token-feed-stall.py silent UNIX_PATH   accepts, never sends the challenge
    token-feed-stall.py mute UNIX_PATH     does the handshake (doc/protocol.md), reads
                                           the CALLs and answers none
    token-feed-stall.py tcp PORT_FILE      a TCP listener on 127.0.0.1 (a ws:// peer)
                                           that never answers the upgrade; the port it
                                           got from the kernel is written to PORT_FILE

One line on stdout per thing it saw ("accepted", "call <member>"), then it waits until
killed.  Frames are those of rawbus.py (the wire header of doc/protocol.md).
"""
import json
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawbus import AUTH, AUTH_RESULT, CALL, CHALLENGE, HDR, frame  # noqa: E402

held = []


def say(line):
    print(line, flush=True)


def recv_frame(s, buf):
    """(type, member, rest of buf) of the next frame; None when the peer closed."""
    while True:
        if len(buf) >= HDR.size:
            n, ty, _fl, _st, _cid, _tmo, fl, tl, ml, _rs, _aux = HDR.unpack(buf[:HDR.size])
            total = HDR.size + fl + tl + ml + n
            if len(buf) >= total:
                p = HDR.size + fl + tl
                return ty, buf[p:p + ml].decode(errors="replace"), buf[total:]
        d = s.recv(65536)
        if not d:
            return None
        buf += d


def mute(s):
    s.sendall(frame(CHALLENGE, json.dumps({"protocol": "HYBRID", "version": 1,
                                           "maxBody": 1 << 20})))
    buf = b""
    got = recv_frame(s, buf)
    if not got or got[0] != AUTH:
        return
    buf = got[2]
    s.sendall(frame(AUTH_RESULT, json.dumps({"endpoint": "@localhost/org.hybridos.cli/f"}),
                    status=200))
    while True:
        got = recv_frame(s, buf)
        if not got:
            return
        ty, member, buf = got
        if ty == CALL:
            say("call " + member)


def main():
    mode, where = sys.argv[1], sys.argv[2]
    if mode == "tcp":
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.bind(("127.0.0.1", 0))
        ls.listen(16)
        with open(where + ".tmp", "w") as f:
            f.write("%d\n" % ls.getsockname()[1])
        os.rename(where + ".tmp", where)
    else:
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(where)
        ls.listen(16)
    say("listening")
    while True:
        s, _ = ls.accept()
        held.append(s)
        say("accepted")
        if mode == "mute":
            threading.Thread(target=mute, args=(s,), daemon=True).start()


main()
