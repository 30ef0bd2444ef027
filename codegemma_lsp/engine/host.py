"""Choosing a backend from the settings, and loading it without blocking the server.

The host is the one owner of the live backend. It loads on the inference thread
(so no generation can run against a half-loaded model) and reports each state
change through a callback: the server turns those into ``$/progress``,
``codegemma/status`` and ``window/showMessage``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from codegemma_lsp.config import ModelSettings
from codegemma_lsp.engine.base import Backend, EngineError, ModelLoadError
from codegemma_lsp.engine.fake import FakeBackend, ScriptedBackend
from codegemma_lsp.engine.worker import InferenceWorker

log = logging.getLogger(__name__)

HostState = Literal["unconfigured", "loading", "ready", "error"]


@dataclass(frozen=True)
class HostStatus:
    state: HostState
    model: str
    message: str = ""


def make_backend(settings: ModelSettings, *, snapshot_mb: int = 256) -> Backend:
    """The backend the settings ask for; raises ModelLoadError for a bad choice."""
    kind = settings.backend
    if kind == "fake" or kind.startswith("fake:"):
        # ``fake:SECONDS`` spreads a delay over the fake's tokens, to exercise cancellation.
        delay = kind.partition(":")[2]
        try:
            return FakeBackend(delay_s=float(delay or 0), tokens=50)
        except ValueError:
            raise ModelLoadError(f"bad fake backend delay {delay!r}: use fake:SECONDS") from None
    if kind.startswith("scripted:"):
        return ScriptedBackend(Path(kind.removeprefix("scripted:")).expanduser())
    if kind == "llama":
        if not settings.path:
            raise ModelLoadError(
                "no model configured: set model.path (or pass --model FILE) "
                "to a CodeGemma GGUF file"
            )
        from codegemma_lsp.engine.llama_backend import LlamaBackend

        return LlamaBackend(
            model_path=Path(settings.path),
            n_ctx=settings.n_ctx,
            n_threads=settings.threads or None,
            n_batch=settings.batch,
            use_mmap=settings.mmap,
            snapshot_bytes=snapshot_mb << 20,
        )
    raise ModelLoadError(f"unknown backend {kind!r}: use llama, fake[:SECONDS] or scripted:PATH")


def describe(settings: ModelSettings) -> str:
    if settings.backend == "llama":
        return Path(settings.path).name if settings.path else "(no model)"
    return settings.backend


class ModelHost:
    def __init__(self, worker: InferenceWorker, on_status: Callable[[HostStatus], None]) -> None:
        self._worker = worker
        self._on_status = on_status
        self._lock = threading.Lock()
        self._backend: Backend | None = None
        self._settings: ModelSettings | None = None
        self.status = HostStatus("unconfigured", "")

    @property
    def backend(self) -> Backend | None:
        """The backend, only once it is ready."""
        with self._lock:
            backend = self._backend
        return backend if backend is not None and backend.ready else None

    @property
    def settings(self) -> ModelSettings | None:
        return self._settings

    def _set_status(self, status: HostStatus) -> None:
        self.status = status
        self._on_status(status)

    def load(self, settings: ModelSettings, *, snapshot_mb: int = 256) -> Future[HostStatus]:
        """Swap to the backend ``settings`` describe, loading it on the inference thread."""
        self._settings = settings
        name = describe(settings)
        self._worker.cancel_all()
        self._set_status(HostStatus("loading", name))

        def job() -> HostStatus:
            with self._lock:
                old, self._backend = self._backend, None
            if old is not None:
                old.close()
            started = time.perf_counter()
            try:
                backend = make_backend(settings, snapshot_mb=snapshot_mb)
                backend.load()
            except EngineError as exc:
                status = HostStatus("error", name, str(exc))
            except Exception as exc:  # a loader bug must not take the server down
                log.exception("unexpected error while loading %s", name)
                status = HostStatus("error", name, f"{type(exc).__name__}: {exc}")
            else:
                with self._lock:
                    self._backend = backend
                status = HostStatus("ready", name)
                log.info("model %s ready in %.0f ms", name, (time.perf_counter() - started) * 1000)
            self._set_status(status)
            return status

        return self._worker.run_exclusive(job)

    def close(self) -> None:
        with self._lock:
            backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()
