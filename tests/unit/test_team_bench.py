"""``bench team``'s pure parts: engine command lines, metrics, the comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

from codegemma_lsp.engine.counted_server import read_counts
from codegemma_lsp.evals.team_bench import (
    TeamConfig,
    comparison,
    engine_command,
    parse_metrics,
    team_sessions,
)


def _config(engine: str, **fields: object) -> TeamConfig:
    return TeamConfig(clients=4, model=Path("/m/model.gguf"), engine=engine, threads=2, **fields)  # type: ignore[arg-type]


def test_llama_server_gets_a_slot_per_client_and_its_metrics() -> None:
    command = engine_command(_config("llama-server"), 8080, "pinned", Path("/tmp/x"))
    assert command[0] == "llama-server"
    assert command[command.index("-np") + 1] == "4"
    assert command[command.index("-c") + 1] == str(4 * 4096)
    assert "--metrics" in command
    assert "--cache-reuse" in command
    assert command[command.index("--host") + 1] == "127.0.0.1"


@pytest.mark.parametrize(
    ("arm", "cache"),
    [
        pytest.param("pinned", True, id="pinned-ram-cache"),
        pytest.param("shared", False, id="shared"),
    ],
)
def test_llama_cpp_server_runs_counted(arm: str, cache: bool) -> None:
    command = engine_command(_config("llama-cpp-python"), 8000, arm, Path("/tmp/x"))
    assert command[1:3] == ["-m", "codegemma_lsp.engine.counted_server"]
    assert command[3] == f"/tmp/x/counts-{arm}.jsonl"
    assert ("--cache" in command) is cache
    assert command[command.index("--host") + 1] == "127.0.0.1"


def test_no_repack_reaches_either_engine() -> None:
    for engine in ("llama-server", "llama-cpp-python"):
        command = engine_command(_config(engine, no_repack=True), 1, "shared", Path("/t"))
        assert "--no-repack" in command


def test_parse_metrics() -> None:
    text = (
        "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n"
        "# TYPE llamacpp:prompt_tokens_total counter\n"
        "llamacpp:prompt_tokens_total 1234\n"
        "llamacpp:tokens_predicted_total 56\n"
        'llamacpp:requests_processing{slot="0"} 1\n'
        "garbage\n"
    )
    assert parse_metrics(text) == {
        "llamacpp:prompt_tokens_total": 1234.0,
        "llamacpp:tokens_predicted_total": 56.0,
        "llamacpp:requests_processing": 1.0,
    }


def test_read_counts(tmp_path: Path) -> None:
    path = tmp_path / "counts.jsonl"
    path.write_text(
        '{"evaluated": 100}\n{"generated": 5, "seconds": 1.5}\nnot json\n{"evaluated": 3}\n'
    )
    assert read_counts(path) == {
        "evaluated": 103,
        "generated": 5,
        "seconds": 1.5,
        "calls": 2,
        "running": 1,
    }
    assert read_counts(tmp_path / "missing")["calls"] == 0


def test_comparison() -> None:
    pinned = {"p50_ms": 100.0, "p95_ms": 400.0, "reeval_tokens_per_typed_token": 2.0}
    shared = {"p50_ms": 300.0, "p95_ms": None, "reeval_tokens_per_typed_token": 20.0}
    assert comparison(pinned, shared) == {
        "shared_over_pinned_p50": 3.0,
        "shared_over_pinned_p95": None,
        "shared_over_pinned_reeval": 10.0,
    }


def test_clients_take_the_recorded_sessions_in_turn() -> None:
    sessions = team_sessions(_config("llama-server", quick=True))
    assert len(sessions) == 4
    assert sessions[0].name == sessions[3].name != sessions[1].name
