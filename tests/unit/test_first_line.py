"""First line first: a block answers with its first line, and its rest is served from cache.

In-process, with a fake backend that answers a first-line policy with the block's first
line and any other with the rest; no timing is asserted, and every wait is on an event.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from codegemma_lsp.config import CompletionSettings, MultiLine, Settings
from codegemma_lsp.documents import Document, TextChange
from codegemma_lsp.engine.base import CancelToken, Generation, GenerationPolicy
from codegemma_lsp.engine.fake import FakeBackend, FakeCall
from codegemma_lsp.engine.worker import InferenceWorker
from codegemma_lsp.first_line import (
    first_line_policy,
    indent_unit,
    line_policy,
    next_line_insert,
)
from codegemma_lsp.service import CompletionService, current_request_id
from codegemma_lsp.stats import Stats
from codegemma_lsp.syntax.languages import default_registry

PYTHON = default_registry().by_name("python")
TEXT = "def total(values):\n    result = 0\n    \n    return result\n"
CURSOR = TEXT.index("    \n") + 4
URI = "file:///ws/app.py"


class BlockFake(FakeBackend):
    """Answers a first-line policy with ``first``, any other generation with ``rest``.

    ``gate`` holds the rest back until the test opens it.
    """

    def __init__(self, first: str, rest: str) -> None:
        super().__init__(first, tokens=1)
        self.first, self.rest = first, rest
        self.gate = threading.Event()
        self.gate.set()
        self.rest_started = threading.Event()

    def generate(
        self, prompt: Sequence[int], policy: GenerationPolicy, cancel: CancelToken
    ) -> Generation:
        if policy.max_new_tokens <= 0:
            return super().generate(prompt, policy, cancel)
        self.calls.append(FakeCall(tuple(prompt), policy))
        if policy.single_line:
            return Generation(self.first, "newline", len(prompt), generated_tokens=3)
        self.rest_started.set()
        while not self.gate.wait(0.001):
            if cancel.cancelled:
                return Generation("", "cancelled", len(prompt))
        return Generation(self.rest, "stop", len(prompt), generated_tokens=5)

    @property
    def model_calls(self) -> list[FakeCall]:
        return [call for call in self.calls if call.policy.max_new_tokens > 0]


@dataclass
class Host:
    backend: FakeBackend

    @dataclass
    class _Status:
        state: str = "ready"

    status: _Status = field(default_factory=_Status)


@asynccontextmanager
async def running(fake: FakeBackend, multi_line: MultiLine) -> AsyncIterator[CompletionService]:
    settings = Settings(completion=CompletionSettings(multi_line=multi_line))
    worker = InferenceWorker()
    fake.load()
    service = CompletionService(Host(fake), worker, Stats(), lambda: settings)  # type: ignore[arg-type]
    try:
        yield service
    finally:
        worker.shutdown()


async def complete(service: CompletionService, doc: Document, cursor: int, rid: int) -> str | None:
    current_request_id.set(rid)
    answer = await service.complete(doc, cursor, "app.py")
    return None if answer is None else answer.text


async def until(condition: Callable[[], bool]) -> None:
    """Wait for background work the test cannot await directly (its callback's hop)."""
    for _ in range(5000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the condition never held")


def insert(doc: Document, offset: int, text: str) -> None:
    line, character = doc.position_at(offset)
    doc.apply_changes([TextChange((line, character), (line, character), text)])


def sources(service: CompletionService) -> list[str]:
    return [record.source for record in service.stats.records]


async def test_a_block_answers_its_first_line_and_the_rest_answers_after_an_accept() -> None:
    fake = BlockFake("result += 1", "    result *= 2\n")
    async with running(fake, "on") as service:
        doc = Document(URI, TEXT, language=PYTHON)
        assert await complete(service, doc, CURSOR, 1) == "result += 1"
        await until(lambda: "precompute" in sources(service))  # the rest is cached
        current_request_id.set(None)
        answer = service.suggestions.lookup(URI, doc.text, CURSOR)
        assert answer is not None and answer[1] == "result += 1\n    result *= 2"
        insert(doc, CURSOR, "result += 1")  # the user accepts the first line
        service.accepted(doc, answer[0].id, "app.py")
        assert await complete(service, doc, CURSOR + 11, 2) == "\n    result *= 2"
    first, rest = fake.model_calls  # no precompute after the accept: the rest covered it
    assert first.policy.single_line and not rest.policy.single_line
    assert rest.prompt[: len(first.prompt)] == first.prompt  # the rest continues the line
    assert sources(service) == ["model", "precompute", "cache"]


async def test_typing_the_first_line_ahead_is_answered_from_the_rest() -> None:
    fake = BlockFake("result += 1", "    result *= 2\n")
    async with running(fake, "on") as service:
        doc = Document(URI, TEXT, language=PYTHON)
        assert await complete(service, doc, CURSOR, 1) == "result += 1"
        await until(lambda: "precompute" in sources(service))
        insert(doc, CURSOR, "result += 1\n    ")
        assert await complete(service, doc, CURSOR + 16, 2) == "result *= 2"
    assert len(fake.model_calls) == 2


async def test_a_request_there_waits_for_the_rest_still_being_generated() -> None:
    fake = BlockFake("result += 1", "    result *= 2\n")
    fake.gate.clear()
    async with running(fake, "on") as service:
        doc = Document(URI, TEXT, language=PYTHON)
        assert await complete(service, doc, CURSOR, 1) == "result += 1"
        await asyncio.to_thread(fake.rest_started.wait)
        insert(doc, CURSOR, "result += 1")
        joined = asyncio.ensure_future(complete(service, doc, CURSOR + 11, 2))
        await asyncio.sleep(0)
        fake.gate.set()
        assert await joined == "\n    result *= 2"
    assert len(fake.model_calls) == 2  # the join asked the model nothing


async def test_a_request_that_waited_for_nothing_goes_on_to_the_model() -> None:
    fake = BlockFake("result += 1", "")  # the rest adds nothing
    fake.gate.clear()
    async with running(fake, "on") as service:
        doc = Document(URI, TEXT, language=PYTHON)
        assert await complete(service, doc, CURSOR, 1) == "result += 1"
        await asyncio.to_thread(fake.rest_started.wait)
        insert(doc, CURSOR, "result += 1")
        joined = asyncio.ensure_future(complete(service, doc, CURSOR + 11, 2))
        await asyncio.sleep(0)
        fake.gate.set()
        await joined
    assert len(fake.model_calls) == 3  # the line, its (empty) rest, then the request's own


async def test_a_first_line_that_cannot_stand_alone_waits_for_its_block() -> None:
    fake = BlockFake("result = sum(", "        values)\n")
    async with running(fake, "on") as service:
        doc = Document(URI, TEXT, language=PYTHON)
        text = await complete(service, doc, CURSOR, 1)
    assert text == "result = sum(\n        values)"
    assert len(fake.model_calls) == 2
    assert sources(service) == ["model"]  # one request, one record, both parts counted
    (record,) = service.stats.records
    assert record.generated_tokens == 3 + 5


async def test_without_multi_line_a_block_is_its_first_line() -> None:
    fake = BlockFake("result += 1", "    result *= 2\n")
    async with running(fake, "off") as service:
        doc = Document(URI, TEXT, language=PYTHON)
        assert await complete(service, doc, CURSOR, 1) == "result += 1"
    assert len(fake.model_calls) == 1


async def test_at_the_end_of_a_line_the_next_line_is_ready_when_enter_is_pressed() -> None:
    text = "def total(values):\n    result = 0\n    return result\n"
    line_end = text.index("\n    return")
    fake = BlockFake("result *= 2", "")
    async with running(fake, "off") as service:
        doc = Document(URI, text, language=PYTHON)
        # Nothing fits after "result = 0" on its line, so the answer is empty...
        assert await complete(service, doc, line_end, 1) is None
        await until(lambda: "precompute" in sources(service))
        insert(doc, line_end, "\n    ")  # ...and Enter finds the next line computed
        assert await complete(service, doc, line_end + 5, 2) == "result *= 2"
    assert len(fake.model_calls) == 2
    assert sources(service)[-1] == "cache"


@pytest.mark.parametrize(
    ("text", "cursor", "expected"),
    [
        pytest.param("    x = 1\n", 9, "\n    ", id="same-indentation"),
        pytest.param("if x:\n    y = 1\n", 5, "\n    ", id="deeper-after-a-colon"),
        pytest.param("func f() {\n\tx := 1\n}", 10, "\n\t", id="a-tab-after-a-brace"),
        pytest.param("  a(\n    b)\n", 4, "\n    ", id="two-space-steps"),
        pytest.param("    x = 1\n", 5, None, id="mid-line"),
        pytest.param("    \n", 4, None, id="blank-line"),
    ],
)
def test_next_line_insert(text: str, cursor: int, expected: str | None) -> None:
    assert next_line_insert(text, cursor) == expected


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        pytest.param("a\n  b\n    c\n", "  ", id="two-spaces"),
        pytest.param("a\n\tb\n", "\t", id="tab"),
        pytest.param("a\nb\n", "    ", id="flat-file"),
    ],
)
def test_indent_unit(text: str, unit: str) -> None:
    assert indent_unit(text) == unit


def test_a_first_line_policy_has_no_syntax_check() -> None:
    block = GenerationPolicy(max_new_tokens=64, stop_check=lambda _text: False)
    line = first_line_policy(block)
    assert line.single_line and line.stop_check is None and line.max_new_tokens == 64


@pytest.mark.parametrize(
    ("suffix", "ends_at_newline"),
    [
        pytest.param("\n    return x\n", True, id="nothing-after-the-cursor"),
        pytest.param("   \n", True, id="blanks-after-the-cursor"),
        pytest.param(")\n", False, id="a-closer-after-the-cursor"),
        pytest.param("", True, id="end-of-file"),
    ],
)
def test_a_line_ends_at_its_newline_where_nothing_follows(
    suffix: str, ends_at_newline: bool
) -> None:
    policy = line_policy(GenerationPolicy(single_line=True), suffix)
    assert (policy.stop_check is not None) == ends_at_newline
    if policy.stop_check is not None:
        assert policy.stop_check("\n")
