"""Choosing a backend from the settings, and loading it without blocking the server.

The host is the one owner of the live backend. It loads on the inference thread
(so no generation can run against a half-loaded model) and reports each state
change through a callback: the server turns those into ``$/progress``,
``codegemma/status`` and ``window/showMessage``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from codegemma_lsp.config import ModelSettings, parse_backend
from codegemma_lsp.engine.base import Backend, EngineError, ModelLoadError
from codegemma_lsp.engine.fake import FakeBackend, ScriptedBackend
from codegemma_lsp.engine.registry import ModelFile
from codegemma_lsp.engine.resolve import cached_path, needs_download, registry_entry, with_path
from codegemma_lsp.engine.speed import MachineSpeed, measure_backend
from codegemma_lsp.engine.worker import InferenceWorker

log = logging.getLogger(__name__)

HostState = Literal["unconfigured", "downloading", "loading", "ready", "error"]


@dataclass(frozen=True)
class HostStatus:
    state: HostState
    model: str
    message: str = ""
    progress: int | None = None
    """While downloading: the percentage fetched."""
    speed: MachineSpeed | None = None
    """Once ready: the machine's speed, measured right after the load (None: not measured)."""


def make_backend(settings: ModelSettings, *, snapshot_mb: int = 256) -> Backend:
    """The backend the settings ask for; raises ModelLoadError for a bad choice."""
    try:
        choice = parse_backend(settings.backend)
    except ValueError as exc:
        raise ModelLoadError(f"model.backend {settings.backend!r} {exc}") from None
    if choice.kind == "fake":
        # ``fake:SECONDS`` spreads a delay over the fake's tokens, to exercise cancellation.
        return FakeBackend(delay_s=choice.delay_s, tokens=50)
    if choice.kind == "scripted":
        return ScriptedBackend(Path(choice.path).expanduser())
    if choice.kind == "llama":
        # No path: the registry's file for model.id/model.quant, from the HF cache.
        model_path = cached_path(settings)
        if settings.kv_type != "f16" and not settings.flash_attention:
            raise ModelLoadError(
                f"model.kvType {settings.kv_type} needs model.flashAttention on "
                "(llama.cpp quantizes the V cache only with flash attention)"
            )
        from codegemma_lsp.engine.llama_backend import LlamaBackend

        return LlamaBackend(
            model_path=model_path,
            n_ctx=settings.n_ctx,
            n_threads=settings.threads or None,
            n_batch=settings.batch,
            use_mmap=settings.mmap,
            snapshot_bytes=snapshot_mb << 20,
            flash_attn=settings.flash_attention,
            gpu_layers=settings.gpu_layers,
            kv_type=settings.kv_type,
        )
    if choice.kind in ("llama-server", "openai"):
        return _remote_backend(choice.kind, settings)
    raise ModelLoadError(f"unknown backend {settings.backend!r}")


def _remote_backend(kind: str, settings: ModelSettings) -> Backend:
    """A remote engine at ``model.url``; ``model.path``, if set, only gives the vocabulary."""
    if not settings.url:
        raise ModelLoadError(
            f"model.backend {kind} needs model.url (or --url): the server's base URL"
        )
    from codegemma_lsp.engine.remote import RemoteOptions

    options = RemoteOptions(
        url=settings.url,
        api_key=settings.api_key or os.environ.get("OPENAI_API_KEY") or None,
        timeout_ms=settings.timeout_ms,
        n_ctx=settings.n_ctx,
        slots=settings.slots,
        prompt_format=settings.prompt_format,
        vocab_path=Path(settings.path).expanduser() if settings.path else None,
    )
    if kind == "llama-server":
        from codegemma_lsp.engine.remote_llama_server import LlamaServerBackend

        return LlamaServerBackend(options)
    from codegemma_lsp.engine.remote_openai import OpenAiBackend

    return OpenAiBackend(options)


def describe(settings: ModelSettings) -> str:
    if settings.backend in ("llama-server", "openai"):
        return f"{settings.backend} {settings.url or '(no model.url)'}"
    if settings.backend == "llama":
        if settings.path:
            return Path(settings.path).name
        try:
            return registry_entry(settings).filename
        except ModelLoadError:
            return f"{settings.id} {settings.quant}"
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
                resolved = settings
                entry = needs_download(settings)
                if entry is not None:
                    resolved = with_path(settings, self._download(entry, name))
                    self._set_status(HostStatus("loading", name))
                    started = time.perf_counter()
                backend = make_backend(resolved, snapshot_mb=snapshot_mb)
                backend.load()
            except EngineError as exc:
                status = HostStatus("error", name, str(exc))
            except Exception as exc:  # a loader bug must not take the server down
                log.exception("unexpected error while loading %s", name)
                status = HostStatus("error", name, f"{type(exc).__name__}: {exc}")
            else:
                # Measured before anything is served, so the first prompt is paced by it.
                speed = measure_backend(backend)
                with self._lock:
                    self._backend = backend
                status = HostStatus("ready", name, speed=speed)
                if hasattr(backend, "on_health"):  # a remote engine: it can fail and recover
                    backend.on_health = self._health_reporter(backend, name)
                    problem = getattr(backend, "problem", None)
                    if problem:
                        status = HostStatus("error", name, problem)
                log.info("model %s ready in %.0f ms", name, (time.perf_counter() - started) * 1000)
            self._set_status(status)
            return status

        return self._worker.run_exclusive(job)

    def _health_reporter(self, backend: Backend, name: str) -> Callable[[str | None], None]:
        """Turn a remote engine's failures and recoveries into status changes.

        Only a change is reported (ready to error, error to ready, a new reason), so a
        server that stays down costs one message, not one per keystroke.
        """

        def report(problem: str | None) -> None:
            with self._lock:
                if self._backend is not backend:
                    return  # a replaced backend's late news
            current = self.status
            if problem is None:
                if current.state == "error":
                    log.info("%s answers again", name)
                    self._set_status(HostStatus("ready", name))
            elif current.state != "error" or current.message != problem:
                self._set_status(HostStatus("error", name, problem))

        return report

    def _download(self, entry: ModelFile, name: str) -> Path:
        """Fetch the registry's file, reporting each new whole percentage."""
        from codegemma_lsp.engine.download import download

        last = -1

        def progress(done: int, total: int | None) -> None:
            nonlocal last
            total = total or entry.size
            if not total:
                return
            percent = min(100, done * 100 // total)
            if percent != last:
                last = percent
                message = f"downloading {entry.filename}: {percent}%"
                self._set_status(HostStatus("downloading", name, message, progress=percent))

        log.info("downloading %s from %s", entry.filename, entry.repo)
        self._set_status(HostStatus("downloading", name, f"downloading {entry.filename}", 0))
        path = download(entry, progress=progress)
        log.info("downloaded and verified %s", path)
        return path

    def close(self) -> None:
        with self._lock:
            backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()
