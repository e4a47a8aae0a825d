#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Remote sessions charged to their token's principal (doc/edge.md "Limits"): one principal
that takes all its connections of limits.uid_max_connections does not starve another
principal, nor its own sessions once one of them closes.  Reuses the client of edge-ws.py.

    edge-principal.py URL TOKENDIR CAP

TOKENDIR holds good (a token of sub alice), bob (of sub bob), alice-other (of sub alice, by
another issuer), holder.key.  Prints "ok <case>" / "FAIL <case>: why"; exit 1 on a failure."""
import asyncio
import importlib.util
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


async def main(url, d, cap):
    td = ew.Dir(d)
    for k in ("bob", "alice-other"):
        td.token[k] = open(os.path.join(d, k)).read().strip()
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


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    sys.exit(1 if rawbus.failed else 0)
