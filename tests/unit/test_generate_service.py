"""The generation service in-process: availability, the model's life, cancel; milliseconds each."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from codegemma_lsp.config import GenerateSettings, Settings
from codegemma_lsp.documents import Document
from codegemma_lsp.engine.base import Backend
from codegemma_lsp.engine.instruction_backends import FakeInstructionBackend
from codegemma_lsp.generate import GenerateTarget, find_target
from codegemma_lsp.generate_service import AVAILABILITY_TTL_S, GenerateService

TEXT = "def f(xs):\n    # sort the list\n    return xs\n"


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Fakes:
    """A backend factory that keeps what it made."""

    def __init__(self, answer: str = "```\nys = sorted(xs)\n```\n", delay_s: float = 0) -> None:
        self.answer, self.delay_s = answer, delay_s
        self.made: list[FakeInstructionBackend] = []

    def __call__(
        self, generate: GenerateSettings, settings: Settings, path: Path | None
    ) -> Backend:
        self.made.append(FakeInstructionBackend(self.answer, delay_s=self.delay_s))
        return self.made[-1]


def _service(
    model: str, fakes: _Fakes, clock: _Clock, **generate: object
) -> tuple[GenerateService, list[Settings]]:
    current = [Settings(generate=GenerateSettings(model=model, **generate))]  # type: ignore[arg-type]
    service = GenerateService(lambda: current[0], clock=clock, backend_factory=fakes)
    return service, current


def _target() -> tuple[Document, GenerateTarget]:
    from codegemma_lsp.syntax.languages import default_registry

    document = Document("file:///w/f.py", TEXT, language=default_registry().by_name("python"))
    target = find_target(document.snapshot(), TEXT.index("list") + 4, TEXT.index("list") + 4)
    assert isinstance(target, GenerateTarget)
    return document, target


def test_availability_follows_the_file_and_is_rechecked_after_a_while(tmp_path: Path) -> None:
    clock = _Clock()
    model = tmp_path / "it.gguf"
    service, _ = _service(str(model), _Fakes(), clock)
    reason = service.unavailable_reason()
    assert reason is not None and "generate.model" in reason
    model.write_bytes(b"GGUF")
    assert service.unavailable_reason() == reason  # checked a moment ago
    clock.now += AVAILABILITY_TTL_S
    assert service.unavailable_reason() is None
    service.close()


async def test_generates_loads_once_and_unloads_when_idle(tmp_path: Path) -> None:
    clock = _Clock()
    model = tmp_path / "it.gguf"
    model.write_bytes(b"GGUF")
    fakes = _Fakes()
    service, _ = _service(str(model), fakes, clock, idle_unload_s=60)
    document, target = _target()
    lines: list[int] = []
    outcome = await service.generate(document.snapshot(), target, "f.py", lines.append)
    assert outcome.edit is not None and outcome.edit.text == "    ys = sorted(xs)\n"
    assert lines == [1]
    await service.generate(document.snapshot(), target, "f.py")
    assert len(fakes.made) == 1  # loaded on first use, then kept
    status = service.status()
    assert status is not None and status.loaded

    clock.now += 59
    await asyncio.wrap_future(service.worker.run_exclusive(lambda: None))
    service._idle_check()
    await asyncio.wrap_future(service.worker.run_exclusive(lambda: None))
    assert service.status() is not None and service.status().loaded  # type: ignore[union-attr]
    clock.now += 1
    service._idle_check()
    await asyncio.wrap_future(service.worker.run_exclusive(lambda: None))
    assert not service.status().loaded  # type: ignore[union-attr]
    assert not fakes.made[0].ready

    await service.generate(document.snapshot(), target, "f.py")
    assert len(fakes.made) == 2  # loaded again on the next request
    service.close()


async def test_new_settings_retire_the_model(tmp_path: Path) -> None:
    clock = _Clock()
    model = tmp_path / "it.gguf"
    model.write_bytes(b"GGUF")
    fakes = _Fakes()
    service, current = _service(str(model), fakes, clock)
    document, target = _target()
    await service.generate(document.snapshot(), target, None)
    current[0] = replace(current[0], generate=replace(current[0].generate, n_ctx=2048))
    service.configure()
    await asyncio.wrap_future(service.worker.run_exclusive(lambda: None))
    assert not fakes.made[0].ready
    await service.generate(document.snapshot(), target, None)
    assert len(fakes.made) == 2
    # Only the idle time changed: the model stays.
    current[0] = replace(current[0], generate=replace(current[0].generate, idle_unload_s=5))
    service.configure()
    await service.generate(document.snapshot(), target, None)
    assert len(fakes.made) == 2 and fakes.made[1].ready
    service.close()


async def test_cancelling_the_caller_stops_the_generation(tmp_path: Path) -> None:
    model = tmp_path / "it.gguf"
    model.write_bytes(b"GGUF")
    fakes = _Fakes("```\na = 1\nb = 2\n```\n", delay_s=600)
    service, _ = _service(str(model), fakes, _Clock())
    document, target = _target()
    started = asyncio.Event()
    tokens = []

    def on_started(token: object) -> None:
        tokens.append(token)
        started.set()

    task = asyncio.create_task(
        service.generate(document.snapshot(), target, None, on_started=on_started)
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert tokens[0].cancelled  # type: ignore[attr-defined]
    # The generation thread is free again at once, not after the fake's ten minutes.
    await asyncio.wait_for(asyncio.wrap_future(service.worker.run_exclusive(lambda: None)), 10)
    service.close()


async def test_a_set_cancel_flag_ends_in_a_cancelled_outcome(tmp_path: Path) -> None:
    model = tmp_path / "it.gguf"
    model.write_bytes(b"GGUF")
    service, _ = _service(str(model), _Fakes(delay_s=600), _Clock())
    document, target = _target()
    outcome = await service.generate(
        document.snapshot(), target, None, on_started=lambda token: token.cancel()
    )
    assert outcome.cancelled and outcome.edit is None
    service.close()


async def test_a_missing_model_is_an_outcome_with_the_reason(tmp_path: Path) -> None:
    service, _ = _service(str(tmp_path / "none.gguf"), _Fakes(), _Clock())
    document, target = _target()
    outcome = await service.generate(document.snapshot(), target, None)
    assert outcome.edit is None
    assert outcome.message is not None and "generate.model: there is no file" in outcome.message
    service.close()
