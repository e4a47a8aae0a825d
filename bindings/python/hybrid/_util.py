# SPDX-License-Identifier: MIT
"""Small helpers: reporting exceptions raised by callbacks."""
from __future__ import annotations

import logging

log = logging.getLogger("hybrid")


def report(exc: BaseException, what: str) -> None:
    """Reports an exception a user callback raised (logger ``hybrid``, level ERROR); the
    loop that ran the callback keeps running."""
    log.error("exception in %s: %s", what, exc, exc_info=exc)
