"""The instruction model's lifecycle: loaded on first use, unloaded after an idle spell.

Generation is asked for now and then, and a 7B model holds gigabytes, so the
model is not loaded with the server: the first request loads it (on the
generation thread, so the request simply takes longer), and
:meth:`InstructionModel.unload_if_idle` frees it once ``idle_unload_s`` seconds
pass without a request. The clock is injected, so tests move time by hand.

Nothing here knows what the model is for: ``factory`` makes an unloaded
backend, anything with ``load()``, ``close()`` and ``ready``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class Loadable(Protocol):
    def load(self) -> None: ...

    def close(self) -> None: ...

    @property
    def ready(self) -> bool: ...


B = TypeVar("B", bound=Loadable)


@dataclass(frozen=True)
class InstructionModelStatus:
    """What ``doctor`` and the logs say about the instruction model."""

    model: str
    loaded: bool
    memory_bytes: int | None
    """While loaded, what the backend says it holds; else the file's size (what loading
    it would take, at least)."""
    idle_s: float | None
    """Seconds since the last use, while loaded."""


class InstructionModel(Generic[B]):
    def __init__(
        self,
        factory: Callable[[], B],
        *,
        name: str,
        path: Path | None = None,
        idle_unload_s: float = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self.name = name
        self.path = path
        self.idle_unload_s = idle_unload_s
        """0 keeps the model loaded until the server stops."""
        self._clock = clock
        self._lock = threading.Lock()
        self._backend: B | None = None
        self._last_used: float | None = None
        self.loads = 0
        """How many times the model was loaded (tests and logs)."""

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    @contextmanager
    def use(self) -> Iterator[B]:
        """The loaded backend, loading it first if needed; held for the block's length.

        A load failure (ModelLoadError) propagates and leaves nothing loaded, so the
        next request tries again.
        """
        with self._lock:
            if self._backend is None:
                started = time.perf_counter()
                backend = self._factory()
                backend.load()
                self._backend = backend
                self.loads += 1
                log.info(
                    "instruction model %s loaded in %.0f ms",
                    self.name,
                    (time.perf_counter() - started) * 1000,
                )
            try:
                yield self._backend
            finally:
                self._last_used = self._clock()

    def unload_if_idle(self) -> bool:
        """Unload the model when it has not been used for ``idle_unload_s``; True if it was.

        A model in use is never idle: this waits for no one.
        """
        if self.idle_unload_s <= 0 or not self._lock.acquire(blocking=False):
            return False
        try:
            if self._backend is None or self._last_used is None:
                return False
            if self._clock() - self._last_used < self.idle_unload_s:
                return False
            self._close_locked()
            log.info(
                "instruction model %s unloaded after %.0f s idle", self.name, self.idle_unload_s
            )
            return True
        finally:
            self._lock.release()

    def seconds_until_idle(self) -> float | None:
        """When :meth:`unload_if_idle` next has something to do; None: nothing is loaded
        (or the model never unloads)."""
        last = self._last_used
        if self._backend is None or last is None or self.idle_unload_s <= 0:
            return None
        return max(0.0, last + self.idle_unload_s - self._clock())

    def close(self) -> None:
        """Unload now, waiting for a generation in progress to finish (it has been cancelled)."""
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        backend, self._backend, self._last_used = self._backend, None, None
        if backend is not None:
            backend.close()

    def status(self) -> InstructionModelStatus:
        backend = self._backend
        memory: int | None = None
        if backend is not None:
            measure = getattr(backend, "memory_bytes", None)
            memory = measure() if callable(measure) else None
        if memory is None and self.path is not None:
            try:
                memory = self.path.stat().st_size
            except OSError:
                memory = None
        last = self._last_used
        idle = self._clock() - last if backend is not None and last is not None else None
        return InstructionModelStatus(self.name, backend is not None, memory, idle)
