# SPDX-License-Identifier: MIT
"""Closing and losing connections: close from inside a callback, the daemon going away with
calls pending (they fail with ClosedError), a Bus dropped without close()."""
import asyncio
import gc
import select
import weakref

import pytest

import hybrid
from conftest import BUILTIN


def test_close_from_a_callback_during_run(daemon):
    bus = hybrid.Bus(socket=daemon.sock, app="org.example.py.life")
    gen = hybrid.Bus(socket=daemon.sock, app="org.example.py.lifegen")
    seen = []

    def cb(ev):
        seen.append(ev.data)
        bus.close()  # inside the dispatch: the handle is freed once it returns

    gen.register_event("BYE")
    bus.subscribe(gen.name, "BYE", cb)  # exact: the bubble must exist
    assert gen.fire("BYE", {"n": 1}, confirm=True) == (1, 0)
    bus.run()  # returns: the bus was closed
    assert seen == [{"n": 1}] and not bus.is_open
    with pytest.raises(hybrid.ClosedError):
        bus.call(BUILTIN, "echo", {})
    bus.close()  # idempotent
    gen.close()


def test_procedure_stops_run(daemon):
    with hybrid.Bus(socket=daemon.sock, app="org.example.py.stopper") as bus:
        @bus.procedure("stop")
        def stop():
            bus.stop()
            return "stopping"

        @bus.procedure("ping")
        def ping():
            return "pong"

        async def client():
            async with hybrid.Bus(socket=daemon.sock, app="org.example.py.stopcl") as c:
                return [await c.acall(bus.name, "ping"), await c.acall(bus.name, "stop")]

        out = {}
        import threading
        t = threading.Thread(target=lambda: out.setdefault("r", asyncio.run(client())))
        t.start()
        bus.run()
        t.join()
        assert out["r"] == ["pong", "stopping"]


def test_daemon_gone_with_calls_pending(fresh_daemon):
    async def main():
        srv = hybrid.Bus(socket=fresh_daemon.sock, app="org.example.py.gsrv")
        never = asyncio.Event()

        @srv.procedure("hang")
        async def hang():
            await never.wait()

        srv.attach()
        cl = hybrid.Bus(socket=fresh_daemon.sock, app="org.example.py.gcl")
        tasks = [asyncio.ensure_future(cl.acall(srv.name, "hang")) for _ in range(2)]
        while len(srv._tasks) < 2:
            await asyncio.sleep(0.01)
        fresh_daemon.stop()
        # a daemon that shuts down answers what is pending with 503 and its reason before
        # it closes; calls whose connection goes first fail with ClosedError
        for t in tasks:
            with pytest.raises((hybrid.ClosedError, hybrid.Unavailable)) as ei:
                await t
            if isinstance(ei.value, hybrid.Unavailable):
                assert "shutting down" in ei.value.message
        assert not cl.is_open
        with pytest.raises(hybrid.ClosedError):
            await cl.acall(BUILTIN, "echo")
        never.set()
        cl.close()
        srv.close()
    asyncio.run(main())


def test_sync_call_when_the_daemon_is_gone(fresh_daemon):
    bus = hybrid.Bus(socket=fresh_daemon.sock, app="org.example.py.gone")
    assert bus.call(BUILTIN, "echo", [1]) == [1]
    fresh_daemon.stop()
    with pytest.raises(hybrid.ClosedError):
        bus.call(BUILTIN, "echo", [1])
    bus.run()  # returns at once: the connection is closed
    bus.close()


def test_dropped_bus_is_freed(daemon):
    bus = hybrid.Bus(socket=daemon.sock, app="org.example.py.drop", runner="drop")
    bus.register_procedure("f", lambda: 1)
    bus.subscribe("@localhost/*/*", "X*", lambda ev: None)
    ref = weakref.ref(bus)
    del bus
    gc.collect()
    assert ref() is None
    # the endpoint name is free again: the connection was closed
    with hybrid.Bus(socket=daemon.sock, app="org.example.py.drop", runner="drop") as b2:
        assert b2.call(BUILTIN, "echo", {"again": True}) == {"again": True}
