# SPDX-License-Identifier: MIT
"""The cluster scope ``//...`` of :class:`hybrid.Store` through a real mosquitto: with a
daemon that has a ``cluster:`` section (``//`` goes to the daemon) and with the embedded
store and a broker URL (``cluster=`` or ``$HYBRID_CLUSTER``); without either, ScopeError
naming what to set.  The mapping is the one doc/cluster.md fixes: ``//a/b`` is the topic
``a/b``, the value's JSON the payload, retained."""
import asyncio
import os
import shutil
import socket
import subprocess
import time

import pytest

import hybrid
from hybrid.errors import Error, ScopeError
from conftest import Daemon, auntil, stop_process


def _mosquitto():
    for m in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if m and os.access(m, os.X_OK):
            return m
    return None


class Broker:
    def __init__(self, d):
        mq = _mosquitto()
        if not mq or not shutil.which("mosquitto_sub") or not shutil.which("mosquitto_pub"):
            pytest.skip("mosquitto (and mosquitto-clients) is not installed")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        conf = d / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n" +
                        ("user root\n" if os.getuid() == 0 else ""))
        self.logpath = d / "mosquitto.log"
        self._log = open(self.logpath, "w")
        self.proc = subprocess.Popen([mq, "-c", str(conf)], stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail("mosquitto did not start: " + self.logpath.read_text())
                time.sleep(0.05)
        self.url = f"mqtt://127.0.0.1:{self.port}"

    def sub_retained(self, topic):
        """The retained payload of topic, read by mosquitto_sub (waits up to 30 s)."""
        r = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.port),
                            "-t", topic, "-C", "1", "-W", "30", "--retained-only"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.rstrip("\n")

    def pub(self, topic, payload, retain=True):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-q", "1",
                        "-t", topic, "-m", payload] + (["-r"] if retain else []),
                       check=True, timeout=60)

    def stop(self):
        stop_process(self.proc)
        self._log.close()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    d = tmp_path_factory.mktemp("mq")
    os.chmod(d, 0o700)
    b = Broker(d)
    yield b
    b.stop()


@pytest.fixture(scope="module")
def cdaemon(broker, tmp_path_factory):
    """A hybridd whose configuration has a cluster: section on the broker."""
    d = tmp_path_factory.mktemp("cd")
    os.chmod(d, 0o700)
    dm = Daemon("hosta", f"host: hosta\ncluster:\n  broker: {broker.url}\n"
                "log: {level: info}\n", str(d))
    try:
        deadline = time.monotonic() + 30
        while "cluster: connected to" not in open(dm.log).read():
            if dm.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("hybridd did not connect to the broker:\n" + open(dm.log).read())
            time.sleep(0.02)
        yield dm
    finally:
        dm.stop()


def _round_trip(store, broker, base):
    # a value put from the binding, read by mosquitto_sub
    store.put(f"//{base}/temp", 21.5)
    assert broker.sub_retained(f"{base}/temp") == "21.5"
    store.put(f"//{base}/name", "kitchen")
    assert broker.sub_retained(f"{base}/name") == '"kitchen"'
    # a mosquitto_pub -r read back
    broker.pub(f"{base}/ext", '{"on": true}')
    assert store.get(f"//{base}/ext") == {"on": True}
    # delete: an empty retained message, so nothing is retained any more
    store.delete(f"//{base}/temp")
    assert store.get(f"//{base}/temp") is None


def _watch(store, broker, base):
    """A watch with replay gets the retained value, then a publication of mosquitto_pub,
    delivered by wait() (the backend's fd polled)."""
    broker.pub(f"{base}/w/old", "1")
    got = []
    store.watch(f"//{base}/w/#", lambda m: got.append((m.furi, m.value)), replay=True)
    deadline = time.monotonic() + 30
    while (f"//{base}/w/old", 1) not in got and time.monotonic() < deadline:
        store.wait(1)
    assert (f"//{base}/w/old", 1) in got
    broker.pub(f"{base}/w/new", "[1, 2]", retain=False)
    while (f"//{base}/w/new", [1, 2]) not in got and time.monotonic() < deadline:
        store.wait(1)
    assert (f"//{base}/w/new", [1, 2]) in got


async def _awatch(store, broker, base):
    """The asyncio loop watches the fd that delivers //... (awatch)."""
    it = store.awatch(f"//{base}/a/#")
    task = asyncio.ensure_future(it.__anext__())
    # the subscription is made when the iterator starts: publish until it arrives
    deadline = time.monotonic() + 30
    while not task.done():
        broker.pub(f"{base}/a/x", "7", retain=False)
        await asyncio.wait([task], timeout=0.5)
        assert time.monotonic() < deadline, "awatch got no publication"
    m = task.result()
    assert (m.furi, m.value) == (f"//{base}/a/x", 7)
    await it.aclose()
    store.detach()  # the loop of asyncio.run ends with this coroutine


def test_embedded_cluster_argument(broker, tmp_path):
    with hybrid.Store(db=str(tmp_path / "s.db"), cluster=broker.url) as s:
        assert s.source == "db"
        assert s.cluster_fileno() is not None
        _round_trip(s, broker, "emb")
        _watch(s, broker, "emb")
        asyncio.run(_awatch(s, broker, "emb"))
        # the host scope is still the embedded database
        s.put("/local", 1)
        assert s.get("/local") == 1


def test_embedded_cluster_environment(broker, tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRID_CLUSTER", broker.url + "?prefix=env/")
    with hybrid.Store(db=str(tmp_path / "s.db")) as s:
        s.put("//k/v", [1, "a"])
        assert broker.sub_retained("env/k/v") == '[1,"a"]'
        # cluster= takes precedence over the environment
    with hybrid.Store(db=str(tmp_path / "s.db"), cluster=broker.url) as s:
        s.put("//k/v", 2)
        assert broker.sub_retained("k/v") == "2"


def test_embedded_without_cluster(tmp_path, monkeypatch):
    monkeypatch.delenv("HYBRID_CLUSTER", raising=False)
    with hybrid.Store(db=str(tmp_path / "s.db")) as s:
        assert s.cluster_fileno() is None
        for op in (lambda: s.get("//a/b"), lambda: s.put("//a/b", 1),
                   lambda: s.delete("//a/b"), lambda: s.watch("//a/#", print)):
            with pytest.raises(ScopeError) as e:
                op()
            assert "HYBRID_CLUSTER" in str(e.value)


def test_embedded_bad_cluster_url(tmp_path):
    with pytest.raises(Error):
        hybrid.Store(db=str(tmp_path / "s.db"), cluster="http://nope")


def test_daemon_with_cluster(broker, cdaemon, tmp_path, monkeypatch):
    # the daemon serves //...: a cluster URL of ours is not used
    monkeypatch.setenv("HYBRID_CLUSTER", "mqtt://127.0.0.1:1?prefix=unused/")
    with hybrid.Store(socket=cdaemon.sock) as s:
        assert s.source == "bus"
        assert s.cluster_fileno() is None
        _round_trip(s, broker, "dmn")
        _watch(s, broker, "dmn")
        asyncio.run(_awatch(s, broker, "dmn"))


def test_daemon_without_cluster(daemon):
    # a daemon without cluster: refuses //... as its host store does (EINVAL, not a
    # host-scope fURI); the cluster URL given here is not used: the daemon serves //...
    with hybrid.Store(socket=daemon.sock, cluster="mqtt://127.0.0.1:1") as s:
        assert s.cluster_fileno() is None
        with pytest.raises(Error) as e:
            s.put("//a/b", 1)
        assert e.value.code == "EINVAL"
        assert "host-scope" in str(e.value)


def test_embedded_broker_unreachable(tmp_path):
    # nothing listens on the port: the operation fails, the store keeps serving /...
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with hybrid.Store(db=str(tmp_path / "s.db"),
                      cluster=f"mqtt://127.0.0.1:{port}?timeout_ms=1000") as st:
        with pytest.raises(hybrid.Unavailable):
            st.put("//a/b", 1)
        st.put("/a/b", 1)
        assert st.get("/a/b") == 1


def test_close_from_a_cluster_watch_callback(broker, tmp_path):
    # the callback closes the store while the cluster backend is delivering: no crash, no
    # further message, and the store says it is closed
    broker.pub("cls/a", "1")
    broker.pub("cls/b", "2")
    s = hybrid.Store(db=str(tmp_path / "s.db"), cluster=broker.url)
    n = []
    s.watch("//cls/#", lambda m: (n.append(m), s.close()), replay=True)
    deadline = time.monotonic() + 30
    while not n and time.monotonic() < deadline:
        s.wait(1)
    assert len(n) == 1
    with pytest.raises(hybrid.ClosedError):
        s.get("//cls/a")
