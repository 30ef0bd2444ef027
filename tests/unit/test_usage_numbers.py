"""The user's own numbers: retained characters, confidence, daily files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from codegemma_lsp.confidence import Confidence, confidence_of, shown, threshold_table
from codegemma_lsp.retention import ByteEdit, RetentionTracker, move_intervals
from codegemma_lsp.usage import add_to_day, all_days, load_day


@pytest.mark.parametrize(
    ("intervals", "edit", "expected"),
    [
        pytest.param([(10, 20)], ByteEdit(0, 0, 5), [(15, 25)], id="insert-before-shifts"),
        pytest.param([(10, 20)], ByteEdit(20, 20, 25), [(10, 20)], id="insert-at-end-not-counted"),
        pytest.param([(10, 20)], ByteEdit(10, 10, 13), [(13, 23)], id="insert-at-start-shifts"),
        pytest.param([(10, 20)], ByteEdit(30, 35, 30), [(10, 20)], id="delete-after-untouched"),
        pytest.param([(10, 20)], ByteEdit(12, 15, 12), [(10, 12), (12, 17)], id="delete-inside"),
        pytest.param([(10, 20)], ByteEdit(15, 15, 18), [(10, 15), (18, 23)], id="insert-inside"),
        pytest.param([(10, 20)], ByteEdit(5, 25, 7), [], id="delete-all"),
        pytest.param([(10, 20)], ByteEdit(5, 15, 6), [(6, 11)], id="delete-over-start"),
        pytest.param([(10, 20)], ByteEdit(15, 25, 16), [(10, 15)], id="delete-over-end"),
        pytest.param([(0, 4), (10, 20)], ByteEdit(2, 12, 3), [(0, 2), (3, 11)], id="across-two"),
    ],
)
def test_intervals_follow_edits(
    intervals: list[tuple[int, int]], edit: ByteEdit, expected: list[tuple[int, int]]
) -> None:
    assert move_intervals(intervals, edit) == expected


def _count(text: bytes):  # type: ignore[no-untyped-def]
    return lambda _uri, s, e: len(text[s:e].decode("utf-8"))


def test_retained_characters_counted_through_edits_after_an_accept() -> None:
    tracker = RetentionTracker(window_s=30)
    text = b"x = foo(bar)\n"
    # The user accepted "foo(bar)" at byte 4.
    tracker.accept("u", 4, "foo(bar)", now=0)
    # They type "# " at the start of the line (shift), then delete "bar".
    text = b"# " + text
    tracker.edited("u", [ByteEdit(0, 0, 2)])
    text = text[:10] + text[13:]
    tracker.edited("u", [ByteEdit(10, 13, 10)])
    assert text == b"# x = foo()\n"
    assert not tracker.due(now=10)
    assert tracker.judge(10, _count(text)) == 0  # too early: nothing judged
    assert tracker.judge(31, _count(text)) == len("foo()")
    assert (tracker.accepted_chars, tracker.retained_chars, tracker.pending) == (8, 5, 0)


def test_multibyte_accepts_count_characters_not_bytes() -> None:
    tracker = RetentionTracker(window_s=1)
    text = "s = 'héllo→'".encode()
    tracker.accept("u", 4, "'héllo→'", now=0)
    assert tracker.judge(2, _count(text)) == len("'héllo→'")


def test_a_closed_document_is_judged_at_once_and_a_gone_one_retains_nothing() -> None:
    tracker = RetentionTracker(window_s=30)
    tracker.accept("a", 0, "abc", now=0)
    tracker.accept("b", 0, "def", now=0)
    assert tracker.judge(1, _count(b"abc"), uri="a") == 3
    assert tracker.judge(40, lambda _u, _s, _e: None) == 0
    assert tracker.retained_chars == 3 and tracker.judged == 2


def test_edits_to_other_documents_do_not_move_ranges() -> None:
    tracker = RetentionTracker(window_s=0)
    tracker.accept("a", 0, "abc", now=0)
    tracker.edited("b", [ByteEdit(0, 3, 0)])
    assert tracker.judge(0, _count(b"abc")) == 3


def test_confidence_from_logprobs() -> None:
    conf = confidence_of([math.log(0.5), math.log(0.25)])
    assert conf is not None
    assert conf.first_prob == pytest.approx(0.5)
    assert conf.min_logprob == pytest.approx(math.log(0.25))
    assert conf.mean_prob == pytest.approx(math.sqrt(0.5 * 0.25))
    assert confidence_of([]) is None


@pytest.mark.parametrize(
    ("mean_prob", "threshold", "expected"),
    [
        pytest.param(0.2, 0.0, True, id="off"),
        pytest.param(0.2, 0.3, False, id="below"),
        pytest.param(0.3, 0.3, True, id="at"),
        pytest.param(None, 0.9, True, id="no-confidence-shown"),
    ],
)
def test_min_confidence_rule(mean_prob: float | None, threshold: float, expected: bool) -> None:
    conf = None if mean_prob is None else Confidence(math.log(mean_prob), -5, 0.5)
    assert shown(conf, threshold) is expected


def test_threshold_table_counts_shown_and_passing() -> None:
    def conf(p: float) -> Confidence:
        return Confidence(math.log(p), math.log(p), p)

    results = [(conf(0.9), True), (conf(0.5), True), (conf(0.2), False), (None, False)]
    table = threshold_table(results, thresholds=(0.0, 0.4, 0.8, 0.95))
    assert [(r.threshold, r.shown, r.passed) for r in table] == [
        (0.0, 3, 2),
        (0.4, 2, 2),
        (0.8, 1, 1),
        (0.95, 0, 0),
    ]
    assert table[0].pass_share == pytest.approx(2 / 3)
    assert table[-1].pass_share == 0.0


def test_daily_files_add_up_and_stay_small(tmp_path: Path) -> None:
    add_to_day({"shown": 2, "accepted": 1}, [100.0, 300.0], day="2026-12-01", directory=tmp_path)
    add_to_day({"shown": 1, "accepted_chars": 7}, [200.0], day="2026-12-01", directory=tmp_path)
    add_to_day({"shown": 5}, [], day="2026-12-02", directory=tmp_path)
    day = load_day("2026-12-01", tmp_path)
    assert (day.shown, day.accepted, day.accepted_chars) == (3, 1, 7)
    assert day.summary()["latency_ms"]["p50"] == 200.0
    assert [d.day for d in all_days(tmp_path)] == ["2026-12-01", "2026-12-02"]
    add_to_day({}, [1.0] * 5000, day="2026-12-01", directory=tmp_path)
    assert len(load_day("2026-12-01", tmp_path).latencies_ms) == 2000


def test_a_corrupt_day_file_starts_afresh(tmp_path: Path) -> None:
    (tmp_path / "2026-12-01.json").write_text("{not json")
    assert load_day("2026-12-01", tmp_path).shown == 0
    assert add_to_day({"shown": 1}, [], day="2026-12-01", directory=tmp_path).shown == 1
