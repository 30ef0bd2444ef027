"""Giving freed memory back to the system.

Requests on a big file allocate and free hundreds of megabytes a second (its text, its
bytes, the tree-sitter nodes of each reparse), and two things keep that memory from the
system after the requests are done:

- a request cancelled mid-flight leaves a reference cycle (its CancelledError's traceback
  holds the frames that hold the request's snapshot, whose future holds the error), and
  only a full garbage collection frees it: Python counts objects, not bytes, so it runs
  that rarely, while each cycle holds a megabyte of text (227 MB in 199 of them, measured);
- glibc keeps what is freed inside its heaps and returns pages only from a heap's top:
  344 MB held, 19 MB of it in use, after a few seconds of typing into a 1 MB file.

:func:`release_free_memory` does both: a full collection, then ``malloc_trim``. The
inference worker calls it after its jobs, at most every :data:`MIN_INTERVAL_S`, and once
more when it runs out of work (:func:`release_free_memory_soon`), so what the last
requests of a burst left is returned too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
import threading
import time
from collections.abc import Callable

MIN_INTERVAL_S = 2.0
"""The least time between two releases: a full collection holds the GIL for some tens of
milliseconds, and the trim walks every heap."""


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    found: Callable[[int], int] = trim
    return found


_trim = _malloc_trim()
_lock = threading.Lock()
_last = float("-inf")
_pending: threading.Timer | None = None


def release_free_memory(*, clock: Callable[[], float] = time.monotonic) -> bool:
    """Free unreachable cycles and return the C heap's free pages to the system, unless
    that was done less than :data:`MIN_INTERVAL_S` ago; whether it was done."""
    global _last
    with _lock:
        now = clock()
        if now - _last < MIN_INTERVAL_S:
            return False
        _last = now
    gc.collect()
    if _trim is not None:
        _trim(0)  # ctypes lets go of the GIL for the call
    return True


_timer: Callable[[float, Callable[[], None]], threading.Timer] = threading.Timer
"""Makes the deferred release's timer; tests replace it so nothing waits on the clock."""


def release_free_memory_soon() -> None:
    """:func:`release_free_memory` now, or once :data:`MIN_INTERVAL_S` allows it."""
    global _pending
    with _lock:
        wait = _last + MIN_INTERVAL_S - time.monotonic()
        if wait > 0:
            if _pending is None:
                _pending = _timer(wait, _release_pending)
                _pending.daemon = True
                _pending.start()
            return
    release_free_memory()


def _release_pending() -> None:
    global _pending
    with _lock:
        _pending = None
    release_free_memory()
