"""The instruction model's backend: which file ``generate.model`` names, and named fakes.

The instruction model is an ordinary :class:`~codegemma_lsp.engine.base.Backend`
(ids in, tokens out, with its tokenizer); only the file and the settings differ
from the completion model's. For checks without a model there are two named
fakes that answer one line at a time, calling the policy's stop check at each
line end as a model's generation loop does, so progress and cancel can be seen:

- :class:`FakeInstructionBackend`: a fixed answer, ``delay_s`` spread over its lines;
- :class:`ScriptedInstructionBackend`: a file's text, read again for every request.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

from codegemma_lsp.config import GenerateSettings, ModelSettings, parse_backend
from codegemma_lsp.engine.base import (
    Backend,
    CancelToken,
    EngineError,
    Generation,
    GenerationPolicy,
    ModelLoadError,
)
from codegemma_lsp.engine.fake import FakeBackend, FakeCall, read_script

FAKE_ANSWER = "```\nfake_generated_code = 1\n```\n"


def looks_like_path(value: str) -> bool:
    """Whether ``generate.model`` names a file rather than a registry id."""
    return "/" in value or "\\" in value or value.startswith("~") or value.endswith(".gguf")


def instruction_model_file(model: str, quant: str) -> Path:
    """The GGUF file ``generate.model`` names, without any network; ModelLoadError (its
    message naming the setting and what to do) when there is none."""
    value = model.strip()
    if not value:
        raise ModelLoadError("generate.model is empty: set it to codegemma-7b-it or a GGUF file")
    if looks_like_path(value):
        path = Path(value).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"generate.model: there is no file {path}")
        return path
    from codegemma_lsp.engine.download import cached_file
    from codegemma_lsp.engine.registry import UnknownModel, lookup

    try:
        entry = lookup(value, quant)
    except UnknownModel as exc:
        raise ModelLoadError(f"generate.model: {exc}") from None
    try:
        found = cached_file(entry)
    except ImportError:  # huggingface_hub is missing: nothing can be in its cache
        found = None
    if found is None:
        raise ModelLoadError(
            f"generate.model {value} is not downloaded: run `{entry.command}`, "
            "or set generate.model to an instruction model's GGUF file"
        )
    return found


REMOTE_TIMEOUT_MS = 300_000
"""A remote engine's limit on one generation: an answer takes far longer than a completion."""


def make_instruction_backend(
    generate: GenerateSettings, model: ModelSettings, path: Path | None
) -> Backend:
    """The backend ``generate.backend`` asks for, not loaded yet: ``llama`` (the file
    ``path``, with the completion model's threads, batch and GPU settings), a remote
    engine at ``generate.url`` (``path``, if any, gives the vocabulary), or a named fake."""
    try:
        choice = parse_backend(generate.backend)
    except ValueError as exc:
        raise ModelLoadError(f"generate.backend {generate.backend!r} {exc}") from None
    if choice.kind == "fake":
        return FakeInstructionBackend(delay_s=choice.delay_s, n_ctx=generate.n_ctx)
    if choice.kind == "scripted":
        return ScriptedInstructionBackend(Path(choice.path).expanduser())
    if choice.kind == "llama" and path is None:
        raise ModelLoadError("no instruction model file: set generate.model")
    if choice.kind != "llama" and not generate.url:
        raise ModelLoadError(f"generate.backend {choice.kind} needs generate.url")
    from codegemma_lsp.engine.host import make_backend

    settings = dataclasses.replace(
        model,
        path=str(path) if path is not None else None,
        download=False,
        backend=choice.kind,
        url=generate.url,
        timeout_ms=max(model.timeout_ms, REMOTE_TIMEOUT_MS),
        n_ctx=generate.n_ctx,
    )
    # No KV snapshots: generation has one prompt at a time, and no document to go back to.
    return make_backend(settings, snapshot_mb=0)


class FakeInstructionBackend(FakeBackend):
    """A named fake: answers ``text`` one line at a time, ``delay_s`` spread over its lines,
    calling the policy's stop check at each line end. It records its calls, as
    :class:`~codegemma_lsp.engine.fake.FakeBackend` does."""

    name = "fake"

    def __init__(self, text: str = FAKE_ANSWER, *, delay_s: float = 0.0, n_ctx: int = 32768):
        super().__init__(text, delay_s=delay_s, n_ctx=n_ctx)

    def answer(self) -> str:
        return self.text

    def generate(
        self, prompt: Sequence[int], policy: GenerationPolicy, cancel: CancelToken
    ) -> Generation:
        ids = tuple(prompt)
        if len(ids) >= self.n_ctx:
            raise EngineError(f"a prompt of {len(ids)} tokens leaves no room in n_ctx {self.n_ctx}")
        self.calls.append(FakeCall(ids, policy))
        lines = self.answer().splitlines(keepends=True)[: max(policy.max_new_tokens, 0)]
        pause = self.delay_s / max(1, len(lines))
        written = ""
        started = time.perf_counter()

        def stopped(reason: str) -> Generation:
            return Generation(
                written,
                reason,  # type: ignore[arg-type]
                prompt_tokens=len(ids),
                evaluated_tokens=len(ids),
                generated_tokens=written.count("\n"),
                generate_ms=(time.perf_counter() - started) * 1000,
            )

        for line in lines:
            if pause:
                cancellable_sleep(cancel, pause)
            if cancel.cancelled:
                return stopped("cancelled")
            written += line
            check = policy.stop_check
            if line.endswith("\n") and check is not None and check(written):
                return stopped("syntax")
        return stopped("eos")


def cancellable_sleep(cancel: CancelToken, seconds: float) -> None:
    """Sleep up to ``seconds``, waking within 10 ms of a cancel."""
    deadline = time.monotonic() + seconds
    while not cancel.cancelled and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.01))


class ScriptedInstructionBackend(FakeInstructionBackend):
    """A named fake answering with a file's text, read at load and for every request."""

    name = "scripted"

    def __init__(self, path: Path) -> None:
        super().__init__("")
        self.path = path

    @property
    def model_name(self) -> str:
        return f"scripted:{self.path.name}"

    def load(self) -> None:
        read_script(self.path)
        super().load()

    def answer(self) -> str:
        return read_script(self.path)
