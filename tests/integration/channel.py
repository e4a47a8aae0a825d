# SPDX-License-Identifier: MIT
"""Direct channels against a real hybridd (doc/protocol.md "Direct channels"), with raw
Unix connections that read the broker socket with recvmsg and keep the channel ends
(SCM_RIGHTS) they receive in arrival order.  Each case prints "ok <case>" or
"FAIL <case>: why"; exit 1 if one failed.

    channel.py SOCKET DAEMON_PID HYBRID_CLI
"""
import array
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rawbus  # noqa: E402
from rawbus import (AUTH, AUTH_RESULT, BUILTIN, CALL, CHALLENGE, CHANNEL, HDR, PING, PONG,  # noqa: E402
                    RESULT, frame, say)


class Peer:
    def __init__(self, path, app):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""
        self.fds = []
        self.name = "@localhost/%s/main" % app
        ch = self.recv()
        assert ch["type"] == CHALLENGE, ch
        self.s.sendall(frame(AUTH, json.dumps({"protocol": "HYBRID", "version": 1, "app": app,
                                               "runner": "main"})))
        r = self.recv()
        assert r["type"] == AUTH_RESULT and r["status"] == 200, r
        self.next_id = 1

    def _fill(self, n, wait=10.0):
        end = time.monotonic() + wait
        while len(self.buf) < n:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.s], [], [], left)[0]:
                raise TimeoutError("no frame within %.0f s" % wait)
            data, anc, _flags, _addr = self.s.recvmsg(1 << 16, socket.CMSG_SPACE(64 * 4))
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(raw[:len(raw) - len(raw) % a.itemsize])
                    self.fds.extend(a)
            if not data:
                raise EOFError
            self.buf += data

    def recv(self, wait=10.0):
        self._fill(HDR.size, wait)
        n, ty, fl, st, cid, tmo, fl_, tl, ml, info, aux = HDR.unpack(self.buf[:HDR.size])
        total = HDR.size + fl_ + tl + ml + n
        self._fill(total, wait)
        p = HDR.size
        frm = self.buf[p:p + fl_]; p += fl_
        to = self.buf[p:p + tl].decode(); p += tl
        mem = self.buf[p:p + ml].decode(errors="replace"); p += ml
        body = self.buf[p:p + n]
        self.buf = self.buf[total:]
        return dict(type=ty, status=st, call_id=cid, frm=frm, to=to, member=mem, body=body,
                    aux=aux, info=info)

    def call(self, to, method, body="{}"):
        cid = self.next_id
        self.next_id += 1
        self.s.sendall(frame(CALL, body, to=to, member=method, call_id=cid, timeout=5000))
        while True:
            f = self.recv()
            if f["type"] == PING:
                self.s.sendall(frame(PONG))
            elif f["type"] == RESULT and f["call_id"] == cid:
                return f

    def channel(self, member):
        """The next CHANNEL frame (others skipped)."""
        while True:
            f = self.recv()
            if f["type"] == PING:
                self.s.sendall(frame(PONG))
            elif f["type"] == CHANNEL:
                if f["member"] != member:
                    raise AssertionError("CHANNEL %s, wanted %s" % (f["member"], member))
                return f

    def take_fd(self):
        return self.fds.pop(0) if self.fds else -1

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        self.s.close()


def daemon_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def daemon_fds_settle(pid, want, wait=15.0):
    """The daemon's fd count once it is `want`, or what it is after `wait` seconds (a peer
    that left may linger up to a second while the daemon writes it what is queued)."""
    end = time.monotonic() + wait
    while True:
        n = daemon_fds(pid)
        if n == want or time.monotonic() > end:
            return n
        time.sleep(0.05)


def joined(a, b):
    """a and b are the two ends of one connected stream pair."""
    x, y = socket.socket(fileno=os.dup(a)), socket.socket(fileno=os.dup(b))
    try:
        if x.type != socket.SOCK_STREAM:
            return False
        x.sendall(b"ping")
        y.settimeout(5)
        if y.recv(4) != b"ping":
            return False
        y.sendall(b"pong")
        x.settimeout(5)
        return x.recv(4) == b"pong"
    finally:
        x.close()
        y.close()


def open_channel(cli, svc):
    r = cli.call(BUILTIN, "openChannel", json.dumps({"endpoint": svc.name}))
    if r["status"] != 200:
        raise AssertionError("openChannel: %d %s" % (r["status"], r["member"]))
    body = json.loads(r["body"])
    o = svc.channel("open")
    if o["call_id"] != body["channel"]:
        raise AssertionError("open %d, result %d" % (o["call_id"], body["channel"]))
    return body, o


def expect_close(p, cid, status, grace, case):
    f = p.channel("close")
    b = json.loads(f["body"])
    say(f["call_id"] == cid and f["status"] == status and b.get("grace_ms") == grace, case,
        "close %r %d %r" % (f["call_id"], f["status"], b))


def main():
    sock, dpid, cli_bin = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    svc = Peer(sock, "org.test.svc")
    r = svc.call(BUILTIN, "registerProcedure", json.dumps({"methodName": "add"}))
    assert r["status"] == 200, r
    cli = Peer(sock, "org.test.cli")
    n0 = daemon_fds(dpid)

    body, o = open_channel(cli, svc)
    say(body["endpoint"] == svc.name and body["methods"] == ["add"], "openChannel answers",
        repr(body))
    say(o["aux"] == os.getuid() and o["frm"] == cli.name.encode() and o["info"] == 0,
        "the callee is told the caller and its uid", repr(o))
    a, b = cli.take_fd(), svc.take_fd()
    say(a >= 0 and b >= 0 and not cli.fds and not svc.fds, "one end each",
        "%r %r" % (cli.fds, svc.fds))
    n1 = daemon_fds_settle(dpid, n0)
    say(n1 == n0, "hybridd keeps no end", "%d fds, %d before" % (n1, n0))
    say(joined(a, b), "the ends are one connected pair")
    r = cli.call(BUILTIN, "openChannel", json.dumps({"endpoint": svc.name}))
    say(r["status"] == 409, "a second channel to the same endpoint is 409", repr(r["status"]))

    # SIGHUP: the configuration is reloaded, every channel soft-closed
    os.kill(dpid, signal.SIGHUP)
    expect_close(svc, o["call_id"], 503, 1000, "reload closes the channel at the callee")
    expect_close(cli, o["call_id"], 503, 1000, "reload closes the channel at the caller")
    os.close(a)
    os.close(b)
    body, o = open_channel(cli, svc)
    say(True, "the caller may open again after the reload")
    os.close(cli.take_fd())
    os.close(svc.take_fd())

    # the monitor (the CLI, as an administrator) attached: channels close, none opens
    mon = subprocess.Popen([cli_bin, "--bus", sock, "monitor"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    try:
        expect_close(svc, o["call_id"], 503, 1000, "a monitor attached closes the channel at the callee")
        expect_close(cli, o["call_id"], 503, 1000, "a monitor attached closes the channel at the caller")
        r = cli.call(BUILTIN, "openChannel", json.dumps({"endpoint": svc.name}))
        say(r["status"] == 503 and "monitor" in r["member"], "no channel opens while a monitor is on",
            "%d %s" % (r["status"], r["member"]))
    finally:
        mon.terminate()
        mon.wait(10)
    # the monitor's connection is gone once the daemon has reaped it: wait for that
    end = time.monotonic() + 20
    while True:
        r = cli.call(BUILTIN, "openChannel", json.dumps({"endpoint": svc.name}))
        if r["status"] == 200 or time.monotonic() > end:
            break
        time.sleep(0.05)
    say(r["status"] == 200, "channels open again once the monitor is gone", repr(r["status"]))
    o = svc.channel("open")
    os.close(cli.take_fd())
    os.close(svc.take_fd())

    # the caller goes: the callee is told at once, grace 0
    cli.close()
    expect_close(svc, o["call_id"], 410, 0, "the caller gone closes the channel at the callee")
    n2 = daemon_fds_settle(dpid, n0 - 1)
    say(n2 == n0 - 1, "hybridd holds no end after all that",
        "%d fds, %d before with the caller" % (n2, n0))
    svc.close()
    sys.exit(1 if rawbus.failed else 0)


if __name__ == "__main__":
    main()
