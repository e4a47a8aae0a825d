# SPDX-License-Identifier: MIT
"""mm-ADT programs: ``hybrid.mmadt.run("{1..3}.plus(1)") == [2, 3, 4]``."""
from __future__ import annotations

from typing import Any, List, Optional

from ._ffi import ffi, lib
from .errors import ClosedError, check
from .values import from_obj

__all__ = ["VM", "run"]


class VM:
    """An mm-ADT VM for repeated use.  store: a :class:`hybrid.Store` whose scopes the
    programs read and write (None: a memory store private to the VM).  program names the
    program (``~/`` is ``/home/<program>/``).  budget bounds the instructions of each
    statement (None: the library's default)."""

    def __init__(self, store: Any = None, program: str = "python",
                 budget: Optional[int] = None) -> None:
        self._store = store
        scope = store._sc() if store is not None else ffi.NULL
        ret = ffi.new("hyb_mmadt **")
        check(lib.hyb_mmadt_new(scope, program.encode(), ffi.NULL, ret))
        self._vm = ret[0]
        self._err = ffi.new("hyb_error *")
        if budget is not None:
            check(lib.hyb_mmadt_set_budget(self._vm, budget))

    def run(self, src: str) -> List[Any]:
        """Compiles and runs src; returns the results of every statement, in order (by the
        value mapping).  Raises ``ParseError`` (with line and column in the message),
        ``BudgetError`` and the other errors of a run."""
        if self._vm == ffi.NULL:
            raise ClosedError(message="the VM is closed")
        text = src.encode()
        ret = ffi.new("hyb_obj **")
        check(lib.hyb_mmadt_eval(self._vm, text, len(text), ffi.NULL, ret, self._err),
              self._err)
        try:
            v = from_obj(ret[0])
        finally:
            lib.hyb_obj_unref(ret[0])
        if v is None:
            return []
        return v if isinstance(v, list) else [v]

    def close(self) -> None:
        """Halts what the VM started and frees it (idempotent)."""
        vm, self._vm = self._vm, ffi.NULL
        if vm != ffi.NULL:
            lib.hyb_mmadt_unref(vm)

    def __enter__(self) -> "VM":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<hybrid.mmadt.VM{' closed' if self._vm == ffi.NULL else ''}>"


def run(src: str, store: Any = None) -> List[Any]:
    """Runs src on a fresh VM (over store, or a private memory store) and returns its
    results as a list."""
    with VM(store) as vm:
        return vm.run(src)
