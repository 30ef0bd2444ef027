"""Leaving nothing behind: watch the editor's process, and exit on time.

An editor that crashes or is killed may never send ``exit`` nor close our stdin (a
wrapper can hold the pipe open). :class:`ParentWatchdog` checks the ``processId`` the
client gave in ``initialize`` every few seconds and reports when it is gone.

Once the server decides to stop, the process must be gone within a second, even while
llama.cpp is in the middle of a generation or the event loop is busy:
:func:`arm_exit_deadline` ends the process outright when the orderly path runs late, and
:func:`exit_when_threads_stop` gives worker threads a moment to finish their cancelled
work before doing the same.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

PARENT_CHECK_SECONDS = 3.0


def process_alive(pid: int) -> bool:
    """Whether ``pid`` names a live process (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to someone else
        return True
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # The state follows the command name, which is in parentheses and may hold any byte.
            state = stat.read().rpartition(b")")[2].split()[:1]
    except OSError:  # no /proc (macOS): kill(0) is all there is
        return True
    return state != [b"Z"]


class ParentWatchdog:
    """Calls ``on_gone`` once, on a thread of its own, when ``pid`` is no longer alive.

    A thread rather than a task on the event loop: the check must run even while the loop
    is busy, and ``on_gone`` is expected to be safe to call from any thread.
    """

    def __init__(
        self,
        pid: int,
        on_gone: Callable[[], None],
        *,
        interval: float = PARENT_CHECK_SECONDS,
        alive: Callable[[int], bool] = process_alive,
    ) -> None:
        self.pid = pid
        self._on_gone = on_gone
        self._interval = interval
        self._alive = alive
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="codegemma-watchdog", daemon=True)

    def start(self) -> ParentWatchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if not self._alive(self.pid):
                log.info("the client's process %d is gone; exiting", self.pid)
                self._on_gone()
                return


def hard_exit(code: int) -> None:
    """End the process now, skipping threads that would not stop; logs are flushed first."""
    for stream in [*logging.getLogger().handlers, sys.stderr]:
        with contextlib.suppress(Exception):  # exiting regardless
            stream.flush()
    os._exit(code)


def arm_exit_deadline(
    code: int, seconds: float, *, exit_now: Callable[[int], None] = hard_exit
) -> threading.Timer:
    """End the process with ``code`` after ``seconds`` unless it has ended by then."""

    def late() -> None:
        log.warning("still running %.1f s after the decision to exit; exiting now", seconds)
        exit_now(code)

    timer = threading.Timer(seconds, late)
    timer.name = "codegemma-exit-deadline"
    timer.daemon = True
    timer.start()
    return timer


def exit_when_threads_stop(
    code: int, grace: float, *, exit_now: Callable[[int], None] = hard_exit
) -> int:
    """Wait up to ``grace`` seconds for the other non-daemon threads (which the interpreter
    would join at exit, however long they take), then return ``code``; if some still run,
    end the process instead of waiting for them."""
    deadline = time.monotonic() + grace
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is current or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning("thread %s did not stop within %.1f s; exiting now", thread.name, grace)
            exit_now(code)
            break
    return code
