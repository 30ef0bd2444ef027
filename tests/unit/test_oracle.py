"""The benchmark's oracle stop: what the typist types next sets where generation stops."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest

from codegemma_lsp.config import CompletionSettings, Settings
from codegemma_lsp.documents import Document
from codegemma_lsp.engine.base import GenerationPolicy
from codegemma_lsp.engine.fake import FakeBackend, FakeTokenizer
from codegemma_lsp.engine.worker import InferenceWorker
from codegemma_lsp.evals import bench_cli
from codegemma_lsp.evals.replay import ReplayOptions, _Step, upcoming_insert
from codegemma_lsp.evals.replay_session import record_session
from codegemma_lsp.oracle import OracleBook, answered_text, oracle_completion, oracle_policy
from codegemma_lsp.prompt import PromptParts
from codegemma_lsp.service import CompletionService, current_request_id
from codegemma_lsp.stats import Stats
from codegemma_lsp.syntax.languages import default_registry
from codegemma_lsp.syntax.scope import Scope
from tests.unit.test_first_line import Host

PYTHON = default_registry().by_name("python")
PREFIX = "class A:\n    def __init__(self, text):\n"
SUFFIX = "\n\n    def load(self):\n        pass\n"


@pytest.mark.parametrize(
    ("before", "typed", "scope", "expected"),
    [
        pytest.param(
            "        self.te",
            "xt = text\n        self.delay = 0",
            Scope.LINE,
            "xt = text",
            id="line-mid-word",
        ),
        pytest.param(
            "        self.text = text",
            "\n        self.delay = 0",
            Scope.LINE,
            "",
            id="line-at-its-end-holds-nothing",
        ),
        pytest.param(
            "        ",
            "self.text = text\n        self.delay = 0\n        self._ready = False",
            Scope.BLOCK,
            "self.text = text\n        self.delay = 0\n        self._ready = False",
            id="block-to-its-end",
        ),
        pytest.param("        ", "   ", Scope.BLOCK, "", id="nothing-typed"),
    ],
)
def test_the_oracle_completion_is_the_typed_text_cut_at_the_scope(
    before: str, typed: str, scope: Scope, expected: str
) -> None:
    parts = PromptParts(PREFIX + before, SUFFIX)
    assert oracle_completion(parts, typed, scope, PYTHON) == expected


@pytest.mark.parametrize(
    ("oracle", "first_only", "expected"),
    [
        pytest.param("a = 1\n    b = 2", True, "a = 1", id="first-line"),
        pytest.param("a = 1\n    b = 2", False, "a = 1\n    b = 2", id="whole"),
        pytest.param("a = 1", True, "a = 1", id="one-line"),
    ],
)
def test_an_answer_generates_its_part_of_the_oracle(
    oracle: str, first_only: bool, expected: str
) -> None:
    assert answered_text(oracle, first_only) == expected


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        pytest.param("abc", 64, 4, id="tokens-and-the-end-token"),
        pytest.param("", 64, 1, id="nothing-only-the-end-token"),
        pytest.param("x" * 100, 48, 48, id="the-limit-still-holds"),
    ],
)
def test_the_oracle_policy_allows_the_texts_tokens_and_one(
    text: str, limit: int, expected: int
) -> None:
    policy = GenerationPolicy(
        max_new_tokens=limit,
        end_ids=frozenset({1}),
        stop_ids=frozenset({70}),
        single_line=True,
        stop_check=lambda _text: True,
    )
    cut = oracle_policy(policy, text, FakeTokenizer())  # one token per byte
    assert cut.max_new_tokens == expected
    assert (cut.end_ids, cut.stop_ids, cut.single_line, cut.stop_check) == (
        frozenset(),
        frozenset(),
        False,
        None,
    )


def _steps(*specs: tuple[str, object]) -> deque[_Step]:
    steps: deque[_Step] = deque()
    for kind, value in specs:
        if kind == "type":
            steps.append(_Step("type", 0.1, text=str(value)))
        elif kind == "backspace":
            steps.append(_Step("backspace", 0.1, count=int(str(value))))
        else:
            steps.append(_Step("move", 0.1, offset=int(str(value))))
    return steps


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param(_steps(("type", "a"), ("type", "b")), "ab", id="typing"),
        pytest.param(
            _steps(("type", "s"), ("type", "x"), ("backspace", 1), ("type", "e")),
            "se",
            id="a-typo-and-its-fix",
        ),
        pytest.param(_steps(("type", "a"), ("move", 3), ("type", "b")), "a", id="until-a-move"),
        pytest.param(_steps(("backspace", 1), ("type", "b")), "", id="backspace-into-old-text"),
        pytest.param(_steps(), "", id="nothing-left"),
    ],
)
def test_the_replay_tells_what_is_typed_at_the_cursor(steps: deque[_Step], expected: str) -> None:
    assert upcoming_insert(steps) == expected


def test_oracle_book_answers_only_for_its_place() -> None:
    book = OracleBook()
    book.tell("file:///a", 3, 10, "next")
    assert book.typed_at("file:///a", 3, 10) == "next"
    assert book.typed_at("file:///a", 4, 10) == ""
    assert book.typed_at("file:///a", 3, 11) == ""
    assert book.typed_at("file:///b", 3, 10) == ""


TEXT = "def total(values):\n    result = 0\n    \n    return result\n"
CURSOR = TEXT.index("    \n") + 4


async def test_a_request_generates_the_oracles_tokens_only() -> None:
    fake = FakeBackend("noise noise noise")
    fake.load()
    settings = Settings(completion=CompletionSettings(multi_line="on"))
    worker = InferenceWorker()
    service = CompletionService(Host(fake), worker, Stats(), lambda: settings)  # type: ignore[arg-type]
    service.oracle = OracleBook()
    doc = Document("file:///ws/app.py", TEXT, language=PYTHON)
    try:
        service.oracle.tell(doc.uri, doc.revision, CURSOR, "result += 1\n    result *= 2\n")
        current_request_id.set(1)
        await service.complete(doc, CURSOR, "app.py")
        told = fake.calls[-1].policy
        calls = len(fake.calls)
        service.oracle.forget(doc.uri)  # nothing typed here: a right model shows nothing
        # The noise was cut to nothing, so the place is remembered as silent: forget that,
        # to see the oracle decline on its own.
        service.suggestions.forget(doc.uri)
        current_request_id.set(2)
        assert await service.complete(doc, CURSOR, "app.py") is None
    finally:
        worker.shutdown()
    # A block answered by its first line: "result += 1" is 11 fake tokens, plus the end.
    assert told.max_new_tokens == 12 and not told.stop_ids and not told.single_line
    assert len(fake.calls) == calls  # declined without the model
    assert service.stats.records[-1].source == "none"


def test_a_replay_with_the_oracle_runs_through_the_server(tmp_path: Path) -> None:
    script = tmp_path / "model-output.txt"
    script.write_text("total = a + b", encoding="utf-8")
    session = record_session(
        name="tiny", language_id="python", path="pkg/tiny.py",
        final_text="def add(a, b):\n    total = a + b\n    return total\n",
        regions=[(2, 3)], seed=5,
    )  # fmt: skip
    config = bench_cli.BenchConfig(model=None, backend=f"scripted:{script}")
    options = ReplayOptions(time_scale=0.25, follow_probability=0, oracle=True)
    result = bench_cli.run_server(config, [session], {}, options, lambda _: None)
    assert not result.warnings
    [log] = result.logs
    assert log.reached_final_text
    assert log.pauses and log.inserted
    assert all(request.outcome != "unanswered" for request in log.requests)
