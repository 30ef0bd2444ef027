"""The completion service in-process: which requests reach the model, and what each costs.

No subprocess and no LSP: a :class:`CompletionService` over a real inference worker and
a fake backend whose generation waits on a gate the test opens, so every ordering is
chosen by the test, never by the machine's speed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from codegemma_lsp.completion import ContextProvider
from codegemma_lsp.config import AutoSwitch, EngineSettings, Settings, SettingsSources
from codegemma_lsp.context.index import ContextIndex
from codegemma_lsp.documents import Document, DocumentSnapshot, TextChange
from codegemma_lsp.engine.base import Backend, CancelToken, Generation, GenerationPolicy
from codegemma_lsp.engine.fake import FakeBackend, FakeCall
from codegemma_lsp.engine.host import make_backend
from codegemma_lsp.engine.worker import InferenceWorker
from codegemma_lsp.service import CompletionService, current_request_id
from codegemma_lsp.stats import RequestRecord, Stats
from codegemma_lsp.syntax.languages import default_registry
from tests.unit.context_workspaces import make_workspace

PYTHON = default_registry().by_name("python")
TEXT = "def total(values):\n    result = 0\n    \n    return result\n"
CURSOR = TEXT.index("    \n") + 4
URI = "file:///ws/app.py"


class GatedFake(FakeBackend):
    """A fake whose generations wait until :meth:`open` (or their cancel); it answers
    ``texts`` in turn, the last one again and again."""

    def __init__(self, *texts: str) -> None:
        super().__init__(texts[0] if texts else "result += 1", tokens=1)
        self.texts = list(texts[1:])
        self.gate = threading.Event()
        self.started = threading.Event()
        self.stopped = threading.Event()
        """Set when a generation saw its cancel while it waited."""

    def open(self) -> None:
        self.gate.set()

    def generate(
        self, prompt: Sequence[int], policy: GenerationPolicy, cancel: CancelToken
    ) -> Generation:
        self.started.set()
        while policy.max_new_tokens > 0 and not self.gate.wait(0.001):
            if cancel.cancelled:
                self.calls.append(FakeCall(tuple(prompt), policy))
                self.stopped.set()
                return Generation("", "cancelled", prompt_tokens=len(prompt), generated_tokens=1)
        generation = super().generate(prompt, policy, cancel)
        if policy.max_new_tokens > 0 and self.texts:
            self.text = self.texts.pop(0)
        return generation


@dataclass
class Host:
    """What the service reads of a model host: the ready backend, and the state."""

    backend: Backend | None

    @dataclass
    class _Status:
        state: str = "ready"

    status: _Status = field(default_factory=_Status)


@asynccontextmanager
async def running(
    backend: Backend,
    settings: Settings | None = None,
    context: ContextProvider | None = None,
) -> AsyncIterator[CompletionService]:
    settings = settings or Settings()
    stats = Stats()
    worker = InferenceWorker(on_cancel_latency=stats.record_cancel_latency)
    backend.load()
    service = CompletionService(
        Host(backend),  # type: ignore[arg-type]
        worker,
        stats,
        lambda: settings,
        context=context,
    )
    try:
        yield service
    finally:
        worker.shutdown()


def document(text: str = TEXT) -> Document:
    return Document(URI, text, language=PYTHON)


async def complete(
    service: CompletionService, doc: Document, cursor: int, request_id: int
) -> str | None:
    current_request_id.set(request_id)  # as the server does, per request task
    answer = await service.complete(doc, cursor, "app.py")
    return None if answer is None else answer.text


def records(service: CompletionService) -> list[RequestRecord]:
    return list(service.stats.records)


async def test_a_newer_request_cancels_the_older() -> None:
    fake = GatedFake()
    async with running(fake) as service:
        doc = document()
        first = asyncio.ensure_future(complete(service, doc, CURSOR, 1))
        await asyncio.to_thread(fake.started.wait)
        # Typed what the first has not produced (it has produced nothing yet): no join.
        line, character = doc.position_at(CURSOR)
        doc.apply_changes([TextChange((line, character), (line, character), "r")])
        second = asyncio.ensure_future(complete(service, doc, CURSOR + 1, 2))
        await asyncio.to_thread(fake.stopped.wait)  # the second cancelled the first
        fake.open()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await second == "result += 1"
        await asyncio.to_thread(service.worker.shutdown)  # the first job's record is written
        await asyncio.sleep(0)
    by_id = {r.request_id: r for r in records(service)}
    assert by_id[1].cancelled and not by_id[2].cancelled
    assert by_id[1].generated_tokens == 1  # the work done before its cancel is counted
    assert len(service.stats.cancel_latencies_ms) == 1


async def test_typing_the_suggestion_is_answered_from_the_cache() -> None:
    fake = FakeBackend("result += 1")
    async with running(fake) as service:
        doc = document()
        assert await complete(service, doc, CURSOR, 1) == "result += 1"
        line, character = doc.position_at(CURSOR)
        doc.apply_changes([TextChange((line, character), (line, character), "res")])
        assert await complete(service, doc, CURSOR + 3, 2) == "ult += 1"
    assert len(fake.calls) == 1
    assert [r.source for r in records(service)] == ["model", "cache"]


async def test_a_request_joins_the_precompute_already_running_there() -> None:
    fake = GatedFake("result += 1", "0")
    fake.open()
    async with running(fake) as service:
        doc = document()
        current_request_id.set(1)
        answer = await service.complete(doc, CURSOR, "app.py")
        assert answer is not None
        fake.gate.clear()
        fake.started.clear()
        line, character = doc.position_at(CURSOR)
        doc.apply_changes([TextChange((line, character), (line, character), answer.text)])
        service.accepted(doc, answer.suggestion_id, "app.py")
        await asyncio.to_thread(fake.started.wait)  # the precompute is generating
        end = CURSOR + len(answer.text)
        joined = asyncio.ensure_future(complete(service, doc, end, 2))
        await asyncio.sleep(0)
        fake.open()
        assert await joined == "0"
    assert len(fake.calls) == 2  # the first request and the precompute; the join asked none
    assert [r.source for r in records(service)] == ["model", "precompute", "model"]


async def test_each_request_leaves_one_record_with_its_stages() -> None:
    fake = FakeBackend("result += 1")
    async with running(fake) as service:
        assert await complete(service, document(), CURSOR, 7) == "result += 1"
    (record,) = records(service)
    assert (record.request_id, record.source, record.cancelled) == (7, "model", False)
    assert record.prompt_tokens == len(fake.calls[0].prompt)
    assert record.evaluated_tokens == record.prompt_tokens
    assert record.stop_reason == "stop"
    stages = (record.plan_ms, record.context_ms, record.build_prompt_ms, record.truncate_ms)
    assert all(ms >= 0 for ms in stages)
    assert record.overhead_ms >= sum(stages)
    assert record.llama_ms == pytest.approx(record.prompt_ms + record.generate_ms)


async def test_the_prompt_holds_the_context_the_provider_gives() -> None:
    seen: list[DocumentSnapshot] = []

    def context(snapshot: DocumentSnapshot) -> tuple[tuple[str, str], ...]:
        seen.append(snapshot)
        return (("util.py", "def helper(): ..."),)

    fake = FakeBackend("result += 1")
    async with running(fake, context=context) as service:
        doc = document()
        await complete(service, doc, CURSOR, 1)
    assert seen[0].revision == doc.revision and seen[0].tree is doc.tree
    assert fake.prompts[0].startswith(
        "<bos>util.py\ndef helper(): ...<|file_separator|>app.py\n<|fim_prefix|>"
    )


async def test_prewarm_evaluates_the_prompt_and_generates_nothing() -> None:
    fake = FakeBackend("result += 1")
    async with running(fake) as service:
        doc = document()
        service.prewarm(doc, "app.py")
        await asyncio.to_thread(service.worker.shutdown)
    (call,) = fake.calls
    assert call.policy.max_new_tokens == 0
    (record,) = records(service)
    assert record.source == "prewarm" and record.prompt_tokens == len(call.prompt)


APP = (
    "from util import scale\n\n\n"
    "def total(values):\n"
    "    result = 0\n"
    "    for value in values:\n"
    "        \n"
    "    return result\n"
)
FILES = {
    "app.py": APP,
    "util.py": "def scale(x):\n    return 2 * x\n",
    "test_app.py": "from app import total\n\n\ndef test_total():\n    assert total([1]) == 2\n",
}


def _token_count_agreement(
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    model: dict[str, str],
    flags: list[str],
) -> tuple[int, int]:
    """(the service's recorded prompt tokens, the count of ids ``prompt --ids`` prints)."""
    import json

    from codegemma_lsp import cli

    root = make_workspace(tmp_path / "ws", FILES)
    app = root / "app.py"
    line, character = 6, 8
    settings, problems = SettingsSources(command_line={"model": model}).resolve()
    assert not problems
    index = ContextIndex(root, settings=settings.context)

    def context(snapshot: DocumentSnapshot) -> tuple[tuple[str, str], ...]:
        return index.context_for(app, text=snapshot.text, tree=snapshot.tree).files

    backend = make_backend(settings.model)
    doc = Document(app.as_uri(), APP, language=PYTHON)

    async def request() -> None:
        async with running(backend, settings, context) as service:
            current_request_id.set(1)
            await service.complete(doc, doc.offset_at(line, character), "app.py")
            recorded.extend(records(service))

    recorded: list[RequestRecord] = []
    asyncio.run(request())
    backend.close()
    argv = ["prompt", str(app), "--line", str(line), "--character", str(character)]
    assert cli.main([*argv, "--ids", "--workspace", str(root), *flags]) == 0
    ids = json.loads(capsysbinary.readouterr().out)
    assert len(index.context_for(app).files) == 2  # the helper and the test, in both
    return recorded[0].prompt_tokens, len(ids)


def test_the_server_records_as_many_prompt_tokens_as_the_prompt_command_prints(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    served, printed = _token_count_agreement(
        tmp_path, capsysbinary, {"backend": "fake"}, ["--backend", "fake"]
    )
    assert served == printed > 100


@pytest.mark.model
def test_with_a_real_tokenizer_too(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], tiny_model_path: Path
) -> None:
    pytest.importorskip("llama_cpp")
    model = {"path": str(tiny_model_path), "threads": "1"}
    flags = ["--model", str(tiny_model_path)]
    served, printed = _token_count_agreement(tmp_path, capsysbinary, model, flags)
    assert served == printed > 50


# ----- eager start and silent places ------------------------------------------------------


async def _settled(service: CompletionService, count: int) -> None:
    """Until ``count`` records are written (the work runs on the inference thread)."""
    while len(records(service)) < count:
        await asyncio.sleep(0.005)


@pytest.mark.parametrize(
    ("output", "shown"),
    [
        pytest.param("result += 1", "result += 1", id="its-answer"),
        # Cut to nothing: the request answers nothing, and does not run the model again.
        pytest.param("))) (((", None, id="its-silence"),
    ],
)
async def test_an_edit_starts_the_request_the_editor_is_about_to_make(
    output: str, shown: str | None
) -> None:
    fake = GatedFake(output)
    settings = Settings(engine=EngineSettings(eager_start="on"))
    async with running(fake, settings) as service:
        doc = document()
        service.speculate(doc, CURSOR, "app.py")
        await asyncio.to_thread(fake.started.wait)  # generating before any request
        request = asyncio.ensure_future(complete(service, doc, CURSOR, 1))
        await asyncio.sleep(0)
        fake.open()
        assert await request == shown
        await _settled(service, 2)
    assert len(fake.calls) == 1  # the request joined the eager generation
    answer = next(r for r in records(service) if r.request_id == 1)
    assert answer.source == "cache" and answer.joined and not answer.cancelled
    # The eager start's own record (cancelled by the request) is background work, which
    # the user's numbers and the request count leave out.
    assert [r.source for r in records(service) if r.request_id is None] == ["eager"]
    assert service.stats.summary()["requests"] == 1


async def test_a_finished_eager_start_answers_the_request_from_the_cache() -> None:
    fake = FakeBackend("result += 1")
    settings = Settings(engine=EngineSettings(eager_start="on"))
    async with running(fake, settings) as service:
        doc = document()
        service.speculate(doc, CURSOR, "app.py")
        await _settled(service, 1)
        assert await complete(service, doc, CURSOR, 1) == "result += 1"
    assert len(fake.calls) == 1
    assert [r.source for r in records(service)] == ["eager", "cache"]


@pytest.mark.parametrize("eager_start", ["off", "auto"])
async def test_no_eager_start_unless_it_is_on(eager_start: AutoSwitch) -> None:
    # "auto" is "off" here: the fake has no measured speed (pacing decides from it).
    fake = FakeBackend("result += 1")
    settings = Settings(engine=EngineSettings(eager_start=eager_start))
    async with running(fake, settings) as service:
        service.speculate(document(), CURSOR, "app.py")
        assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing started
        await asyncio.sleep(0)
    assert not fake.calls and not records(service)


async def test_a_place_where_the_model_had_nothing_is_answered_without_it() -> None:
    fake = FakeBackend("))) (((")  # no start of it is whole syntax: cut to nothing
    async with running(fake) as service:
        doc = document()
        assert await complete(service, doc, CURSOR, 1) is None
        assert await complete(service, doc, CURSOR, 2) is None
        line, character = doc.position_at(CURSOR)
        doc.apply_changes([TextChange((line, character), (line, character), "r")])
        assert await complete(service, doc, CURSOR + 1, 3) is None  # elsewhere: asks again
    assert len(fake.calls) == 2
    assert [r.source for r in records(service)] == ["model", "cache", "model"]
