"""The generation service: requests for code from an instruction, and the model they need.

It sits between the server's ``codegemma.generate`` handler and
:mod:`~codegemma_lsp.generate`. It owns:

- the instruction model (:class:`~codegemma_lsp.engine.instruction_model.InstructionModel`),
  loaded on the first request and unloaded after ``generate.idleUnloadS`` unused;
- a generation thread of its own, so a long answer never holds up completions
  (they share the CPU, not a queue); a newer request for a document cancels the older;
- whether generation is available at all: ``generate.model`` must name a file that
  is there (a registry id once downloaded), or ``generate.backend`` a fake. Checked
  again at most every :data:`AVAILABILITY_TTL_S`, so a download in a terminal is noticed.

No pygls here: the server turns outcomes into ``workspace/applyEdit`` and ``$/progress``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from codegemma_lsp.config import GenerateSettings, ModelSettings, Settings
from codegemma_lsp.documents import DocumentSnapshot, TreeEdit
from codegemma_lsp.engine.base import Backend, CancelToken, EngineError, ModelLoadError
from codegemma_lsp.engine.instruction_backends import (
    instruction_model_file,
    make_instruction_backend,
)
from codegemma_lsp.engine.instruction_model import InstructionModel, InstructionModelStatus
from codegemma_lsp.engine.worker import InferenceWorker
from codegemma_lsp.generate import GenerateOutcome, GenerateTarget, run_generate

log = logging.getLogger(__name__)

REMOTE_BACKENDS = ("llama-server", "openai")
AVAILABILITY_TTL_S = 10.0
IDLE_CHECK_SLACK_S = 1.0
"""How long after the model could first be idle the unload check runs."""

BackendFactory = Callable[[GenerateSettings, Settings, Path | None], Backend]


def default_backend_factory(
    generate: GenerateSettings, settings: Settings, path: Path | None
) -> Backend:
    return make_instruction_backend(generate, settings.model, path)


@dataclass(frozen=True)
class _ModelKey:
    """What the instruction model's backend is made from: a change means another one."""

    backend: str
    model: str
    quant: str
    url: str | None
    n_ctx: int
    completion_model: ModelSettings


class GenerateService:
    def __init__(
        self,
        settings: Callable[[], Settings],
        *,
        clock: Callable[[], float] = time.monotonic,
        backend_factory: BackendFactory = default_backend_factory,
    ) -> None:
        self.settings = settings
        self.worker = InferenceWorker()
        self._clock = clock
        self._factory = backend_factory
        self._model: InstructionModel[Backend] | None = None
        self._model_key: _ModelKey | None = None
        self._checked: tuple[float, _ModelKey, str | None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None

    # ----- availability ---------------------------------------------------------

    def unavailable_reason(self) -> str | None:
        """None when generation can run; else why not, naming the setting to change."""
        key = self._key()
        now = self._clock()
        checked = self._checked
        if checked is not None and checked[1] == key and now - checked[0] < AVAILABILITY_TTL_S:
            return checked[2]
        reason: str | None = None
        if key.backend == "llama":
            try:
                instruction_model_file(key.model, key.quant)
            except ModelLoadError as exc:
                reason = str(exc)
        elif key.backend in REMOTE_BACKENDS and not key.url:
            reason = f"generate.backend {key.backend} needs generate.url, the engine's base URL"
        self._checked = (now, key, reason)
        return reason

    def _key(self) -> _ModelKey:
        settings = self.settings()
        g = settings.generate
        return _ModelKey(g.backend, g.model, g.quant, g.url, g.n_ctx, settings.model)

    # ----- requests -------------------------------------------------------------

    async def generate(
        self,
        snapshot: DocumentSnapshot,
        target: GenerateTarget,
        path: str | None,
        on_progress: Callable[[int], None] | None = None,
        on_started: Callable[[CancelToken], None] | None = None,
    ) -> GenerateOutcome:
        """Generate for ``target`` (found in ``snapshot`` by :func:`find_target`).

        Raises CancelledError when the caller's task is cancelled. Setting the job's
        cancel flag (handed to ``on_started``), or a newer request for the same document,
        ends it with a cancelled outcome instead. ``on_progress`` is called on the
        generation thread."""
        reason = self.unavailable_reason()
        if reason is not None:
            return GenerateOutcome(None, None, reason)
        settings = self.settings()
        try:
            model = self._current_model(settings)
        except ModelLoadError as exc:  # the file went away since the availability check
            self._checked = None
            return GenerateOutcome(None, None, str(exc))
        max_tokens = settings.generate.max_tokens

        def job(cancel: CancelToken) -> GenerateOutcome:
            try:
                with model.use() as backend:
                    return run_generate(
                        backend,
                        snapshot,
                        target,
                        path,
                        max_new_tokens=max_tokens,
                        cancel=cancel,
                        on_progress=on_progress,
                    )
            except EngineError as exc:
                return GenerateOutcome(None, None, f"the instruction model failed: {exc}")

        future, token = self.worker.submit(f"generate:{snapshot.uri}", job)
        if on_started is not None:
            on_started(token)
        try:
            outcome = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            token.cancel()
            raise
        finally:
            self._schedule_idle_check()
        return outcome

    def _current_model(self, settings: Settings) -> InstructionModel[Backend]:
        """The instruction model for the settings, replacing one made for other settings."""
        key = self._key()
        generate = settings.generate
        if self._model is not None and self._model_key == key:
            self._model.idle_unload_s = generate.idle_unload_s
            return self._model
        self._retire_model()
        path = None
        if generate.backend == "llama":
            path = instruction_model_file(generate.model, generate.quant)
        elif generate.backend in REMOTE_BACKENDS:
            # A remote engine's vocabulary may come from the file, where there is one.
            with contextlib.suppress(ModelLoadError):
                path = instruction_model_file(generate.model, generate.quant)

        def factory() -> Backend:
            return self._factory(generate, settings, path)

        self._model = InstructionModel(
            factory,
            name=path.name if path is not None else f"{generate.backend} {generate.url or ''}",
            path=path,
            idle_unload_s=generate.idle_unload_s,
            clock=self._clock,
        )
        self._model_key = key
        return self._model

    def _retire_model(self) -> None:
        """Unload the current model on the generation thread, after what runs there now."""
        old, self._model, self._model_key = self._model, None, None
        if old is not None:
            self.worker.run_exclusive(old.close)

    def configure(self) -> None:
        """Settings changed: a model made for other settings goes; availability is re-checked."""
        self._checked = None
        if self._model is not None and self._model_key != self._key():
            self.worker.cancel_all()
            self._retire_model()
        elif self._model is not None:
            self._model.idle_unload_s = self.settings().generate.idle_unload_s

    # ----- idle unload ----------------------------------------------------------

    def _schedule_idle_check(self) -> None:
        model = self._model
        if model is None:
            return
        wait = model.seconds_until_idle()
        if wait is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = loop.call_later(wait + IDLE_CHECK_SLACK_S, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        model = self._model
        if model is None:
            return
        done = self.worker.run_exclusive(model.unload_if_idle)
        loop = asyncio.get_running_loop()

        def again(_: Future[bool]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the server is exiting
                loop.call_soon_threadsafe(self._schedule_idle_check)

        done.add_done_callback(again)

    # ----- status and shutdown ----------------------------------------------------

    def status(self) -> InstructionModelStatus | None:
        model = self._model
        return model.status() if model is not None else None

    def forget(self, uri: str) -> None:
        self.worker.cancel(f"generate:{uri}")

    def close(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self.worker.cancel_all()
        self._retire_model()


def carry_range(start: int, end: int, edits: list[TreeEdit]) -> tuple[int, int] | None:
    """Byte range ``[start, end)`` moved through ``edits`` made since it was computed;
    None when an edit touched it (the code no longer has a place to go)."""
    for edit in edits:
        if edit.old_end_byte <= start and not (edit.start_byte == start == end):
            delta = edit.new_end_byte - edit.old_end_byte
            start, end = start + delta, end + delta
        elif edit.start_byte >= end and not (edit.start_byte == end == start):
            continue
        else:
            return None
    return start, end
