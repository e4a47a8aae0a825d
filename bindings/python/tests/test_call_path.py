# SPDX-License-Identifier: MIT
"""Bus.call and Bus.acall write and read the common bodies themselves (a flat dict of str
keys and scalars is checked and encoded inline, a reply without @-members is scanned inline)
instead of going through values.to_json / from_json: whatever the body, a call must give
exactly what the value mapping gives, raise the same errors, and acall must follow the
loop it runs in."""
import asyncio
import enum
import json
import os
import struct

import pytest

import hybrid
from hybrid.values import from_json, to_json
from conftest import BUILTIN


class Color(enum.IntEnum):
    RED = 5


class Name(str):
    pass


def exact(a, b):
    """Same value, same types all the way down, floats bit for bit (-0.0 != 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(exact(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(exact(a[k], b[k]) for k in a)
    return a == b


# one body for each way through the inline check: every scalar type it lets through, the
# int64 edges, and each thing that must leave it for the mapping's general path
BODIES = [
    {},
    {"words": "hi"},
    {"s": "h\u00e9\u0000llo \"q\" \\", "e": ""},
    {"i": 2**63 - 1, "j": -2**63, "k": 2**53 + 1, "z": 0},
    {"f": -0.0, "g": 5e-324, "h": 1.7976931348623157e308, "p": 0.1},
    {"t": True, "u": False, "n": None},
    {"mixed": 1, "then": "x", "and": 2.5, "last": None},
    {1: "one", 2: "two"},                        # non-str keys: {"@rec": ...}
    {"a": 1, 2: "b"},                            # one non-str key after a str one
    {hybrid.Uri("u"): 1},                        # a Uri key is written as its text
    {"uri": hybrid.Uri("a/b"), "typed": hybrid.Typed("/type/nat", 5)},
    {"enum": Color.RED, "name": Name("n")},      # subclasses: written as int and str
    {"nested": {"a": [1, {"b": None}]}, "l": [1.5, "x"]},
    {"at": "\"@uri\" in a string"},              # '"@' in the text, no @-member
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_call_and_acall_give_the_mapping(daemon, body):
    want = from_json(to_json(body))
    with hybrid.Bus(socket=daemon.sock, app="org.example.py.path") as bus:
        got = bus.call(BUILTIN, "echo", body)
        assert exact(got, want), (got, want)

        async def main():
            return await bus.acall(BUILTIN, "echo", body)
        got = asyncio.run(main())
        assert exact(got, want), (got, want)


@pytest.mark.parametrize("bad,exc", [
    ({"x": float("nan")}, ValueError),
    ({"x": 1, "y": float("inf")}, ValueError),
    ({"x": 2**63}, OverflowError),
    ({"x": -2**63 - 1}, OverflowError),
    ({"x": "ok", "y": object()}, TypeError),
], ids=["nan", "inf", "int64+1", "int64-1", "object"])
def test_call_and_acall_refuse_as_the_mapping(daemon, bad, exc):
    with pytest.raises(exc) as want:
        to_json(bad)
    with hybrid.Bus(socket=daemon.sock, app="org.example.py.path") as bus:
        with pytest.raises(exc) as got:
            bus.call(BUILTIN, "echo", bad)
        assert str(got.value) == str(want.value)

        async def main():
            await bus.acall(BUILTIN, "echo", bad)
        with pytest.raises(exc) as got:
            asyncio.run(main())
        assert str(got.value) == str(want.value)
        # nothing was sent: the bus still answers
        assert bus.call(BUILTIN, "echo", {"after": 1}) == {"after": 1}


def test_acall_follows_the_running_loop(daemon):
    """A Bus whose loop has ended is attached to the next one by its first acall; acall
    on a closed Bus raises ClosedError."""
    bus = hybrid.Bus(socket=daemon.sock, app="org.example.py.path")

    async def main(i):
        return await bus.acall(BUILTIN, "echo", {"i": i}, timeout=10.0)
    for i in range(3):  # each asyncio.run is a new loop
        assert asyncio.run(main(i)) == {"i": i}
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(main(7)) == {"i": 7}
        assert bus._loop is loop
    finally:
        loop.close()
    assert asyncio.run(main(8)) == {"i": 8}
    bus.close()
    with pytest.raises(hybrid.ClosedError):
        asyncio.run(main(9))


def test_acall_reply_kinds(daemon):
    """The reply callback reads a success itself: binary bodies (empty too), JSON of every
    kind, a long body, and an error status still raise as Bus.call does."""
    raw = bytes(range(256)) * 300

    async def main(bus):
        assert await bus.acall(BUILTIN, "echo", raw) == raw
        assert await bus.acall(BUILTIN, "echo", b"") == b""
        assert await bus.acall(BUILTIN, "echo", [1, "x", None]) == [1, "x", None]
        big = {"s": "y" * 100000}
        assert await bus.acall(BUILTIN, "echo", big) == big
        with pytest.raises(hybrid.NotFound):
            await bus.acall(BUILTIN, "nosuchmethod", {})
    with hybrid.Bus(socket=daemon.sock, app="org.example.py.path") as bus:
        asyncio.run(main(bus))
        with pytest.raises(hybrid.NotFound):
            bus.call(BUILTIN, "nosuchmethod", {})


# flat dicts Bus.call and to_json write member by member: the text must be json's, byte for
# byte (the mapping writes bus bodies with the json module: compact, UTF-8 kept)
FLAT = [b for b in BODIES if all(type(k) is str for k in b) and
        all(type(x) in (str, int, float, bool, type(None)) for x in b.values())]
FLAT += [{"k\u00e9\n\"\\": "v\u2028\x1f", "\U0001f600": "\U0001f600"},
         {"big": -2**63, "neg": -1.5e-7, "e": 1e300, "small": 1e-300, "one": 1.0}]


def _json_text(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def test_flat_bodies_are_json_text(daemon, monkeypatch):
    import hybrid.bus as hbus
    assert len(FLAT) >= 8
    sent = []
    real = hbus._call_prepared

    def spy(a, body, n):
        sent.append(bytes(body))
        return real(a, body, n)
    monkeypatch.setattr(hbus, "_call_prepared", spy)
    with hybrid.Bus(socket=daemon.sock, app="org.example.py.path") as bus:
        for body in FLAT:
            assert to_json(body) == _json_text(body)
            sent.clear()
            assert exact(bus.call(BUILTIN, "echo", body), body)
            assert sent == [_json_text(body)]
        for body in BODIES:  # the others: what to_json writes
            sent.clear()
            bus.call(BUILTIN, "echo", body)
            assert sent == [to_json(body)]


def test_target_flags_and_deadline_are_per_call(daemon):
    """The binding keeps a call's fixed arguments in one struct (hyb_bus_call_prepared), the
    target left set from one call to the next: each call reaches its own target, and a
    binary body's flag and a timeout hold for their own call only, also for a call a handler
    makes while another call waits."""
    import subprocess
    with hybrid.Bus(socket=daemon.sock, app="org.example.py.path") as bus:
        assert bus.call(BUILTIN, "echo", b"\x00raw") == b"\x00raw"
        assert bus.call(BUILTIN, "echo", {"after": "binary"}) == {"after": "binary"}

        @bus.procedure("echo")
        def own_echo(**kw):
            return {"own": kw}
        for i in range(3):  # alternating targets; an equal endpoint built anew each time
            assert bus.call(BUILTIN, "echo", {"i": i}) == {"i": i}
            assert bus.call("@localhost/" + bus.name[11:], "echo", {"i": i}) == \
                {"own": {"i": i}}
            with pytest.raises(hybrid.NotFound):
                bus.call(BUILTIN, f"noSuchMethod{i}", {})
        # more targets than the binding keeps C strings for: the current one stays valid
        for i in range(300):
            with pytest.raises(hybrid.NotFound):
                bus.call(BUILTIN, f"gone{i}", {})
        assert bus.call(BUILTIN, "echo", {"kept": True}) == {"kept": True}

        @bus.procedure("outer")
        def outer(raw):
            return {"inner": bus.call(BUILTIN, "echo", {"v": len(raw)})}
        assert bus.call(bus.name, "outer", b"xyz", timeout=30.0) == {"inner": {"v": 3}}
        assert bus.call(BUILTIN, "echo", {"last": 1}) == {"last": 1}

    p = subprocess.Popen([os.environ["HYBRID_CLI"], "--bus", daemon.sock, "--runner", "pyperc",
                          "serve", "slow", "{}", "--delay", "1500"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ep = p.stdout.readline().strip()  # printed once the procedure is registered
        assert ep.startswith("@localhost/")
        with hybrid.Bus(socket=daemon.sock, app="org.example.py.path") as bus:
            with pytest.raises(hybrid.Timeout):
                bus.call(ep, "slow", {}, timeout=0.2)
            # the default deadline (30 s) again, not the 0.2 s of the call before
            assert bus.call(ep, "slow", {}) == {}
    finally:
        p.terminate()
        p.wait(30)
        p.stdout.close()


def test_refused_timeout_leaves_no_flags_behind(daemon):
    """A call refused for its timeout (ValueError, before anything is sent) must not leave
    its binary body's flag for the next call: a JSON body sent after it is JSON."""
    with hybrid.Bus(socket=daemon.sock, app="org.example.py.path") as bus:
        for bad in (0, -1.0, float("nan")):
            with pytest.raises(ValueError):
                bus.call(BUILTIN, "echo", b"\x00raw", timeout=bad)
            assert exact(bus.call(BUILTIN, "echo", {"after": "refused"}),
                         {"after": "refused"})
        assert bus.call(BUILTIN, "echo", b"\x01b") == b"\x01b"


def test_target_strings_outlive_a_handlers_calls(daemon):
    """A call's endpoint and method are borrowed by the library for the whole call (a call
    sent on a direct channel keeps them to send it again through the broker when the
    channel closes under it): a handler run during that call's wait that calls more targets
    than the binding keeps C strings for must not free the waiting call's."""
    import gc
    import weakref
    from hybrid._ffi import ffi
    with hybrid.Bus(socket=daemon.sock, app="org.example.py.path") as bus:
        seen = {}

        @bus.procedure("outer")
        def outer(**kw):
            # the strings the waiting call was made with
            refs = [weakref.ref(bus._ctarget[bus.name]), weakref.ref(bus._ctarget["outer"])]
            for i in range(300):
                with pytest.raises(hybrid.NotFound):
                    bus.call(BUILTIN, f"inner{i}", {})
            gc.collect()
            seen["alive"] = [r() is not None for r in refs]
            seen["text"] = [ffi.string(r()).decode() for r in refs if r() is not None]
            return {"ok": True}
        assert bus.call(bus.name, "outer", {}) == {"ok": True}
        assert seen["alive"] == [True, True]
        assert seen["text"] == [bus.name, "outer"]
        assert bus.call(BUILTIN, "echo", {"then": 1}) == {"then": 1}
