"""The truncation benchmark, driven by stand-in truncate functions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from codegemma_lsp.evals import truncation_eval
from codegemma_lsp.evals.cli import add_eval_parser
from codegemma_lsp.evals.humaneval_tasks import InfillTask, Problem, dump_tasks, multi_line_tasks
from codegemma_lsp.evals.truncation_eval import (
    DUPLICATE_CLOSING,
    EXTRA_FUNCTION,
    SUFFIX_LINES,
    Scope,
    evaluate,
    over_generations,
    percentile,
    spread,
)
from codegemma_lsp.syntax.languages import LanguageSpec

PROBLEM = Problem(
    task_id="HumanEval/T",
    prompt="def add_all(xs):\n",
    canonical_solution="    total = 0\n    for x in xs:\n        total += x\n    return total\n",
    test="def check(f):\n    assert f([1, 2]) == 3\n    assert f([]) == 0\n",
    entry_point="add_all",
)
TASKS = multi_line_tasks([PROBLEM])  # 10 tasks


def identity(
    prefix: str,
    generated: str,
    suffix: str,
    language: LanguageSpec | None,
    *,
    scope: Scope | None = None,
) -> str:
    return generated


def oracle_for(tasks: list[InfillTask]) -> truncation_eval.TruncateFn:
    middles = {(t.prompt, t.suffix): t.canonical_solution for t in tasks}

    def oracle(
        prefix: str,
        generated: str,
        suffix: str,
        language: LanguageSpec | None,
        *,
        scope: Scope | None = None,
    ) -> str:
        return middles[(prefix, suffix)]

    return oracle


def broken(
    prefix: str,
    generated: str,
    suffix: str,
    language: LanguageSpec | None,
    *,
    scope: Scope | None = None,
) -> str:
    raise RuntimeError("bug")


def task(middle: str, suffix: str, prompt: str = "def f():\n") -> InfillTask:
    return InfillTask("T/1", "f", prompt, suffix, middle, "def check(f):\n    pass\n")


@pytest.mark.parametrize(
    ("infill", "index", "expected"),
    [
        pytest.param(
            task("    a = 1\n", "    b = 2\n\n    c = 3\n    d = 4\n"),
            0,
            {
                SUFFIX_LINES: "    a = 1\n    b = 2\n\n    c = 3\n",
                EXTRA_FUNCTION: "    a = 1\n\n\ndef helper(x):\n    return x * 2\n",
                DUPLICATE_CLOSING: "    a = 1\n    b = 2\n",
            },
            id="two-suffix-lines",
        ),
        pytest.param(
            task("    a = 1\n", "    b = 2\n    c = 3\n    d = 4\n    e = 5\n"),
            1,
            {
                SUFFIX_LINES: "    a = 1\n    b = 2\n    c = 3\n    d = 4\n",
                EXTRA_FUNCTION: "    a = 1\n" + truncation_eval._EXTRA_FUNCTIONS[1],
                DUPLICATE_CLOSING: "    a = 1\n    b = 2\n",
            },
            id="three-suffix-lines",
        ),
        pytest.param(
            task("    x = [\n        1,\n    ]\n", "    return x\n"),
            4,
            {
                SUFFIX_LINES: "    x = [\n        1,\n    ]\n    return x\n",
                EXTRA_FUNCTION: "    x = [\n        1,\n    ]\n\n\n# Example usage:\nprint(f)\n",
                DUPLICATE_CLOSING: "    x = [\n        1,\n    ]\n    ]\n",
            },
            id="bracket-line-repeated",
        ),
        pytest.param(
            task("    return 1\n", "\n"),
            0,
            {
                EXTRA_FUNCTION: "    return 1\n\n\ndef helper(x):\n    return x * 2\n",
                DUPLICATE_CLOSING: "    return 1\n    return 1\n",
            },
            id="blank-suffix-repeats-last-line",
        ),
        pytest.param(
            task("x", " = 1\n    y = 2\n    z = 3\n", prompt="def f():\n    "),
            0,
            {
                SUFFIX_LINES: "x = 1\n    y = 2\n",
                EXTRA_FUNCTION: "x\n\n\ndef helper(x):\n    return x * 2\n",
                DUPLICATE_CLOSING: "x\n = 1\n",
            },
            id="random-span-middle",
        ),
    ],
)
def test_over_generations(infill: InfillTask, index: int, expected: dict[str, str]) -> None:
    cases = over_generations(infill, index)
    assert {case.kind: case.generated for case in cases} == expected


def test_identity_truncation_changes_nothing() -> None:
    report = evaluate(TASKS, identity, language=None, jobs=2)
    assert report.tasks == 10
    # Tasks whose middle starts the solution have an extra blank line in the prompt.
    assert report.canonical_programs == 2
    assert report.canonical_failures == 0
    assert report.overall.truncated_passed == report.overall.raw_passed
    assert report.overall.exact == 0
    assert report.overall.regressions == 0
    # Every task but the one ending the function has a suffix to repeat.
    assert [k.cases for k in report.kinds] == [6, 10, 10]
    assert report.programs_reused >= report.overall.cases


def test_oracle_truncation_passes_everything() -> None:
    report = evaluate(TASKS, oracle_for(TASKS), language=None, jobs=2)
    assert report.overall.truncated_passed == report.overall.cases
    assert report.overall.exact == report.overall.cases
    assert report.overall.raw_passed < report.overall.cases
    data = json.loads(json.dumps(report.as_json()))
    assert data["truncated_pass_rate"] == 1.0
    assert set(data["kinds"]) == {SUFFIX_LINES, EXTRA_FUNCTION, DUPLICATE_CLOSING}


def test_a_failing_truncate_is_counted_not_fatal() -> None:
    report = evaluate(TASKS[:2], broken, language=None, jobs=1)
    assert report.truncate_errors == report.overall.cases
    assert report.overall.truncated_passed == 0
    assert "RuntimeError: bug" in report.first_truncate_error


def test_command_ends_with_one_json_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks_file = tmp_path / "tasks.jsonl"
    dump_tasks(TASKS, tasks_file)
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["eval", "truncation", "--json", "--limit", "4", "--jobs", "2", "--tasks", str(tasks_file)]
    )
    assert args.func is truncation_eval.run
    assert truncation_eval.run(args, truncate=oracle_for(TASKS)) == 0
    out = capsys.readouterr()
    data = json.loads(out.out.strip().splitlines()[-1])
    assert data["tasks"] == 4
    assert data["raw_pass_rate"] < data["truncated_pass_rate"] == 1.0
    assert {"truncate_p95_ms", "truncate_p50_ms", "kinds", "cases"} <= set(data)
    assert "suffix_lines" in out.out  # the table
    assert "eval truncation:" in out.err  # progress


@pytest.mark.parametrize(
    ("values", "percent", "expected"),
    [
        pytest.param([], 95, 0.0, id="empty"),
        pytest.param([3.0], 95, 3.0, id="one"),
        pytest.param([float(v) for v in range(1, 101)], 95, 95.0, id="hundred"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 50, 2.0, id="median-lower"),
    ],
)
def test_percentile(values: list[float], percent: float, expected: float) -> None:
    assert percentile(values, percent) == expected


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        pytest.param(None, list(range(10)), id="all"),
        pytest.param(20, list(range(10)), id="more-than-there-are"),
        pytest.param(3, [0, 3, 6], id="spread"),
        pytest.param(1, [0], id="one"),
    ],
)
def test_spread(limit: int | None, expected: list[int]) -> None:
    assert [TASKS.index(t) for t in spread(TASKS, limit)] == expected
