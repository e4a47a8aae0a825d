# SPDX-License-Identifier: MIT
"""The value mapping (doc/obj.md "JSON mapping"): exact int64 and double values through a
bus call and through the store; the int64 range is checked, never wrapped."""
import math
import struct

import pytest

import hybrid
from hybrid.values import from_json, to_json
from conftest import BUILTIN

EDGES = [2**63 - 1, -2**63, 2**53 + 1, -(2**53 + 1), 0, -1]
REALS = [-0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1,
         0.30000000000000004, 1.0, -1.5e-300]


def bits(x):
    return struct.pack("<d", x)


def same(a, b):
    """Exactly the same value: type and bits (so -0.0 != 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return bits(a) == bits(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def test_edges_through_a_call(daemon):
    v = {"ints": EDGES, "reals": REALS, "s": "h\u00e9\u0000llo", "t": True, "n": None}
    with hybrid.Bus(socket=daemon.sock, app="org.example.py.values") as bus:
        got = bus.call(BUILTIN, "echo", v)
    assert same(got, v)
    assert math.copysign(1.0, got["reals"][0]) == -1.0


def test_edges_through_the_store(daemon):
    with hybrid.Store(socket=daemon.sock, app="org.example.py.values") as st:
        for i, x in enumerate(EDGES + REALS):
            st.put(f"/py/values/{i}", x)
        for i, x in enumerate(EDGES + REALS):
            assert same(st.get(f"/py/values/{i}"), x), (i, x)
        st.put("/py/values/list", [2**63 - 1, -0.0, {"k": 5e-324}])
        assert same(st.get("/py/values/list"), [2**63 - 1, -0.0, {"k": 5e-324}])


def test_uri_and_typed_round_trip(daemon):
    with hybrid.Store(socket=daemon.sock, app="org.example.py.values") as st:
        st.put("/py/values/uri", hybrid.Uri("a/b"))
        got = st.get("/py/values/uri")
        assert isinstance(got, hybrid.Uri) and got == hybrid.Uri("a/b")
        st.put("/py/values/typed", hybrid.Typed("/type/nat", 5))
        got = st.get("/py/values/typed")
        assert isinstance(got, hybrid.Typed)
        assert (got.type, got.value) == ("/type/nat", 5)
        # a rec whose keys are not plain uris
        st.put("/py/values/rec", {1: "one", 2: "two"})
        assert st.get("/py/values/rec") == {1: "one", 2: "two"}


def test_int_beyond_int64_raises_never_wraps(daemon):
    for bad in (2**63, -2**63 - 1, 2**64, [1, 2**70], {"a": 2**63}):
        with pytest.raises(OverflowError):
            to_json(bad)
    with hybrid.Bus(socket=daemon.sock, app="org.example.py.values") as bus:
        with pytest.raises(OverflowError):
            bus.call(BUILTIN, "echo", {"x": 2**63})
    with hybrid.Store(socket=daemon.sock, app="org.example.py.values") as st:
        with pytest.raises(OverflowError):
            st.put("/py/values/big", 2**63)


def test_nan_and_unknown_types_refused():
    with pytest.raises(ValueError):
        to_json(float("nan"))
    with pytest.raises(ValueError):
        to_json([float("inf")])
    with pytest.raises(TypeError):
        to_json(object())


def test_json_forms():
    assert from_json(b'{"@uri":"a/b"}') == hybrid.Uri("a/b")
    assert from_json('{"@objs":[1,2]}') == [1, 2]
    assert from_json('{"@rec":[[1,"x"],[[2],3]]}') == {1: "x", (2,): 3}
    t = from_json('{"@type":"/type/nat","@value":5,"@id":"a"}')
    assert (t.type, t.value, t.id) == ("/type/nat", 5, "a")
    assert to_json(hybrid.Typed("/type/nat", 5)) == b'{"@type":"/type/nat","@value":5}'
    assert to_json({hybrid.Uri("a"): 1}) == b'{"a":1}'
    # a key starting with @ would make the object a reserved form: the @rec form instead,
    # read back as the same dict; mixed keys keep their kinds
    assert to_json({"@uri": "a/b"}) == b'{"@rec":[[{"@uri":"@uri"},"a/b"]]}'
    assert from_json(b'{"@rec":[[{"@uri":"@uri"},"a/b"]]}') == {"@uri": "a/b"}
    assert from_json(b'{"@rec":[[{"@uri":"a"},1],[2,3]]}') == {hybrid.Uri("a"): 1, 2: 3}
    assert to_json({"v": "@x"}) == b'{"v":"@x"}'
    assert from_json(b"") is None
    assert repr(hybrid.Uri("x")) == "Uri('x')"


def test_edges_from_c_through_a_python_procedure(daemon):
    """C (the CLI) -> JSON -> Python -> JSON -> C: the values a Python procedure gets and
    sends back are the ones C sent."""
    import threading
    sent = '{"v":[9223372036854775807,-9223372036854775808,9007199254740993,-0.0,5e-324]}'
    got = {}
    with hybrid.Bus(socket=daemon.sock, app="org.example.py.edges") as bus:
        @bus.procedure("back", args={"v": list})
        def back(v):
            got["v"] = v
            return {"v": v}

        out = {}

        def client():
            try:
                out["r"] = daemon.cli("call", bus.name, "back", sent)
            finally:
                bus.stop()

        t = threading.Thread(target=client)
        t.start()
        bus.run()
        t.join()
    assert out["r"].returncode == 0, out["r"].stderr
    want = [2**63 - 1, -2**63, 2**53 + 1, -0.0, 5e-324]
    assert same(got["v"], want)
    assert same(from_json(out["r"].stdout.strip()), {"v": want})
    assert out["r"].stdout.strip() == sent  # the same text: shortest exact forms
