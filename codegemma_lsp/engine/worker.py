"""One inference thread; the newest request for a key (a document) wins.

llama.cpp holds one context, so generations run one at a time on a single
thread, off the event loop. Submitting a job for a key cancels the job that key
already had queued or running: its cancel flag is set, and the backend stops
within one token or one prompt batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from codegemma_lsp.engine.base import CancelToken

T = TypeVar("T")


class InferenceWorker:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codegemma-inference")
        self._lock = threading.Lock()
        self._latest: dict[str, CancelToken] = {}

    def submit(self, key: str, job: Callable[[CancelToken], T]) -> tuple[Future[T], CancelToken]:
        """Queue ``job``; it receives the token that a newer job for ``key`` will set."""
        token = CancelToken()
        with self._lock:
            previous = self._latest.get(key)
            if previous is not None:
                previous.cancel()
            self._latest[key] = token

        def run() -> T:
            try:
                return job(token)
            finally:
                with self._lock:
                    if self._latest.get(key) is token:
                        del self._latest[key]

        return self._executor.submit(run), token

    def run_exclusive(self, job: Callable[[], T]) -> Future[T]:
        """Run work that needs the inference thread to itself (loading a model)."""
        return self._executor.submit(job)

    def cancel(self, key: str) -> None:
        with self._lock:
            token = self._latest.pop(key, None)
        if token is not None:
            token.cancel()

    def cancel_all(self) -> None:
        with self._lock:
            tokens = list(self._latest.values())
            self._latest.clear()
        for token in tokens:
            token.cancel()

    def shutdown(self) -> None:
        self.cancel_all()
        self._executor.shutdown(wait=False, cancel_futures=True)
