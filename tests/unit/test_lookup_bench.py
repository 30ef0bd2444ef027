"""bench lookup: the oracle's step counts and the speed estimate, without a model."""

from __future__ import annotations

from collections import Counter

import pytest

from codegemma_lsp.evals.lookup_bench import (
    OracleRun,
    estimated_speed,
    format_lookup,
    lookup_figures,
    oracle_lookup,
)


@pytest.mark.parametrize(
    ("prompt", "middle", "draft", "expected"),
    [
        # Nothing to look up: one step per token, no drafts.
        ([1, 2, 3], [7, 8, 9], 4, (3, 3, 0, 0)),
        # After 5 6 the prompt had 7 8: emitting 6 drafts 7 8, both kept.
        ([5, 6, 7, 8], [5, 6, 7, 8], 4, (4, 2, 2, 2)),
        # The draft goes wrong at its second token: one kept.
        ([5, 6, 7, 8], [5, 6, 7, 0], 4, (4, 3, 2, 1)),
        # The draft length caps what one step can keep.
        ([5, 6, 7, 8, 9], [5, 6, 7, 8, 9], 1, (5, 3, 2, 2)),
    ],
)
def test_oracle_lookup(
    prompt: list[int], middle: list[int], draft: int, expected: tuple[int, int, int, int]
) -> None:
    run = oracle_lookup([(prompt, middle)], draft)
    assert (run.tokens, run.steps, run.drafted, run.accepted) == expected
    assert sum(run.draft_sizes.values()) == run.steps


def test_estimated_speed_weighs_each_step_by_its_batch_cost() -> None:
    # 6 tokens in 3 steps: one plain step and two that fed a 2-token draft (3-token batches).
    run = OracleRun(tokens=6, steps=3, drafted=4, accepted=3, draft_sizes=Counter({0: 1, 2: 2}))
    assert estimated_speed(run, {1: 10.0, 3: 10.0}) == pytest.approx(2.0)
    assert estimated_speed(run, {1: 10.0, 3: 25.0}) == pytest.approx(1.0)


def test_lookup_figures_and_table() -> None:
    cases = {"toy": [([5, 6, 7, 8], [5, 6, 7, 8])]}
    result = lookup_figures(cases, [2], {1: 10.0, 2: 15.0, 3: 20.0})
    assert result["batch_cost_ratio"] == {"1": 1.0, "2": 1.5, "3": 2.0}
    (row,) = result["oracle"]
    assert row == {
        "set": "toy",
        "draft": 2,
        "tokens_per_step": 2.0,
        "acceptance": 1.0,
        "estimated_speed": pytest.approx(4 / 3, abs=1e-3),
    }
    assert "estimated speed" in format_lookup(result)


def test_bench_lookup_is_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    from codegemma_lsp.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "lookup", "--help"])
    assert exit_info.value.code == 0
    assert "estimated speed" in capsys.readouterr().out
