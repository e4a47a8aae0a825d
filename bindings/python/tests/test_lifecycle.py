# SPDX-License-Identifier: MIT
"""Closing and losing connections: close from inside a callback, the daemon going away with
calls pending (they fail with ClosedError), a Bus dropped without close()."""
import asyncio
import gc
import weakref

import pytest

import hybrid
from conftest import BUILTIN, auntil


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

        def thread():
            try:
                out["r"] = asyncio.run(client())
            finally:
                if "r" not in out:
                    bus.stop()  # the client failed: do not leave run() waiting

        t = threading.Thread(target=thread)
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
        await auntil(lambda: len(srv._tasks) >= 2, "the 2 calls to reach the server")
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


def test_awatch_ends_when_the_daemon_goes(fresh_daemon):
    async def main():
        st = hybrid.Store(socket=fresh_daemon.sock, app="org.example.py.aw")
        st.put("/pyaw/x", 1)
        seen = []
        with pytest.raises(hybrid.ClosedError):
            async for m in st.awatch("/pyaw/#", replay=True):
                seen.append(m.value)
                fresh_daemon.stop()
        st.close()
        return seen
    assert asyncio.run(main()) == [1]


def test_handles_dropped_by_the_slot_destroy_callback(daemon):
    from hybrid import bus as busmod, store as storemod
    n0, s0 = len(busmod._live), len(storemod._live)
    with hybrid.Bus(socket=daemon.sock, app="org.example.py.slots") as bus:
        p = bus.register_procedure("p", lambda: 1)
        subs = [bus.subscribe("@localhost/*/*", f"E{i}*", lambda ev: None) for i in range(5)]
        # registered: kept by their bus, not by the module
        assert len(bus._slots) == 6 and len(busmod._live) == n0
        p.cancel()
        subs[0].cancel()
        # cancelled: the destroy callbacks ran, nothing is left held
        assert len(bus._slots) == 4 and len(busmod._live) == n0
    assert len(busmod._live) == n0  # closing dropped the rest
    with hybrid.Store(socket=daemon.sock, app="org.example.py.slots") as st:
        w = st.watch("/pyslots/#", lambda m: None)
        st.watch("/pyslots2/#", lambda m: None)
        assert len(st._watches) == 2 and len(storemod._live) == s0
        w.cancel()
        assert len(st._watches) == 1 and len(storemod._live) == s0
    assert len(storemod._live) == s0


def test_bus_and_store_referred_to_by_their_callbacks_are_freed(daemon):
    # the decorator example of the docs: a procedure (and a subscription, a watch) whose
    # function refers to its own bus or store; dropped without close(), the collector frees
    # them and the connection is closed (the endpoint name is free again)
    def make_bus():
        bus = hybrid.Bus(socket=daemon.sock, app="org.example.py.cycle", runner="cyc")

        @bus.procedure("whoami")
        def whoami():
            return {"name": bus.name}

        bus.subscribe("@localhost/*/*", "X*", lambda ev: bus.name)
        return weakref.ref(bus)

    def make_store():
        st = hybrid.Store(socket=daemon.sock, app="org.example.py.cycle")
        st.watch("/pycycle/#", lambda m: st.get("/pycycle/x"))
        return weakref.ref(st)

    for i in range(3):
        ref = make_bus()
        gc.collect()
        assert ref() is None, f"round {i}: the bus was not freed"
    with hybrid.Bus(socket=daemon.sock, app="org.example.py.cycle", runner="cyc") as b2:
        assert b2.call(BUILTIN, "echo", {"again": True}) == {"again": True}
    ref = make_store()
    gc.collect()
    assert ref() is None, "the store was not freed"


def test_close_after_the_loop_of_a_pending_acall_is_closed(daemon):
    # the acall's future belongs to a loop closed meanwhile: close() still frees the
    # connection (and does not raise for it)
    bus = hybrid.Bus(socket=daemon.sock, app="org.example.py.loopgone")
    srv = hybrid.Bus(socket=daemon.sock, app="org.example.py.loopgone.srv")
    srv.register_procedure("never", lambda: asyncio.sleep(3600))
    loop = asyncio.new_event_loop()

    async def start():
        return asyncio.ensure_future(bus.acall(srv.name, "never", {}))
    loop.run_until_complete(start())
    loop.run_until_complete(asyncio.sleep(0.1))
    loop.close()
    bus.close()
    assert not bus.is_open
    srv.close()
