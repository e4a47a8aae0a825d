# SPDX-License-Identifier: MIT
"""Security tokens from Python: keys, issue, inspect, verify, attenuate, and connecting
with a token to a hybridd with `auth: {tokens: require}` (doc/token.md)."""
import os

import pytest

import hybrid
from hybrid import token
from conftest import BUILTIN, Daemon


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    iss = token.keygen(str(d / "iss.key"))
    holder = token.keygen(str(d / "holder.key"))
    return d, iss, holder


def test_keys(keys):
    d, iss, holder = keys
    assert iss.has_private and len(iss.kid) > 20
    assert os.stat(d / "iss.key").st_mode & 0o077 == 0
    pub = token.load_key(str(d / "iss.key.pub"))
    assert not pub.has_private and pub == iss and pub.kid == iss.kid
    assert token.Key.load(iss.to_pem(private=True)) == iss
    assert iss.to_jwk()["crv"] == "P-256" and "d" not in iss.to_jwk()
    assert "pair" in repr(iss)


def test_issue_inspect_verify_attenuate(keys):
    d, iss, holder = keys
    t = token.issue(iss, iss="acme", sub="alice", aud="hub1", holder=holder.public(),
                    caps={"/sensors/#": "read,sub", "/home/+/temp": ["read"]}, dlg=1)
    info = token.inspect(t)
    assert info["verified"] is False and len(info["blocks"]) == 1
    assert info["blocks"][0]["claims"]["sub"] == "alice"
    v = token.verify(t, {"acme": str(d / "iss.key.pub")}, audience="hub1")
    assert (v.sub, v.iss, v.n_blocks, v.holder) == ("alice", "acme", 1, holder.kid)
    assert v.allowed("/sensors/t", "read") and v.allowed("/sensors/t", ["read", "sub"])
    assert not v.allowed("/sensors/t", "write") and not v.allowed("/other", "read")
    with pytest.raises(hybrid.Unauthorized):
        token.verify(t, {"acme": iss}, audience="elsewhere")
    with pytest.raises(hybrid.Unauthorized):
        token.verify(t, {"acme": token.keygen()}, audience="hub1")
    guest = token.keygen()
    t2 = token.attenuate(t, holder, new_holder=guest, caps={"/sensors/#": "read"})
    v2 = token.verify(t2, {"acme": iss}, audience="hub1")
    assert v2.n_blocks == 2 and v2.holder == guest.kid
    assert v2.allowed("/sensors/t", "read") and not v2.allowed("/sensors/t", "sub")
    with pytest.raises(hybrid.Error):
        token.attenuate(t, guest, new_holder=guest)  # not the holder
    with pytest.raises(ValueError):
        token.issue(iss, iss="acme", sub="a", aud="hub1", holder=holder, caps={"/x": "fly"})


def test_connect_with_a_token(keys, tmp_path):
    d, iss, holder = keys
    t = token.issue(iss, iss="acme", sub="alice", aud="hub1", holder=holder.public(),
                    caps={"bus://localhost/org.example.py.tok/#": "reg,call,pub",
                          "bus://localhost/org.hybridos.bus/#": "call",
                          "/sensors/#": "read,write"})
    (tmp_path / "tok").write_text(t + "\n")
    dm = Daemon("tok", f"auth:\n  tokens: require\n  audience: hub1\n  issuers:\n"
                f"    acme: {d / 'iss.key.pub'}\nlog: {{level: warning}}\n", str(tmp_path))
    try:
        # refused without a token (root included)
        with pytest.raises(hybrid.Unauthorized) as ei:
            hybrid.Bus(socket=dm.sock, app="org.example.py.tok")
        assert ei.value.status == 401
        # a token text and a Key object; then a token file and a key file
        with hybrid.Bus(socket=dm.sock, app="org.example.py.tok", token=t, key=holder) as bus:
            assert bus.call(BUILTIN, "echo", {"a": 1}) == {"a": 1}

            @bus.procedure("hello")
            def hello():
                return "hi"
            assert bus.call(bus.name, "hello") == "hi"
        with hybrid.Store(socket=dm.sock, app="org.example.py.tok", token=str(tmp_path / "tok"),
                          key=str(d / "holder.key")) as st:
            st.put("/sensors/t", 21)
            assert st.get("/sensors/t") == 21
            with pytest.raises(hybrid.Forbidden):
                st.put("/elsewhere", 1)
        # the right token with another key: the proof fails
        with pytest.raises(hybrid.Unauthorized):
            hybrid.Bus(socket=dm.sock, app="org.example.py.tok", token=t, key=token.keygen())
        with pytest.raises(TypeError):
            hybrid.Bus(socket=dm.sock, app="org.example.py.tok", token=t)
    finally:
        dm.stop()
