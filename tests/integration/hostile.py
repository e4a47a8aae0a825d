# SPDX-License-Identifier: MIT
"""A hostile local user against a real hybridd (doc/config.md "Quotas"): slow subscribers,
big frames, stalled pre-auth connections, huge registrations and count quotas.  Built on
rawbus.py; each mode prints "ok <case>" / "FAIL <case>: why" lines (plus "info" lines) and
exits 1 if a case failed.  Run the attacker modes under another uid (setpriv) so the
bystander, a different uid, shows that only the offender is cut off.

    hostile.py MODE SOCKET [ARGS...]
"""
import json
import os
import re
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rawbus  # noqa: E402
from rawbus import (AUTH_RESULT, BUILTIN, CALL, CHALLENGE, ERROR, EVENT, RESULT, Conn, auth,  # noqa: E402
                    call, frame, say)


def read_until_eof(conns, seconds):
    """Reads every connection until the broker closes it; returns the ERROR frames seen."""
    errors = {id(c): None for c in conns}
    live = {c.s.fileno(): c for c in conns}
    for c in conns:
        c.s.setblocking(False)
    end = time.monotonic() + seconds
    while live and time.monotonic() < end:
        r, _, _ = select.select(list(live), [], [], 0.2)
        for fd in r:
            c = live[fd]
            try:
                d = c.s.recv(1 << 20)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                d = b""
            if not d:
                del live[fd]
                continue
            c.buf += d
            while len(c.buf) >= rawbus.HDR.size:
                n, ty, fl, st, cid, tmo, fl_, tl, ml, rs, aux = rawbus.HDR.unpack(c.buf[:rawbus.HDR.size])
                total = rawbus.HDR.size + fl_ + tl + ml + n
                if len(c.buf) < total:
                    break
                if ty == ERROR:
                    p = rawbus.HDR.size + fl_ + tl
                    errors[id(c)] = (st, c.buf[p:p + ml].decode(errors="replace"))
                c.buf = c.buf[total:]
    return errors, len(live)


def mode_subscribers(path, n, go_file):
    """n subscribers to '*' that never read until go_file appears; then each must find
    ERROR 507 naming a quota, then the close."""
    n = int(n)
    conns = []
    for i in range(n):
        c = auth(path, "org.example.slow", "s%d" % i)
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        r = call(c, BUILTIN, "subscribeEvent",
                 json.dumps({"endpointName": "@localhost/org.example.pub/*", "bubbleName": "*"}),
                 cid=1)
        if r["status"] != 200:
            say(False, "subscriber %d subscribed" % i, "status %d" % r["status"])
        conns.append(c)
    print("subscribed", flush=True)
    while not os.path.exists(go_file):
        time.sleep(0.05)
    errors, still = read_until_eof(conns, 15)
    got = [e for e in errors.values() if e]
    say(all(e and e[0] == 507 and "quota" in e[1] for e in errors.values()),
        "every slow subscriber read ERROR 507 naming its quota (%d of %d)" % (len(got), n),
        repr(list(errors.values())[:3]))
    say(still == 0, "every slow subscriber was disconnected", "%d still connected" % still)
    for e in sorted(set(e[1].split(":")[0] for e in got)):
        print("info: " + e)


def mode_publish(path, count, size):
    """The bystander: publishes count events of size bytes, then must still be served."""
    count, size = int(count), int(size)
    c = auth(path, "org.example.pub", "p")
    r = call(c, BUILTIN, "registerEvent",
             json.dumps({"bubbleName": "B", "forHost": "*", "forApp": "*"}), cid=1)
    say(r["status"] == 200, "publisher registered its bubble", "status %d" % r["status"])
    body = b'"' + b"e" * (size - 2) + b'"'
    ev = frame(EVENT, body, member="B")
    c.s.settimeout(30)
    try:
        for _ in range(count):
            c.send(ev)
        ok = True
    except OSError as e:
        ok = False
        print("info: publisher send failed: %s" % e)
    say(ok, "the publisher sent %d events of %d bytes without being cut off" % (count, size))
    r = call(c, BUILTIN, "echo", '"still here"', cid=2, timeout=20000)
    say(r["type"] == RESULT and r["status"] == 200 and r["body"] == b'"still here"',
        "the publisher is still served after the attack", repr(r)[:200])
    c.close()


def mode_bigframes(path, n, frame_len):
    """n connections each announce a frame of frame_len bytes and send all but its last
    byte: the broker must refuse most of them (ERROR 507 naming a quota) instead of holding
    n * frame_len bytes.  Prints "held" while the admitted ones are holding."""
    n, frame_len = int(n), int(frame_len)
    conns = [auth(path, "org.example.big", "b%d" % i) for i in range(n)]
    body_len = frame_len - rawbus.HDR.size - len(BUILTIN) - 4
    hdr = frame(CALL, b"", to=BUILTIN, member="echo", call_id=1, body_len=body_len)
    chunk = b'"' + b"x" * (1 << 20)

    def send(c):
        c.s.settimeout(5)
        try:
            c.send(hdr)
            left = body_len - 1
            while left > 0:
                k = min(left, len(chunk))
                c.send(chunk[:k])
                left -= k
            c.sent_all = True
        except OSError:
            c.sent_all = False

    ts = [threading.Thread(target=send, args=(c,)) for c in conns]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    refused = [c for c in conns if not c.sent_all]
    errors, _ = read_until_eof(refused, 5)
    say(len(refused) >= n // 2, "most big-frame senders were refused (%d of %d)" % (len(refused), n))
    say(all(e and e[0] == 507 and "quota" in e[1] for e in errors.values()),
        "each refused sender read ERROR 507 naming a quota",
        repr(list(errors.values())[:3]))
    print("held", flush=True)
    time.sleep(float(os.environ.get("HOLD_S", "2")))


def mode_hold(path, frame_len, expect, hold_s):
    """One connection announces a frame of frame_len bytes and sends all but its last byte;
    expect is "admitted" (it holds them hold_s seconds) or "refused" (ERROR 507 max_memory)."""
    frame_len = int(frame_len)
    c = auth(path, "org.example.hold", "h%d" % os.getpid())
    body_len = frame_len - rawbus.HDR.size - len(BUILTIN) - 4
    data = frame(CALL, b'"' + b"h" * (body_len - 2), to=BUILTIN, member="echo", call_id=1)[:-2]
    c.s.settimeout(3)
    try:
        c.send(data)
        sent = True
    except OSError:
        sent = False
    errors, _ = read_until_eof([c], 0 if sent and expect == "admitted" else 3)
    e = errors[id(c)]
    if expect == "admitted":
        say(sent and e is None, "a frame of %d bytes is admitted" % frame_len, repr(e))
        print("held", flush=True)
        time.sleep(float(hold_s))
    else:
        say(e is not None and e[0] == 507 and "quota max_memory exceeded" in e[1],
            "a frame of %d bytes is refused: 507 max_memory (fair share)" % frame_len, repr(e))


def mode_preauth(path, n, hold_s):
    """n connections that never authenticate; reports how many the broker accepted and
    how it refused the rest, then holds them hold_s seconds."""
    n = int(n)
    conns, refusals = [], {}
    for _ in range(n):
        c = Conn(path)
        try:
            f = c.recv()
        except (EOFError, ConnectionResetError):
            refusals["closed"] = refusals.get("closed", 0) + 1
            continue
        if f["type"] == CHALLENGE:
            conns.append(c)
        else:
            k = "%d %s" % (f["status"], f["member"])
            refusals[k] = refusals.get(k, 0) + 1
            c.close()
    print("accepted %d" % len(conns))
    for k, v in sorted(refusals.items()):
        print("refused %d: %s" % (v, k))
    print("held", flush=True)
    time.sleep(float(hold_s))


def mode_bystander(path):
    """A well-behaved client: connects, authenticates and echoes."""
    try:
        c = auth(path, "org.example.bystander", "b%d" % os.getpid())
        ok = c.auth_status == 200
        r = call(c, BUILTIN, "echo", '"hi"', cid=3) if ok else {"status": c.auth_status}
        say(ok and r["status"] == 200, "a bystander connects, authenticates and is served",
            "status %d" % r["status"])
    except Exception as e:  # noqa: BLE001
        say(False, "a bystander connects, authenticates and is served", repr(e))


def mode_counts(path, limit):
    """Per-uid count quotas (each set to `limit`) across two connections of one uid: the
    call/subscription/registration beyond the uid's quota is 429; the second connection
    beyond uid_max_connections is refused with ERROR 429."""
    limit = int(limit)
    a = auth(path, "org.example.cnt", "a")
    b = auth(path, "org.example.cnt", "b")
    conns = [a, b]
    # subscriptions: limit over both connections
    sts = []
    for i in range(limit + 1):
        c = conns[i % 2]
        r = call(c, BUILTIN, "subscribeEvent",
                 json.dumps({"endpointName": "@localhost/org.example.*/*", "bubbleName": "S%d" % i}),
                 cid=100 + i)
        sts.append((r["status"], r["member"]))
    say([s for s, _ in sts[:limit]] == [200] * limit and sts[limit][0] == 429
        and "uid_max_subscriptions" in sts[limit][1],
        "uid_max_subscriptions: 429 for subscription %d of the uid" % (limit + 1), repr(sts))
    # registrations (procedures and bubbles share the quota)
    sts = []
    for i in range(limit + 1):
        c = conns[i % 2]
        if i % 2:
            r = call(c, BUILTIN, "registerEvent",
                     json.dumps({"bubbleName": "R%d" % i, "forHost": "*", "forApp": "*"}), cid=200 + i)
        else:
            r = call(c, BUILTIN, "registerProcedure",
                     json.dumps({"methodName": "m%d" % i, "forHost": "*", "forApp": "*"}), cid=200 + i)
        sts.append((r["status"], r["member"]))
    say([s for s, _ in sts[:limit]] == [200] * limit and sts[limit][0] == 429
        and "uid_max_registrations" in sts[limit][1],
        "uid_max_registrations: 429 for registration %d of the uid" % (limit + 1), repr(sts))
    # pending calls: to a procedure of `a` that a never answers, from both connections
    for i in range(limit):
        conns[i % 2].send(frame(CALL, "{}", to="@localhost/org.example.cnt/a", member="m0",
                                call_id=300 + i, timeout=20000))
    # An echo on each connection: the broker handles a connection's frames in order, so
    # every call above is pending once both answers are in.
    for c in conns:
        call(c, BUILTIN, "echo", "1", cid=399)
    conns[limit % 2].send(frame(CALL, "{}", to="@localhost/org.example.cnt/a", member="m0",
                                call_id=300 + limit, timeout=20000))
    r = conns[limit % 2].recv_type({RESULT})
    say(r["call_id"] == 300 + limit and r["status"] == 429 and "uid_max_pending_calls" in r["member"],
        "uid_max_pending_calls: 429 for call %d of the uid" % (limit + 1),
        "id %d status %d %s" % (r["call_id"], r["status"], r["member"]))
    # connections: a and b plus limit-2 more fit, the next one is refused with ERROR 429
    extra = [Conn(path) for _ in range(limit - 2)]
    for c in extra:
        c.recv()
    c = Conn(path)
    try:
        f = c.recv()
        say(f["type"] == ERROR and f["status"] == 429 and "uid_max_connections" in f["member"],
            "uid_max_connections: connection %d of the uid refused with ERROR 429" % (limit + 1),
            "type %d status %d %s" % (f["type"], f["status"], f["member"]))
    except EOFError:
        say(False, "uid_max_connections: ERROR 429", "closed without an ERROR")


def mode_policy(path, n, size):
    """n procedures with a policy of about size bytes each: registration stops with 507
    (uid_max_policy_bytes) before the broker stores them all, or each one is refused with
    413 when one policy is above limits.max_policy_bytes."""
    n, size = int(n), int(size)
    c = auth(path, "org.example.reg", "r")
    policy = [{"key": "p%d" % i, "type": "string"} for i in range(size // 33)]
    sts = {}
    first_refused = None
    for i in range(n):
        r = call(c, BUILTIN, "registerProcedure",
                 json.dumps({"methodName": "m%d" % i, "forHost": "*", "forApp": "*",
                             "policy": policy}), cid=10 + i)
        sts[r["status"]] = sts.get(r["status"], 0) + 1
        if r["status"] != 200 and first_refused is None:
            first_refused = (i, r["status"], r["member"])
    print("info: registrations by status %r, first refused %r" % (sts, first_refused))
    bounded = first_refused is not None and (
        (first_refused[1] == 507 and "uid_max_policy_bytes" in first_refused[2])
        or (first_refused[0] == 0 and first_refused[1] == 413
            and "max_policy_bytes" in first_refused[2]))
    say(bounded, "huge registrations: 413 max_policy_bytes, or 507 uid_max_policy_bytes "
        "before all %d are stored" % n,
        repr(first_refused))
    print("held", flush=True)
    time.sleep(float(os.environ.get("HOLD_S", "1")))


def mode_latency(path, stop_file):
    """The bench's bystander: echo calls back to back until stop_file appears; prints
    "latency CALLS P50_MS P99_MS ERRORS MAX_MS" (reconnecting after an error)."""
    lat, errors, c, cid = [], 0, None, 0
    while not os.path.exists(stop_file):
        try:
            if c is None:
                c = auth(path, "org.example.bystander", "lat%d" % os.getpid(), timeout=10)
            cid += 1
            t0 = time.perf_counter()
            r = call(c, BUILTIN, "echo", '"ping"', cid=cid)
            dt = time.perf_counter() - t0
            if r["status"] != 200:
                errors += 1
            else:
                lat.append(dt)
        except Exception:  # noqa: BLE001
            errors += 1
            c = None
            time.sleep(0.01)
    lat.sort()

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")
    print("latency %d %.3f %.3f %d %.3f" % (len(lat), pct(0.50), pct(0.99), errors,
                                            lat[-1] * 1000 if lat else float("nan")), flush=True)


def mode_storefill(path, prefix, n, room, quota="max_keys"):
    """Writes n new keys prefix/0.. to the daemon's store (pipelined); the first `room` must
    be stored and every later one refused 507 naming store.limits.<quota>."""
    n, room = int(n), int(room)
    c = auth(path, "org.example.fill", "f%d" % os.getpid())
    sts = []
    for i in range(0, n, 500):
        k = min(500, n - i)
        c.send(b"".join(frame(CALL, ("%s/%d\n%d" % (prefix, i + j, i + j)).encode(), to=BUILTIN,
                              member="storeWrite", call_id=i + j + 1, flags=1) for j in range(k)))
        for _ in range(k):
            r = c.recv_type({RESULT})
            sts.append((r["call_id"], r["status"], r["member"]))
    sts.sort()
    say([s for _, s, _ in sts[:room]] == [200] * room,
        "the first %d new keys are stored" % room, repr([x for x in sts[:room] if x[1] != 200][:2]))
    late = sts[room:]
    say(len(late) == n - room and all(s == 507 and quota in m for _, s, m in late),
        "every key past the store's room is refused 507 naming %s (%d)" % (quota, len(late)),
        repr([x for x in late if x[1] != 507 or quota not in x[2]][:2]))
    c.close()


def mode_storebigread(path, prefix, n, size):
    """Stores n values of size bytes under prefix, then reads prefix/# whose answer is over
    max_body: 413 naming max_body, not an oversized frame; a node read and an echo on the
    same connection are still answered."""
    n, size = int(n), int(size)
    c = auth(path, "org.example.big", "r%d" % os.getpid())
    v = "'" + "v" * (size - 2) + "'"
    sts = [call(c, BUILTIN, "storeWrite", "%s/%d\n%s" % (prefix, i, v), cid=10 + i,
                flags=1)["status"] for i in range(n)]
    say(sts == [200] * n, "%d values of %d bytes stored" % (n, size), repr(sts))
    for m in ("storeRead", "storeReadKeyed"):
        r = call(c, BUILTIN, m, prefix + "/#", cid=100, flags=1)
        say(r["type"] == RESULT and r["status"] == 413 and "max_body" in r["member"]
            and r["body"] == b"-101002",  # HYB_E_LIMIT, as the store refuses a value
            "%s of %s/# (about %d bytes) is refused 413 naming max_body" % (m, prefix, n * size),
            "status %d member %r body %d bytes" % (r["status"], r["member"][:100], len(r["body"])))
    r = call(c, BUILTIN, "storeRead", prefix + "/1", cid=101, flags=1)
    say(r["status"] == 200 and r["body"] == v.encode(), "a node read is answered in full",
        "status %d, %d bytes" % (r["status"], len(r["body"])))
    r = call(c, BUILTIN, "echo", '"still"', cid=102)
    say(r["status"] == 200 and r["body"] == b'"still"', "the reader is still served", repr(r)[:200])
    c.close()


def mode_storepagecost(path, phase, prefix, n, size):
    """phase "write": stores n values of size bytes under prefix.  Phase "read": a page of
    prefix/+ holds the values that fit max_body (at least one, a cursor to the rest), three
    times; a whole read of prefix/+ is 413 naming max_body; an echo is still answered.  The
    shell measures the daemon's peak memory around the read phase: the page is cut before
    it is formatted (its cost about max_body), not formatted whole and then halved."""
    n, size = int(n), int(size)
    c = auth(path, "org.example.pagecost", "p%d" % os.getpid())
    if phase == "write":
        v = "'" + "v" * (size - 2) + "'"
        sts = [call(c, BUILTIN, "storeWrite", "%s/%03d\n%s" % (prefix, i, v), cid=10 + i,
                    flags=1)["status"] for i in range(n)]
        say(sts == [200] * n, "%d values of %d bytes stored" % (n, size), repr(sts))
        c.close()
        return
    for k in range(3):
        r = call(c, BUILTIN, "storeReadPage", json.dumps({"furi": prefix + "/+"}), cid=100 + k,
                 flags=1)
        body = r["body"].decode("utf-8", "replace")
        got = body.count("%s/" % prefix) - 1  # the cursor names the last item too
        say(r["status"] == 200 and 1 <= got < n and "'next'=>" in body,
            "page %d: %d of the %d values (what fits max_body) and a cursor" % (k + 1, got, n),
            "status %d member %r, %d bytes" % (r["status"], r["member"][:100], len(r["body"])))
    r = call(c, BUILTIN, "storeRead", prefix + "/+", cid=200, flags=1)
    say(r["status"] == 413 and "max_body" in r["member"],
        "a whole read of %s/+ is refused 413 naming max_body" % prefix,
        "status %d member %r" % (r["status"], r["member"][:100]))
    r = call(c, BUILTIN, "echo", '"still"', cid=201)
    say(r["status"] == 200, "the reader is still served", repr(r)[:200])
    c.close()


def mode_storelongkeys(path, prefix, n, keylen):
    """n keys of about keylen bytes, each holding 1: a plain read of prefix/# answers the n
    values (a few bytes each) under max_body, however long the keys; the keyed read, which
    names every key, is over it: 413."""
    n, keylen = int(n), int(keylen)
    c = auth(path, "org.example.longkeys", "k%d" % os.getpid())
    seg = "k" * (keylen // 3)
    sts = [call(c, BUILTIN, "storeWrite", "%s/%s/%s/%s%03d\n1" % (prefix, seg, seg, seg, i),
                cid=10 + i, flags=1)["status"] for i in range(n)]
    say(sts == [200] * n, "%d keys of about %d bytes stored" % (n, keylen), repr(sts[:5]))
    r = call(c, BUILTIN, "storeRead", prefix + "/#", cid=200, flags=1)
    say(r["status"] == 200 and r["body"].count(b"1") == n,
        "a plain read of %s/# answers the %d values (%d bytes)" % (prefix, n, len(r["body"])),
        "status %d member %r body %r" % (r["status"], r["member"][:100], r["body"][:80]))
    r = call(c, BUILTIN, "storeReadKeyed", prefix + "/#", cid=201, flags=1)
    say(r["status"] == 413 and "max_body" in r["member"],
        "the keyed read, naming every key, is 413 naming max_body",
        "status %d member %r" % (r["status"], r["member"][:100]))
    c.close()


def mode_storedeep(path, depth):
    """Values nested depth deep (past the store's max_depth, and past the parser's own
    bound): 413 with the store's code HYB_E_LIMIT, like any value over the store's limits."""
    c = auth(path, "org.example.deep", "d%d" % os.getpid())
    for d in (40, int(depth)):
        r = call(c, BUILTIN, "storeWrite", "/deep/x\n" + "[" * d + "1" + "]" * d, cid=d, flags=1)
        say(r["status"] == 413 and r["body"] == b"-101002",
            "a value nested %d deep is refused 413 HYB_E_LIMIT" % d,
            "status %d member %r body %r" % (r["status"], r["member"][:80], r["body"][:20]))
    r = call(c, BUILTIN, "storeRead", "/deep/x", cid=2, flags=1)
    say(r["status"] == 200 and r["body"] == b"noobj", "nothing was stored", repr(r["body"][:40]))
    c.close()


def mode_storecall(path, method, body, status, text=""):
    """One store call (a literal "\\n" in body stands for the newline): the answer must have
    this status and, when given, text in its message."""
    c = auth(path, "org.example.call", "c%d" % os.getpid())
    r = call(c, BUILTIN, method, body.replace("\\n", "\n"), cid=1, flags=1)
    say(r["status"] == int(status) and text in r["member"],
        "%s %s: %s%s" % (method, body, status, " naming " + text if text else ""),
        "status %d member %r" % (r["status"], r["member"][:120]))
    c.close()


def fill(c, prefix, n, first=0):
    """Writes prefix/first.. prefix/first+n-1 (value: the number), pipelined; the statuses."""
    sts = []
    for i in range(first, first + n, 500):
        k = min(500, first + n - i)
        c.send(b"".join(frame(CALL, ("%s/%d\n%d" % (prefix, i + j, i + j)).encode(), to=BUILTIN,
                              member="storeWrite", call_id=i + j + 1, flags=1) for j in range(k)))
        for _ in range(k):
            sts.append(c.recv_type({RESULT})["status"])
    return sts


def page_call(c, body, cid):
    r = call(c, BUILTIN, "storeReadPage", json.dumps(body), cid=cid, flags=1)
    if r["status"] != 200:
        return r, None, None
    text = r["body"].decode()
    m = re.match(r"^\['items'=>\[(.*)\](?:,'next'=>(/[^\]]*))?\]$", text)
    if not m:
        return r, None, None
    keys = re.findall(r"(?:^|,)(/[^=,\[\]]*)=>", m.group(1))
    return r, keys, m.group(2)


def mode_storepages(path, prefix, n, cap):
    """With store.limits.max_read_keys = cap < n keys under prefix: a whole read of prefix/#
    is refused 413 naming max_read_keys and how to page; storeReadPage gives every key once,
    in key order, in pages of at most `limit`, with a cursor that stays put while keys before
    it are deleted and keys after it come and go."""
    n, cap = int(n), int(cap)
    c = auth(path, "org.example.pages", "p%d" % os.getpid())
    sts = fill(c, prefix, n)
    say(sts == [200] * n, "%d keys stored" % n, repr(sorted(set(sts))))
    for m in ("storeRead", "storeReadKeyed"):
        r = call(c, BUILTIN, m, prefix + "/#", cid=1, flags=1)
        say(r["status"] == 413 and "max_read_keys (%d)" % cap in r["member"]
            and "page" in r["member"] and r["body"] == b"-101002",
            "%s of %d keys is refused 413 naming max_read_keys (%d) and paging" % (m, n, cap),
            "status %d member %r body %r" % (r["status"], r["member"][:160], r["body"][:20]))
    r = call(c, BUILTIN, "storeRead", prefix + "/+/x", cid=2, flags=1)
    say(r["status"] == 200 and r["body"] == b"{}", "a pattern read under the cap is answered",
        "status %d body %r" % (r["status"], r["body"][:40]))
    r, _, _ = page_call(c, {"furi": prefix + "/#", "limit": cap + 1}, 3)
    say(r["status"] == 400 and "max_read_keys" in r["member"],
        "a page over max_read_keys is refused 400", "status %d %r" % (r["status"], r["member"]))
    r, _, _ = page_call(c, {"furi": prefix + "/#", "cursor": prefix + "/#"}, 4)
    say(r["status"] == 400 and "cursor" in r["member"], "a pattern as cursor is refused 400",
        "status %d %r" % (r["status"], r["member"]))
    r, keys, nxt = page_call(c, {"furi": prefix + "/#"}, 5)
    say(r["status"] == 200 and keys == ["%s/%d" % (prefix, i) for i in range(cap)]
        and nxt == "%s/%d" % (prefix, cap - 1),
        "a page without limit holds max_read_keys keys and names the last as next",
        "status %d, %r keys, next %r" % (r["status"], len(keys or []), nxt))
    # the whole pattern in pages of 7; after the third page, delete a key already read and
    # one not yet read, and add one after the end
    got, cursor, pages, bad = [], None, 0, []
    while True:
        body = {"furi": prefix + "/#", "limit": 7}
        if cursor:
            body["cursor"] = cursor
        r, keys, cursor = page_call(c, body, 100 + pages)
        pages += 1
        if keys is None or len(keys) > 7 or (cursor and len(keys) != 7):
            bad.append((r["status"], r["member"], r["body"][:80]))
            break
        got += keys
        if pages == 3:
            for cid, (m, b) in enumerate((("storeDelete", "%s/2" % prefix),
                                          ("storeDelete", "%s/%d" % (prefix, n - 1)),
                                          ("storeWrite", "%s/%d\n1" % (prefix, n)))):
                call(c, BUILTIN, m, b, cid=50 + cid, flags=1)
        if not cursor or pages > n:
            break
    want = ["%s/%d" % (prefix, i) for i in list(range(n - 1)) + [n]]
    say(not bad and got == want,
        "pages of 7 give every key once in key order, the cursor stable across writes "
        "(%d keys in %d pages)" % (len(got), pages),
        repr(bad) if bad else "got %r... want %r..." % (got[:12], want[:12]))
    r = call(c, BUILTIN, "echo", '"still"', cid=9)
    say(r["status"] == 200, "the reader is still served", repr(r)[:200])
    c.close()


def mode_storeload(path, prefix, n):
    """Bench: fills n keys under prefix and prints "loaded N"."""
    c = auth(path, "org.example.load", "l%d" % os.getpid(), timeout=60)
    sts = fill(c, prefix, int(n))
    print("loaded %d" % sts.count(200), flush=True)
    c.close()


def mode_storereadloop(path, pattern, stop_file, paged="0", depth="8"):
    """Bench attacker: reads pattern until stop_file appears, then prints "reads CALLS
    STATUSES".  paged 1: all of it, page after page (storeReadPage); else storeRead with
    `depth` calls always in flight, answers skipped unparsed (so the daemon, not this
    script, is what limits the pace)."""
    c = auth(path, "org.example.reader", "rd%d" % os.getpid(), timeout=60)
    n, sts, cid = 0, {}, 0
    print("reading", flush=True)
    if paged == "1":
        while not os.path.exists(stop_file):
            cid += 1
            n += 1
            r, keys, cursor = page_call(c, {"furi": pattern}, cid)
            sts[r["status"]] = sts.get(r["status"], 0) + 1
            while cursor and not os.path.exists(stop_file):
                cid += 1
                n += 1
                r, keys, cursor = page_call(c, {"furi": pattern, "cursor": cursor}, cid)
                sts[r["status"]] = sts.get(r["status"], 0) + 1
        print("reads %d %r" % (n, sts), flush=True)
        c.close()
        return

    def req(i):
        return frame(CALL, pattern, to=BUILTIN, member="storeRead", call_id=i, flags=1,
                     timeout=60000)
    depth = int(depth)
    c.send(b"".join(req(i + 1) for i in range(depth)))
    cid, buf = depth, bytearray(c.buf)
    c.s.settimeout(1.0)
    while not os.path.exists(stop_file):
        try:
            d = c.s.recv(1 << 22)
        except (socket.timeout, TimeoutError):
            continue
        if not d:
            sts["closed"] = 1
            break
        buf += d
        while len(buf) >= rawbus.HDR.size:
            ln, ty, fl, st, rid, tmo, fl_, tl, ml, rs, aux = rawbus.HDR.unpack_from(buf, 0)
            total = rawbus.HDR.size + fl_ + tl + ml + ln
            if len(buf) < total:
                break
            del buf[:total]
            if ty == rawbus.PING:
                c.send(frame(rawbus.PONG))
            elif ty in (RESULT, ERROR):
                n += 1
                sts[st] = sts.get(st, 0) + 1
                cid += 1
                c.send(req(cid))
    print("reads %d %r" % (n, sts), flush=True)
    c.close()

if __name__ == "__main__":
    globals()["mode_" + sys.argv[1]](*sys.argv[2:])
    sys.exit(1 if rawbus.failed else 0)
