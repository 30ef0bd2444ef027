"""The pacing rule: machine speed and the user's pauses to budgets."""

from __future__ import annotations

import pytest

from codegemma_lsp.config import AutoSwitch, parse_settings
from codegemma_lsp.engine.speed import MachineSpeed
from codegemma_lsp.pacing import (
    MIN_PAUSES,
    STATIC,
    Pacing,
    PauseTracker,
    Pins,
    derive_pacing,
    middle_fill,
    paced_settings,
    pins_of,
)

SLOW_DAY = MachineSpeed(prompt_tps=27, generate_tps=10)
FAST_DAY = MachineSpeed(prompt_tps=72, generate_tps=19)
LAPTOP = MachineSpeed(prompt_tps=150, generate_tps=30)
GPU = MachineSpeed(prompt_tps=2000, generate_tps=90)


@pytest.mark.parametrize(
    ("speed", "median_pause_ms", "expected"),
    [
        pytest.param(None, None, STATIC, id="no-speed-static"),
        pytest.param(None, 400.0, STATIC, id="no-speed-ignores-pauses"),
        pytest.param(
            SLOW_DAY, None, Pacing(1500, 256, 64, 256, False, True), id="slow-day-no-pauses"
        ),
        pytest.param(
            SLOW_DAY, 700.0, Pacing(1400, 256, 64, 256, False, True), id="slow-day-typing"
        ),
        pytest.param(
            SLOW_DAY, 1300.0, Pacing(2600, 256, 64, 256, True, True), id="slow-day-slow-user"
        ),
        pytest.param(FAST_DAY, None, Pacing(1500, 544, 64, 256, True, True), id="fast-day"),
        pytest.param(
            FAST_DAY, 500.0, Pacing(1000, 544, 64, 256, False, True), id="fast-day-quick-user"
        ),
        pytest.param(LAPTOP, 700.0, Pacing(1400, 1024, 128, 256, True, True), id="laptop"),
        pytest.param(GPU, 700.0, Pacing(1400, 1024, 256, 256, True), id="gpu-caps"),
        pytest.param(GPU, 100.0, Pacing(750, 1024, 256, 256, True), id="budget-floor"),
        pytest.param(GPU, 9000.0, Pacing(3000, 1024, 256, 256, True), id="budget-ceiling"),
    ],
)
def test_speed_and_pauses_give_budgets(
    speed: MachineSpeed | None, median_pause_ms: float | None, expected: Pacing
) -> None:
    assert derive_pacing(speed, median_pause_ms) == expected


@pytest.mark.parametrize(
    ("pins", "expected"),
    [
        pytest.param(Pins(), Pacing(1400, 256, 64, 256, False, True), id="all-auto"),
        pytest.param(
            Pins(time_budget_ms=5000),
            Pacing(5000, 256, 64, 256, True, True),
            id="budget-pin-decides-multi",
        ),
        pytest.param(
            Pins(prefix_tokens=2048, suffix_tokens=512, middle_tokens=100),
            Pacing(1400, 2048, 512, 100, False, True),
            id="prompt-pins",
        ),
        pytest.param(Pins(multi_line="on"), Pacing(1400, 256, 64, 256, True, True), id="multi-on"),
        pytest.param(
            Pins(time_budget_ms=9000, multi_line="off"),
            Pacing(9000, 256, 64, 256, False, True),
            id="multi-off",
        ),
    ],
)
def test_pinned_values_are_kept(pins: Pins, expected: Pacing) -> None:
    assert derive_pacing(SLOW_DAY, 700.0, pins) == expected


@pytest.mark.parametrize(
    ("speed", "pin", "eager"),
    [
        pytest.param(SLOW_DAY, "auto", True, id="slow-cpu-starts-on-the-edit"),
        pytest.param(LAPTOP, "auto", True, id="laptop-too"),
        pytest.param(MachineSpeed(prompt_tps=400, generate_tps=40), "auto", False, id="at-40"),
        pytest.param(GPU, "auto", False, id="gpu-waits-for-the-request"),
        pytest.param(None, "auto", False, id="no-speed-waits"),
        pytest.param(GPU, "on", True, id="pinned-on"),
        pytest.param(SLOW_DAY, "off", False, id="pinned-off"),
    ],
)
def test_eager_start_where_generation_is_slow(
    speed: MachineSpeed | None, pin: AutoSwitch, eager: bool
) -> None:
    assert derive_pacing(speed, 700.0, Pins(eager_start=pin)).eager_start is eager


@pytest.mark.parametrize(
    ("suffix", "middle", "fill"),
    [
        pytest.param(64, 256, 0.15, id="slow: a short fresh live region, a large budget"),
        pytest.param(128, 256, 0.3, id="laptop"),
        pytest.param(256, 256, None, id="fast: the cut-point rule's own"),
        pytest.param(512, 100, None, id="pinned: suffix over middle"),
        pytest.param(0, 256, 0.05, id="no suffix: the floor"),
        pytest.param(64, 0, None, id="plain psm"),
    ],
)
def test_a_fresh_live_region_costs_what_a_relocation_may(
    suffix: int, middle: int, fill: float | None
) -> None:
    assert middle_fill(suffix, middle) == fill


def test_pins_apply_without_a_speed() -> None:
    pacing = derive_pacing(None, None, Pins(time_budget_ms=300, multi_line="off"))
    assert pacing == Pacing(300, 1024, 256, 256, False)


@pytest.mark.parametrize(
    ("gaps_ms", "median"),
    [
        pytest.param([], None, id="nothing-yet"),
        pytest.param([500.0] * (MIN_PAUSES - 1), None, id="too-few"),
        pytest.param([500.0] * MIN_PAUSES, 500.0, id="enough"),
        pytest.param([100.0] * 50 + [600.0] * MIN_PAUSES, 600.0, id="typing-is-not-a-pause"),
        pytest.param([60_000.0] * 20 + [800.0] * MIN_PAUSES, 800.0, id="away-is-not-a-pause"),
        pytest.param([400.0] * 5 + [900.0] * 4 + [1500.0] * 2, 900.0, id="median-of-the-pauses"),
    ],
)
def test_pause_tracker_median(gaps_ms: list[float], median: float | None) -> None:
    tracker = PauseTracker()
    at = 1000.0
    tracker.edited(at)
    for gap in gaps_ms:
        at += gap / 1000
        tracker.edited(at)
    result = tracker.median_ms()
    assert result == (None if median is None else pytest.approx(median))


def test_pause_tracker_keeps_the_recent_pauses() -> None:
    tracker = PauseTracker(kept=MIN_PAUSES)
    at = 0.0
    tracker.edited(at)
    for gap in [2000.0] * 20 + [500.0] * MIN_PAUSES:
        at += gap / 1000
        tracker.edited(at)
    assert tracker.median_ms() == pytest.approx(500.0)
    assert tracker.count == MIN_PAUSES


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        pytest.param({}, (1500, 1024, 256, 256, "on"), id="defaults-are-auto-then-static"),
        pytest.param(
            {"engine": {"timeBudgetMs": "auto"}, "fim": {"prefixTokens": "auto"}},
            (1500, 1024, 256, 256, "on"),
            id="auto-spelled-out",
        ),
        pytest.param(
            {"engine": {"timeBudgetMs": 900}, "fim": {"suffixTokens": 99}},
            (900, 1024, 99, 256, "on"),
            id="pins",
        ),
        pytest.param({"completion": {"multiLine": "off"}}, (1500, 1024, 256, 256, "off"), id="off"),
    ],
)
def test_paced_settings_fill_the_auto_values(
    layer: dict[str, dict[str, object]], expected: tuple[int, int, int, int, str]
) -> None:
    settings, problems = parse_settings([layer])
    assert not problems
    paced = paced_settings(settings)
    assert (
        paced.engine.time_budget_ms,
        paced.fim.prefix_tokens,
        paced.fim.suffix_tokens,
        paced.fim.middle_tokens,
        paced.completion.multi_line,
    ) == expected
    assert paced_settings(paced) == paced


def test_paced_settings_follow_the_pacing() -> None:
    settings, _ = parse_settings([{"fim": {"prefixTokens": 2048}}])
    pacing = derive_pacing(SLOW_DAY, 700.0, pins_of(settings))
    paced = paced_settings(settings, pacing)
    assert (paced.engine.time_budget_ms, paced.fim.prefix_tokens, paced.fim.suffix_tokens) == (
        1400,
        2048,
        64,
    )
    assert paced.completion.multi_line == "off"
