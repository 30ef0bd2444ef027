"""One inference thread; the newest request for a key (a document) wins.

llama.cpp holds one context, so generations run one at a time on a single
thread, off the event loop. Submitting a job for a key cancels the job that key
already had queued or running: its cancel flag is set, and the backend stops
within one token or one prompt batch. Background jobs (pre-warming a prompt,
precomputing the next suggestion) give way to any foreground job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from codegemma_lsp.engine.base import CancelToken

T = TypeVar("T")


class InferenceWorker:
    def __init__(self, on_cancel_latency: Callable[[float], None] | None = None) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codegemma-inference")
        self._lock = threading.Lock()
        self._latest: dict[str, CancelToken] = {}
        self._background: set[str] = set()
        self._on_cancel_latency = on_cancel_latency

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
                    old.cancel()
            self._latest[key] = token
            if background:
                self._background.add(key)

        def run() -> T:
            started = time.perf_counter()
            try:
                return job(token)
            finally:
                stopped = time.perf_counter()
                with self._lock:
                    if self._latest.get(key) is token:
                        del self._latest[key]
                        self._background.discard(key)
                # How long a cancelled job went on working after its cancel (a job
                # cancelled while queued stops as soon as it starts).
                if token.cancelled_at is not None and self._on_cancel_latency is not None:
                    self._on_cancel_latency((stopped - max(token.cancelled_at, started)) * 1000)

        return self._executor.submit(run), token

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
