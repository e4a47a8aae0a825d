# SPDX-License-Identifier: MIT
"""Remote brokers and what the caller info says, from Python: ``Bus(socket="ws://...")`` and
``wss://`` (``ca_file=``, ``pin=``) against a real hybridd with listen.http and listen.https on
port 0, the refusals by their exception class, ``hybrid.current_call()`` (transport and
principal) for Unix, ws and wss callers, ``register_event(..., cluster=True)`` refused 501
outside a cluster, and, when mosquitto is installed, a cluster event and a call between two
hosts (transport "cluster")."""
import asyncio
import os
import pathlib
import re
import shutil
import socket
import subprocess
import time

import pytest

import hybrid
from hybrid import token
from conftest import BUILTIN, Daemon, auntil, stop_process

CERTS = pathlib.Path(__file__).resolve().parents[3] / "tests" / "edge" / "certs"
APP = "org.example.py.remote"


def _read(path):
    with open(path) as f:
        return f.read()


def _wait_log(d, pattern, what, limit=30.0):
    deadline = time.monotonic() + limit
    while True:
        m = re.search(pattern, _read(d.log))
        if m:
            return m
        if d.proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} not in the daemon's log:\n{_read(d.log)}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """A hybridd taking tokens of issuer acme (audience hub1), with listen.http and
    listen.https on ports the kernel chose; yields (daemon, ws URL, wss URL, token, key)."""
    d = tmp_path_factory.mktemp("remote")
    os.chmod(d, 0o700)
    iss = token.keygen(str(d / "iss.key"))
    holder = token.keygen(str(d / "holder.key"))
    tok = token.issue(iss, iss="acme", sub="alice", aud="hub1", holder=holder.public(),
                      caps={"bus://localhost/#": "call,reg,sub,pub", "/#": "read,write"})
    daemon = Daemon("r", f"""listen:
  http: 127.0.0.1:0
  https: 127.0.0.1:0
tls: {{cert: {CERTS}/server.pem, key: {CERTS}/server.key}}
auth:
  tokens: accept
  audience: hub1
  issuers:
    acme: {d}/iss.key.pub
log: {{level: info}}
""", str(d))
    try:
        hp = _wait_log(daemon, r"edge: HTTP on 127\.0\.0\.1:([1-9][0-9]*)", "the HTTP port").group(1)
        sp = _wait_log(daemon, r"listening on https://127\.0\.0\.1:([1-9][0-9]*)",
                       "the HTTPS port").group(1)
        # the server's certificate names localhost and 127.0.0.1
        yield daemon, f"ws://127.0.0.1:{hp}/bus/ws", f"wss://localhost:{sp}/bus/ws", tok, holder
    finally:
        daemon.stop()


@pytest.fixture
def no_env_trust(monkeypatch):
    """The wss:// cases decide the trust themselves: $HYBRID_CA / $HYBRID_PIN are not read."""
    monkeypatch.delenv("HYBRID_CA", raising=False)
    monkeypatch.delenv("HYBRID_PIN", raising=False)


def test_ws_call(remote):
    _d, ws, _wss, tok, key = remote
    with hybrid.Bus(socket=ws, app=APP, token=tok, key=key) as bus:
        assert bus.name.startswith(f"@localhost/{APP}/")
        assert bus.call(BUILTIN, "echo", {"x": [1, "two"]}) == {"x": [1, "two"]}
        with pytest.raises(hybrid.NotFound):
            bus.call(BUILTIN, "noSuchMethod", {})


def test_ws_store(remote):
    _d, ws, _wss, tok, key = remote
    with hybrid.Store(socket=ws, app=APP, token=tok, key=key) as st:
        st.put("/remote/py", 21.5)
        assert st.get("/remote/py") == 21.5


def test_wss_with_the_ca(remote, no_env_trust):
    _d, _ws, wss, tok, key = remote
    with hybrid.Bus(socket=wss, app=APP, token=tok, key=key, ca_file=CERTS / "ca.pem") as bus:
        assert bus.call(BUILTIN, "echo", [1, 2]) == [1, 2]


def test_wss_with_the_pin(remote, no_env_trust):
    _d, _ws, wss, tok, key = remote
    pin = _read(CERTS / "server.pin").strip()
    for p in (pin, "sha256//" + pin):
        with hybrid.Bus(socket=wss, app=APP, token=tok, key=key, pin=p) as bus:
            assert bus.call(BUILTIN, "echo", "pinned") == "pinned"
    # both: both must hold
    with hybrid.Bus(socket=wss, app=APP, token=tok, key=key, pin=pin,
                    ca_file=str(CERTS / "ca.pem")) as bus:
        assert bus.call(BUILTIN, "echo", 1) == 1


def test_wss_refusals(remote, no_env_trust):
    _d, _ws, wss, tok, key = remote
    with pytest.raises(hybrid.AuthError) as e:
        hybrid.Bus(socket=wss, app=APP, token=tok, key=key,
                   pin=_read(CERTS / "wrongca.pin").strip())
    assert e.value.code == "HYB_E_AUTH" and "pinned" in e.value.message
    with pytest.raises(hybrid.AuthError) as e:
        hybrid.Bus(socket=wss, app=APP, token=tok, key=key, ca_file=CERTS / "wrongca.pem")
    assert e.value.code == "HYB_E_AUTH"
    # the right pin but the wrong CA: both must hold
    with pytest.raises(hybrid.AuthError):
        hybrid.Bus(socket=wss, app=APP, token=tok, key=key, ca_file=CERTS / "wrongca.pem",
                   pin=_read(CERTS / "server.pin").strip())
    # nothing to verify the server by: refused before connecting (EINVAL, a 400)
    with pytest.raises(hybrid.BadRequest) as e:
        hybrid.Bus(socket=wss, app=APP, token=tok, key=key)
    assert e.value.code == "EINVAL"
    with pytest.raises(hybrid.BadRequest):
        hybrid.Bus(socket=wss, app=APP, token=tok, key=key, pin="not a pin")
    with pytest.raises(TypeError):
        hybrid.Bus(socket=wss, app=APP, token=tok, key=key, pin=b"bytes")


def test_wss_trust_from_the_environment(remote, monkeypatch):
    _d, _ws, wss, tok, key = remote
    monkeypatch.delenv("HYBRID_PIN", raising=False)
    monkeypatch.setenv("HYBRID_CA", str(CERTS / "ca.pem"))
    with hybrid.Bus(socket=wss, app=APP, token=tok, key=key) as bus:
        assert bus.call(BUILTIN, "echo", 3) == 3
    # an explicit ca_file replaces the environment's
    with pytest.raises(hybrid.AuthError):
        hybrid.Bus(socket=wss, app=APP, token=tok, key=key, ca_file=CERTS / "wrongca.pem")


def test_ws_refusals(remote, tmp_path):
    _d, ws, _wss, tok, key = remote
    with pytest.raises(hybrid.Unauthorized):
        hybrid.Bus(socket=ws, app=APP)  # a remote peer needs a token
    rogue = token.keygen()
    bad = token.issue(rogue, iss="acme", sub="alice", aud="hub1", holder=key.public(),
                      caps={"bus://localhost/#": "call"})
    with pytest.raises(hybrid.Unauthorized):
        hybrid.Bus(socket=ws, app=APP, token=bad, key=key)
    # nobody listens there
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(hybrid.Unavailable):
        hybrid.Bus(socket=f"ws://127.0.0.1:{port}/bus/ws", app=APP, token=tok, key=key)
    with pytest.raises(hybrid.NotFound):  # the upgrade refused 404
        hybrid.Bus(socket=ws.replace("/bus/ws", "/nothing/here"), app=APP, token=tok, key=key)


def _serve_whoami(srv):
    @srv.procedure("whoami")
    def whoami():
        info = hybrid.current_call()
        return {"caller": info.caller, "method": info.method, "transport": info.transport,
                "principal": info.principal}

    @srv.procedure("whoamiLater")
    async def whoami_later():
        await asyncio.sleep(0)  # answered from the task, after the dispatch returned
        info = hybrid.current_call()
        return [info.transport, info.principal, info.method]


def test_current_call_transport_and_principal(remote, no_env_trust):
    daemon, ws, wss, tok, key = remote
    assert hybrid.current_call() is None  # not inside a procedure

    async def main():
        with hybrid.Bus(socket=daemon.sock, app=APP, runner="srv") as srv, \
                hybrid.Bus(socket=daemon.sock, app=APP, runner="local") as local, \
                hybrid.Bus(socket=ws, app=APP, runner="ws", token=tok, key=key) as wsc, \
                hybrid.Bus(socket=wss, app=APP, runner="wss", token=tok, key=key,
                           ca_file=CERTS / "ca.pem") as wssc:
            _serve_whoami(srv)
            srv.attach()
            got = {}
            for c in (local, wsc, wssc):
                got[c.runner] = await c.acall(srv.name, "whoami", {})
                assert await c.acall(srv.name, "whoamiLater", {}) == \
                    [got[c.runner]["transport"], got[c.runner]["principal"], "whoamiLater"]
            return got, local.name, wsc.name, wssc.name

    got, lname, wsname, wssname = asyncio.run(main())
    assert got["local"] == {"caller": lname, "method": "whoami", "transport": "unix",
                            "principal": None}
    assert got["ws"] == {"caller": wsname, "method": "whoami", "transport": "ws",
                         "principal": "alice"}
    assert got["wss"] == {"caller": wssname, "method": "whoami", "transport": "wss",
                          "principal": "alice"}
    assert hybrid.current_call() is None


def test_current_call_after_the_answer(daemon):
    """A CallInfo read in the procedure stays readable; current_call() from a task the
    procedure left running, after the answer, is None (the request is gone)."""
    kept = {}

    async def main():
        with hybrid.Bus(socket=daemon.sock, app=APP, runner="srv2") as srv, \
                hybrid.Bus(socket=daemon.sock, app=APP, runner="cl2") as cl:
            @srv.procedure("spawn")
            def spawn():
                kept["info"] = hybrid.current_call()

                async def later():
                    await asyncio.sleep(0)
                    kept["later"] = hybrid.current_call()
                kept["task"] = asyncio.get_running_loop().create_task(later())
                return 1

            srv.attach()
            assert await cl.acall(srv.name, "spawn", {}) == 1
            await kept["task"]
            return cl.name

    clname = asyncio.run(main())
    assert kept["info"].caller == clname and kept["info"].transport == "unix"
    assert kept["later"] is None


def test_register_event_cluster_outside_a_cluster(daemon):
    with hybrid.Bus(socket=daemon.sock, app=APP, runner="ev") as bus:
        with pytest.raises(hybrid.NotImplementedOnBus) as e:
            bus.register_event("TEMP", cluster=True)
        assert e.value.status == 501 and e.value.code == "HYB_E_NOT_IMPLEMENTED"
        # the refused bubble is not registered; a plain one still is
        with pytest.raises(hybrid.NotFound):
            bus.fire("TEMP", 1, confirm=True)
        bus.register_event("TEMP")
        assert bus.fire("TEMP", 1, confirm=True) == (0, 0)


def _mosquitto():
    for m in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if m and os.access(m, os.X_OK):
            return m
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """mosquitto on a free loopback port and two hybridd, hosts hosta and hostb."""
    mq = _mosquitto()
    if not mq:
        pytest.skip("mosquitto is not installed")
    d = tmp_path_factory.mktemp("cluster")
    os.chmod(d, 0o700)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    conf = d / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n" +
                    ("user root\n" if os.getuid() == 0 else ""))
    log = open(d / "mosquitto.log", "w")
    proc = subprocess.Popen([mq, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    daemons = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("mosquitto did not start: " + _read(d / "mosquitto.log"))
                time.sleep(0.05)
        for h in ("hosta", "hostb"):
            dm = Daemon(h, f"host: {h}\ncluster:\n  broker: mqtt://127.0.0.1:{port}\n"
                        "log: {level: info}\n", str(d))
            daemons.append(dm)
            _wait_log(dm, r"cluster: connected to", f"{h} connected to the broker")
        yield daemons
    finally:
        for dm in daemons:
            dm.stop()
        stop_process(proc)
        log.close()


def test_cluster_event_and_call(cluster):
    a, b = cluster

    async def main():
        with hybrid.Bus(socket=a.sock, app=APP, runner="gen") as gen, \
                hybrid.Bus(socket=b.sock, app=APP, runner="lis") as lis:
            gen.register_event("TEMP", cluster=True)
            got = []
            lis.subscribe(f"@hosta/{APP}/gen", "TEMP", got.append)
            lis.attach()
            _serve_whoami(gen)
            gen.attach()
            # b's MQTT subscription follows the local one: fire until an event comes
            deadline = time.monotonic() + 60
            while not got:
                assert time.monotonic() < deadline, "no cluster event reached host b"
                gen.fire("TEMP", {"t": 21.5})
                await asyncio.sleep(0.1)
            ev = got[0]
            assert (ev.source, ev.bubble, ev.data) == (f"@hosta/{APP}/gen", "TEMP", {"t": 21.5})
            # a call from b to a: the callee sees the caller with transport "cluster"
            target = f"@hosta/{APP}/gen"
            deadline = time.monotonic() + 60
            while True:
                try:
                    who = await lis.acall(target, "whoami", {}, timeout=2)
                    break
                except (hybrid.Timeout, hybrid.BadCallee, hybrid.Unavailable):
                    # b may not know host a yet (its presence comes through the broker)
                    assert time.monotonic() < deadline, "no call from b reached a"
            return who

    who = asyncio.run(main())
    assert who == {"caller": f"@hostb/{APP}/lis", "method": "whoami", "transport": "cluster",
                   "principal": None}
