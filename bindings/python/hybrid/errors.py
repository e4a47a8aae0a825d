# SPDX-License-Identifier: MIT
"""Exceptions of the binding.

Every failure of libhybrid raises :class:`Error` or a subclass chosen by the bus status
(``Forbidden`` for 403, ``Timeout`` for 504, ...) or, for the library's own codes, by the code
(``ClosedError`` for ``HYB_E_CLOSED``, ...).  Each carries ``status`` (the bus status number, as
``hyb_err_to_status`` gives it), ``code`` (the symbolic name ``hyb_err_name`` gives, e.g.
``'HYB_E_FORBIDDEN'``, or an errno name such as ``'ENOENT'``) and ``message``.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Type

from ._ffi import ffi, lib


class Error(Exception):
    """A libhybrid error: ``Error(status, code, message)``.

    Subclasses have a fixed status and code, so ``Forbidden("not for you")`` works too; a
    procedure that raises one answers its caller with that status and message.
    """

    status: int = 500
    code: str = "HYB_E_INTERNAL"

    def __init__(self, status: Any = None, code: Optional[str] = None,
                 message: Optional[str] = None) -> None:
        if isinstance(status, str) and code is None and message is None:
            status, message = None, status
        if status is not None:
            self.status = int(status)
        if code is not None:
            self.code = code
        elif status is not None and type(self).status != self.status:
            self.code = ffi.string(lib.hyb_err_name(lib.hyb_err_from_status(self.status))).decode()
        self.message = message if message is not None else ""
        super().__init__(self.status, self.code, self.message)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}" if self.message else \
            f"{self.status} {self.code}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, " \
            f"message={self.message!r})"


def _cls(name: str, status: int, code: str, doc: str,
         base: Type[Error] = Error) -> Type[Error]:
    return type(name, (base,), {"status": status, "code": code, "__doc__": doc})


BadRequest = _cls("BadRequest", 400, "HYB_E_BAD_REQUEST", "400: bad arguments (e.g. a policy).")
Unauthorized = _cls("Unauthorized", 401, "HYB_E_UNAUTHORIZED", "401: credentials refused.")
Forbidden = _cls("Forbidden", 403, "HYB_E_FORBIDDEN", "403: not allowed (access lists, policy).")
NotFound = _cls("NotFound", 404, "HYB_E_NOT_FOUND", "404: no such endpoint, method or bubble.")
NotAcceptable = _cls("NotAcceptable", 406, "HYB_E_NOT_ACCEPTABLE", "406: a bad name.")
Conflict = _cls("Conflict", 409, "HYB_E_CONFLICT", "409: already registered or connected.")
Gone = _cls("Gone", 410, "HYB_E_GONE", "410: the call was cancelled.")
TooLarge = _cls("TooLarge", 413, "HYB_E_TOO_LARGE", "413: a body or value too large.")
TooManyRequests = _cls("TooManyRequests", 429, "HYB_E_TOO_MANY", "429: a quota is reached.")
InternalError = _cls("InternalError", 500, "HYB_E_INTERNAL", "500: the callee failed.")
NotImplementedOnBus = _cls("NotImplementedOnBus", 501, "HYB_E_NOT_IMPLEMENTED", "501.")
BadCallee = _cls("BadCallee", 502, "HYB_E_BAD_CALLEE", "502: the callee went away.")
Unavailable = _cls("Unavailable", 503, "HYB_E_UNAVAILABLE", "503: no daemon, or no store there.")
Timeout = _cls("Timeout", 504, "HYB_E_CALLEE_TIMEOUT", "504: the deadline passed.")
InsufficientStorage = _cls("InsufficientStorage", 507, "HYB_E_INSUFFICIENT_STORAGE",
                           "507: a memory or storage quota of the daemon.")
ClosedError = _cls("ClosedError", 500, "HYB_E_CLOSED", "The connection is closed.")
# The library's codes with a 4xx status (hyb_err_to_status) are kinds of that status's class:
# `except hybrid.BadRequest` also catches a fURI that does not parse.
ParseError = _cls("ParseError", 400, "HYB_E_PARSE", "400: syntax error (a fURI, an obj, mm-ADT).",
                  BadRequest)
LimitError = _cls("LimitError", 413, "HYB_E_LIMIT", "413: a limit is exceeded.", TooLarge)
TypeMismatch = _cls("TypeMismatch", 400, "HYB_E_TYPE", "400: a type mismatch.", BadRequest)
ScopeError = _cls("ScopeError", 500, "HYB_E_SCOPE", "No store serves that scope.")
IntOverflow = _cls("IntOverflow", 500, "HYB_E_OVERFLOW", "Integer overflow.")
DatabaseError = _cls("DatabaseError", 500, "HYB_E_DATABASE", "A store database error.")
ProtocolError = _cls("ProtocolError", 500, "HYB_E_PROTOCOL", "A protocol error.")
BudgetError = _cls("BudgetError", 500, "HYB_E_BUDGET", "mm-ADT instruction budget exhausted.")
AuthError = _cls("AuthError", 500, "HYB_E_AUTH",
                 "The peer did not authenticate: a wss:// server's certificate does not verify, "
                 "does not name the host, or is not the pinned key.")

_BY_STATUS: Dict[int, Type[Error]] = {c.status: c for c in (
    BadRequest, Unauthorized, Forbidden, NotFound, NotAcceptable, Conflict, Gone, TooLarge,
    TooManyRequests, InternalError, NotImplementedOnBus, BadCallee, Unavailable, Timeout,
    InsufficientStorage)}
_BY_CODE: Dict[str, Type[Error]] = {c.code: c for c in (
    ClosedError, ParseError, LimitError, TypeMismatch, ScopeError, IntOverflow, DatabaseError,
    ProtocolError, BudgetError, AuthError)}


def error_for(code: int, message: str = "", status: Optional[int] = None) -> Error:
    """The exception for a libhybrid return code (< 0) or, with status, a bus status."""
    name = ffi.string(lib.hyb_err_name(code)).decode()
    st = status if status is not None else lib.hyb_err_to_status(code)
    cls = _BY_CODE.get(name) or _BY_STATUS.get(st) or Error
    if not message:
        message = ffi.string(lib.hyb_strerror(code)).decode("utf-8", "replace")
    return cls(st, name, message)


def check(r: int, err: Any = None) -> int:
    """Raises the exception for r when r < 0 (message from the hyb_error err); returns r."""
    if r < 0:
        msg = ""
        if err is not None and err.code != 0:
            msg = ffi.string(err.message).decode("utf-8", "replace")
        raise error_for(r, msg)
    return r
