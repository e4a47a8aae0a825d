#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Fair shares of the remote peers (doc/edge.md "Limits"), with the client of edge-ws.py:

    edge-remquota.py MODE URL TOKENDIR ARGS...

  principal CAP   remote sessions are charged to their token's principal: alice holding
                  CAP sessions (limits.uid_max_connections) gets 429 for one more, bob and
                  sub alice of another issuer are served meanwhile, alice again once one
                  of hers closed
  regs CAP        alice registering CAP procedures (limits.uid_max_registrations) gets 429
                  for one more, bob registers meanwhile
  preauth CAP PER the budget of CAP sessions not yet authenticated (uid_max_unauth_connections)
                  held by CAP/PER source addresses with PER connections each: a newcomer
                  from another address is served (the oldest connection of an address
                  holding the most is closed 1013 for it); a host holding its share cannot
                  evict others

TOKENDIR holds good (a token of sub alice), bob (of sub bob), alice-other (of sub alice, by
another issuer), holder.key.  Prints "ok <case>" / "FAIL <case>: why"; exit 1 on a failure."""
import asyncio
import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("edgews", os.path.join(HERE, "edge-ws.py"))
ew = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ew)
rawbus = sys.modules["rawbus"]


async def refused(url, td, token):
    """The status a new session of token gets: the AUTH_RESULT's, or the upgrade's."""
    try:
        ws, b, st = await ew.session(url, td, token=token)
    except ew.websockets.InvalidStatusCode as e:
        return e.status_code, None
    return st, ws


def tokens(d):
    td = ew.Dir(d)
    for k in ("bob", "alice-other"):
        td.token[k] = open(os.path.join(d, k)).read().strip()
    return td


async def m_principal(url, d, args):
    cap = int(args[0])
    td = tokens(d)
    held = []
    for i in range(cap):
        ws, b, st = await ew.session(url, td, token="good")
        if st != 200:
            rawbus.say(False, f"alice's session {i + 1} of {cap}", f"{st}")
            return
        held.append(ws)
    rawbus.say(True, f"alice holds {cap} sessions (limits.uid_max_connections)")
    st, ws = await refused(url, td, "good")
    rawbus.say(st == 429, f"alice's session {cap + 1}: 429", f"{st}")
    if ws:
        await ws.close()
    # bob, another principal, is served while alice holds all of hers
    bobs = []
    for i in range(cap):
        st, ws = await refused(url, td, "bob")
        rawbus.say(st == 200, f"bob's session {i + 1} is served while alice holds {cap}",
                   f"{st}")
        if ws:
            bobs.append(ws)
    st, ws = await refused(url, td, "bob")
    rawbus.say(st == 429, f"bob's session {cap + 1}: 429 (his own share)", f"{st}")
    if ws:
        await ws.close()
    # the same sub from another issuer is another principal
    st, ws = await refused(url, td, "alice-other")
    rawbus.say(st == 200, "sub alice of another issuer is another principal: served", f"{st}")
    if ws:
        await ws.close()
    # one of alice's sessions closes: alice is served again
    await held.pop().close()
    ok = False
    for i in range(100):  # the daemon sees the close at its own pace
        st, ws = await refused(url, td, "good")
        if st == 200:
            ok = True
            held.append(ws)
            break
        if ws:
            await ws.close()
        await asyncio.sleep(0.1)
    rawbus.say(ok, "after one of alice's sessions closes, alice is served again", f"{st}")
    for w in held + bobs:
        await w.close()


async def m_preauth(url, d, args):
    cap, per = int(args[0]), int(args[1])
    td = tokens(d)
    held = {}  # source address -> its connections, oldest first
    for i in range(cap):
        src = "127.0.0.%d" % (2 + i // per)
        held.setdefault(src, []).append(await ew.connect(url, local_addr=(src, 0)))
    rawbus.say(True, f"{cap} connections not authenticated from {len(held)} addresses")
    # the budget is full: a newcomer from another address is served
    try:
        ws, b, st = await ew.session(url, td, local_addr=("127.0.0.100", 0), token="bob")
        rawbus.say(st == 200, "a newcomer from another address is served", f"{st}")
        await ws.close()
    except ew.websockets.InvalidStatusCode as e:
        rawbus.say(False, "a newcomer from another address is served", f"{e.status_code}")
    # exactly one held connection was closed for it, 1013, the oldest of its address
    # (closed before the newcomer's AUTH was even read: its close frame is here already)
    keys = [(src, i) for src, conns in held.items() for i in range(len(conns))]
    codes = await asyncio.gather(*(ew.closed_with(held[src][i], timeout=2) for src, i in keys))
    closed = [(src, i, code) for (src, i), code in zip(keys, codes) if code is not None]
    rawbus.say(len(closed) == 1, "one held connection was closed for the newcomer", f"{closed}")
    if closed:
        src, i, code = closed[0]
        rawbus.say(code == 1013, "it was closed 1013 (Try Again Later)", f"{code}")
        rawbus.say(i == 0, "it was the oldest of its address", f"index {i}")
        held[src].pop(i)
    # a host at its own cap (limits.ws_preauth_per_address) evicts nobody:
    # its newcomer is refused, nothing else is closed
    full = [s for s, c in held.items() if len(c) == per][0]
    case = "a host at limits.ws_preauth_per_address is refused 503, evicting nobody"
    try:
        ws = await ew.connect(url, local_addr=(full, 0))
        rawbus.say(False, case, "accepted")
        await ws.close()
    except ew.websockets.InvalidStatusCode as e:
        rawbus.say(e.status_code == 503, case, f"{e.status_code}")
    keys = [(src, i) for src, conns in held.items() for i in range(len(conns))]
    codes = await asyncio.gather(*(ew.closed_with(held[src][i], timeout=2) for src, i in keys))
    n_open = sum(1 for c in codes if c is None)
    rawbus.say(n_open == cap - 1, f"the other {cap - 1} are still open", f"{n_open}")
    for conns in held.values():
        for w in conns:
            await w.close()


async def m_regs(url, d, args):
    cap = int(args[0])
    td = tokens(d)
    ws, b, st = await ew.session(url, td, token="good")
    ws2, b2, st2 = await ew.session(url, td, token="bob")
    if st != 200 or st2 != 200:
        rawbus.say(False, "alice and bob log in", f"{st} {st2}")
        return
    n = 0
    for i in range(cap):
        r = await b.call(ew.BUILTIN, "registerProcedure", json.dumps({"methodName": f"m{i}"}))
        n += r["status"] == 200
    rawbus.say(n == cap, f"alice registers {cap} procedures (limits.uid_max_registrations)",
               f"{n}")
    r = await b.call(ew.BUILTIN, "registerProcedure", json.dumps({"methodName": "over"}))
    rawbus.say(r["status"] == 429, f"alice's registration {cap + 1}: 429", f"{r['status']}")
    r = await b2.call(ew.BUILTIN, "registerProcedure", json.dumps({"methodName": "m0"}))
    rawbus.say(r["status"] == 200, "bob registers meanwhile: 200", f"{r['status']}")
    await ws.close()
    await ws2.close()


MODES = {"principal": m_principal, "preauth": m_preauth, "regs": m_regs}

if __name__ == "__main__":
    asyncio.run(MODES[sys.argv[1]](sys.argv[2], sys.argv[3], sys.argv[4:]))
    sys.exit(1 if rawbus.failed else 0)
