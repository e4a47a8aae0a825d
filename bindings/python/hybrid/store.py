# SPDX-License-Identifier: MIT
"""The fURI store: :class:`Store`.

Which store is used follows the one rule of every hybrid program
(``hyb_bus_backend_open_host_with``): db given (or ``$HYBRID_DB``) -> that database,
embedded; else socket (or ``$HYBRID_BUS``) -> that daemon's store; else the daemon at the
default socket if one answers, else the default database.  ``store.source`` and
``store.where`` say which.  Absolute fURIs (``/a/b``) go to that store, ``~/x`` to
``/home/<app>/x`` there, relative fURIs to a memory store private to this object.

The cluster scope (``//kitchen/temp``) follows the rule of the C library and the ``hybrid``
tool: when a daemon serves the host store, ``//...`` goes to that daemon (it serves it when
its configuration has a ``cluster:`` section, else :class:`hybrid.errors.Error` with code
HYB_E_SCOPE); on the embedded store, ``//...`` goes straight to the MQTT broker named by the
``cluster`` argument, else by ``$HYBRID_CLUSTER`` (``mqtt://HOST[:PORT][?KEY=VALUE&...]``,
see ``hyb_cluster_backend_new``); with neither, ``//...`` fails with HYB_E_SCOPE naming what
to set.

A Store is used from one thread at a time.  Watch callbacks run from :meth:`Store.process`,
:meth:`Store.wait`, or the asyncio loop (:meth:`Store.awatch`, :meth:`Store.attach`).
"""
from __future__ import annotations

import asyncio
import math
import os
import select
import weakref
from typing import Any, AsyncIterator, Callable, Optional, Set

from ._conn import ConnOptions
from ._ffi import ffi, lib
from ._util import FdWatch, report
from .errors import ClosedError, Error, check
from .values import from_obj, to_obj

__all__ = ["Store", "Message", "Watch"]

_WRITE_TRANSIENT = 1
_SUBSCRIBE_REPLAY = 1
_READ_KEYED = 1
_UINT64_MAX = (1 << 64) - 1
_EVENT_OUT = 0x004
_SCOPE_CLUSTER = 3
_SOURCES = {1: "db", 2: "bus", 3: "default-bus", 4: "default-db"}

_live: Set[Any] = set()
_END = object()  # put in an awatch's queue by close(): the iteration ends


@ffi.callback("void(void *)")
def _on_destroy(ud):
    _live.discard(ffi.from_handle(ud))


class Message:
    """A store change as a watcher gets it: ``furi`` (str), ``value`` (None for a
    delete), ``retain`` (False for a transient write)."""

    __slots__ = ("furi", "value", "retain")

    def __init__(self, furi: str, value: Any, retain: bool) -> None:
        self.furi = furi
        self.value = value
        self.retain = retain

    @property
    def deleted(self) -> bool:
        """True for a delete."""
        return self.value is None

    def __iter__(self):
        return iter((self.furi, self.value))

    def __repr__(self) -> str:
        return f"Message(furi={self.furi!r}, value={self.value!r}, retain={self.retain!r})"


@ffi.callback("void(const hyb_furi *, const hyb_obj *, bool, void *)")
def _on_msg(target, payload, retain, ud):
    w = ffi.from_handle(ud)
    try:
        msg = Message(ffi.string(lib.hyb_furi_get_str(target)).decode(), from_obj(payload),
                      bool(retain))
        w.callback(msg)
    except Exception as e:
        report(e, f"store watch callback of {w!r}")
    except BaseException as e:
        st = w._store()
        if st is not None and st._exc is None:
            st._exc = e


class Watch:
    """A store subscription (:meth:`Store.watch`); :meth:`cancel` ends it."""

    def __init__(self, store: "Store", pattern: str, callback: Callable[[Message], Any]) -> None:
        self._store = weakref.ref(store)  # weakly: a Store dropped without close() is freed
        self.pattern = pattern
        self.callback = callback
        self.handle = ffi.new_handle(self)
        self._slot = ffi.NULL

    def cancel(self) -> None:
        """Unsubscribes (idempotent)."""
        slot, self._slot = self._slot, ffi.NULL
        if slot != ffi.NULL:
            _live.add(self)  # until C's destroy callback, maybe later than the unref
            st = self._store()
            if st is not None:
                st._watches.discard(self)
            lib.hyb_slot_unref(slot)

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()

    def __repr__(self) -> str:
        return f"<Watch {self.pattern!r}{'' if self._slot != ffi.NULL else ' cancelled'}>"


def _is_pattern(furi: str) -> bool:
    path = furi.split("?", 1)[0]
    return path.endswith("/") or any(s in ("+", "#") for s in path.split("/"))


def _release(sc, b, c) -> None:
    lib.hyb_scope_unref(sc)
    lib.hyb_backend_unref(b)
    if c != ffi.NULL:
        lib.hyb_backend_unref(c)


class Store(FdWatch):
    """``Store(db=None, socket=None, app="org.example.python", runner=None, token=None,
    key=None, *, ca_file=None, pin=None, cluster=None)``: the host store by the store rule
    (see the module doc); socket may be a ``ws://`` or ``wss://`` URL, verified as for
    :class:`hybrid.Bus`.  cluster: the MQTT broker URL that serves ``//...`` on the
    embedded store (None: ``$HYBRID_CLUSTER``; not used when a daemon serves the host store,
    which serves ``//...`` itself); a bad URL raises :class:`hybrid.errors.Error` (-EINVAL).
    The broker is connected at the first ``//...`` operation.  A context manager;
    :meth:`close` releases it."""

    def __init__(self, db: Any = None, socket: Any = None, app: str = "org.example.python",
                 runner: Optional[str] = None, token: Any = None, key: Any = None, *,
                 ca_file: Any = None, pin: Optional[str] = None,
                 cluster: Optional[str] = None) -> None:
        self._backend = ffi.NULL
        self._cluster = ffi.NULL  # the MQTT backend of //... on the embedded store, or NULL
        self._cfd = -1  # its fd while attached to a loop
        self._scope = ffi.NULL
        self._watches: Set[Watch] = set()
        self._aqueues: Set[Any] = set()
        self._exc: Optional[BaseException] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._timer: Optional[asyncio.Handle] = None
        self._writer = False
        self._fd = -1
        self._u64 = ffi.new("uint64_t *")
        self._err = ffi.new("hyb_error *")
        self._depth = 0  # > 0 while a library call may run watch callbacks
        self._free_later: Any = None
        conn = ConnOptions(socket, app, runner, token, key, ca_file, pin)
        b = ffi.new("hyb_backend **")
        src = ffi.new("int *")
        where = ffi.new("char **")
        check(lib.hyb_bus_backend_open_host_with(
            os.fsencode(db) if db is not None else ffi.NULL, conn.ptr, ffi.NULL, b, src, where,
            self._err), self._err)
        self._backend = b[0]
        self.source: str = _SOURCES.get(src[0], str(src[0]))
        """Which rule chose the store: 'db', 'bus', 'default-bus' or 'default-db'."""
        self.where: str = ""
        """Which store it is, for a message ("the store of the daemon at PATH", ...)."""
        if where[0] != ffi.NULL:
            self.where = ffi.string(where[0]).decode()
            lib.hyb_free(where[0])
        sc = ffi.new("hyb_scope **")
        r = lib.hyb_scope_new(self._backend, ffi.NULL, app.encode(), sc)
        if r < 0:
            lib.hyb_backend_unref(self._backend)
            self._backend = ffi.NULL
            check(r)
        self._scope = sc[0]
        # //...: the daemon serving the host store, else the broker of cluster or
        # $HYBRID_CLUSTER (the rule of hyb_bus_scope_open and the hybrid tool)
        if lib.hyb_bus_backend_get_bus(self._backend) != ffi.NULL:
            r = lib.hyb_scope_set_backend(self._scope, _SCOPE_CLUSTER, self._backend)
            if r < 0:
                self.close()
                check(r)
        else:
            url = cluster if cluster is not None else os.environ.get("HYBRID_CLUSTER") or None
            if url is not None:
                cb = ffi.new("hyb_backend **")
                r = lib.hyb_cluster_backend_new(url.encode(), cb, self._err)
                if r >= 0:
                    self._cluster = cb[0]
                    r = lib.hyb_scope_set_backend(self._scope, _SCOPE_CLUSTER, self._cluster)
                if r < 0:
                    self.close()
                    check(r, self._err)

    def __repr__(self) -> str:
        return f"<hybrid.Store {self.source}: {self.where}>"

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Cancels the watches and releases the store (idempotent)."""
        if self._scope == ffi.NULL:
            return
        self.detach()
        for w in list(self._watches):
            w.cancel()
        for q in list(self._aqueues):
            q.put_nowait(_END)  # an awatch iteration ends (it would wait for ever)
        sc, self._scope = self._scope, ffi.NULL
        b, self._backend = self._backend, ffi.NULL
        c, self._cluster = self._cluster, ffi.NULL
        if self._depth > 0:
            # closed by a watch callback: the library is still using them, free on return
            self._free_later = (sc, b, c)
            return
        _release(sc, b, c)

    def _leave(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._free_later is not None:
            sc, b, c = self._free_later
            self._free_later = None
            _release(sc, b, c)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def _sc(self):
        if self._scope == ffi.NULL:
            raise ClosedError(message="the store is closed")
        if self._loop is not None and self._timer is None:
            # an operation may take in messages that no fd will signal again: let the loop
            # deliver them once the caller yields
            self._timer = self._loop.call_soon(self._on_io)
        return self._scope

    def _furi(self, text: str):
        ret = ffi.new("hyb_furi **")
        check(lib.hyb_furi_parse(text.encode(), len(text.encode()), ffi.NULL, ret, self._err),
              self._err)
        return ffi.gc(ret[0], lib.hyb_furi_unref)

    # ------------------------------------------------------------------ operations
    def put(self, furi: str, value: Any, transient: bool = False) -> None:
        """Writes value (by the value mapping) at furi; returns once the store acknowledged
        it.  transient=True notifies the watchers without storing.  None deletes."""
        sc = self._sc()
        f = self._furi(furi)
        o = to_obj(value)
        self._depth += 1
        try:
            check(lib.hyb_scope_write(sc, f, o, _WRITE_TRANSIENT if transient else 0,
                                      self._err), self._err)
        finally:
            lib.hyb_obj_unref(o)
            self._leave()

    def get(self, furi: str) -> Any:
        """Reads furi: a node gives its value or None; a pattern (``+``, ``#``) or a branch
        (``p/``) gives a dict fURI -> value of the matches ({} when none)."""
        sc = self._sc()
        f = self._furi(furi)
        b = ffi.new("hyb_backend **")
        t = ffi.new("hyb_furi **")
        check(lib.hyb_scope_route(sc, f, b, t, self._err), self._err)
        ret = ffi.new("hyb_obj **")
        try:
            check(lib.hyb_backend_read(b[0], t[0], _READ_KEYED, ret, self._err), self._err)
        finally:
            lib.hyb_backend_unref(b[0])
            lib.hyb_furi_unref(t[0])
        try:
            v = from_obj(ret[0])
        finally:
            lib.hyb_obj_unref(ret[0])
        if v is None and _is_pattern(furi):
            return {}
        return v

    def delete(self, furi: str) -> None:
        """Deletes a node, every match of a pattern, or the children of a branch."""
        sc = self._sc()
        f = self._furi(furi)
        self._depth += 1
        try:
            check(lib.hyb_scope_delete(sc, f, 0, self._err), self._err)
        finally:
            self._leave()

    def watch(self, pattern: str, callback: Callable[[Message], Any],
              replay: bool = False) -> Watch:
        """Calls callback(:class:`Message`) for every write, transient write and delete
        matching pattern, in write order; replay=True first delivers the retained values.
        Messages are delivered by :meth:`process` / :meth:`wait` or the attached asyncio
        loop.  Returns a :class:`Watch` (``cancel()``).  A callback that raises is logged
        (logger ``hybrid``) and delivery goes on."""
        w = Watch(self, pattern, callback)
        slot = ffi.new("hyb_slot **")
        check(lib.hyb_scope_subscribe(self._sc(), self._furi(pattern),
                                      _SUBSCRIBE_REPLAY if replay else 0, _on_msg, w.handle,
                                      slot, self._err), self._err)
        w._slot = slot[0]
        lib.hyb_slot_set_destroy_callback(slot[0], _on_destroy)
        # kept by the store while subscribed (a callback that refers to the store makes a
        # cycle the collector frees, its finalizer closing first), by _live once cancelled
        self._watches.add(w)
        self._update()
        return w

    # ------------------------------------------------------------------ delivery
    def fileno(self) -> int:
        """The fd that is readable when :meth:`process` has work (the host store's; see also
        :meth:`cluster_fileno`)."""
        self._sc()
        return check(lib.hyb_backend_get_fd(self._backend))

    def cluster_fileno(self) -> Optional[int]:
        """The fd of the MQTT backend that serves ``//...`` on the embedded store (readable
        when :meth:`process` has its messages to deliver), or None (no such backend: a
        daemon serves ``//...``, or none is named).  :meth:`wait` and :meth:`attach` watch
        it beside :meth:`fileno`."""
        self._sc()
        if self._cluster == ffi.NULL:
            return None
        return check(lib.hyb_backend_get_fd(self._cluster))

    def process(self) -> int:
        """Delivers what is ready without blocking; returns the rounds that did work."""
        sc = self._sc()
        n = 0
        self._depth += 1
        try:
            while self._scope != ffi.NULL:  # a callback may close the store
                r = lib.hyb_scope_process(sc)
                if r < 0:
                    self._raise_kept()
                    check(r)
                if r == 0:
                    break
                n += 1
        finally:
            self._leave()
        self._raise_kept()
        return n

    def _raise_kept(self) -> None:
        e, self._exc = self._exc, None
        if e is not None:
            raise e

    def _timeout_ms(self) -> Optional[int]:
        best = None
        for be in (self._backend, self._cluster):
            if be == ffi.NULL:
                continue
            lib.hyb_backend_get_timeout(be, self._u64)
            t = self._u64[0]
            if t != _UINT64_MAX and (best is None or t < best):
                best = t
        if best is None:
            return None
        return max(0, math.ceil((best - lib.hyb_now_usec()) / 1000))

    def wait(self, timeout: Optional[float] = None) -> int:
        """Waits until the store has something to deliver (at most timeout seconds; None:
        no limit), then delivers it as :meth:`process` does."""
        n = self.process()
        if n:
            return n
        p = select.poll()
        p.register(self.fileno(), select.POLLIN)
        cfd = self.cluster_fileno()
        if cfd is not None:
            p.register(cfd, select.POLLIN)
        t = self._timeout_ms()
        if timeout is not None and not timeout >= math.inf:
            # at most timeout seconds (a negative one is no wait, as for select(): poll()
            # would take it for no limit); NaN raises
            lim = 0 if timeout <= 0 else math.ceil(timeout * 1000)
            t = lim if t is None else min(t, lim)
        p.poll(t)
        return self.process()

    def attach(self, loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
        """Lets an asyncio loop (default: the running one) deliver the watch messages."""
        loop = loop or asyncio.get_running_loop()
        if self._loop is loop:
            return
        self.detach()
        self._watch(loop)
        cfd = self.cluster_fileno()
        if cfd is not None:
            loop.add_reader(cfd, self._on_io)
            self._cfd = cfd

    def detach(self) -> None:
        """Undoes :meth:`attach`."""
        loop, cfd, self._cfd = self._loop, self._cfd, -1
        if cfd >= 0 and loop is not None and not loop.is_closed():
            loop.remove_reader(cfd)
        self._unwatch()

    def _on_io(self) -> None:
        self._timer = None
        if self._scope == ffi.NULL:
            return
        try:
            self.process()
        except Error as e:
            # the store failed (a daemon that went away: HYB_E_CLOSED): stop watching its
            # fd and end the awatch iterators with the error
            self.detach()
            for q in list(self._aqueues):
                q.put_nowait(e)
            return
        self._update()

    def _update(self) -> None:
        loop = self._loop
        if loop is None or self._backend == ffi.NULL:
            return
        self._want_writer(bool(lib.hyb_backend_get_events(self._backend) & _EVENT_OUT))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        t = self._timeout_ms()
        if t is not None:
            self._timer = loop.call_later(t / 1000, self._on_io)

    async def awatch(self, pattern: str, replay: bool = False) -> AsyncIterator[Message]:
        """``async for msg in store.awatch("/a/#", replay=True)``: the messages of a watch
        as an async iterator (the store is attached to the running loop).  When the store
        fails (its daemon went away) the iteration raises the error
        (:class:`hybrid.ClosedError`)."""
        q: "asyncio.Queue[Any]" = asyncio.Queue()
        self.attach()
        w = self.watch(pattern, q.put_nowait, replay)
        self._aqueues.add(q)
        try:
            loop = asyncio.get_running_loop()
            loop.call_soon(self._on_io)  # replayed values may be ready already
            while True:
                m = await q.get()
                if m is _END:
                    return
                if isinstance(m, BaseException):
                    raise m
                yield m
        finally:
            self._aqueues.discard(q)
            w.cancel()
