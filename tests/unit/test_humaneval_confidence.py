"""The HumanEval command writes each task's confidence and a threshold table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from codegemma_lsp.config import Settings
from codegemma_lsp.engine.fake import FakeBackend
from codegemma_lsp.evals.humaneval_eval import ResultsFile, evaluate, format_summary, run_header
from codegemma_lsp.evals.humaneval_tasks import InfillTask
from tests.unit.test_humaneval_eval import FAST, MULTI, eval_humaneval, human_eval, python

__all__ = ["human_eval", "python"]  # fixtures


def test_each_task_has_its_confidence_and_the_table_counts_what_passes(
    python: object, tmp_path: Path
) -> None:
    wrong = "    return -1\n"

    def sure_when_right(task: InfillTask) -> FakeBackend:
        # The right middle for the first five tasks, said with confidence; a wrong one,
        # unsure, for the others.
        right = MULTI.index(task) < 5
        text = task.canonical_solution if right else wrong
        backend = FakeBackend(text, logprobs={text: math.log(0.95 if right else 0.2)})
        backend.load()
        return backend

    rows = []
    results = ResultsFile(tmp_path / "r.jsonl", run_header("multi", "fake", Settings()))
    report = evaluate(
        "multi",
        MULTI,
        sure_when_right,
        Settings(),
        language=python,  # type: ignore[arg-type]
        limits=FAST,
        on_result=lambda r: (rows.append(r), results.append(r)),
    )
    results.close()
    table = {row.threshold: (row.shown, row.passed) for row in report.confidence_table}
    assert table[0.0] == (len(MULTI), 5)
    assert table[0.5] == (5, 5)  # above 0.5 only the sure ones are shown, and they pass
    assert table[0.9] == (5, 5) and table[0.1] == (len(MULTI), 5)
    written = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()[1:]]
    assert all(row["confidence"]["mean_prob"] in (0.95, 0.2) for row in written)
    assert {row["passed"] for row in written if row["confidence"]["mean_prob"] == 0.95} == {True}
    assert report.as_json()["confidence_table"][5] == {
        "min_confidence": 0.5,
        "shown": 5,
        "passed": 5,
        "pass_share": 1.0,
    }
    assert "minConfidence  shown  passed  pass share" in format_summary(report, "fake")


@pytest.mark.model
def test_the_command_prints_the_table_with_the_tiny_model(
    human_eval: None, tiny_model_path: Path
) -> None:
    result = eval_humaneval(
        "--model", str(tiny_model_path), "--set", "single", "--limit", "2", "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert [row["min_confidence"] for row in summary["confidence_table"]][:2] == [0.0, 0.1]
    assert "minConfidence" in result.stdout
