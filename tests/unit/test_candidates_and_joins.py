"""Several candidates, silence when unsure, and joining a generation still running.

In-process, as ``test_service``: a real inference worker over named fakes, every ordering
chosen by the test (events and gates), never by the machine's speed.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence

import pytest

from codegemma_lsp.completion import Candidate, CompletionQuery, finish_candidates, plan_completion
from codegemma_lsp.config import CompletionSettings, Settings
from codegemma_lsp.documents import Document, TextChange
from codegemma_lsp.engine.base import CancelToken, Generation, GenerationPolicy
from codegemma_lsp.engine.fake import FakeBackend
from codegemma_lsp.running import Progress, RunningGeneration
from codegemma_lsp.service import Answer, CompletionService, current_request_id
from codegemma_lsp.suggestions import SuggestionStore
from tests.unit.test_service import CURSOR, TEXT, document, records
from tests.unit.test_service import running as running_service


class TypedIntoFake(FakeBackend):
    """A named fake that has produced ``shown`` (it tells the policy's ``on_text``), then
    waits for :meth:`open` before it finishes with its whole text."""

    def __init__(self, text: str, shown: str) -> None:
        super().__init__(text, tokens=1)
        self.shown = shown
        self.gate = threading.Event()
        self.published = threading.Event()

    def open(self) -> None:
        self.gate.set()

    def generate(
        self, prompt: Sequence[int], policy: GenerationPolicy, cancel: CancelToken
    ) -> Generation:
        if policy.max_new_tokens > 0 and policy.on_text is not None:
            policy.on_text(self.shown)
        self.published.set()
        while policy.max_new_tokens > 0 and not self.gate.wait(0.001):
            if cancel.cancelled:
                return Generation("", "cancelled", prompt_tokens=len(prompt))
        return super().generate(prompt, policy, cancel)


def settings(**completion: object) -> Settings:
    return Settings(completion=CompletionSettings(**completion))  # type: ignore[arg-type]


async def ask(
    service: CompletionService, cursor: int, request_id: int, doc: Document
) -> Answer | None:
    current_request_id.set(request_id)
    return await service.complete(doc, cursor, "app.py")


def type_at(doc: Document, offset: int, text: str) -> None:
    line, character = doc.position_at(offset)
    doc.apply_changes([TextChange((line, character), (line, character), text)])


# ----- joins ------------------------------------------------------------------------


async def test_typing_what_the_generation_produced_joins_it_and_gets_the_rest() -> None:
    fake = TypedIntoFake("result += 1", shown="result +")
    async with running_service(fake) as service:
        doc = document()
        first = asyncio.ensure_future(ask(service, CURSOR, 1, doc))
        await asyncio.to_thread(fake.published.wait)
        type_at(doc, CURSOR, "res")  # a start of what it has produced so far
        service.changed(doc)  # the server's didChange: not a contradiction, it goes on
        second = asyncio.ensure_future(ask(service, CURSOR + 3, 2, doc))
        with pytest.raises(asyncio.CancelledError):
            await first  # the newest request wins the request, not the generation
        fake.open()
        answer = await second
        await asyncio.to_thread(service.worker.shutdown)
        await asyncio.sleep(0)
    assert answer is not None and answer.text == "ult += 1"
    assert len(fake.calls) == 1  # no new generation
    by_id = {r.request_id: r for r in records(service)}
    assert by_id[2].joined and not by_id[2].cancelled and by_id[2].generated_tokens == 0
    assert by_id[1].cancelled and by_id[1].generated_tokens == 1  # the joined work, once
    assert service.stats.joined_answers == 1
    assert service.stats.summary()["joined_answers"] == 1


async def test_typing_something_else_stops_the_orphaned_generation() -> None:
    fake = TypedIntoFake("result += 1", shown="result +")
    async with running_service(fake) as service:
        doc = document()
        first = asyncio.ensure_future(ask(service, CURSOR, 1, doc))
        await asyncio.to_thread(fake.published.wait)
        type_at(doc, CURSOR, "res")
        first.cancel()  # the client cancels; the text still agrees, so it goes on
        with pytest.raises(asyncio.CancelledError):
            await first
        orphan = service._running.get(doc.uri)
        assert orphan is not None and orphan.orphaned  # still running, for a join
        type_at(doc, CURSOR + 3, "X")  # "resX": not what it produces
        service.changed(doc)
        assert doc.uri not in service._running and orphan.token.cancelled
        await asyncio.wrap_future(orphan.job)
        await asyncio.sleep(0)  # its record is written on the loop
    assert [r.cancelled for r in records(service)] == [True]
    assert not fake.calls  # it saw its cancel before finishing


@pytest.mark.parametrize(
    ("typed", "cursor_shift", "expected"),
    [
        pytest.param("", 0, True, id="same-place-nothing-typed"),
        pytest.param("resu", 4, True, id="typed-a-start"),
        pytest.param("result +", 8, True, id="typed-all-so-far"),
        pytest.param("result +=", 9, False, id="typed-past-it"),
        pytest.param("rez", 3, False, id="typed-otherwise"),
        pytest.param("res", 2, False, id="cursor-elsewhere"),
    ],
)
async def test_joinable_when_typed_is_a_start_of_the_progress(
    typed: str, cursor_shift: int, expected: bool
) -> None:
    from concurrent.futures import Future

    progress = Progress()
    progress.update("result +")
    running = RunningGeneration.at(TEXT, CURSOR, Future(), CancelToken(), progress)
    text = TEXT[:CURSOR] + typed + TEXT[CURSOR:]
    assert running.joinable(text, CURSOR + cursor_shift) is expected
    assert running.contradicted(text) is (typed == "rez")


# ----- candidates and confidence ------------------------------------------------------


async def test_candidates_are_answered_in_order_without_repeats() -> None:
    fake = FakeBackend(
        "result += 1", alternatives=["result += 1  ", "result = result + 1", "result -= 1"]
    )
    async with running_service(fake, settings(candidates=4)) as service:
        doc = document()
        answer = await ask(service, CURSOR, 1, doc)
        assert answer is not None
        assert [text for text, _ in answer.items] == [
            "result += 1",
            "result = result + 1",
            "result -= 1",
        ]
        # Typing into them keeps the ones that still apply, from the cache.
        type_at(doc, CURSOR, "result ")
        again = await ask(service, CURSOR + 7, 2, doc)
    assert again is not None
    assert [text for text, _ in again.items] == ["+= 1", "= result + 1", "-= 1"]
    assert fake.calls[0].policy.candidates == 4 and len(fake.calls) == 1
    first = records(service)[0]
    assert (first.candidates, first.shown_candidates) == (4, 3)


async def test_auto_is_one_candidate_on_a_cpu() -> None:
    fake = FakeBackend("result += 1", alternatives=["result -= 1"])
    async with running_service(fake) as service:
        answer = await ask(service, CURSOR, 1, document())
    assert answer is not None and answer.others == ()
    assert fake.calls[0].policy.candidates == 1


async def test_candidates_below_min_confidence_are_dropped_and_counted() -> None:
    fake = FakeBackend(
        "result += 1",
        alternatives=["result -= 1", "result *= 2"],
        logprobs={"result += 1": math.log(0.2), "result -= 1": math.log(0.9)},
    )
    async with running_service(fake, settings(candidates=3, min_confidence=0.5)) as service:
        answer = await ask(service, CURSOR, 1, document())
    # The unsure first is dropped; the sure one leads; one with no confidence is shown.
    assert answer is not None
    assert [text for text, _ in answer.items] == ["result -= 1", "result *= 2"]
    assert service.stats.suppressed == 1
    assert records(service)[0].suppressed == 1


async def test_nothing_sure_enough_is_silence() -> None:
    fake = FakeBackend("result += 1", logprobs={"result += 1": math.log(0.1)})
    async with running_service(fake, settings(min_confidence=0.3)) as service:
        assert await ask(service, CURSOR, 1, document()) is None
    assert service.stats.suppressed == 1


@pytest.mark.parametrize(
    ("raw", "min_confidence", "expected", "suppressed"),
    [
        pytest.param([("a = 1", -0.1), ("a = 1\n", -0.1)], 0.0, ["a = 1"], 0, id="repeat"),
        pytest.param([("", -0.1), ("b = 2", -3.0)], 0.0, ["b = 2"], 0, id="empty-dropped"),
        pytest.param([("a = 1", -3.0), ("b = 2", -0.1)], 0.5, ["b = 2"], 1, id="unsure"),
        pytest.param([("a = 1", -3.0)], 0.0, ["a = 1"], 0, id="off"),
    ],
)
def test_finish_candidates(
    raw: list[tuple[str, float]], min_confidence: float, expected: list[str], suppressed: int
) -> None:
    doc = document()
    plan = plan_completion(CompletionQuery(doc.snapshot(), CURSOR), Settings())
    (text, logprob), *others = raw
    generation = Generation(
        text,
        "stop",
        logprobs=(logprob,),
        alternatives=tuple(Generation(t, "stop", logprobs=(lp,)) for t, lp in others),
    )
    kept, dropped = finish_candidates(plan, generation, doc.snapshot(), min_confidence)
    assert [c.text for c in kept] == expected
    assert dropped == suppressed
    assert all(isinstance(c, Candidate) and c.confidence is not None for c in kept)


def test_the_store_keeps_a_place_s_candidates_together() -> None:
    store = SuggestionStore()
    text = "x = \n"
    first, second = store.add_candidates("u", text, 4, ["foo()", "bar()"])
    for anchor in range(5, 9):  # newer places push out the oldest place, whole
        store.add("u", text + " " * anchor, anchor, "z")
    assert store.get("u", first.id) is None and store.get("u", second.id) is None
    store.add_candidates("u", text, 4, ["foo()", "fob()"])
    found = store.lookup_candidates("u", "x = fo\n", 6)
    assert [rest for _, rest in found] == ["o()", "b()"]
