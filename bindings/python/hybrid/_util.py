# SPDX-License-Identifier: MIT
"""Small helpers: reporting exceptions raised by callbacks; the asyncio side of a
connection's fd, shared by Bus and Store."""
from __future__ import annotations

import asyncio
import logging
from typing import Optional

log = logging.getLogger("hybrid")


def report(exc: BaseException, what: str) -> None:
    """Reports an exception a user callback raised (logger ``hybrid``, level ERROR); the
    loop that ran the callback keeps running."""
    log.error("exception in %s: %s", what, exc, exc_info=exc)


class FdWatch:
    """The asyncio loop a connection is attached to: its fd watched with ``add_reader``
    (and ``add_writer`` while the library has output queued) and a timer for the
    library's deadline.  The class using it defines ``fileno()``, ``_on_io()`` (called
    when the fd is ready) and ``_update()`` (re-reads events and deadline)."""

    _loop: Optional[asyncio.AbstractEventLoop] = None
    _timer: Optional[asyncio.Handle] = None
    _writer = False
    _fd = -1

    def fileno(self) -> int:
        raise NotImplementedError

    def _on_io(self) -> None:
        raise NotImplementedError

    def _update(self) -> None:
        raise NotImplementedError

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watches the fd from loop (the connection must not be attached)."""
        fd = self.fileno()
        self._loop = loop
        self._fd = fd  # remembered: once the library closes the socket it cannot say
        loop.add_reader(fd, self._on_io)
        self._update()

    def _unwatch(self) -> None:
        """Stops watching the fd and cancels the timer (nothing when not attached)."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        fd, self._fd = self._fd, -1
        if fd >= 0 and not loop.is_closed():
            loop.remove_reader(fd)
            if self._writer:
                loop.remove_writer(fd)
        self._writer = False

    def _want_writer(self, want: bool) -> None:
        """Watches the fd for output while want (the library has output queued)."""
        assert self._loop is not None
        if want and not self._writer:
            self._loop.add_writer(self._fd, self._on_io)
            self._writer = True
        elif not want and self._writer:
            self._loop.remove_writer(self._fd)
            self._writer = False
