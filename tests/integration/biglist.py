# SPDX-License-Identifier: MIT
"""Huge registrations and big builtin lists against a real hybridd (issue: 1 024
procedures with 64 KB policies gave a 66 MB listProcedures reply, a multi-second
stall for every client, a false 507 to a reader and RSS that never came back).

    biglist.py run SOCKET DAEMON_PID CONNS PROCS_PER_CONN POLICY_BYTES MAX_POLICY_BYTES
    biglist.py hold SOCKET N POLICY_BYTES   (registers N procedures, prints "ready", stays)
    biglist.py echo SOCKET                  (the bystander: echoes until stdin closes)

Registers CONNS x PROCS_PER_CONN procedures whose policy is about POLICY_BYTES of
JSON (the daemon runs with limits.max_policy_bytes = MAX_POLICY_BYTES), then lists
them: unpaged (bounded: refused with 413 when over one page), and page by page with
"limit" and "cursor" (doc/protocol.md "List pages") while a bystander echoes.
Asserts what the protocol promises (every reply 200 and at most one page of
256 KiB, every procedure listed exactly once, no 507, the reader not cut off);
prints the daemon's RSS from /proc and the bystander's echo latency, which are
measured, never asserted.
"""
import json
import os
import select
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawbus import BUILTIN, ERROR, RESULT, auth, call, say  # noqa: E402

PAGE_BYTES = 256 * 1024  # doc/protocol.md: a list reply body is at most 256 KiB


def rss_kib(pid, key="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def policy_of(nbytes):
    """A policy array whose compact JSON text is about nbytes long."""
    entries, size, i = [], 2, 0
    while True:
        e = {"key": "k%05d_%s" % (i, "x" * 40), "type": "string", "required": False}
        n = len(json.dumps(e, separators=(",", ":"))) + 1
        if size + n > nbytes:
            return entries
        entries.append(e)
        size += n
        i += 1


def echo(path):
    """The bystander, in its own process (no GIL shared with the readers): echoes until
    stdin closes, then prints [[start, seconds], ...] (CLOCK_MONOTONIC) as JSON."""
    c = auth(path, "org.example.bystander", "b")
    out, cid = [], 1
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], 0)[0]:
        t0 = time.monotonic()
        r = call(c, BUILTIN, "echo", '{"n":%d}' % cid, cid=cid)
        if r["status"] != 200:
            print(json.dumps({"bad": "echo status %d" % r["status"]}), flush=True)
            return
        out.append([t0, time.monotonic() - t0])
        cid += 1
    print(json.dumps(out), flush=True)


class Bystander:
    def __init__(self, path):
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "echo", path],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == "ready"

    def finish(self):
        """Stops it; returns (latencies in seconds with their start times, or an error)."""
        out, _ = self.p.communicate("", timeout=30)
        doc = json.loads(out)
        return (None, doc["bad"]) if isinstance(doc, dict) else (doc, None)


def list_paged(c, method, params, cid0, limit=1000):
    """Follows "next" to the end; returns (entries, pages, biggest body, statuses)."""
    items, pages, biggest, bad = [], 0, 0, []
    cursor, cid = None, cid0
    while True:
        p = dict(params, limit=limit)
        if cursor is not None:
            p["cursor"] = cursor
        r = call(c, BUILTIN, method, json.dumps(p), cid=cid, timeout=30000)
        cid += 1
        pages += 1
        biggest = max(biggest, len(r["body"]))
        if r["type"] == ERROR or r["status"] != 200:
            bad.append(r["status"])
            return items, pages, biggest, bad
        doc = json.loads(r["body"])
        items.extend(doc["items"])
        cursor = doc.get("next")
        if cursor is None:
            return items, pages, biggest, bad


def hold(path, n, pol_bytes):
    c = auth(path, "org.example.many", "m")
    policy = policy_of(int(pol_bytes))
    for i in range(int(n)):
        r = call(c, BUILTIN, "registerProcedure",
                 json.dumps({"methodName": "p%03d" % i, "policy": policy}), cid=i + 1)
        say(r["status"] == 200, "hold: p%03d registered" % i, "status %d" % r["status"])
    print("ready", file=sys.stderr, flush=True)
    while True:
        time.sleep(60)


def run(path, dpid, conns, per, pol_bytes, max_pol):
    dpid, conns, per, pol_bytes, max_pol = int(dpid), int(conns), int(per), int(pol_bytes), int(max_pol)
    rss0 = rss_kib(dpid)

    # A policy over limits.max_policy_bytes is refused (413), whatever else the frame holds.
    big = auth(path, "org.example.big", "big")
    r = call(big, BUILTIN, "registerProcedure",
              json.dumps({"methodName": "huge", "policy": policy_of(64 * 1024)}), cid=1)
    say(r["status"] == 413, "a 64 KB policy is refused with 413", "status %d" % r["status"])
    r = call(big, BUILTIN, "registerProcedure",
              json.dumps({"methodName": "fits", "policy": policy_of(max_pol)}), cid=2)
    say(r["status"] == 200, "a policy of max_policy_bytes is accepted", "status %d" % r["status"])
    big.close()

    regs, want, cid = [], set(), 10
    policy = policy_of(pol_bytes)
    failed = []
    for i in range(conns):
        c = auth(path, "org.example.reg", "r%d" % i)
        ep = "@localhost/org.example.reg/r%d" % i
        for j in range(per):
            name = "proc%04d" % j
            r = call(c, BUILTIN, "registerProcedure",
                     json.dumps({"methodName": name, "policy": policy}), cid=cid)
            cid += 1
            if r["status"] != 200:
                failed.append(r["status"])
            want.add(ep + "/" + name)
        regs.append(c)
    say(not failed, "%d procedures with %d-byte policies registered" % (conns * per, pol_bytes),
        "statuses %r" % failed[:5])
    rss_reg = rss_kib(dpid)

    by = Bystander(path)

    lister = auth(path, "org.example.lister", "l")
    # Unpaged: the whole list is more than one page, so it is refused, not built.
    t0 = time.monotonic()
    r = call(lister, BUILTIN, "listProcedures", "{}", cid=1, timeout=30000)
    say(r["type"] == RESULT and r["status"] == 413 and len(r["body"]) <= PAGE_BYTES,
        "unpaged listProcedures over one page: 413, not a %d-entry reply" % len(want),
        "type %d status %d, %d bytes" % (r["type"], r["status"], len(r["body"])))
    print("info: unpaged answer in %.1f ms" % ((time.monotonic() - t0) * 1000), flush=True)

    # Paged, by four readers at once (each a reader that reads: none may get 507).
    results = [None] * 4

    def reader(k):
        c = lister if k == 0 else auth(path, "org.example.lister", "l%d" % k)
        results[k] = list_paged(c, "listProcedures", {}, 100)
    t0 = time.monotonic()
    ths = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for t in ths:
        t.start()
    peak = 0
    while any(t.is_alive() for t in ths):
        peak = max(peak, rss_kib(dpid))
        time.sleep(0.01)
    for t in ths:
        t.join()
    t1 = time.monotonic()
    took = t1 - t0
    lats, by_bad = by.finish()
    for k, (items, pages, biggest, bad) in enumerate(results):
        names = [e.get("procedureName") for e in items]
        mine = [n for n in names if n and n.startswith("@localhost/org.example.reg/")]
        say(not bad, "reader %d: every page answered 200 (no 507)" % k, "statuses %r" % bad)
        say(biggest <= PAGE_BYTES, "reader %d: every page at most 256 KiB" % k, "%d bytes" % biggest)
        say(len(mine) == len(set(mine)) and set(mine) == want,
            "reader %d: all %d procedures listed exactly once, in %d pages" % (k, len(want), pages),
            "%d listed, %d distinct, %d wanted" % (len(mine), len(set(mine)), len(want)))
        say(all(isinstance(e.get("policy"), list) for e in items),
            "reader %d: each entry carries its policy" % k)
    say(by_bad is None, "the bystander was served throughout", by_bad or "")
    lat = sorted(d for t, d in (lats or []) if t0 <= t <= t1) or [0.0]
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print("info: 4 readers x %d pages in %.2f s; bystander %d echoes meanwhile, p50 %.2f ms, "
          "p99 %.2f ms, max %.2f ms" % (results[0][1], took, len(lat), lat[len(lat) // 2] * 1000,
                                         p99 * 1000, lat[-1] * 1000), flush=True)

    for c in regs:
        c.close()
    lister.close()
    time.sleep(1.5)  # the broker gives freed memory back on its next one-second tick
    print("info: hybridd RSS %d KiB at start, %d KiB registered, peak %d KiB listing "
          "(VmHWM %d KiB), %d KiB after everyone left"
          % (rss0, rss_reg, peak, rss_kib(dpid, "VmHWM"), rss_kib(dpid)), flush=True)


if __name__ == "__main__":
    {"run": run, "hold": hold, "echo": echo}[sys.argv[1]](*sys.argv[2:])
    sys.exit(1 if sys.modules["rawbus"].failed else 0)
