# SPDX-License-Identifier: MIT
"""Connection options shared by Bus and Store (hyb_bus_connect_options)."""
from __future__ import annotations

import itertools
import os
from typing import Any, List, Optional

from ._ffi import ffi, lib, new_options

_runner_seq = itertools.count()


def default_runner() -> str:
    """``p<pid>`` for the first connection of a process, ``p<pid>_<n>`` for later ones, so
    two connections of one program do not claim the same endpoint name."""
    n = next(_runner_seq)
    return f"p{os.getpid()}" if n == 0 else f"p{os.getpid()}_{n}"


def _token_text(token: Any) -> Optional[bytes]:
    if token is None:
        return None
    if isinstance(token, os.PathLike):
        token = os.fspath(token)
    if isinstance(token, bytes):
        token = token.decode()
    if not isinstance(token, str):
        raise TypeError("token must be the token text or the path of a file holding it")
    if os.path.isfile(token):
        with open(token, "rb") as f:
            return f.read().strip()
    return token.strip().encode()  # the token text itself


class ConnOptions:
    """A filled hyb_bus_connect_options and everything it points to, kept alive together."""

    def __init__(self, socket: Any, app: str, runner: Optional[str], token: Any,
                 key: Any, ca_file: Any = None, pin: Optional[str] = None) -> None:
        from .token import Key  # token.py imports nothing of ours but errors/_ffi

        if not isinstance(app, str) or not app:
            raise TypeError("app must be a non-empty str such as 'org.example.py'")
        self.runner = runner if runner is not None else default_runner()
        self._keep: List[Any] = []
        o = new_options("hyb_bus_connect_options", lib.hyb_bus_connect_options_init_sized)

        def s(v: Any):
            if v is None:
                return ffi.NULL
            c = ffi.new("char[]", os.fsencode(v) if not isinstance(v, str) else v.encode())
            self._keep.append(c)
            return c

        o.path = s(os.fspath(socket) if socket is not None else None)
        o.app = s(app)
        o.runner = s(self.runner)
        tok = _token_text(token)
        if tok is not None:
            o.token = s(tok)
        if key is not None:
            k = key if isinstance(key, Key) else Key.load(key)
            self._keep.append(k)
            o.key = k._ptr
        elif tok is not None:
            raise TypeError("a token needs key= (the holder's private key, a Key or a path)")
        # wss:// only: how the server's certificate is verified (the library ignores them
        # for other sockets; with neither it reads $HYBRID_CA and $HYBRID_PIN)
        if ca_file is not None:
            o.ca_file = s(os.fspath(ca_file))
        if pin is not None:
            if not isinstance(pin, str):
                raise TypeError("pin must be a str: the SHA-256 of the server's public key "
                                "(base64, 'sha256//' allowed, or 64 hex digits)")
            o.pin = s(pin)
        self.ptr = o
