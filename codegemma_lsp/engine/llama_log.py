"""llama.cpp's own log, routed into Python ``logging`` and kept for error messages.

llama.cpp explains a failed load only in its log ("invalid magic characters",
"unknown model architecture"); the Python binding then raises a bare "Failed to
load model from file". Worse, ``Llama(verbose=False)`` points file descriptors
1 and 2 at /dev/null while it loads, so the log that llama.cpp writes to
stderr by default is lost. This module installs a log callback instead:

- every line goes to the logger ``codegemma_lsp.llama`` (llama.cpp's info and
  debug at DEBUG, its warnings at INFO, its errors at WARNING: the caller
  decides what is an error for the user);
- the last warning and error lines are kept, so a load failure can name its
  real reason (:meth:`LlamaLog.problems_since`, :func:`failure_reason`);
- while a load runs, lines are held back and logged after it
  (:meth:`LlamaLog.deferred`), since a handler writing to stderr would write
  to /dev/null then.

The callback is process-wide (``llama_log_set`` also sets ggml's). Importing
``llama_cpp`` installs llama-cpp-python's own callback (``llama_cpp._logger``),
so :func:`install` imports ``llama_cpp`` first and then replaces it; ``Llama(verbose=...)``
only changes the level of llama-cpp-python's logger and does not reinstall it.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

logger = logging.getLogger("codegemma_lsp.llama")

# enum ggml_log_level in ggml.h as built. llama-cpp-python's _logger.py still has
# an older order (INFO=1 ... DEBUG=4) and so misreads every level.
_GGML_NONE, _GGML_DEBUG, _GGML_INFO, _GGML_WARN, _GGML_ERROR, _GGML_CONT = range(6)
_TO_LOGGING = {
    _GGML_NONE: logging.DEBUG,
    _GGML_INFO: logging.DEBUG,
    _GGML_WARN: logging.INFO,
    _GGML_ERROR: logging.WARNING,
    _GGML_DEBUG: logging.DEBUG,
}
_PROBLEM_LEVELS = frozenset({_GGML_WARN, _GGML_ERROR})


class LlamaLog:
    """Assembles llama.cpp's log fragments into lines and remembers recent problems."""

    def __init__(self, capacity: int = 64) -> None:
        self._lock = threading.Lock()
        self._partial = ""
        self._partial_level = _GGML_INFO
        self._serial = itertools.count(1)
        self._last_serial = 0
        self._problems: collections.deque[tuple[int, int, str]] = collections.deque(maxlen=capacity)
        self._held: list[tuple[int, str]] | None = None
        self.aborting: Callable[[], bool] | None = None
        """True while a decode is being aborted on purpose: its error lines go to DEBUG."""

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold log records back until the block ends, then log them in order."""
        with self._lock:
            self._held = []
        try:
            yield
        finally:
            with self._lock:
                self._flush_partial()
                held, self._held = self._held or [], None
            for level, line in held:
                logger.log(level, "%s", line)

    def mark(self) -> int:
        """A position in the log; pass it to :meth:`problems_since` later."""
        with self._lock:
            return self._last_serial

    def problems_since(self, mark: int, *, errors_only: bool = False) -> list[str]:
        """Warning and error lines (or only error lines) logged after ``mark``, oldest first."""
        wanted = {_GGML_ERROR} if errors_only else _PROBLEM_LEVELS
        with self._lock:
            self._flush_partial()
            return [
                line for serial, level, line in self._problems if serial > mark and level in wanted
            ]

    def feed(self, level: int, text: str) -> None:
        """Take one fragment as llama.cpp passes it; a line ends at ``\\n``."""
        with self._lock:
            if level != _GGML_CONT:
                if self._partial:
                    self._flush_partial()
                self._partial_level = level
            self._partial += text
            while "\n" in self._partial:
                line, self._partial = self._partial.split("\n", 1)
                self._emit(self._partial_level, line)

    def _flush_partial(self) -> None:
        if self._partial:
            line, self._partial = self._partial, ""
            self._emit(self._partial_level, line)

    def _emit(self, level: int, line: str) -> None:
        line = line.rstrip()
        if not line.strip(" ."):  # progress dots
            return
        self._last_serial = next(self._serial)
        logging_level = _TO_LOGGING.get(level, logging.DEBUG)
        if level in _PROBLEM_LEVELS:
            if self.aborting is not None and self.aborting():
                # A cancelled decode: llama.cpp reports the abort as a failure, but it is none.
                logging_level = logging.DEBUG
            else:
                self._problems.append((self._last_serial, level, line))
        if self._held is not None:
            self._held.append((logging_level, line))
        elif logger.isEnabledFor(logging_level):
            logger.log(logging_level, "%s", line)


# Lines that only say that loading failed, not why.
_GENERIC_FAILURES = ("failed to load model", "error loading model: llama_model_loader: failed")


def failure_reason(problems: list[str]) -> str | None:
    """The informative part of llama.cpp's warning and error lines for a failed load.

    ``"llama_model_load: error loading model: unknown model architecture: 'x'"``
    becomes ``"unknown model architecture: 'x'"``; lines that only say that
    the load failed are dropped. None if nothing informative is left.
    """
    reasons: list[str] = []
    for line in problems:
        if any(generic in line for generic in _GENERIC_FAILURES):
            continue
        reason = _strip_function_name(line).removeprefix("error loading model: ").strip()
        if reason and reason not in reasons:
            reasons.append(reason)
    return "; ".join(reasons) or None


def _strip_function_name(line: str) -> str:
    """Drop llama.cpp's ``function_name: `` prefix."""
    head, sep, rest = line.partition(": ")
    return rest if sep and head.isidentifier() else line


_installed: LlamaLog | None = None
# ctypes frees a callback object that Python no longer references, and llama.cpp
# would then call freed memory, so the module keeps it alive.
_callback: Any = None
_install_lock = threading.Lock()


def install(capacity: int = 64) -> LlamaLog:
    """Route llama.cpp's log through :class:`LlamaLog` (once per process) and return it."""
    global _installed, _callback
    with _install_lock:
        if _installed is not None:
            return _installed
        import llama_cpp

        log = LlamaLog(capacity)

        def on_log(level: int, text: bytes | None, _user_data: ctypes.c_void_p) -> None:
            # An exception here cannot propagate into C; ctypes would print it to stderr.
            with contextlib.suppress(Exception):
                log.feed(level, (text or b"").decode("utf-8", errors="replace"))

        _callback = llama_cpp.llama_log_callback(on_log)
        llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
        _installed = log
        return log
