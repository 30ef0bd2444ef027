"""The typing-replay benchmark: sessions, what Neovim would send, the figures, one real replay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codegemma_lsp.evals import bench_cli
from codegemma_lsp.evals.replay import (
    Pause,
    ReplayOptions,
    RequestLog,
    SessionLog,
    sample_points,
)
from codegemma_lsp.evals.replay_editor import (
    ChangeBatcher,
    RequestTimer,
    position_at,
    replace_change,
    request_points,
)
from codegemma_lsp.evals.replay_metrics import (
    ServerStats,
    format_table,
    parse_stats,
    pause_figures,
    pause_trace,
    percentile,
    run_figures,
    summary,
    targets_met,
    token_account,
)
from codegemma_lsp.evals.replay_session import (
    Event,
    Session,
    play,
    record_session,
    recorded_sessions,
)

# ----- sessions -------------------------------------------------------------------------


def test_there_are_python_typescript_and_go_sessions() -> None:
    languages = {session.language_id for session in recorded_sessions()}
    assert {"python", "go"} <= languages
    assert languages & {"typescript", "javascript"}


@pytest.mark.parametrize("session", recorded_sessions(), ids=lambda s: s.name)
def test_a_recorded_session_types_its_file(session: Session) -> None:
    assert play(session.initial_text, session.events)[0] == session.final_text
    assert 60 <= session.final_text.count("\n") <= 150
    assert session.typed_chars >= 300


@pytest.mark.parametrize("session", recorded_sessions(), ids=lambda s: s.name)
def test_a_recorded_session_is_what_the_typist_model_records(session: Session) -> None:
    again = record_session(
        name=session.name,
        language_id=session.language_id,
        path=session.path,
        final_text=session.final_text,
        regions=session.regions,
        seed=session.seed,
        source=session.source,
    )
    assert again == session


@pytest.mark.parametrize("session", recorded_sessions(), ids=lambda s: s.name)
def test_a_recorded_session_has_human_pauses(session: Session) -> None:
    waits = [event.wait_ms for event in session.events]
    assert all(40 <= wait <= 4000 for wait in waits)
    assert 20 <= len(request_points(waits)) <= len(waits) // 3
    assert sum(1 for e in session.events if e.backspace) >= 1


def test_session_json_round_trips() -> None:
    session = recorded_sessions()[0]
    assert Session.from_json(json.loads(json.dumps(session.to_json()))) == session


def test_a_shortened_session_stops_after_that_share_of_typing() -> None:
    session = recorded_sessions()[0]
    short = session.shortened(0.4)
    assert 0.4 * session.typed_chars <= short.typed_chars < 0.4 * session.typed_chars + 20
    assert short.final_text == play(short.initial_text, short.events)[0]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"wait": 1}, id="nothing"),
        pytest.param({"wait": 1, "type": "a", "backspace": 1}, id="two-kinds"),
    ],
)
def test_an_event_does_exactly_one_thing(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Event.from_json(data)


def test_recording_keeps_the_indentation_of_the_first_line() -> None:
    text = "def f(x):\n    y = x + 1\n    return y\n"
    session = record_session(
        name="t", language_id="python", path="t.py", final_text=text, regions=[(2, 3)], seed=1
    )
    assert session.initial_text == "def f(x):\n    \n"
    assert session.events[0].move == len("def f(x):\n    ")
    assert Event(wait_ms=session.events[-1].wait_ms, type="y") in session.events[-2:]
    assert any(event.type == "\n    " for event in session.events)


@pytest.mark.parametrize(
    "regions",
    [pytest.param([(2, 3), (1, 2)], id="overlapping"), pytest.param([(0, 1)], id="outside")],
)
def test_recording_refuses_bad_regions(regions: list[tuple[int, int]]) -> None:
    with pytest.raises(ValueError):
        record_session(
            name="t", language_id="go", path="t.go", final_text="a\nb\nc\n", regions=regions, seed=0
        )


# ----- what Neovim sends ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "offset", "expected"),
    [
        pytest.param("abc", 2, (0, 2), id="ascii"),
        pytest.param("a\nbc", 3, (1, 1), id="second-line"),
        pytest.param("a\n", 2, (1, 0), id="after-newline"),
        pytest.param("x😀y", 2, (0, 3), id="astral-counts-two"),
        pytest.param("中文\n中", 4, (1, 1), id="cjk-counts-one"),
    ],
)
def test_positions_are_utf16(text: str, offset: int, expected: tuple[int, int]) -> None:
    assert position_at(text, offset) == {"line": expected[0], "character": expected[1]}


@pytest.mark.parametrize(
    ("text", "start", "end", "new", "result", "range_"),
    [
        pytest.param("ab", 1, 1, "X", "aXb", ((0, 1), (0, 1)), id="insert"),
        pytest.param("ab\ncd", 2, 3, "", "abcd", ((0, 2), (1, 0)), id="join-lines"),
        pytest.param("😀ab", 1, 2, "", "😀b", ((0, 2), (0, 3)), id="after-astral"),
        pytest.param("if x:", 5, 5, "\n    ", "if x:\n    ", ((0, 5), (0, 5)), id="enter-indent"),
    ],
)
def test_edits_become_incremental_changes(
    text: str,
    start: int,
    end: int,
    new: str,
    result: str,
    range_: tuple[tuple[int, int], tuple[int, int]],
) -> None:
    new_text, change = replace_change(text, start, end, new)
    assert new_text == result
    (sl, sc), (el, ec) = range_
    assert change == {
        "range": {"start": {"line": sl, "character": sc}, "end": {"line": el, "character": ec}},
        "text": new,
    }


def test_changes_are_sent_at_most_every_150_ms() -> None:
    batcher = ChangeBatcher(0.150)
    assert not batcher.add({"n": 1}, 0.0)  # the first change waits a full debounce
    assert batcher.flush_at == pytest.approx(0.150)
    assert not batcher.due(0.1)
    assert batcher.take(0.150) == [{"n": 1}]
    assert batcher.add({"n": 2}, 0.400)  # long after the last flush: at once
    assert batcher.take(0.400) == [{"n": 2}]
    assert not batcher.add({"n": 3}, 0.450)
    assert not batcher.add({"n": 4}, 0.500)
    assert batcher.flush_at == pytest.approx(0.550)
    assert batcher.take(0.550) == [{"n": 3}, {"n": 4}]


def test_the_request_timer_restarts_on_every_keystroke() -> None:
    timer = RequestTimer(0.2)
    timer.restart(0.0)
    timer.restart(0.15)
    assert not timer.due(0.3)
    assert timer.due(0.35)
    assert not timer.due(0.5)  # it fires once


@pytest.mark.parametrize(
    ("waits", "points"),
    [
        pytest.param([100, 100, 100], [2], id="fast-typing-then-stop"),
        pytest.param([100, 300, 100], [0, 2], id="one-pause"),
        pytest.param([100, 200, 201], [1, 2], id="exactly-200-does-not-fire"),
        pytest.param([], [], id="nothing"),
    ],
)
def test_requests_fire_after_pauses_longer_than_200_ms(
    waits: list[float], points: list[int]
) -> None:
    assert request_points(waits) == points


@pytest.mark.parametrize(
    ("count", "wanted", "expected"),
    [
        pytest.param(10, 2, {2, 7}, id="two-of-ten"),
        pytest.param(3, 5, {0, 1, 2}, id="more-than-there-are"),
        pytest.param(4, None, {0, 1, 2, 3}, id="all"),
    ],
)
def test_baseline_samples_are_spread(count: int, wanted: int | None, expected: set[int]) -> None:
    assert sample_points(count, wanted) == expected


# ----- figures ------------------------------------------------------------------------------


def _request(
    index: int, typed: str, *, outcome: str = "items", latency: float = 100.0, **extra: Any
) -> RequestLog:
    request = RequestLog(
        id=index + 1, index=index, sent_at=10.0 + index, typed_text=typed, deleted_text=""
    )
    request.outcome = outcome  # type: ignore[assignment]
    request.answered_at = request.sent_at + latency / 1000
    for key, value in extra.items():
        setattr(request, key, value)
    return request


def _count(text: str) -> int:
    return len(text.split())


def _record(uri: str, evaluated: int, **extra: Any) -> dict[str, Any]:
    return {"uri": uri, "source": "model", "evaluated_tokens": evaluated, **extra}


def test_reeval_leaves_out_each_files_warm_up_but_counts_all_its_typing() -> None:
    logs = [
        SessionLog("a", "file:///a", [_request(0, "x y z"), _request(1, "one two")]),
        SessionLog("b", "file:///b", [_request(0, ""), _request(1, "three")]),
    ]
    stats = parse_stats(
        {
            "records": [
                _record("file:///a", 900),
                _record("file:///a", 3),
                _record("file:///b", 800),
                _record("file:///b", 1, source="cache"),
                _record("file:///b", 2, cancelled=True),
            ]
        }
    )
    figures = run_figures(logs, stats, _count, peak_rss_mb=10.0)
    assert figures.typed_tokens == 6
    assert figures.evaluated_tokens == 6
    assert figures.reeval_tokens_per_typed_token == pytest.approx(1.0)
    assert figures.cache_answer_rate == pytest.approx(1 / 4)


def _ids(uri: str, *rows: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Records of (request id, evaluated tokens[, cancelled, generated]); a None id is
    pre-warming."""
    records = []
    for rid, evaluated, *rest in rows:
        cancelled, generated = [*rest, False, 0][:2]
        if rid is None:
            records.append(_record(uri, evaluated, source="prewarm"))
        else:
            records.append(
                _record(uri, evaluated, id=rid, cancelled=cancelled, generated_tokens=generated)
            )
    return records


@pytest.mark.parametrize(
    ("outcomes", "moved", "records", "expected"),
    [
        # A cancelled first request: the warm-up runs to the first answered one,
        # pre-warming included. Typing counts the whole session.
        pytest.param(
            ["cancelled", "items", "items", "empty"],
            set(),
            [(None, 300), (1, 100, True), (2, 50), (3, 2), (4, 4)],
            {"typed": 4, "evaluated": 6, "relocation_evaluated": 0, "relocations": 0},
            id="warm-up-to-the-first-answer",
        ),
        # A cancelled request that was already generating had its prompt evaluated:
        # the warm-up ends with it, though nothing was answered.
        pytest.param(
            ["cancelled", "cancelled", "cancelled"],
            set(),
            [(1, 100, True, 2), (2, 3, True), (3, 2, True)],
            {"typed": 3, "evaluated": 5, "relocation_evaluated": 0, "relocations": 0},
            id="warm-up-ends-once-the-prompt-is-in",
        ),
        # A cancelled request's work counts, and a move starts a relocation that
        # lasts to the first answer after it.
        pytest.param(
            ["items", "cancelled", "cancelled", "items", "empty"],
            {3},
            [(1, 500), (2, 7, True), (3, 90, True), (4, 40), (5, 3)],
            {"typed": 5, "evaluated": 140, "relocation_evaluated": 130, "relocations": 1},
            id="relocation-to-the-first-answer-there",
        ),
    ],
)
def test_token_account_splits_warm_up_relocations_and_keystrokes(
    outcomes: list[str], moved: set[int], records: list[tuple[Any, ...]], expected: Any
) -> None:
    requests = [
        _request(i, "word", outcome=outcome, moved=(i + 1) in moved)
        for i, outcome in enumerate(outcomes)
    ]
    stats = parse_stats({"records": _ids("file:///a", *records)})
    account = token_account([SessionLog("a", "file:///a", requests)], stats.records, _count)
    assert account.typed == expected["typed"]
    assert account.evaluated == expected["evaluated"]
    assert account.relocation_evaluated == expected["relocation_evaluated"]
    assert account.relocations == expected["relocations"]


def test_latency_counts_answered_requests() -> None:
    requests = [
        _request(0, "", latency=1000),
        _request(1, "a", latency=3000),
        _request(2, "b", outcome="empty", latency=2),
        _request(3, "c", outcome="cancelled", latency=50, superseded_at=13.0 + 0.02),
    ]
    figures = run_figures(
        [SessionLog("a", "file:///a", requests)], ServerStats(None, None), _count, peak_rss_mb=None
    )
    assert figures.median_latency_ms == pytest.approx(1000)
    assert figures.p95_latency_ms == pytest.approx(3000)
    assert (figures.answered_with_items, figures.empty, figures.cancelled) == (2, 1, 1)
    assert figures.cancel_latency_source == "client"
    assert figures.cancel_latency_p95_ms == pytest.approx(30, abs=0.01)
    assert figures.evaluated_tokens is None
    assert figures.reeval_tokens_per_typed_token is None


def test_latency_leaves_out_requests_the_server_declined() -> None:
    requests = [_request(0, "", latency=900), _request(1, "a", outcome="empty", latency=3)]
    stats = parse_stats(
        {
            "records": [
                _record("file:///a", 500, id=1),
                _record("file:///a", 0, id=2, source="none"),
            ]
        }
    )
    figures = run_figures([SessionLog("a", "file:///a", requests)], stats, _count, peak_rss_mb=None)
    assert figures.median_latency_ms == pytest.approx(900)


def test_server_cancel_latencies_win_over_the_clients() -> None:
    stats = parse_stats({"records": [], "cancel_latencies_ms": [5.0, 7.0, 90.0]})
    figures = run_figures([], stats, _count, peak_rss_mb=None)
    assert (figures.cancel_latency_p95_ms, figures.cancel_latency_source) == (90.0, "server")


@pytest.mark.parametrize(
    "result",
    [
        pytest.param(None, id="none"),
        pytest.param({"shown": 3}, id="summary-only"),
        pytest.param({"records": [{"uri": 3, "evaluated_tokens": "x"}, 7]}, id="junk-fields"),
    ],
)
def test_stats_parsing_is_tolerant(result: Any) -> None:
    stats = parse_stats(result)
    for record in stats.records or []:
        assert record.uri is None
        assert record.evaluated_tokens is None


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        pytest.param([1.0], 0.95, 1.0, id="one"),
        pytest.param([float(v) for v in range(1, 21)], 0.95, 19.0, id="twenty"),
        pytest.param([], 0.5, None, id="empty"),
    ],
)
def test_percentile_is_nearest_rank(
    values: list[float], fraction: float, expected: float | None
) -> None:
    assert percentile(values, fraction) == expected


def test_summary_has_the_issues_keys_and_checks_the_targets() -> None:
    logs = [SessionLog("a", "file:///a", [_request(0, "", latency=100), _request(1, "a b")])]
    stats = parse_stats(
        {"records": [_record("file:///a", 500, overhead_ms=1.0), _record("file:///a", 4)]}
    )
    ours = run_figures(logs, stats, _count, peak_rss_mb=1900.0)
    base_logs = [SessionLog("a", "file:///a", [_request(0, "", latency=2000)])]
    base = run_figures(base_logs, ServerStats(None, None), _count, peak_rss_mb=None)
    result = summary("psm", ours, base, model_mb=1564.0)
    keys = [
        "answered_in_pause",
        "baseline_answered_in_pause",
        "answered_in_pause_600ms",
        "baseline_answered_in_pause_600ms",
        "time_to_suggestion_p50_ms",
        "baseline_time_to_suggestion_p50_ms",
        "time_to_suggestion_p95_ms",
        "baseline_time_to_suggestion_p95_ms",
        "machine",
        "stop",
        "median_latency_ms",
        "p95_latency_ms",
        "baseline_median_latency_ms",
        "latency_ratio",
        "reeval_tokens_per_typed_token",
        "cache_answer_rate",
        "overhead_p95_ms",
        "cancel_latency_p95_ms",
        "peak_rss_mb",
        "model_mb",
        "mode",
    ]
    assert list(result)[: len(keys)] == keys
    assert result["latency_ratio"] == pytest.approx(0.05)
    assert result["targets_met"] == {
        "answered_in_pause": False,
        "latency_ratio": True,
        "reeval_tokens_per_typed_token": False,
        "overhead_p95_ms": True,
        "cancel_latency_p95_ms": True,  # none cancelled: 0 ms
        "peak_rss_mb": True,
    }
    assert "re-eval tokens / typed" in format_table([result])
    json.dumps(result)


def test_targets_are_unknown_without_figures() -> None:
    assert set(targets_met({}).values()) == {None}


# ----- pauses --------------------------------------------------------------------------------


def _answered(rid: int, at: float, *, outcome: str = "items", fresh: bool = True) -> RequestLog:
    request = RequestLog(id=rid, index=rid, sent_at=at - 0.1, typed_text="", deleted_text="")
    request.outcome = outcome  # type: ignore[assignment]
    request.answered_at = at
    request.fresh = fresh
    return request


PAUSES = [Pause(10.0, 11.5, 1500), Pause(20.0, 21.2, 1200), Pause(30.0, 30.8, 800)]


@pytest.mark.parametrize(
    ("requests", "records", "threshold", "expected"),
    [
        pytest.param(
            [_answered(1, 10.6), _answered(2, 21.5)],
            [],
            1000.0,
            {"pauses": 2, "answered": 1, "share": 0.5, "p50": 600.0, "p95": 1200.0},
            id="one-in-time-one-too-late",
        ),
        pytest.param(
            [_answered(1, 10.6), _answered(2, 21.0), _answered(3, 30.5)],
            [],
            600.0,
            {"pauses": 3, "answered": 3, "share": 1.0, "p50": 600.0, "p95": 1000.0},
            id="shorter-pauses-count-at-600-ms",
        ),
        pytest.param(
            [_answered(1, 10.6, fresh=False), _answered(2, 20.4, outcome="cancelled")],
            [],
            1000.0,
            {"pauses": 2, "answered": 0, "share": 0.0, "p50": 1200.0, "p95": 1500.0},
            id="stale-and-cancelled-answers-are-none",
        ),
        pytest.param(
            [_answered(1, 10.6), _answered(2, 20.4)],
            [{"id": 1, "stop_reason": "time"}, {"id": 2, "source": "cache"}],
            1000.0,
            {"pauses": 2, "answered": 1, "share": 0.5, "p50": 400.0, "p95": 1500.0},
            id="a-cut-by-the-time-budget-is-none",
        ),
        pytest.param(
            [_answered(1, 10.6, outcome="empty"), _answered(2, 20.4)],
            [{"id": 1, "source": "none"}, {"id": 2, "stop_reason": "length"}],
            1000.0,
            {"pauses": 1, "answered": 1, "share": 1.0, "p50": 400.0, "p95": 400.0},
            id="a-declined-pause-is-left-out",
        ),
    ],
)
def test_pause_figures(
    requests: list[RequestLog],
    records: list[dict[str, Any]],
    threshold: float,
    expected: dict[str, float],
) -> None:
    log = SessionLog("a", "file:///a", requests, pauses=list(PAUSES))
    raw = [{"uri": "file:///a", "source": "model", **record} for record in records]
    figures = pause_figures([log], parse_stats({"records": raw}).records, threshold)
    assert figures.pauses == expected["pauses"]
    assert figures.answered == expected["answered"]
    assert figures.answered_share == pytest.approx(expected["share"])
    assert figures.time_p50_ms == pytest.approx(expected["p50"])
    assert figures.time_p95_ms == pytest.approx(expected["p95"])


def test_the_pause_trace_lists_each_pause_with_its_requests_and_no_text() -> None:
    requests = [_answered(1, 10.6), _answered(2, 21.0, outcome="cancelled")]
    requests[0].text = "secret code"
    log = SessionLog("a", "file:///a", requests, pauses=list(PAUSES))
    raw = [{"uri": "file:///a", "source": "cache", "id": 1, "joined": True}]
    trace = pause_trace([log], parse_stats({"records": raw}).records, 1000.0)
    assert [(p["wait_ms"], len(p["requests"])) for p in trace] == [(1500, 1), (1200, 1)]
    first = trace[0]["requests"][0]
    assert first["answered_ms"] == pytest.approx(600.0)
    assert first["kind"] == "suggestion"
    assert first["record"]["source"] == "cache" and first["record"]["joined"] is True
    assert trace[1]["requests"][0]["kind"] == "none"
    assert "secret code" not in json.dumps(trace)


def test_closed_loop_pause_figures_pair_each_latency_with_each_pause() -> None:
    # Latencies of 0.5 s and 1.1 s, plus the editor's 0.2 s: 0.7 s fits both pauses,
    # 1.3 s fits only the 1.5 s one.
    requests = [_request(0, "", latency=500), _request(1, "", latency=1100)]
    log = SessionLog("a", "file:///a", requests, pauses=PAUSES[:2])
    figures = pause_figures([log], None, 1000.0, closed_loop=True)
    assert figures.answered_share == pytest.approx(3 / 4)
    assert figures.time_p50_ms == pytest.approx(700.0)


def test_every_figure_has_a_value_when_nothing_was_answered() -> None:
    requests = [_request(i, "word", outcome="cancelled", superseded_at=10.0 + i) for i in range(3)]
    log = SessionLog("a", "file:///a", requests, pauses=list(PAUSES), inserted=["one two", "three"])
    stats = parse_stats(
        {"records": [_record("file:///a", 50, id=i + 1, cancelled=True) for i in range(3)]}
    )
    result = summary("psm", run_figures([log], stats, _count, peak_rss_mb=None), None, model_mb=1)
    nulls = [key for key, value in result.items() if value is None]
    assert nulls == ["baseline_answered_in_pause", "baseline_answered_in_pause_600ms",
                     "baseline_time_to_suggestion_p50_ms", "baseline_time_to_suggestion_p95_ms",
                     "machine", "baseline_median_latency_ms", "latency_ratio", "peak_rss_mb",
                     "baseline"]  # fmt: skip
    ours = result["ours"]
    assert [key for key, value in ours.items() if value is None] == ["peak_rss_mb"]
    assert ours["typed_tokens"] == 3  # from the session's own edits
    assert ours["latency_basis"] == "cancelled (lower bound)"
    assert result["answered_in_pause"] == 0.0


# ----- one replay through the real server, with a scripted backend ------------------------------


def _tiny_session() -> Session:
    text = "def add(a, b):\n    total = a + b\n    return total\n"
    return record_session(
        name="tiny", language_id="python", path="pkg/tiny.py", final_text=text,
        regions=[(2, 3)], seed=5,
    )  # fmt: skip


def _replay(tmp_path: Path, output: str, options: ReplayOptions) -> SessionLog:
    script = tmp_path / "model-output.txt"
    script.write_text(output, encoding="utf-8")
    config = bench_cli.BenchConfig(model=None, backend=f"scripted:{script}")
    result = bench_cli.run_server(config, [_tiny_session()], {}, options, lambda _: None)
    assert not result.warnings
    assert result.stats.records is not None
    [log] = result.logs
    assert log.reached_final_text
    return log


def test_replay_accepts_a_suggestion_that_types_what_comes_next(tmp_path: Path) -> None:
    log = _replay(tmp_path, "total = a + b", ReplayOptions(time_scale=0.25, follow_probability=0))
    assert log.accepted >= 1
    assert log.typed_chars < len("total = a + b\n    return total")
    assert all(request.outcome != "unanswered" for request in log.requests)
    assert any(request.outcome == "items" for request in log.requests)


def test_replay_follows_a_suggestion_and_undoes_it(tmp_path: Path) -> None:
    options = ReplayOptions(time_scale=0.25, follow_probability=1.0, seed=3)
    log = _replay(tmp_path, "print(a, b)", options)
    assert log.followed >= 1
    assert any(request.deleted_text for request in log.requests)
