"""One inference thread; the newest request for a key (a document) wins.

llama.cpp holds one context, so generations run one at a time on a single
thread, off the event loop. Submitting a job for a key cancels the job that key
already had queued or running: its cancel flag is set, and the backend stops
within one token or one prompt batch. A job cancelled before its turn never
runs: its future is cancelled instead, so a storm of superseded requests drains
at no cost. After the jobs, now and then, the memory they freed goes back to
the system (:mod:`codegemma_lsp.engine.heap`). Background jobs
(pre-warming a prompt, precomputing the next suggestion) give way to any
foreground job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from codegemma_lsp.engine.base import CancelToken
from codegemma_lsp.engine.heap import release_free_memory, release_free_memory_soon

T = TypeVar("T")


@dataclass
class WorkerCounts:
    """What the worker did with the jobs it was given (``codegemma/stats`` shows them)."""

    submitted: int = 0
    ran: int = 0
    skipped: int = 0
    """Jobs cancelled before their turn, which never ran."""
    queued: int = 0
    """Jobs submitted and not finished, the running one included."""
    max_queued: int = 0
    running: int = 0
    max_running: int = 0
    """The most jobs that ever ran at once: generations are never concurrent, so 1."""


class InferenceWorker:
    def __init__(self, on_cancel_latency: Callable[[float], None] | None = None) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codegemma-inference")
        self._lock = threading.Lock()
        self._latest: dict[str, CancelToken] = {}
        self._background: set[str] = set()
        self._on_cancel_latency = on_cancel_latency
        self.counts = WorkerCounts()

    def submit(
        self, key: str, job: Callable[[CancelToken], T], *, background: bool = False
    ) -> tuple[Future[T], CancelToken]:
        """Queue ``job``; it receives the token that a newer job for ``key`` will set."""
        token = CancelToken()
        with self._lock:
            superseded = [self._latest.get(key)]
            if not background:
                superseded += [self._latest.get(k) for k in self._background]
            for old in superseded:
                if old is not None:
                    old.supersede()
            self._latest[key] = token
            if background:
                self._background.add(key)
            counts = self.counts
            counts.submitted += 1
            counts.queued += 1
            counts.max_queued = max(counts.max_queued, counts.queued)

        # The caller's future is ours, not the executor's: only a future that has not
        # started can be cancelled, and the job must not start once its token is set.
        future: Future[T] = Future()

        def run() -> None:
            started = time.perf_counter()
            ran = False
            try:
                if token.cancelled:
                    future.cancel()
                elif future.set_running_or_notify_cancel():
                    ran = True
                    self._started()
                    try:
                        future.set_result(job(token))
                    except BaseException as exc:  # handed to whoever awaits the future
                        future.set_exception(exc)
                    finally:
                        with self._lock:
                            self.counts.running -= 1
            finally:
                stopped = time.perf_counter()
                with self._lock:
                    self.counts.queued -= 1
                    idle = self.counts.queued == 0
                    if not ran:
                        self.counts.skipped += 1
                    if self._latest.get(key) is token:
                        del self._latest[key]
                        self._background.discard(key)
                # What the jobs left behind goes back to the system, now and then.
                if idle:
                    release_free_memory_soon()
                elif ran:
                    release_free_memory()
                # How long a cancelled job went on working after its cancel (a job
                # cancelled while queued never ran: ``counts.skipped`` has those).
                if ran and token.cancelled_at is not None and self._on_cancel_latency is not None:
                    self._on_cancel_latency((stopped - max(token.cancelled_at, started)) * 1000)

        def dropped(inner: Future[None]) -> None:
            if inner.cancelled():  # shut down before its turn
                future.cancel()
                with self._lock:
                    self.counts.queued -= 1

        self._executor.submit(run).add_done_callback(dropped)
        return future, token

    def _started(self) -> None:
        with self._lock:
            counts = self.counts
            counts.ran += 1
            counts.running += 1
            counts.max_running = max(counts.max_running, counts.running)

    def run_exclusive(self, job: Callable[[], T]) -> Future[T]:
        """Run work that needs the inference thread to itself (loading a model)."""
        return self._executor.submit(job)

    def cancel(self, key: str) -> None:
        with self._lock:
            token = self._latest.pop(key, None)
            self._background.discard(key)
        if token is not None:
            token.cancel()

    def cancel_all(self) -> None:
        with self._lock:
            tokens = list(self._latest.values())
            self._latest.clear()
            self._background.clear()
        for token in tokens:
            token.cancel()

    def shutdown(self) -> None:
        self.cancel_all()
        self._executor.shutdown(wait=False, cancel_futures=True)
