# SPDX-License-Identifier: MIT
"""The data bus client: :class:`Bus`.

A Bus is one connection to hybridd, authenticated as ``@localhost/<app>/<runner>``.  Use it
from one thread at a time (as the C connection); :meth:`Bus.stop` alone may be called from
another thread.  Callbacks (procedures, event subscribers) run from :meth:`Bus.run`,
:meth:`Bus.process`, a synchronous :meth:`Bus.call`'s wait, or the asyncio loop the bus is
attached to; no lock of the binding is held while they run, so they may use the bus.
"""
from __future__ import annotations

import asyncio
import contextvars
import errno
import inspect
import math
import os
import select
import weakref
from typing import Any, Awaitable, Callable, Dict, Optional, Set, Tuple

from ._conn import ConnOptions
from ._ffi import ffi, lib
from ._util import FdWatch, report
from .errors import ClosedError, Error, check, error_for
from .values import INT64_MAX as _INT64_MAX, INT64_MIN as _INT64_MIN
from .values import _esc, _frepr, _irepr, _scan_plain, from_json, to_json

__all__ = ["Bus", "Event", "Subscription", "Procedure", "CallInfo", "current_call"]

_BODY_BINARY = 1
_EVENT_CLUSTER = 1  # HYB_EVENT_CLUSTER
_EVENT_OUT = 0x004
_UINT64_MAX = (1 << 64) - 1
_NOARG: Any = object()

# Python type -> hyb_json_type of an argument policy (include/hybrid/endpoint.h)
_JSON_TYPES = {str: 1, int: 2, float: 3, bool: 4, dict: 5, list: 6, type(None): 7,
               None: 7, object: 0, Any: 0}

# The functions of the call path, looked up once.
_call_prepared = lib.hyb_bus_call_prepared
_REPLY_BUF = 16384  # replies up to this size come in the Bus's buffer (hyb_bus_call_prepared)
_reply_get_body = lib.hyb_bus_reply_get_body
_reply_unref = lib.hyb_bus_reply_unref
# ffi.unpack, ffi.from_handle, ffi.string and ffi.new_handle are Python wrappers of these functions of
# the cffi backend (a frame each): called directly on the call path
try:
    import _cffi_backend as _cb
    _unpack = _cb.unpack
    _from_handle = _cb.from_handle
    _string = _cb.string
    _VOIDP = ffi.typeof("void *")
    _newp_handle = _cb.newp_handle
    _cb_direct = True
except (ImportError, AttributeError):  # pragma: no cover - another cffi backend
    _unpack = ffi.unpack
    _from_handle = ffi.from_handle
    _string = ffi.string
    _cb_direct = False
_call_async = lib.hyb_bus_call_async
_get_events = lib.hyb_bus_get_events
_get_timeout = lib.hyb_bus_get_timeout
_reply_get_status = lib.hyb_bus_reply_get_status
_reply_is_binary = lib.hyb_bus_reply_is_binary
_process = lib.hyb_bus_process
_slot_unref = lib.hyb_slot_unref

# Objects whose handle C holds (userdata of a slot or of a pending call) and nothing else
# keeps alive: a pending call, and a slot cancelled while C may still hold it, until the
# slot's destroy callback (or the reply) says C dropped it.  A registered slot is kept by
# its Bus (bus._slots) instead: a procedure whose function refers to its bus then makes a
# cycle the collector frees (the Bus's finalizer closes the connection first, which
# destroys the slots while their handles are still there), not one rooted here for ever.
_live: Set[Any] = set()


@ffi.callback("void(void *)")
def _on_destroy(ud):
    _live.discard(ffi.from_handle(ud))


def _body(ptr, n: int, binary: bool) -> Any:
    if binary:
        return _unpack(ptr, n)
    return from_json(_unpack(ptr, n)) if n else None


class CallInfo:
    """Who made the call a procedure is serving (:func:`hybrid.current_call`).

    ``caller`` is the calling endpoint's name (``@localhost/<app>/<runner>``, or
    ``@<host>/<app>/<runner>`` for a caller on another host of the cluster), ``method`` the
    procedure called, ``transport`` how the caller reached the bus: ``"unix"`` (the local
    socket), ``"ws"`` / ``"wss"`` (a remote bus client of the WebSocket listener),
    ``"http"`` / ``"https"`` / ``"coap"`` (a request to the daemon's network edge) or
    ``"cluster"`` (another host); ``principal`` is the ``sub`` of the security token the
    caller authenticated with, None when it used none."""

    __slots__ = ("caller", "method", "transport", "principal")

    def __init__(self, caller: str, method: str, transport: str,
                 principal: Optional[str]) -> None:
        self.caller = caller
        self.method = method
        self.transport = transport
        self.principal = principal

    def __repr__(self) -> str:
        return f"CallInfo(caller={self.caller!r}, method={self.method!r}, " \
            f"transport={self.transport!r}, principal={self.principal!r})"


class _Running:
    """The request a procedure is serving, as current_call() finds it (through a context
    variable, so an async procedure's task sees it too); req is NULL once answered."""

    __slots__ = ("req", "info")

    def __init__(self, req) -> None:
        self.req = req
        self.info: Optional[CallInfo] = None


_running: "contextvars.ContextVar[Optional[_Running]]" = contextvars.ContextVar(
    "hybrid_running_call", default=None)


def _no_nul(name: str) -> None:
    """Raises ValueError for a name with a NUL: the library reads names as C strings, so
    "ec\\0ho" would name "ec" (as os.open() refuses an embedded null byte)."""
    if "\0" in name:
        raise ValueError(f"embedded null character in the name {name!r}")


def _str(p) -> Optional[str]:
    return ffi.string(p).decode("utf-8", "replace") if p != ffi.NULL else None


def current_call() -> Optional[CallInfo]:
    """The :class:`CallInfo` of the call the running procedure serves: inside a procedure
    function (also an ``async def`` one, until it answers) and what it calls; None
    elsewhere."""
    r = _running.get()
    if r is None or r.req == ffi.NULL:
        return None
    if r.info is None:
        req = r.req
        tp = ffi.new("const char *[2]")
        lib.hyb_bus_request_get_caller_principal(req, tp, tp + 1)
        r.info = CallInfo(_str(lib.hyb_bus_request_get_caller(req)) or "",
                          _str(lib.hyb_bus_request_get_method(req)) or "",
                          _str(tp[0]) or "unix", _str(tp[1]))
    return r.info


class Event:
    """An event as a subscriber gets it: ``source`` (the generator endpoint), ``bubble`` and
    ``data`` (the body decoded by the JSON mapping; ``bytes`` for a binary body)."""

    __slots__ = ("source", "bubble", "data")

    def __init__(self, source: str, bubble: str, data: Any) -> None:
        self.source = source
        self.bubble = bubble
        self.data = data

    def __repr__(self) -> str:
        return f"Event(source={self.source!r}, bubble={self.bubble!r}, data={self.data!r})"


class _Slot:
    """A registration holding a hyb_slot; unregistering unrefs it.  It refers to its bus
    weakly: a Bus dropped without close() is still freed (and closed) by the collector."""

    def __init__(self, bus: "Bus") -> None:
        self._bus = weakref.ref(bus)
        self._slot = ffi.NULL
        self._held = False
        self.handle = ffi.new_handle(self)

    @property
    def bus(self) -> "Bus":
        b = self._bus()
        if b is None:
            raise ClosedError(message="the bus is gone")
        return b

    def _own(self, slot, with_handle: bool = True) -> None:
        self._slot = slot
        self._held = with_handle
        if with_handle:  # C holds our handle as the slot's userdata until it is destroyed
            lib.hyb_slot_set_destroy_callback(slot, _on_destroy)
        self.bus._slots.add(self)  # which keeps us (and our handle) while registered

    def cancel(self) -> None:
        """Unregisters (idempotent)."""
        slot, self._slot = self._slot, ffi.NULL
        if slot != ffi.NULL:
            if self._held:
                _live.add(self)  # until C's destroy callback, maybe later than the unref
            b = self._bus()
            if b is not None:
                b._slots.discard(self)
            lib.hyb_slot_unref(slot)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()


class Subscription(_Slot):
    """An event subscription (:meth:`Bus.subscribe`); :meth:`cancel` unsubscribes."""

    def __init__(self, bus: "Bus", endpoint_glob: str, bubble_glob: str,
                 callback: Callable[[Event], Any]) -> None:
        super().__init__(bus)
        self.endpoint_glob = endpoint_glob
        self.bubble_glob = bubble_glob
        self.callback = callback

    def __repr__(self) -> str:
        return f"<Subscription {self.endpoint_glob!r} {self.bubble_glob!r}" \
            f"{'' if self._slot != ffi.NULL else ' cancelled'}>"


class Procedure(_Slot):
    """A procedure served by this bus (:meth:`Bus.procedure`); :meth:`cancel` revokes it."""

    def __init__(self, bus: "Bus", name: str, fn: Callable[..., Any]) -> None:
        super().__init__(bus)
        self.name = name
        self.fn = fn
        # The keyword arguments fn takes (None: any, it has **kwargs): members of the params
        # object it does not name are left out, as the policy allows keys it does not list.
        self.accepts: Optional[Set[str]] = None
        try:
            ps = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            return
        if not any(p.kind is p.VAR_KEYWORD for p in ps):
            self.accepts = {p.name for p in ps
                            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def __repr__(self) -> str:
        b = self._bus()
        return f"<Procedure {self.name!r} of {b.name if b is not None else None!r}>"


class _EventBubble(_Slot):
    def __init__(self, bus: "Bus", bubble: str) -> None:
        super().__init__(bus)
        self.bubble = bubble


class _PendingCall:
    """An acall in flight: its future, the handle C holds as userdata, and the call's slot
    (unref'd when the awaiting acall resumes: before the reply, that cancels the call)."""

    __slots__ = ("bus", "future", "handle", "slot", "__weakref__")

    def __init__(self, bus: "Bus", future: "asyncio.Future[Any]") -> None:
        self.bus = bus
        self.future = future
        self.handle = _newp_handle(_VOIDP, self) if _cb_direct else ffi.new_handle(self)
        self.slot = ffi.NULL

    def release(self) -> None:
        """The acall resumes (a reply, an error, or its task was cancelled): drop the slot;
        if the reply has not come, that cancels the call (the daemon tells the callee) and
        the reply callback never runs.  Runs from the loop, never from inside the library's
        callback."""
        slot, self.slot = self.slot, ffi.NULL
        if slot:
            _slot_unref(slot)
        b = self.bus
        b._pending.discard(self)
        if self.future.cancelled() and b._loop is not None and b._bus:
            b._update()  # the cancel is queued output


class _Deferred:
    """An async procedure's request while its coroutine runs (the cancel handler's
    userdata): a cancelled call (deadline, caller gone) cancels the task."""

    __slots__ = ("task", "handle")

    def __init__(self) -> None:
        self.task: Optional["asyncio.Task[Any]"] = None
        self.handle = ffi.new_handle(self)


@ffi.callback("void(hyb_bus_request *, void *)")
def _on_cancel(_req, ud):
    d = ffi.from_handle(ud)
    if d.task is not None and not d.task.done():
        d.task.cancel()


def _reply_error(req, status: int, message: str) -> None:
    """Answers with an error status; a status that is not 4xx/5xx, or one the library
    refuses, becomes 500 with the same message: a raised error never answers a success."""
    msg = message.encode("utf-8", "replace")
    if not 400 <= status <= 599:
        status = 500
    r = lib.hyb_bus_request_reply_error(req, status, msg)
    if r == -errno.EINVAL or (r < 0 and status != 500 and
                              r not in (-errno.EALREADY, lib.hyb_err_from_status(410))):
        lib.hyb_bus_request_reply_error(req, 500, msg)


@ffi.callback("int(hyb_bus_request *, void *)")
def _on_method(req, ud):
    proc = _from_handle(ud)
    try:
        proc.bus._serve(proc, req)
    except BaseException as e:  # never let an exception cross the C frame
        proc.bus._keep_exc(e, f"procedure {proc.name}")
    return 0


@ffi.callback("void(hyb_bus *, const hyb_bus_event *, void *)")
def _on_event(_bus, ev, ud):
    sub = _from_handle(ud)
    try:
        n = sub.bus._lenp
        body = lib.hyb_bus_event_get_body(ev, n)
        event = Event(_string(lib.hyb_bus_event_get_source(ev)).decode(),
                      _string(lib.hyb_bus_event_get_bubble(ev)).decode(),
                      _body(body, n[0], lib.hyb_bus_event_is_binary(ev)))
        sub.callback(event)
    except BaseException as e:
        sub.bus._keep_exc(e, f"event callback of {sub!r}")


@ffi.callback("void(hyb_bus *, const hyb_bus_reply *, void *)")
def _on_reply(_bus, reply, ud):
    pc = _from_handle(ud)
    fut = pc.future
    if fut.done() or fut.get_loop().is_closed():
        return  # (a loop closed with the call pending: nobody awaits it)
    try:
        if 200 <= _reply_get_status(reply) <= 299:  # Bus._reply_value's success, inline
            lenp = pc.bus._lenp
            body = _reply_get_body(reply, lenp)
            n = lenp[0]
            if _reply_is_binary(reply):
                fut.set_result(_unpack(body, n))
            elif not n:
                fut.set_result(None)
            else:
                # values.from_json, inline as in Bus.call
                text = _unpack(body, n).decode()
                if '"@' not in text:
                    try:
                        v, end = _scan_plain(text, 0)
                    except StopIteration:
                        v, end = None, -1
                    if end == len(text):
                        fut.set_result(v)
                        return
                fut.set_result(from_json(text))
        else:
            fut.set_result(pc.bus._reply_value(reply))  # raises the status's error
    except BaseException as e:
        fut.set_exception(e)


class Bus(FdWatch):
    """A connection to hybridd (``hyb_bus_connect_with``).

    ``Bus(socket=None, app="org.example.py", runner=None, token=None, key=None, *,
    ca_file=None, pin=None)``:
    socket None uses ``$HYBRID_BUS``, else the default socket; socket may also be a remote
    broker's URL, ``ws://HOST:PORT/bus/ws`` or ``wss://HOST:PORT/bus/ws`` (a token is then
    required).  runner None is ``p<pid>``; token (the token text or a file holding it) and
    key (a :class:`hybrid.token.Key` or the path of the holder's private key file) connect
    with a security token.  For ``wss://``, ca_file (a PEM file of the CA certificates to
    trust) and/or pin (the SHA-256 of the server's public key, base64 or hex) verify the
    server; with neither, ``$HYBRID_CA`` and ``$HYBRID_PIN`` do.  Raises
    :class:`hybrid.Error` subclasses: ``Unavailable`` (no daemon), ``Unauthorized``
    (credentials refused), ``Forbidden`` (this uid may not claim the app), ``Conflict``,
    ``AuthError`` (the server's certificate does not verify or is not the pinned key),
    ``BadRequest`` (``EINVAL``: a malformed URL or pin, wss:// with nothing to verify by).
    A context manager; :meth:`close` ends the connection.
    """

    # The binding's own state in slots: a call reads and writes a dozen of these, and slot
    # access stays the interpreter's fast path however many there are (an instance dict's
    # shared keys stop being shared past about 30 names, and every access then looks the
    # name up).  Instances keep a __dict__ (FdWatch has none of these slots): name, app and
    # runner live there, and users may add attributes as before.
    __slots__ = ("_bus", "_err", "_lenp", "_args", "_rba", "_rbuf", "_slotp", "_u64",
                 "_cstrs", "_ctarget", "_ep", "_me", "_slots", "_events", "_pending", "_tasks",
                 "_exc", "_depth", "_free_later", "_stop", "_loop", "_writer", "_fd", "_timer",
                 "_timer_at", "_run_fut", "_wake_r", "_wake_w")

    def __init__(self, socket: Any = None, app: str = "", runner: Optional[str] = None,
                 token: Any = None, key: Any = None, *, ca_file: Any = None,
                 pin: Optional[str] = None) -> None:
        self._bus = ffi.NULL
        self._err = ffi.new("hyb_error *")
        self._lenp = ffi.new("size_t *")
        # the reply buffer of call(): a bytearray, read by slicing it
        self._rba = bytearray(_REPLY_BUF)
        self._rbuf = ffi.from_buffer(self._rba)
        # call()'s arguments that do not change (the connection, the reply buffer) and its
        # results, for hyb_bus_call_prepared: a cffi call costs ~400 instructions an argument
        a = self._args = ffi.new("hyb_bus_call_args *")
        a.size = ffi.sizeof("hyb_bus_call_args")
        a.buf = self._rbuf
        a.buf_size = _REPLY_BUF
        self._slotp = ffi.new("hyb_slot **")
        self._u64 = ffi.new("uint64_t *")
        self._cstrs: Dict[str, bytes] = {}
        self._ctarget: Dict[str, Any] = {}
        self._ep: Optional[str] = None  # call()'s last target, in self._args
        self._me: Optional[str] = None
        self._slots: Set[_Slot] = set()
        self._events: Dict[str, _EventBubble] = {}
        self._pending: Set[_PendingCall] = set()
        self._tasks: Set["asyncio.Task[Any]"] = set()
        self._exc: Optional[BaseException] = None
        self._depth = 0
        self._free_later = False
        self._stop = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._writer = False
        self._fd = -1
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_at = -1
        self._run_fut: Optional["asyncio.Future[None]"] = None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        opts = ConnOptions(socket, app, runner, token, key, ca_file, pin)
        ret = ffi.new("hyb_bus **")
        r = lib.hyb_bus_connect_with(opts.ptr, ret, self._err)
        if r < 0:
            os.close(self._wake_r)
            os.close(self._wake_w)
            check(r, self._err)
        self._bus = self._args.bus = ret[0]
        self.name: str = ffi.string(lib.hyb_bus_get_endpoint_name(self._bus)).decode()
        """This connection's endpoint name, ``@localhost/<app>/<runner>``."""
        self.app = app
        self.runner = opts.runner

    # ------------------------------------------------------------------ basics
    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<hybrid.Bus {self.name!r} {state}>"

    def __enter__(self) -> "Bus":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    async def __aenter__(self) -> "Bus":
        self.attach()
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        """True while the connection is open."""
        return self._bus != ffi.NULL and bool(lib.hyb_bus_is_open(self._bus))

    def close_reason(self) -> Tuple[int, str]:
        """(status, message) the daemon gave when it closed us, or (0, "")."""
        if self._bus == ffi.NULL:
            return (0, "")
        m = ffi.new("const char **")
        st = lib.hyb_bus_get_close_reason(self._bus, m)
        return (st, ffi.string(m[0]).decode() if st and m[0] != ffi.NULL else "")

    def _closed_error(self) -> Error:
        st, msg = self.close_reason()
        return ClosedError(message=f"connection closed ({st} {msg})" if st else
                           "connection closed")

    def _ptr(self):
        if self._bus == ffi.NULL:
            raise ClosedError(message="the bus is closed")
        if not lib.hyb_bus_is_open(self._bus):
            raise self._closed_error()
        return self._bus

    def fileno(self) -> int:
        """The connection's socket, to watch for input (``select``, selectors...)."""
        return check(lib.hyb_bus_get_fd(self._ptr()))

    def _target(self, endpoint: str, method: str) -> None:
        """Sets call()'s target in the prepared arguments (kept until a call to another).
        The C strings live in _ctarget, which is only emptied here, before the new target's
        are made, and never while a call waits (depth > 0): the library borrows a call's
        strings until it returns (a call on a direct channel may be sent again through the
        broker), so those of a call a handler interrupts stay in it too."""
        cs = self._ctarget
        try:
            ep = cs[endpoint]
            me = cs[method]
        except KeyError:
            _no_nul(endpoint)
            _no_nul(method)
            if len(cs) > 256 and not self._depth:
                cs.clear()
            ep = cs[endpoint] = ffi.new("char[]", endpoint.encode())
            me = cs[method] = ffi.new("char[]", method.encode())
        a = self._args
        a.endpoint = ep
        a.method = me
        self._ep = endpoint
        self._me = method

    def _c(self, s: str) -> bytes:
        b = self._cstrs.get(s)
        if b is None:
            _no_nul(s)
            if len(self._cstrs) > 256:
                self._cstrs.clear()
            b = self._cstrs[s] = s.encode()
        return b

    def _keep_exc(self, e: BaseException, what: str) -> None:
        if isinstance(e, Exception):
            report(e, what)
        elif self._exc is None:
            self._exc = e  # KeyboardInterrupt, SystemExit: raised once back in Python

    def _raise_kept(self) -> None:
        e, self._exc = self._exc, None
        if e is not None:
            raise e

    # ------------------------------------------------------------------ close
    def close(self) -> None:
        """Closes the connection (idempotent).  Pending asynchronous calls fail with
        :class:`hybrid.ClosedError`; registrations are dropped."""
        if self._bus == ffi.NULL:
            return
        err = self._closed_error() if not self.is_open else ClosedError(
            message="the bus was closed")
        try:
            self._detach()  # while the fd is still ours
            lib.hyb_bus_close(self._bus)
            # futures of a loop that is closed already raise here (call_soon): the
            # connection is still freed below
            self._fail_pending(err)
            if self._run_fut is not None and not self._run_fut.done():
                self._run_fut.set_result(None)
        finally:
            self._stop = True
            self._wake()
            if self._depth > 0:
                self._free_later = True  # inside a dispatch: free when it returns
            else:
                self._free()

    def _free(self) -> None:
        self._free_later = False
        for s in list(self._slots):
            s.cancel()
        self._events.clear()
        b, self._bus = self._bus, ffi.NULL
        self._args.bus = ffi.NULL
        lib.hyb_bus_unref(b)
        self._pending.clear()  # C holds none of their handles any more
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1

    def __del__(self) -> None:
        try:
            if getattr(self, "_bus", ffi.NULL) != ffi.NULL and self._depth == 0:
                self.close()
        except Exception:
            pass

    def _fail_pending(self, err: Error) -> None:
        for pc in list(self._pending):
            if not pc.future.done():
                try:
                    pc.future.set_exception(err)
                except RuntimeError:
                    pass  # its loop is closed: nobody awaits it any more

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, limit: int = 1 << 30) -> int:
        """Runs hyb_bus_process until idle (or limit rounds); returns the rounds done."""
        n = 0
        self._depth += 1
        try:
            while n < limit and self._bus:
                r = _process(self._bus)
                if r < 0:
                    self._on_lost()
                    break
                if r == 0:
                    break
                n += 1
        finally:
            self._depth -= 1
            if self._depth == 0 and self._free_later:
                self._free()
        return n

    def _on_lost(self) -> None:
        self._fail_pending(self._closed_error())
        self._detach()
        if self._run_fut is not None and not self._run_fut.done():
            self._run_fut.set_result(None)

    def process(self) -> int:
        """Does the pending work without blocking: sends queued output, reads and
        dispatches what arrived (replies, calls, events), expires deadlines.  Returns the
        number of packets handled (0: idle)."""
        self._ptr()
        n = self._dispatch()
        self._raise_kept()
        return n

    def _timeout_ms(self) -> Optional[int]:
        lib.hyb_bus_get_timeout(self._bus, self._u64)
        t = self._u64[0]
        if t == _UINT64_MAX:
            return None
        return max(0, math.ceil((t - lib.hyb_now_usec()) / 1000))

    def run(self) -> None:
        """Serves the bus (calls, events, replies) until :meth:`stop` or :meth:`close` is
        called or the daemon closes the connection (at once when it is closed already)."""
        if not self.is_open:
            return
        self._stop = False
        fd = self.fileno()
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        while not self._stop and self.is_open:
            self._dispatch()
            self._raise_kept()
            if self._stop or not self.is_open:
                break
            mask = select.POLLIN
            if lib.hyb_bus_get_events(self._bus) & _EVENT_OUT:
                mask |= select.POLLOUT
            poller.register(fd, mask)
            poller.poll(self._timeout_ms())
            try:
                while os.read(self._wake_r, 64):
                    pass
            except (BlockingIOError, OSError):
                pass
        self._stop = False

    def _wake(self) -> None:
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass

    def stop(self) -> None:
        """Makes :meth:`run` (or :meth:`arun`) return; may be called from any thread and
        from callbacks."""
        self._stop = True
        self._wake()
        loop, fut = self._loop, self._run_fut
        if loop is not None and fut is not None:
            def done() -> None:
                if not fut.done():
                    fut.set_result(None)
            try:
                loop.call_soon_threadsafe(done)
            except RuntimeError:
                pass

    # ------------------------------------------------------------------ asyncio
    def attach(self, loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
        """Lets an asyncio loop (default: the running one) drive the connection: its fd is
        watched with ``loop.add_reader`` and the library's deadline with ``loop.call_at``.
        Done by :meth:`acall` and :meth:`arun` on their own."""
        loop = loop or asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is not None:
            self._detach()
        self._watch(loop)

    def _detach(self) -> None:
        self._unwatch()
        self._timer_at = -1

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = -1
        self._on_io()

    def _on_io(self) -> None:
        if not self._bus:
            return
        # _dispatch(256), inline: this runs once a loop turn
        n = 0
        self._depth += 1
        try:
            while n < 256 and self._bus:
                r = _process(self._bus)
                if r <= 0:
                    if r < 0:
                        self._on_lost()
                    break
                n += 1
        finally:
            self._depth -= 1
            if self._depth == 0 and self._free_later:
                self._free()
        if n == 256 and self._loop is not None:
            self._loop.call_soon(self._on_io)  # let other tasks run, then go on
        self._update()
        if self._exc is not None:
            self._raise_kept()

    def _update_out(self) -> None:
        """Watches the fd for output while the library has output queued."""
        self._want_writer(bool(lib.hyb_bus_get_events(self._bus) & _EVENT_OUT))

    def _update(self) -> None:
        loop = self._loop
        bus = self._bus
        if loop is None or not bus:
            return
        ev = _get_events(bus)
        if ev < 0:  # closed (as hyb_bus_is_open says)
            return
        if ev & _EVENT_OUT:  # _update_out, inline
            if not self._writer:
                self._want_writer(True)
        elif self._writer:
            self._want_writer(False)
        u64 = self._u64
        _get_timeout(bus, u64)
        t = u64[0]
        # A timer that fires earlier than needed is harmless (it looks again), so it is only
        # moved forward and left to run out when no deadline is left: a stream of acalls
        # does not arm and cancel one each.
        if t != _UINT64_MAX and (self._timer is None or t < self._timer_at):
            if self._timer is not None:
                self._timer.cancel()
            delay = max(0.0, (t - lib.hyb_now_usec()) / 1e6)
            self._timer = loop.call_at(loop.time() + delay, self._on_timer)
            self._timer_at = t

    async def arun(self) -> None:
        """Serves the bus from the running asyncio loop until :meth:`stop` or
        :meth:`close` (or the daemon closes the connection)."""
        self.attach()
        if not self.is_open:
            return
        self._run_fut = asyncio.get_running_loop().create_future()
        try:
            await self._run_fut
        finally:
            self._run_fut = None

    # ------------------------------------------------------------------ calls
    def _encode(self, params: Any) -> Tuple[bytes, int]:
        if params is _NOARG:
            return b"{}", 0
        if isinstance(params, (bytes, bytearray, memoryview)):
            return bytes(params), _BODY_BINARY
        return to_json(params), 0

    @staticmethod
    def _ms(timeout: Optional[float]) -> int:
        if timeout is None:
            return 0
        if not timeout > 0:  # also NaN
            raise ValueError("timeout must be > 0 seconds")
        if math.isinf(timeout):
            return 0xFFFFFFFF  # the longest deadline the protocol carries (about 49 days)
        return min(max(1, math.ceil(timeout * 1000)), 0xFFFFFFFF)

    def _check_call(self, r: int, err: Any = None, status: int = 0) -> None:
        """Raises for a failed call: ClosedError when the connection is gone (however the
        library noticed: a 502 for the lost callee, EPIPE, HYB_E_CLOSED), else by r."""
        if r in (-errno.EPIPE, -errno.ECONNRESET) and self.is_open and self._depth == 0:
            # the write saw the hang-up first: let the library read the rest (the daemon's
            # reason, then the end of the stream) so the error says why
            for _ in range(4):
                if self._dispatch(1) == 0 and not self.is_open:
                    break
        if not self.is_open and r != lib.hyb_err_from_status(504):
            e = self._closed_error()
            if err is not None and err.code != 0:
                e.message += ": " + ffi.string(err.message).decode("utf-8", "replace")
            raise e
        if status:
            # the answer's own status, also one without a code of its own (418 stays 418)
            msg = ffi.string(err.message).decode("utf-8", "replace") if err is not None else ""
            raise error_for(r, msg, status)
        check(r, err)

    def _reply_value(self, reply) -> Any:
        st = _reply_get_status(reply)
        if st < 200 or st > 299:
            code = lib.hyb_bus_reply_get_error(reply)
            msg = ffi.string(lib.hyb_bus_reply_get_message(reply)).decode("utf-8", "replace")
            if st == 502 and not self.is_open:
                raise self._closed_error()
            raise error_for(code, msg, st)
        lenp = self._lenp
        body = _reply_get_body(reply, lenp)
        n = lenp[0]
        if _reply_is_binary(reply):
            return _unpack(body, n)
        return from_json(_unpack(body, n)) if n else None

    def call(self, endpoint: str, method: str, params: Any = _NOARG,
             timeout: Optional[float] = None) -> Any:
        """Calls ``method`` of ``endpoint`` and waits for the answer.

        params (default ``{}``) is sent as JSON by the value mapping (``bytes``: a binary
        body); timeout is the deadline in seconds the daemon enforces (None: 30 s).
        Returns the reply body decoded (``bytes`` for a binary body).  Raises
        :class:`hybrid.Error` subclasses by status: ``NotFound``, ``Forbidden``,
        ``BadRequest``, ``Timeout`` (504), ``BadCallee``, ... or ``ClosedError``.
        While it waits, the calls and events that arrive are dispatched.
        """
        bus = self._bus
        if not bus:  # a NULL cdata pointer is false
            raise ClosedError(message="the bus is closed")
        # The common body, a flat dict of str keys and plain scalars, is checked and written
        # here in one walk (values._flat_json, inline: a Python call less); the rest, and any
        # error (NaN, an int beyond int64), goes through to_json.
        if type(params) is dict:
            flags = 0
            s = sep = ""
            for k, x in params.items():
                t = type(x)
                if type(k) is not str:
                    body = to_json(params)
                    break
                if t is str:
                    s = f"{s}{sep}{_esc(k)}:{_esc(x)}"
                elif t is int and _INT64_MIN <= x <= _INT64_MAX:
                    s = f"{s}{sep}{_esc(k)}:{_irepr(x)}"
                elif t is bool:
                    s = f"{s}{sep}{_esc(k)}:{'true' if x else 'false'}"
                elif x is None:
                    s = f"{s}{sep}{_esc(k)}:null"
                elif t is float and x - x == 0.0:  # finite
                    s = f"{s}{sep}{_esc(k)}:{_frepr(x)}"
                else:
                    body = to_json(params)
                    break
                sep = ","
            else:
                # a key starting with @ needs the @rec form (values._prep)
                body = f"{{{s}}}".encode() if '"@' not in s else to_json(params)
        elif params is _NOARG:
            body, flags = b"{}", 0
        elif type(params) is list:
            body, flags = to_json(params), 0
        else:
            body, flags = self._encode(params)
        a = self._args
        if endpoint != self._ep or method != self._me:
            self._target(endpoint, method)
        # The struct's flags and deadline are 0 between calls: a plain call (JSON, the default
        # deadline) leaves them so; one with a binary body or a timeout sets them and puts
        # them back.  A call made by a handler during another call's wait (depth > 0) finds
        # the outer call's values there and sets its own.
        if flags or timeout is not None or self._depth:
            # _ms raises for a bad timeout: before the struct is touched, so no flag of
            # this refused call is left there for the next
            ms = self._ms(timeout) if timeout is not None else 0
            a.flags = flags
            a.timeout_ms = ms
            self._depth += 1
            r = _call_prepared(a, body, len(body))
            self._depth -= 1
            a.flags = 0
            a.timeout_ms = 0
            if self._free_later and self._depth == 0:
                self._free()
        else:  # depth 0: the common call, not made from inside a dispatch
            self._depth = 1
            r = _call_prepared(a, body, len(body))
            self._depth = 0
            if self._free_later:
                self._free()
        if self._exc is not None:
            if r >= 0 and a.ret_len > _REPLY_BUF:
                _reply_unref(a.ret_reply)
            self._raise_kept()
        if self._loop is not None:
            self._update()  # the wait may have read packets no fd will signal again
        if r < 0:
            self._check_call(r, a.err, a.status)
        # On success r is the reply body's flags (HYB_BODY_BINARY or 0); the body is in the
        # buffer when it fits (the reply pointer is then NULL); a longer one is handed over
        # in ret_reply.
        n = a.ret_len
        if n > _REPLY_BUF:
            return self._long_reply(n, r)
        if r:
            return bytes(self._rba[:n])
        if not n:
            return None
        # values.from_json, inline for JSON text with no @-member, read whole by the scanner
        text = self._rba[:n].decode()
        if '"@' not in text:
            try:
                v, end = _scan_plain(text, 0)
            except StopIteration:
                return from_json(text)  # raises the decoder's error
            if end == len(text):
                return v
        return from_json(text)

    def _long_reply(self, n: int, flags: int) -> Any:
        """The reply of a successful call whose body did not fit the Bus's buffer."""
        reply = self._args.ret_reply
        try:
            data = _unpack(_reply_get_body(reply, self._lenp), n)
        finally:
            _reply_unref(reply)
        if flags & _BODY_BINARY:
            return data
        return from_json(data)

    async def acall(self, endpoint: str, method: str, params: Any = _NOARG,
                    timeout: Optional[float] = None) -> Any:
        """As :meth:`call`, without blocking the asyncio loop (``hyb_bus_call_async``);
        attaches the bus to the running loop."""
        loop = self._loop
        # attached to the running loop already?  A Bus is used from one thread, so a running
        # loop it is attached to is the one running this coroutine (is_running() costs less
        # than get_running_loop(), which asks the kernel for the pid).
        if loop is None or not loop.is_running():
            self._ptr()
            self.attach()
            loop = self._loop
        bus = self._bus
        if not bus:
            raise ClosedError(message="the bus is closed")
        if type(params) is dict:
            body, flags = to_json(params), 0
        else:
            body, flags = self._encode(params)
        # The same look-up of the names' C strings as in call, written out again on purpose:
        # a method both share (ep, me = self._names(...)) costs each call of call about 600
        # instructions more in callgrind (of ~24 000 a Python echo call; measured against a
        # real hybridd and bench-bindings serve), for 7 lines.
        cs = self._cstrs
        try:
            ep = cs[endpoint]
            me = cs[method]
        except KeyError:
            ep = self._c(endpoint)
            me = self._c(method)
        fut = loop.create_future()
        pc = _PendingCall(self, fut)
        slot = self._slotp
        r = _call_async(bus, ep, me, body, len(body), flags,
                        self._ms(timeout) if timeout is not None else 0, _on_reply, pc.handle,
                        slot)
        if r < 0:
            self._check_call(r)
        pc.slot = slot[0]
        self._pending.add(pc)
        # arms the timer for the library's earliest local deadline (an O(1) look)
        self._update()
        try:
            return await fut
        finally:  # here rather than a done callback of fut: one loop callback less a call
            pc.release()

    def call_builtin(self, method: str, params: Any = _NOARG,
                     timeout: Optional[float] = None) -> Any:
        """Calls a builtin method of the daemon (``@localhost/org.hybridos.bus/builtin``)."""
        return self.call("@localhost/org.hybridos.bus/builtin", method, params, timeout)

    # ------------------------------------------------------------------ procedures
    def procedure(self, name: str, args: Optional[Dict[str, Any]] = None,
                  for_host: Optional[str] = None, for_app: Optional[str] = None
                  ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: serves the function as procedure ``name`` of this endpoint
        (``hyb_endpoint_register_method``).

        args is the argument policy the library checks before the function runs (a wrong
        or missing argument is answered 400): ``{"a": int, "b": int}`` with types among
        ``str int float bool dict list None object`` (``float`` accepts any number,
        ``object`` any value); ``(type, False)`` makes a key optional.  for_host / for_app
        are access lists (callers not matching get 403).

        The function gets the params object's members as keyword arguments (members it
        does not name are left out unless it takes ``**kwargs``; a params body that is not
        an object is passed as one positional argument).  It may return a
        value (the reply body), raise :class:`hybrid.Error` (its status and message go
        back), raise anything else (500 with the message; the error is logged and the bus
        keeps serving) or be ``async def`` (the reply is sent when it completes; the bus
        must then be driven by asyncio: :meth:`arun` or :meth:`attach`).
        """
        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.register_procedure(name, fn, args, for_host, for_app)
            return fn
        return deco

    def register_procedure(self, name: str, fn: Callable[..., Any],
                           args: Optional[Dict[str, Any]] = None,
                           for_host: Optional[str] = None,
                           for_app: Optional[str] = None) -> Procedure:
        """The function form of :meth:`procedure`; returns the :class:`Procedure`
        (``cancel()`` revokes it)."""
        bus = self._ptr()
        args = args or {}
        pol = ffi.new("hyb_arg_policy[]", max(1, len(args)))
        keep = []
        for i, (k, spec) in enumerate(args.items()):
            required = True
            if isinstance(spec, tuple):
                spec, required = spec
            if spec not in _JSON_TYPES:
                raise TypeError(f"argument {k!r}: unsupported policy type {spec!r}")
            kc = ffi.new("char[]", k.encode())
            keep.append(kc)
            pol[i].key = kc
            pol[i].type = _JSON_TYPES[spec]
            pol[i].required = 1 if required else 0
        proc = Procedure(self, name, fn)
        slot = ffi.new("hyb_slot **")
        r = lib.hyb_endpoint_register_method(
            bus, name.encode(), pol, len(args),
            for_host.encode() if for_host else ffi.NULL,
            for_app.encode() if for_app else ffi.NULL, 0, _on_method, proc.handle, slot,
            self._err)
        check(r, self._err)
        proc._own(slot[0])
        return proc

    def _serve(self, proc: Procedure, req) -> None:
        running = _Running(req)
        token = _running.set(running)
        deferred = False
        try:
            # deferred: the request stays valid until the coroutine answers
            deferred = self._call_fn(proc, req, running)
        finally:
            _running.reset(token)
            if not deferred:
                running.req = ffi.NULL

    def _call_fn(self, proc: Procedure, req, running: _Running) -> bool:
        """Runs the procedure's function; True when its answer is deferred (a coroutine)."""
        body = lib.hyb_bus_request_get_body(req, self._lenp)
        try:
            params = _body(body, self._lenp[0], lib.hyb_bus_request_is_binary(req))
            if isinstance(params, dict):
                acc = proc.accepts
                if acc is not None and not acc.issuperset(params):
                    params = {k: v for k, v in params.items() if k in acc}
                result = proc.fn(**params)
            elif params is None:
                result = proc.fn()
            else:
                result = proc.fn(params)
            if inspect.isawaitable(result):
                return self._defer(proc, req, result, running)
        except Error as e:
            _reply_error(req, e.status, e.message)
            return False
        except Exception as e:
            report(e, f"procedure {proc.name}")
            _reply_error(req, 500, f"{type(e).__name__}: {e}")
            return False
        except BaseException as e:
            _reply_error(req, 500, type(e).__name__)
            raise
        self._answer(proc, req, result)
        return False

    def _answer(self, proc: Procedure, req, result: Any) -> None:
        try:
            body, flags = self._encode(result) if result is not None else (b"null", 0)
        except (TypeError, ValueError, OverflowError) as e:
            report(e, f"procedure {proc.name} (its result)")
            _reply_error(req, 500, f"cannot encode the result: {e}")
            return
        lib.hyb_bus_request_reply(req, 200, body, len(body), flags)

    def _defer(self, proc: Procedure, req, aw: Awaitable[Any], running: _Running) -> bool:
        loop = self._loop
        if loop is None:
            if inspect.iscoroutine(aw):
                aw.close()
            lib.hyb_bus_request_reply_error(
                req, 500, b"async procedure: the bus is not driven by asyncio (use arun)")
            return False
        lib.hyb_bus_request_ref(req)
        d = _Deferred()
        lib.hyb_bus_request_set_cancel_handler(req, _on_cancel, d.handle)

        async def finish() -> None:
            try:
                try:
                    result = await aw
                except Error as e:
                    _reply_error(req, e.status, e.message)
                except Exception as e:
                    report(e, f"procedure {proc.name}")
                    _reply_error(req, 500, f"{type(e).__name__}: {e}")
                else:
                    self._answer(proc, req, result)
            finally:
                running.req = ffi.NULL
                lib.hyb_bus_request_set_cancel_handler(req, ffi.NULL, ffi.NULL)
                lib.hyb_bus_request_unref(req)
                d.task = None
                if self._bus != ffi.NULL:
                    self._update()

        task = loop.create_task(finish())  # copies the context: current_call() works there
        d.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    # ------------------------------------------------------------------ events
    def register_event(self, bubble: str, for_host: Optional[str] = None,
                       for_app: Optional[str] = None, *, cluster: bool = False) -> None:
        """Registers event bubble ``bubble`` of this endpoint; for_host / for_app are the
        access lists of its subscribers.  With cluster=True each fire also goes to the
        other hosts of the daemon's cluster (``HYB_EVENT_CLUSTER``); a daemon that is not
        in a cluster refuses that with :class:`hybrid.NotImplementedOnBus` (501).
        :meth:`revoke_event` undoes it."""
        ev = _EventBubble(self, bubble)
        slot = ffi.new("hyb_slot **")
        check(lib.hyb_bus_register_event_flags(self._ptr(), bubble.encode(),
                                               for_host.encode() if for_host else ffi.NULL,
                                               for_app.encode() if for_app else ffi.NULL,
                                               _EVENT_CLUSTER if cluster else 0, slot,
                                               self._err), self._err)
        ev._own(slot[0], with_handle=False)
        self._events[bubble] = ev

    def revoke_event(self, bubble: str) -> None:
        """Revokes a bubble (subscribers get LostEventBubble)."""
        ev = self._events.pop(bubble, None)
        if ev is not None:
            ev.cancel()

    def fire(self, bubble: str, data: Any = None, confirm: bool = False
             ) -> Optional[Tuple[int, int]]:
        """Fires a registered bubble with data (JSON by the mapping; ``bytes``: binary).
        One-way by default; with confirm=True waits for the daemon's counts and returns
        (delivered, failed) (``NotFound`` when the bubble is not registered)."""
        body, flags = self._encode(data)
        if not confirm:
            check(lib.hyb_bus_fire(self._ptr(), self._c(bubble), body, len(body), flags,
                                   ffi.NULL, ffi.NULL))
            self._update()
            return None
        d = ffi.new("uint32_t[2]")
        check(lib.hyb_bus_fire(self._ptr(), self._c(bubble), body, len(body), flags, d,
                               d + 1))
        return (d[0], d[1])

    def subscribe(self, endpoint_glob: str, bubble_glob: str,
                  callback: Callable[[Event], Any]) -> Subscription:
        """Calls callback(:class:`Event`) for each event of the bubbles matching the globs
        (``*`` and ``?``, also bubbles that appear later).  Returns a
        :class:`Subscription` (``cancel()`` unsubscribes).  A callback that raises is
        logged (logger ``hybrid``) and the bus goes on."""
        sub = Subscription(self, endpoint_glob, bubble_glob, callback)
        slot = ffi.new("hyb_slot **")
        check(lib.hyb_bus_subscribe(self._ptr(), endpoint_glob.encode(), bubble_glob.encode(),
                                    _on_event, sub.handle, slot, self._err), self._err)
        sub._own(slot[0])
        return sub
