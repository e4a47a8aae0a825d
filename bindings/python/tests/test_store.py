# SPDX-License-Identifier: MIT
"""The store from Python: through a daemon (socket=) and embedded (db=), put/get/delete,
patterns, watch with replay, transient writes, awatch."""
import asyncio
import os
import threading

import pytest

import hybrid
from conftest import until


def collect_until(st, got, n):
    until(lambda: len(got) >= n, lambda: st.wait(5), f"{n} store messages")


@pytest.fixture(params=["daemon", "db"])
def store(request, daemon, tmp_path):
    if request.param == "daemon":
        st = hybrid.Store(socket=daemon.sock, app="org.example.py.store")
        assert st.source == "bus" and daemon.sock in st.where
    else:
        st = hybrid.Store(db=str(tmp_path / "s.db"), app="org.example.py.store")
        assert st.source == "db" and "s.db" in st.where
    st.delete("/pyst/#")
    yield st
    st.close()


def test_put_get_delete(store):
    store.put("/pyst/a/b", 5)
    assert store.get("/pyst/a/b") == 5
    store.put("/pyst/a/c", {"x": [1, "two", None, True]})
    assert store.get("/pyst/a/#") == {"/pyst/a/b": 5, "/pyst/a/c": {"x": [1, "two", None, True]}}
    assert store.get("/pyst/+/b") == {"/pyst/a/b": 5}
    assert store.get("/pyst/none") is None
    assert store.get("/pyst/none/#") == {}
    store.delete("/pyst/a/b")
    assert store.get("/pyst/a/b") is None
    with pytest.raises(hybrid.ParseError):
        store.get("/pyst//bad")
    assert "Store" in repr(store)


def test_watch_with_replay_and_transient(store):
    store.put("/pyst/w/1", 1)
    store.put("/pyst/w/2", 2)
    got = []
    w = store.watch("/pyst/w/#", got.append, replay=True)
    collect_until(store, got, 2)
    assert [(m.furi, m.value, m.retain) for m in got] == [("/pyst/w/1", 1, True),
                                                          ("/pyst/w/2", 2, True)]
    store.put("/pyst/w/3", 3.5, transient=True)
    store.put("/pyst/w/1", "one")
    store.delete("/pyst/w/2")
    store.put("/pyst/other", 0)
    collect_until(store, got, 5)
    assert [(m.furi, m.value, m.retain) for m in got[2:]] == [
        ("/pyst/w/3", 3.5, False), ("/pyst/w/1", "one", True), ("/pyst/w/2", None, True)]
    assert got[4].deleted
    assert store.get("/pyst/w/3") is None  # transient: nothing stored
    w.cancel()
    other = []
    store.watch("/pyst/w/#", other.append)
    store.put("/pyst/w/4", 4)
    collect_until(store, other, 1)  # delivered to the live watch: the cancelled one is quiet
    assert [m.furi for m in other] == ["/pyst/w/4"] and len(got) == 5


def test_watch_callback_raising_keeps_delivering(store, caplog):
    got = []

    def cb(m):
        got.append(m.value)
        if m.value == 1:
            raise KeyError("watcher fails")

    store.watch("/pyst/r/#", cb)
    store.put("/pyst/r/a", 1)
    store.put("/pyst/r/a", 2)
    collect_until(store, got, 2)
    assert got == [1, 2]
    assert any("watcher fails" in r.getMessage() for r in caplog.records)


def test_awatch(store):
    async def main():
        store.put("/pyst/aw/x", 1)
        out = []
        async for m in store.awatch("/pyst/aw/#", replay=True):
            out.append((m.furi, m.value))
            if len(out) == 1:
                store.put("/pyst/aw/y", 2)
            if len(out) == 2:
                break
        return out
    assert asyncio.run(main()) == [("/pyst/aw/x", 1), ("/pyst/aw/y", 2)]


def test_awatch_ends_when_the_store_closes(store):
    async def main():
        store.put("/pyst/awc/x", 1)
        out = []

        async def reader():
            async for m in store.awatch("/pyst/awc/#", replay=True):
                out.append(m.value)
                asyncio.get_running_loop().call_soon(store.close)
            return "ended"
        return await asyncio.wait_for(reader(), 10), out
    assert asyncio.run(main()) == ("ended", [1])


def test_wait_with_a_negative_timeout_does_not_block(store):
    # poll() takes a negative timeout for "no limit": a negative one is no wait at all
    got = []
    t = threading.Thread(target=lambda: got.append(store.wait(-1)), daemon=True)
    t.start()
    t.join(10)
    assert got == [0], "wait(-1) blocked"
    assert store.wait(0) == 0
    with pytest.raises(ValueError):
        store.wait(float("nan"))


def test_dicts_with_at_keys_stay_dicts(store):
    # {"@uri": ...} as a plain JSON object would read as a uri: such keys take the @rec form
    for v in ({"@uri": "a/b"}, {"@value": 5}, {"@type": "/type/nat", "@value": 5},
              {"@rec": [[1, 2]]}, {"a": 1, "@b": {"@c": [1]}}):
        store.put("/pyst/at/v", v)
        assert store.get("/pyst/at/v") == v, v


def test_values_nested_too_deep_are_413(store):
    # past the library's 64 levels (or Python's own recursion limit) as past the store's
    # max_depth: LimitError 413, not an InternalError
    for d in (65, 200, 5000):
        v = 1
        for _ in range(d):
            v = [v]
        with pytest.raises(hybrid.LimitError):
            store.put("/pyst/deep", v)
    assert store.get("/pyst/deep") is None


def test_two_stores_one_daemon(daemon):
    with hybrid.Store(socket=daemon.sock, app="org.example.py.s1") as a, \
            hybrid.Store(socket=daemon.sock, app="org.example.py.s2") as b:
        a.put("/pyst/shared", [1, 2])
        assert b.get("/pyst/shared") == [1, 2]
        assert daemon.cli("store", "get", "/pyst/shared").stdout.strip() == "[1,2]"


def test_store_rule_env(daemon, tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRID_BUS", daemon.sock)
    monkeypatch.delenv("HYBRID_DB", raising=False)
    with hybrid.Store() as st:
        assert st.source == "bus"
    monkeypatch.setenv("HYBRID_DB", str(tmp_path / "env.db"))
    with hybrid.Store() as st:
        assert st.source == "db"
    with pytest.raises(hybrid.Error):
        hybrid.Store(socket=str(tmp_path / "absent.sock"), db=None,
                     app="org.example.py") if not os.environ.pop("HYBRID_DB", None) else \
            hybrid.Store(socket=str(tmp_path / "absent.sock"))


def test_close_from_watch_callback(store):
    """A watcher that closes its store: the delivery in progress stops (it crashed in
    hyb_scope_process on the freed scope), later calls raise ClosedError."""
    store.put("/pyst/c/a", 1)
    store.put("/pyst/c/b", 2)
    got = []

    def cb(msg):
        got.append(msg.furi)
        store.close()

    store.watch("/pyst/c/#", cb, replay=True)
    until(lambda: got, lambda: store.process() if not got else None, "a replayed value")
    assert len(got) == 1
    with pytest.raises(hybrid.ClosedError):
        store.get("/pyst/c/a")
    with pytest.raises(hybrid.ClosedError):
        store.process()
