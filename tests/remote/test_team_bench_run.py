"""``bench team`` end to end with the tiny model: one real llama_cpp.server per arm, real
daemons, a short replay. Figures are printed, not asserted; only their shape is."""

from __future__ import annotations

from pathlib import Path

import pytest

from codegemma_lsp.evals.team_bench import TeamConfig, format_team, run_team

pytestmark = pytest.mark.model


def test_bench_team_runs_both_arms(tiny_model_path: Path) -> None:
    config = TeamConfig(
        clients=2,
        model=tiny_model_path,
        engine="llama-cpp-python",
        time_scale=0.2,
        session_fraction=0.1,
    )
    result = run_team(config, lambda message: None)
    print(format_team(result))
    assert set(result["arms"]) == {"pinned", "shared"}
    for arm in result["arms"].values():
        assert [client["client"] for client in arm["clients"]] == [0, 1]
        assert all("error" not in client for client in arm["clients"]), arm["clients"]
        assert arm["server"]["evaluated_tokens"] > 0
        assert arm["typed_tokens"] > 0
    assert "one slot" in result["meaning"]
