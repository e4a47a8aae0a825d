# SPDX-License-Identifier: MIT
"""hybrid: Python binding of libhybrid (the hybrid data bus, the fURI store, mm-ADT and
security tokens), cffi in ABI mode over ``libhybrid.so.0``.

    import hybrid
    with hybrid.Bus(socket=path, app="org.example.py") as bus:
        bus.call("@localhost/org.hybridos.bus/builtin", "echo", {"words": "hi"})

See doc/python.md of the libhybrid sources.
"""
from . import mmadt, token
from ._ffi import ffi as _ffi, lib as _lib
from .bus import Bus, CallInfo, Event, Procedure, Subscription, current_call
from .errors import (AuthError, BadCallee, BadRequest, BudgetError, ClosedError, Conflict,
                     DatabaseError, Error, Forbidden, Gone, InsufficientStorage, InternalError,
                     IntOverflow, LimitError, NotAcceptable, NotFound, NotImplementedOnBus,
                     ParseError, ProtocolError, ScopeError, Timeout, TooLarge, TooManyRequests,
                     TypeMismatch, Unauthorized, Unavailable)
from .store import Message, Store, Watch
from .values import Code, Typed, Uri

__version__ = "0.1.0"
library_version: str = _ffi.string(_lib.hyb_version()).decode()
"""The version of the loaded libhybrid."""

__all__ = [
    "Bus", "Event", "Procedure", "Subscription", "CallInfo", "current_call", "Store", "Message", "Watch", "Uri", "Typed",
    "Code",
    "mmadt", "token", "Error", "BadRequest", "Unauthorized", "Forbidden", "NotFound",
    "NotAcceptable", "Conflict", "Gone", "TooLarge", "TooManyRequests", "InternalError",
    "NotImplementedOnBus", "BadCallee", "Unavailable", "Timeout", "InsufficientStorage",
    "ClosedError", "ParseError", "LimitError", "TypeMismatch", "ScopeError", "IntOverflow",
    "DatabaseError", "ProtocolError", "BudgetError", "AuthError",
]
