# SPDX-License-Identifier: MIT
"""Raw-socket client of the hybrid bus (doc/protocol.md), for what the C library
never sends: malformed, truncated and oversized frames, silent peers, peers that
never answer PING or never read.  Each mode prints one result line per case
("ok <case>" or "FAIL <case>: why") and exits 1 if a case failed.

    rawbus.py MODE SOCKET [ARGS...]
"""
import json
import os
import random
import socket
import struct
import sys
import time

HDR = struct.Struct("<IBBHQIHHHHI")  # 32 bytes, little-endian
CHALLENGE, AUTH, AUTH_RESULT, CALL, RESULT, CANCEL, EVENT, PING, PONG, ERROR, MONITOR, CHANNEL = range(1, 13)
BUILTIN = "@localhost/org.hybridos.bus/builtin"
failed = False


def say(ok, case, why=""):
    global failed
    if not ok:
        failed = True
    print(("ok " if ok else "FAIL ") + case + ("" if ok else ": " + why), flush=True)


def frame(ty, body=b"", to="", member="", call_id=0, status=0, flags=0, timeout=0,
          frm="", rsvd=0, aux=0, body_len=None):
    if isinstance(body, str):
        body = body.encode()
    f, t, m = frm.encode(), to.encode(), member.encode()
    n = len(body) if body_len is None else body_len
    return HDR.pack(n, ty, flags, status, call_id, timeout, len(f), len(t), len(m), rsvd,
                    aux) + f + t + m + body


class Conn:
    def __init__(self, path, timeout=5.0):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self, n):
        while len(self.buf) < n:
            d = self.s.recv(1 << 20)
            if not d:
                raise EOFError
            self.buf += d

    def recv(self):
        """One frame as a dict; EOFError when the broker closed."""
        self._fill(HDR.size)
        n, ty, fl, st, cid, tmo, fl_, tl, ml, rs, aux = HDR.unpack(self.buf[:HDR.size])
        total = HDR.size + fl_ + tl + ml + n
        self._fill(total)
        p = HDR.size
        frm = self.buf[p:p + fl_].decode(); p += fl_
        to = self.buf[p:p + tl].decode(); p += tl
        mem = self.buf[p:p + ml].decode(errors="replace"); p += ml
        body = self.buf[p:p + n]
        self.buf = self.buf[total:]
        return dict(type=ty, flags=fl, status=st, call_id=cid, frm=frm, to=to, member=mem,
                    body=body)

    def recv_type(self, types):
        while True:
            f = self.recv()
            if f["type"] == PING:
                self.send(frame(PONG))
                continue
            if f["type"] in types:
                return f

    def closed(self, wait=3.0):
        """True when the broker closes the connection within `wait` seconds.  PINGs are
        answered meanwhile: a broker dropping a silent peer (ping_after_s 1, drop_after_s
        2 in limits.sh) must not pass for one that refused the frame."""
        end = time.monotonic() + wait
        try:
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.s.settimeout(left)
                f = self.recv()
                if f["type"] == PING:
                    self.send(frame(PONG))
        except EOFError:
            return True
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


def auth(path, app="org.example.raw", runner=None, timeout=5.0):
    c = Conn(path, timeout)
    ch = c.recv()
    assert ch["type"] == CHALLENGE, ch
    c.challenge = json.loads(ch["body"])
    c.send(frame(AUTH, json.dumps({"protocol": "HYBRID", "version": 1, "app": app,
                                   "runner": runner or "r%d" % os.getpid()})))
    r = c.recv()
    c.auth_status = r["status"]
    c.auth_result = r
    return c


def call(c, to, method, body="{}", cid=1, timeout=5000, flags=0):
    c.send(frame(CALL, body, to=to, member=method, call_id=cid, timeout=timeout, flags=flags))
    while True:
        r = c.recv_type({RESULT, ERROR})
        if r["type"] == ERROR or r["call_id"] == cid:
            return r


def serving(path):
    """The daemon still answers others: a fresh connection can echo."""
    try:
        c = auth(path, "org.example.check", "chk%d" % time.monotonic_ns())
        r = call(c, BUILTIN, "echo", '{"still":"serving"}', cid=77)
        c.close()
        return r["status"] == 200 and r["body"] == b'{"still":"serving"}'
    except Exception:
        return False


def expect_closed(path, case, data, before_auth=True):
    try:
        if before_auth:
            c = Conn(path)
            c.recv()  # challenge
        else:
            # A name of its own: the previous case's connection may still hold the default
            # one, and a refused AUTH (409) would close the connection whatever `data` is.
            c = auth(path, runner="x%d" % time.monotonic_ns())
            if c.auth_status != 200:
                say(False, case + ": connection closed", "AUTH refused with %d" % c.auth_status)
                c.close()
                return
        c.send(data)
        say(c.closed(), case + ": connection closed", "still open")
        c.close()
    except (BrokenPipeError, ConnectionResetError):
        say(True, case + ": connection closed")
    say(serving(path), case + ": daemon keeps serving others", "echo failed afterwards")


def mode_malformed(path, max_body, max_frame):
    max_body, max_frame = int(max_body), int(max_frame)
    auth_body = json.dumps({"protocol": "HYBRID", "version": 1, "app": "org.example.raw",
                            "runner": "m"}).encode()
    expect_closed(path, "unknown packet type 99", frame(99, "{}"))
    expect_closed(path, "type 0", frame(0, "{}"))
    expect_closed(path, "reserved field not 0", frame(AUTH, auth_body, rsvd=1))
    expect_closed(path, "undefined flag bits", frame(AUTH, auth_body, flags=0x80))
    expect_closed(path, "CALL before AUTH", frame(CALL, "{}", to=BUILTIN, member="echo",
                                                  call_id=1))
    expect_closed(path, "from name over 384 bytes",
                  frame(CALL, "{}", frm="@" + "a" * 400, to=BUILTIN, member="echo", call_id=1),
                  before_auth=False)
    # aux on a CALL is the caller's uid, stated by the broker only (doc/protocol.md)
    expect_closed(path, "CALL with aux (a uid) set by the client",
                  frame(CALL, "{}", to=BUILTIN, member="echo", call_id=1, aux=4242),
                  before_auth=False)
    # the caller info on a CALL (transport, principal) is the broker's to state: a client's
    # is malformed, so no peer can pass for another transport or a token's principal
    expect_closed(path, "CALL with caller info set by the client",
                  frame(CALL, "{}", frm="@localhost/x/yhttp\0alice", to=BUILTIN, member="echo",
                        call_id=1, rsvd=10),
                  before_auth=False)
    expect_closed(path, "an EVENT with caller info",
                  frame(EVENT, "{}", frm="xx", member="tick", rsvd=1), before_auth=False)
    expect_closed(path, "member over 4096 bytes",
                  frame(CALL, "{}", to=BUILTIN, member="m" * 5000, call_id=1),
                  before_auth=False)
    # Truncated header then hang-up.
    c = Conn(path)
    c.recv()
    c.send(frame(AUTH, auth_body)[:17])
    c.close()
    say(serving(path), "truncated header then EOF: daemon keeps serving others")
    # Truncated body then hang-up.
    c = auth(path, runner="trunc")
    c.send(frame(CALL, b'{"a":1}', to=BUILTIN, member="echo", call_id=5)[:-3])
    c.close()
    say(serving(path), "truncated body then EOF: daemon keeps serving others")

    # Oversized: a header announcing more than max_frame: ERROR 413, then closed.
    c = auth(path, runner="big")
    c.send(frame(CALL, b"", to=BUILTIN, member="echo", call_id=3, body_len=max_frame + 1))
    try:
        r = c.recv()
        say(r["type"] == ERROR and r["status"] == 413, "frame over max_frame: ERROR 413",
            "got type %d status %d" % (r["type"], r["status"]))
    except EOFError:
        say(False, "frame over max_frame: ERROR 413", "closed without an ERROR")
    say(c.closed(), "frame over max_frame: connection closed", "still open")
    say(serving(path), "frame over max_frame: daemon keeps serving others")

    # A CALL whose body is over max_body but fits max_frame: RESULT 413, connection stays.
    if max_frame > max_body + 64:
        c = auth(path, runner="body")
        r = call(c, BUILTIN, "echo", b'"' + b"a" * (max_body - 1) + b'"', cid=9)
        say(r["type"] == RESULT and r["status"] == 413, "body over max_body: RESULT 413",
            "got type %d status %d" % (r["type"], r["status"]))
        r = call(c, BUILTIN, "echo", "[1]", cid=10)
        say(r["status"] == 200 and r["body"] == b"[1]", "after 413 the connection still works",
            repr(r)[:200])
        c.close()

    # Bad names in AUTH: 406 (doc/protocol.md), then closed.
    for case, app, runner in [("app with a dash", "my-app", "main"),
                              ("reserved app", "org.hybridos.bus", "main"),
                              ("reserved runner", "org.example.x", "builtin"),
                              ("runner not an identifier", "org.example.x", "9lives"),
                              ("empty app", "", "main"),
                              ("app with an empty label", "org..x", "main")]:
        c = Conn(path)
        c.recv()
        c.send(frame(AUTH, json.dumps({"protocol": "HYBRID", "version": 1, "app": app,
                                       "runner": runner})))
        try:
            r = c.recv()
            say(r["type"] == AUTH_RESULT and r["status"] == 406, "AUTH %s: 406" % case,
                "type %d status %d" % (r["type"], r["status"]))
        except EOFError:
            say(False, "AUTH %s: 406" % case, "closed without AUTH_RESULT")
        say(c.closed(), "AUTH %s: then closed" % case, "still open")
        c.close()
    # Unknown protocol version: 426.
    c = Conn(path)
    c.recv()
    c.send(frame(AUTH, json.dumps({"protocol": "HYBRID", "version": 99, "app": "org.x",
                                   "runner": "v"})))
    r = c.recv()
    say(r["type"] == AUTH_RESULT and r["status"] == 426, "AUTH version 99: 426",
        "status %d" % r["status"])
    c.close()
    # AUTH body that is not JSON: refused (an error status or a close), daemon unaffected.
    c = Conn(path)
    c.recv()
    c.send(frame(AUTH, "{not json"))
    try:
        r = c.recv()
        say(r["type"] in (AUTH_RESULT, ERROR) and r["status"] >= 400,
            "AUTH with bad JSON: refused", "status %d" % r["status"])
    except EOFError:
        say(True, "AUTH with bad JSON: refused")
    c.close()
    say(serving(path), "after bad AUTH packets the daemon keeps serving others")

    # After auth: bad JSON and bad names in builtin calls get clear statuses.
    c = auth(path, runner="calls")
    r = call(c, BUILTIN, "registerProcedure", "{bad json", cid=20)
    say(r["status"] == 400, "registerProcedure with bad JSON: 400", "status %d" % r["status"])
    r = call(c, BUILTIN, "registerProcedure",
             json.dumps({"methodName": "bad-name", "forHost": "*", "forApp": "*"}), cid=21)
    say(r["status"] == 406, "registerProcedure bad method name: 406", "status %d" % r["status"])
    r = call(c, BUILTIN, "registerEvent",
             json.dumps({"bubbleName": "1bad", "forHost": "*", "forApp": "*"}), cid=22)
    say(r["status"] == 406, "registerEvent bad bubble name: 406", "status %d" % r["status"])
    r = call(c, "@localhost/bad-app/main", "x", "{}", cid=23)
    say(r["status"] == 406, "CALL to a malformed endpoint name: 406", "status %d" % r["status"])
    r = call(c, "@localhost/org.example.nobody/main", "x", "{}", cid=24)
    say(r["status"] == 404, "CALL to an absent endpoint: 404", "status %d" % r["status"])
    r = call(c, BUILTIN, "noSuchMethod", "{}", cid=25)
    say(r["status"] == 404, "CALL to an absent builtin method: 404", "status %d" % r["status"])
    r = call(c, BUILTIN, "echo\0junk", "{}", cid=27)
    say(r["status"] == 406, "CALL to a builtin method name holding NUL: 406", "status %d" % r["status"])
    r = call(c, BUILTIN, "storeRead\0junk", "/a", cid=28, flags=1)
    say(r["status"] == 406, "CALL to a store method name holding NUL: 406", "status %d" % r["status"])
    r = call(c, BUILTIN, "storeNoSuch", "/a", cid=29, flags=1)
    say(r["status"] == 404 and "storeNoSuch" in r["member"], "CALL to an absent store method: 404 naming it",
        "status %d %r" % (r["status"], r["member"]))
    for v, why in (("1e999999", "out of range"), ("123456789012345678901234567890", "64 bits")):
        r = call(c, BUILTIN, "storeWrite", "/n/x\n" + v, cid=30, flags=1)
        say(r["status"] == 400 and why in r["member"],
            "a number literal beyond 64 bits in a store write: 400 naming it",
            "status %d %r" % (r["status"], r["member"]))
    r = call(c, BUILTIN, "echo", b"\x00\x01\xff", cid=26, flags=1)
    say(r["status"] == 200 and r["body"] == b"\x00\x01\xff" and r["flags"] & 1,
        "binary echo: same bytes, binary flag", repr(r)[:200])
    c.close()
    say(serving(path), "after bad calls the daemon keeps serving others")


def mode_silent(path, wait_s):
    """Connect, read the challenge, say nothing: the broker must close us."""
    c = Conn(path)
    ch = c.recv()
    say(ch["type"] == CHALLENGE, "first packet is CHALLENGE", "type %d" % ch["type"])
    body = json.loads(ch["body"])
    say(len(body.get("nonce", "")) == 64, "challenge nonce is 64 hex digits", repr(body))
    say(c.closed(float(wait_s)), "silent connection closed before %ss" % wait_s, "still open")


def mode_mute(path, app, runner, seconds):
    """Authenticate, then never answer PING; report PINGs seen and the close."""
    c = auth(path, app, runner)
    say(c.auth_status == 200, "mute client authenticated", "status %d" % c.auth_status)
    c.s.settimeout(float(seconds))
    pings = 0
    closed = False
    try:
        while True:
            f = c.recv()
            if f["type"] == PING:
                pings += 1
    except EOFError:
        closed = True
    except (socket.timeout, TimeoutError, ConnectionResetError):
        closed = isinstance(sys.exc_info()[1], ConnectionResetError)
    say(pings >= 1, "mute client was pinged", "no PING within %ss" % seconds)
    say(closed, "mute client dropped", "still connected after %ss" % seconds)


def mode_pending(path, to, method, limit):
    """limit+1 calls to a callee that answers late: the last one gets 429 at once."""
    limit = int(limit)
    c = auth(path, "org.example.pend", "p")
    for i in range(1, limit + 2):
        c.send(frame(CALL, "{}", to=to, member=method, call_id=i, timeout=20000))
    r = c.recv_type({RESULT})
    say(r["call_id"] == limit + 1 and r["status"] == 429,
        "call %d of %d pending: 429" % (limit + 1, limit + 1),
        "first result: id %d status %d" % (r["call_id"], r["status"]))
    # The limit counts pending calls only: cancelling one makes room again.
    c.send(frame(CANCEL, "", call_id=1))
    time.sleep(0.2)
    c.send(frame(CALL, '"x"', to=BUILTIN, member="echo", call_id=500))
    r = c.recv_type({RESULT})
    say(r["call_id"] == 500 and r["status"] == 200, "after a cancel a new call is accepted",
        "id %d status %d" % (r["call_id"], r["status"]))
    c.close()


def mode_maxconn(path, room):
    """At most `room` more connections fit (other clients may hold some): opening more
    than that ends with an explicit refusal (ERROR 503 or a close), not a hang."""
    room = int(room)
    conns, refusal = [], None
    for _ in range(room + 1):
        c = Conn(path)
        try:
            f = c.recv()
        except (EOFError, ConnectionResetError):
            refusal = "closed"
            break
        if f["type"] != CHALLENGE:
            refusal = "type %d status %d" % (f["type"], f["status"])
            say(f["type"] == ERROR and f["status"] == 503, "refusal is ERROR 503", refusal)
            break
        conns.append(c)
    say(refusal is not None and 1 <= len(conns) <= room,
        "connections beyond max_connections are refused (%d accepted of room %d, then %s)"
        % (len(conns), room, refusal), "accepted %d, refusal %s" % (len(conns), refusal))
    for c in conns:
        c.close()
    time.sleep(0.3)
    c = auth(path, "org.example.conn", "again")
    say(c.auth_status == 200, "after others closed, a new connection is accepted",
        "status %d" % c.auth_status)


def mode_subs(path, limit):
    limit = int(limit)
    c = auth(path, "org.example.subs", "s")
    sts = []
    for i in range(limit + 1):
        r = call(c, BUILTIN, "subscribeEvent",
                 json.dumps({"endpointName": "@localhost/org.example.*/*",
                             "bubbleName": "B%d*" % i}), cid=100 + i)
        sts.append(r["status"])
    say(sts[:limit] == [200] * limit, "%d subscriptions accepted" % limit, repr(sts))
    say(sts[limit] == 429, "subscription %d: 429" % (limit + 1), repr(sts[limit]))


def stall_until_cut(c, seconds, what):
    """Stops reading c for `seconds`: the broker must cut it off (an ERROR 507 first when
    its queue had room for it), not buffer forever."""
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    print("subscribed", flush=True)
    time.sleep(float(seconds))
    got507 = False
    c.s.settimeout(5)
    try:
        while True:
            f = c.recv()
            if f["type"] == ERROR and f["status"] == 507:
                got507 = True
    except (EOFError, ConnectionResetError):
        closed = True
    except (socket.timeout, TimeoutError):
        closed = False
    say(closed, "stalled %s disconnected" % what, "still connected")
    print("info: ERROR 507 %s" % ("received" if got507 else "not received (buffer full)"))


def mode_stall(path, endpoint_glob, bubble_glob, seconds):
    """Subscribe, then never read: the broker must cut us off, not buffer forever."""
    c = auth(path, "org.example.slow", "stalled")
    r = call(c, BUILTIN, "subscribeEvent",
             json.dumps({"endpointName": endpoint_glob, "bubbleName": bubble_glob}), cid=1)
    say(r["status"] == 200, "stalled subscriber subscribed", "status %d" % r["status"])
    stall_until_cut(c, seconds, "subscriber")


def mode_storestall(path, pattern, seconds):
    """Subscribe to the daemon's store, then never read: cut off, not buffered forever."""
    c = auth(path, "org.example.slow", "storestall")
    r = call(c, BUILTIN, "storeSubscribe", "1 0 " + pattern, cid=1, flags=1)
    say(r["status"] == 200, "stalled store subscriber subscribed", "status %d" % r["status"])
    stall_until_cut(c, seconds, "store subscriber")


def store_events(c, quiet):
    """Every store message c gets until none came for `quiet` seconds: [(furi, value)]; an
    ERROR or the end of the connection is returned as ("ERROR", status) / ("EOF", None)."""
    got = []
    c.s.settimeout(float(quiet))
    try:
        while True:
            f = c.recv()
            if f["type"] == PING:
                c.send(frame(PONG))
            elif f["type"] == ERROR:
                got.append(("ERROR", f["status"]))
            elif f["type"] == EVENT and f["member"] == "store":
                furi, _, val = f["body"].decode().partition("\n")
                got.append((furi, val))
    except (socket.timeout, TimeoutError):
        pass
    except (EOFError, ConnectionResetError):
        got.append(("EOF", None))
    return got


def mode_replaypage(path, n, stall):
    """A replay larger than the subscriber's send queue, which it does not read for a while:
    the broker sends it in pages as the subscriber reads (doc/protocol.md "Store"), so it is
    not cut off, every retained key comes once, and writes made meanwhile come after the
    whole replay, in write order."""
    n, stall = int(n), float(stall)
    w = auth(path, "org.example.rpw", "writer")
    pad = "v" * 100
    for lo in range(0, n, 200):
        hi = min(n, lo + 200)
        w.send(b"".join(frame(CALL, "/rp/k%05d\n'%s%d'" % (i, pad, i), to=BUILTIN,
                              member="storeWrite", call_id=i + 1, timeout=5000, flags=1)
                        for i in range(lo, hi)))
        sts = [w.recv_type({RESULT, ERROR})["status"] for _ in range(lo, hi)]
        if sts != [200] * (hi - lo):
            say(False, "%d keys written" % n, repr(sorted(set(sts))))
            return
    sub = Conn(path)
    sub.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sub.recv()  # CHALLENGE
    sub.send(frame(AUTH, json.dumps({"protocol": "HYBRID", "version": 1,
                                     "app": "org.example.rps", "runner": "sub"})))
    sub.recv()
    r = call(sub, BUILTIN, "storeSubscribe", "1 1 /rp/#", cid=1, flags=1)
    say(r["status"] == 200, "subscribed with replay to %d keys" % n, "status %d" % r["status"])
    time.sleep(stall)  # not reading: the replay fills the queue and waits
    cid = [10000]

    def wr(furi, text, method="storeWrite"):
        cid[0] += 1
        return call(w, BUILTIN, method, "%s\n%s" % (furi, text) if text is not None else furi,
                    cid=cid[0], flags=1)["status"]
    sts = [wr("/rp/k00005", "'a'"), wr("/rp/k00005", "'b'"), wr("/rp/k00005", "'c'"),
           wr("/rp/zz", "'z'"), wr("/rp/k00007", None, "storeDelete")]
    say(sts == [200] * 5, "the writer is served while the replay waits", repr(sts))
    say(serving(path), "the daemon serves others while the replay waits", "echo failed")
    got = store_events(sub, 3)
    bad = [g for g in got if g[0] in ("ERROR", "EOF")]
    say(not bad, "the subscriber that did not read its replay is not cut off", repr(bad[:2]))
    keys = ["/rp/k%05d" % i for i in range(n)]
    touched = {"/rp/k00005", "/rp/k00007", "/rp/zz"}
    count = {}
    for k, v in got:
        count[k] = count.get(k, 0) + 1
    once = [k for k in keys if k not in touched and count.get(k) != 1]
    say(not once, "every untouched key of the replay came once",
        "%d did not, e.g. %s x%d" % (len(once), once[0], count.get(once[0], 0)) if once else "")
    wrong = [(k, v) for k, v in got if k not in touched and k.startswith("/rp/k") and
             v != "'%s%d'" % (pad, int(k[5:]))]
    say(not wrong, "... with its value", repr(wrong[:1]))
    k5 = [v for k, v in got if k == "/rp/k00005"]
    say(k5[-3:] == ["'a'", "'b'", "'c'"], "the three writes of one key came last, in order",
        repr(k5))
    say([v for k, v in got if k == "/rp/zz"][-1:] == ["'z'"], "a key added meanwhile came",
        repr([v for k, v in got if k == "/rp/zz"]))
    k7 = [v for k, v in got if k == "/rp/k00007"]
    say(k7[-1:] == ["noobj"], "a key deleted meanwhile came last as deleted", repr(k7))
    first_live = [i for i, (k, v) in enumerate(got) if k == "/rp/k00005"][-3] if len(k5) >= 3 else -1
    late = [i for i, (k, v) in enumerate(got) if k not in touched and i > first_live]
    say(first_live >= 0 and not late, "the writes made meanwhile came after the whole replay",
        "%d replayed values after them" % len(late))
    sub.close()
    w.close()


def mode_replayheld(path, n, writes):
    """A subscriber whose replay waits for it to read, while writes to its pattern pile up:
    what waits for it (the held writes) counts as its send queue, so it is cut off (507) as a
    slow reader once that is over send_queue_bytes; the writer is never refused."""
    n, writes = int(n), int(writes)
    sub = Conn(path)
    sub.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sub.recv()
    sub.send(frame(AUTH, json.dumps({"protocol": "HYBRID", "version": 1,
                                     "app": "org.example.rph", "runner": "sub"})))
    sub.recv()
    r = call(sub, BUILTIN, "storeSubscribe", "1 1 /rp/#", cid=1, flags=1)
    say(r["status"] == 200, "subscribed with replay", "status %d" % r["status"])
    time.sleep(0.5)
    w = auth(path, "org.example.rph", "writer")
    big = "'" + "h" * 30000 + "'"
    sts = [call(w, BUILTIN, "storeWrite", "/rp/k00001\n" + big, cid=100 + i, flags=1)["status"]
           for i in range(writes)]
    say(sts == [200] * writes, "the writer was never refused (%d writes of 30 KB)" % writes,
        repr(sorted(set(sts))))
    got = store_events(sub, 3)
    say(("EOF", None) in got, "the subscriber holding more than send_queue_bytes was cut off",
        "still connected after %d messages" % len(got))
    say(serving(path), "the daemon serves others", "echo failed")


def mode_passthrough(path):
    """Values written by one peer reach a store subscriber as the exact bytes written, though
    their spelling is not the one the broker's formatter gives (doc/protocol.md "Store")."""
    sub = auth(path, "org.example.pt", "sub")
    r = call(sub, BUILTIN, "storeSubscribe", "7 0 /pt/#", cid=1, flags=1)
    say(r["status"] == 200, "subscribed to /pt/#", "status %d" % r["status"])
    pub = auth(path, "org.example.pt", "pub")
    cases = [("storePublish", "/pt/a", "1.50", 202),
             ("storeWrite", "/pt/b", "[ 1 ,  2 ]", 200),
             ("storePublish", "/pt/c", "[a=>1 , b=>'x']", 202),
             ("storeWrite", "/pt/d", "1e2", 200),
             ("storeWrite", "/pt/e", "  'two  spaces'  ", 200)]
    cid = 10
    for method, furi, text, status in cases:
        cid += 1
        body = (furi + "\n" + text).encode()
        r = call(pub, BUILTIN, method, body, cid=cid, flags=1)
        say(r["status"] == 200, "%s %s %r answered 200" % (method, furi, text),
            "status %d %s" % (r["status"], r["member"]))
        m = sub.recv_type({EVENT})
        say(m["call_id"] == 7 and m["status"] == status and m["body"] == body,
            "%s %r reaches the subscriber byte for byte" % (method, text),
            "got call_id %d status %d body %r" % (m["call_id"], m["status"], m["body"]))
    # Validated once: what does not parse is refused and never forwarded.
    r = call(pub, BUILTIN, "storePublish", "/pt/bad\n[1,", cid=30, flags=1)
    say(r["status"] == 400, "a value that does not parse is refused 400", "status %d" % r["status"])
    r = call(pub, BUILTIN, "storePublish", "/pt/z\n3", cid=31, flags=1)
    m = sub.recv_type({EVENT})
    say(m["body"] == b"/pt/z\n3", "the refused value was not delivered", "got %r" % m["body"])
    # The store kept the values it parsed: a read answers with the formatter's text.
    for furi, want in (("/pt/b", b"[1,2]"), ("/pt/d", b"100.0"), ("/pt/e", b"'two  spaces'")):
        r = call(pub, BUILTIN, "storeRead", furi, cid=40, flags=1)
        say(r["status"] == 200 and r["body"] == want, "a read of %s gives %r" % (furi, want),
            "status %d body %r" % (r["status"], r["body"]))
    sub.close()
    pub.close()


def mode_pipeline(path, rounds):
    """Calls written together (one sendall), answered in order: the RESULTs, and the store
    messages of a subscription on the same connection between them, in write order."""
    rounds = int(rounds)
    c = auth(path, "org.example.pipe", "pipe")
    data, want = [], []
    data.append(frame(CALL, "9 0 /p/#", to=BUILTIN, member="storeSubscribe", call_id=1,
                      timeout=5000, flags=1))
    want.append((RESULT, 1, 200, b""))
    for i in range(rounds):
        w, rd = 100 + 2 * i, 101 + 2 * i
        data.append(frame(CALL, "/p/%d\n%d" % (i % 7, i), to=BUILTIN, member="storeWrite",
                          call_id=w, timeout=5000, flags=1))
        want.append((RESULT, w, 200, b""))
        want.append((EVENT, 9, 200, b"/p/%d\n%d" % (i % 7, i)))
        data.append(frame(CALL, "/p/%d" % (i % 7), to=BUILTIN, member="storeRead", call_id=rd,
                          timeout=5000, flags=1))
        want.append((RESULT, rd, 200, b"%d" % i))
    c.send(b"".join(data))
    got = []
    for _ in want:
        f = c.recv_type({RESULT, EVENT, ERROR})
        got.append((f["type"], f["call_id"], f["status"], f["body"]))
    bad = [k for k in range(len(want)) if got[k] != want[k]]
    say(not bad, "%d frames written at once answered in order" % len(data),
        "first difference at %d: got %r, wanted %r" % (bad[0], got[bad[0]], want[bad[0]])
        if bad else "")
    c.close()


def mode_pipestall(path, furi, n, seconds):
    """Writes n reads of a large value at once and never reads the answers: cut off (507),
    its answers charged to it, not buffered beyond send_queue_bytes."""
    c = auth(path, "org.example.pipe", "pipestall")
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    data = b"".join(frame(CALL, furi, to=BUILTIN, member="storeRead", call_id=10 + i,
                          timeout=5000, flags=1) for i in range(int(n)))
    c.send(data)
    stall_until_cut(c, seconds, "pipelining reader")


def mode_split(path):
    """Frames cut anywhere between the broker's reads: inside a header, inside the names,
    inside a body, several frames and a piece of the next in one write, a body larger than
    one read.  Each is answered once, in order, with what was written.  (The pauses only
    make separate reads likely; the answers must be the same however the bytes arrive.)"""
    c = auth(path, "org.example.split", "split")
    cid = [0]

    def w(furi, text):
        cid[0] += 1
        return cid[0], frame(CALL, "%s\n%s" % (furi, text), to=BUILTIN, member="storeWrite",
                             call_id=cid[0], timeout=5000, flags=1)

    def rd(furi):
        cid[0] += 1
        return cid[0], frame(CALL, furi, to=BUILTIN, member="storeRead", call_id=cid[0],
                             timeout=5000, flags=1)

    def answers(case, want):
        got = []
        for _ in want:
            f = c.recv_type({RESULT, ERROR})
            got.append((f["type"], f["call_id"], f["status"], f["body"]))
        say(got == want, case, "got %r, wanted %r" % (got, want))

    for name, cuts in (("inside the header", [5]), ("at the header's end", [32]),
                       ("inside the names", [40]), ("inside the body", [-2]),
                       ("byte by byte", list(range(1, 200)))):
        i, data = w("/split/a", "%d" % len(name))
        last = 0
        for k in cuts + [None]:
            if k is not None and (k if k >= 0 else len(data) + k) >= len(data):
                continue
            c.send(data[last:k])
            last = k
            if k is not None:
                time.sleep(0.05 if len(cuts) < 5 else 0.002)
        j, data = rd("/split/a")
        c.send(data)
        answers("a frame cut %s is answered once" % name,
                [(RESULT, i, 200, b""), (RESULT, j, 200, b"%d" % len(name))])
    # two whole frames and the start of a third in one write, the rest with a fourth
    f1, f2, f3, f4 = w("/split/b", "1"), w("/split/c", "2"), rd("/split/b"), rd("/split/c")
    both = f1[1] + f2[1] + f3[1][:7]
    c.send(both)
    time.sleep(0.05)
    c.send(f3[1][7:] + f4[1])
    answers("frames and a piece of the next in one write, answered in order",
            [(RESULT, f1[0], 200, b""), (RESULT, f2[0], 200, b""), (RESULT, f3[0], 200, b"1"),
             (RESULT, f4[0], 200, b"2")])
    # a body larger than one read of the broker (16 KiB), after a small frame in one write
    big = "'" + "x" * 40000 + "'"
    f1, f2, f3 = rd("/split/b"), w("/split/big", big), rd("/split/big")
    c.send(f1[1] + f2[1] + f3[1])
    answers("a 40 KB body after a small frame, then its read",
            [(RESULT, f1[0], 200, b"1"), (RESULT, f2[0], 200, b""),
             (RESULT, f3[0], 200, big.encode())])
    c.close()


def mode_forward(path, n, seed):
    """Calls to a service that reads nothing until all are written, one to four whole
    frames a write and then a part cut at random (inside headers, names, bodies): the
    broker forwards them from what it read, past what the service's socket takes, into its
    send queue, where each must stay as it was when the broker reads the next write; the
    service must get every call once, in order, with its bytes, and its answers, cut at
    random, must reach the caller intact."""
    n, rnd = int(n), random.Random(int(seed))
    svc = auth(path, "org.example.fwd", "svc")
    r = call(svc, BUILTIN, "registerProcedure",
             json.dumps({"methodName": "echo", "forHost": "*", "forApp": "*"}), cid=1)
    say(r["status"] == 200, "the service registers echo", repr(r["status"]))
    cli = auth(path, "org.example.fwd", "cli")
    bodies = [bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 1, 7, 100, 1000, 3000])))
              for _ in range(n)]
    frames = [frame(CALL, bodies[i], to="@localhost/org.example.fwd/svc", member="echo",
                    call_id=10 + i, timeout=30000, flags=1) for i in range(n)]

    def cut_send(c, blob):
        pos = 0
        while pos < len(blob):
            k = rnd.choice([1, 5, 31, 32, 33, 100, 4000, 16383, 16384, 16385, 40000])
            c.send(blob[pos:pos + k])
            pos += k

    i = 0
    while i < n // 2:  # whole frames: most reads of the broker end where a frame does
        k = rnd.randint(1, 4)
        cli.send(b"".join(frames[i:i + k]))
        i += k
    cut_send(cli, b"".join(frames[i:]))  # the service reads none of it meanwhile
    got, answers = [], []
    for _ in range(n):
        f = svc.recv_type({CALL})
        got.append((f["member"], f["body"]))
        answers.append(frame(RESULT, f["body"], call_id=f["call_id"], status=200, flags=1))
    bad = [i for i in range(n) if got[i] != ("echo", bodies[i])]
    say(not bad, "the service gets %d forwarded calls once, in order, intact" % n,
        "first difference at call %d" % bad[0] if bad else "")
    cut_send(svc, b"".join(answers))
    res = {}
    for _ in range(n):
        f = cli.recv_type({RESULT, ERROR})
        res[f["call_id"]] = (f["type"], f["status"], f["body"])
    bad = [i for i in range(n) if res.get(10 + i) != (RESULT, 200, bodies[i])]
    say(not bad, "the caller gets its %d answers intact" % n,
        "first difference at call %d: %r" % (bad[0], res.get(10 + bad[0], ("none",))[:2])
        if bad else "")
    svc.close()
    cli.close()


if __name__ == "__main__":
    mode = sys.argv[1]
    globals()["mode_" + mode](*sys.argv[2:])
    sys.exit(1 if failed else 0)
