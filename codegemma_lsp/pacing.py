"""Pacing: budgets that fit this machine's speed and this user's rhythm.

Two things are measured: the machine's prompt and generation speed, once when the
model loads (:mod:`codegemma_lsp.engine.speed`), and the user's pauses between
edits, as the server sees ``didChange`` arrive (:class:`PauseTracker`). From them
:func:`derive_pacing` sets four things; a setting with a value other than 0 (or
``auto``) pins its own and the rule leaves it alone.

- **Prompt budgets.** A relocation (the cursor moved elsewhere) evaluates the suffix
  again and a fresh live region, so ``suffix + JUMP_FILL * suffix`` is kept within
  ``RELOCATION_S`` of prompt evaluation: the suffix budget is between 64 and 256 tokens,
  and a fresh live region holds up to ``JUMP_FILL`` of it (:func:`middle_fill`). The
  middle budget is 256 tokens whatever the speed: the live region grows to it before it
  jumps (a jump costs what a relocation does), so a slow machine jumps every couple of
  hundred typed tokens rather than every couple of lines.
  When the prefix window jumps (every few dozen lines typed, or after a far move), it
  evaluates ``JUMP_FILL`` of the prefix budget as well, so that is kept within
  ``PREFIX_JUMP_S``, between 256 and 1024 tokens. A fast machine gets the old fixed
  budgets (1024, 256, 256); the floors keep enough text for the model on a slow one,
  where a relocation then costs more than its target.
- **Time budget.** Twice the user's median pause, between 750 ms and 3000 ms. Half the
  pauses are longer than the median, and a suggestion that takes twice as long is
  rarely seen before the user types on; a budget under 750 ms fits no useful line on a
  slow CPU. Until ``MIN_PAUSES`` pauses have been seen it is 1500 ms.
- **Multi-line.** A block completion is worth starting when two typical lines
  (``BLOCK_TOKENS``) fit in the time budget at the measured generation speed.
  Otherwise a block scope yields its first line only.
- **Eager start.** Below ``EAGER_BELOW_TPS`` generated tokens per second (a CPU), an
  edit starts the completion the editor is about to ask for at the cursor it left, so
  the editor's debounce (Neovim waits 200 ms, VS Code about 100 ms) is spent
  generating; the request then joins it or finds it in the cache. A line of a dozen
  tokens takes more than a second there, and the debounce is a fifth of that. Faster
  engines answer inside the pause anyway, and a shared remote engine should not be
  kept busy with guesses, so they wait for the request.

With no measured speed (a fake backend, or the probe failed), every auto value is
its fixed default (:data:`STATIC`).
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, replace

from codegemma_lsp.config import AutoSwitch, MultiLine, Settings
from codegemma_lsp.engine.speed import MachineSpeed

RELOCATION_S = 1.5
"""Prompt evaluation a relocation may cost (suffix and a fresh live region)."""
PREFIX_JUMP_S = 6.0
"""Prompt evaluation a jump of the prefix window may cost (prefix, suffix and live region)."""
JUMP_FILL = 0.6
"""How full a window left its budget after a jump (the cut-point rule's default)."""
MIN_MIDDLE_FILL = 0.05
"""A fresh live region holds at least this share of the middle budget (a line or two)."""
BLOCK_TOKENS = 24
"""Two typical lines of code: the least a block completion should hold to be worth it."""
EAGER_BELOW_TPS = 40.0
"""Generation speed (tokens/s) below which an edit starts the coming request's work."""

SIDE_RANGE = (64, 256)
PREFIX_RANGE = (256, 1024)
BUDGET_RANGE_MS = (750, 3000)
DEFAULT_BUDGET_MS = 1500
MIN_PAUSES = 8
"""Pauses seen before the time budget follows them."""

PAUSE_MIN_MS = 300.0
"""Shorter gaps between edits are typing, not a pause (a fast typist's keys come ~100 ms
apart, and Neovim batches its ``didChange`` every 150 ms)."""
PAUSE_MAX_MS = 10_000.0
"""Longer gaps are the user away or reading, not a pause in typing."""
PAUSES_KEPT = 64


@dataclass(frozen=True)
class Pins:
    """Values the user set; 0 (or ``auto``) leaves one to the rule."""

    time_budget_ms: int = 0
    prefix_tokens: int = 0
    suffix_tokens: int = 0
    middle_tokens: int = 0
    multi_line: MultiLine = "auto"
    eager_start: AutoSwitch = "auto"


@dataclass(frozen=True)
class Pacing:
    time_budget_ms: int
    prefix_tokens: int
    suffix_tokens: int
    middle_tokens: int
    multi_line: bool
    eager_start: bool = False

    def describe(self) -> str:
        return (
            f"time budget {self.time_budget_ms} ms, prefix {self.prefix_tokens}, "
            f"suffix {self.suffix_tokens}, middle {self.middle_tokens} tokens, "
            f"multi-line {'on' if self.multi_line else 'off'}, "
            f"eager start {'on' if self.eager_start else 'off'}"
        )


STATIC = Pacing(
    time_budget_ms=DEFAULT_BUDGET_MS,
    prefix_tokens=PREFIX_RANGE[1],
    suffix_tokens=SIDE_RANGE[1],
    middle_tokens=SIDE_RANGE[1],
    multi_line=True,
)
"""The fixed budgets, used for every auto value while no speed is known."""


def _clamp(value: float, bounds: tuple[int, int]) -> int:
    low, high = bounds
    # Multiples of 16 keep the budgets readable in logs; nothing depends on it.
    snapped = int(value) // 16 * 16
    return max(low, min(high, snapped))


def prompt_budgets(prompt_tps: float) -> tuple[int, int, int]:
    """(prefix, suffix, middle) token budgets for a prompt speed in tokens per second."""
    side = _clamp(prompt_tps * RELOCATION_S / (1 + JUMP_FILL), SIDE_RANGE)
    prefix = _clamp(
        (prompt_tps * PREFIX_JUMP_S - side - JUMP_FILL * side) / JUMP_FILL, PREFIX_RANGE
    )
    return prefix, side, SIDE_RANGE[1]


def middle_fill(suffix_tokens: int, middle_tokens: int) -> float | None:
    """How full a fresh live region leaves the middle budget (None: the cut-point rule's
    own ``jump_fill``).

    A relocation evaluates the fresh live region again, so it is kept to ``JUMP_FILL`` of
    the suffix budget, which the relocation target sized; a larger middle budget then only
    lets the live region grow longer before it has to jump, which costs as much as a
    relocation. So a slow machine, with a small suffix, gets a short fresh live region
    under a large budget, and jumps rarely."""
    if middle_tokens <= 0 or suffix_tokens >= middle_tokens:
        return None
    return max(MIN_MIDDLE_FILL, JUMP_FILL * suffix_tokens / middle_tokens)


def time_budget_ms(median_pause_ms: float | None) -> int:
    if median_pause_ms is None:
        return DEFAULT_BUDGET_MS
    low, high = BUDGET_RANGE_MS
    return int(max(low, min(high, round(2 * median_pause_ms / 50) * 50)))


def multi_line_pays(generate_tps: float, budget_ms: int) -> bool:
    return generate_tps * budget_ms / 1000 >= BLOCK_TOKENS


def derive_pacing(
    speed: MachineSpeed | None, median_pause_ms: float | None, pins: Pins = Pins()
) -> Pacing:
    """The budgets for this machine and this user, pinned values kept as set."""
    if speed is None:
        auto = STATIC
    else:
        prefix, suffix, middle = prompt_budgets(speed.prompt_tps)
        budget = time_budget_ms(median_pause_ms)
        auto = Pacing(budget, prefix, suffix, middle, True)
    budget = pins.time_budget_ms or auto.time_budget_ms
    if pins.multi_line != "auto":
        multi = pins.multi_line == "on"
    elif speed is None:
        multi = True
    else:
        multi = multi_line_pays(speed.generate_tps, budget)
    if pins.eager_start != "auto":
        eager = pins.eager_start == "on"
    else:
        eager = speed is not None and speed.generate_tps < EAGER_BELOW_TPS
    return Pacing(
        time_budget_ms=budget,
        prefix_tokens=pins.prefix_tokens or auto.prefix_tokens,
        suffix_tokens=pins.suffix_tokens or auto.suffix_tokens,
        middle_tokens=pins.middle_tokens or auto.middle_tokens,
        multi_line=multi,
        eager_start=eager,
    )


class PauseTracker:
    """The user's recent pauses between edits, from the times edits arrive (seconds)."""

    def __init__(self, *, kept: int = PAUSES_KEPT) -> None:
        self._pauses: deque[float] = deque(maxlen=kept)
        self._last: float | None = None

    def edited(self, at: float) -> None:
        last, self._last = self._last, at
        if last is None:
            return
        gap_ms = (at - last) * 1000
        if PAUSE_MIN_MS <= gap_ms <= PAUSE_MAX_MS:
            self._pauses.append(gap_ms)

    @property
    def count(self) -> int:
        return len(self._pauses)

    def median_ms(self) -> float | None:
        """The median pause, once ``MIN_PAUSES`` have been seen."""
        if len(self._pauses) < MIN_PAUSES:
            return None
        return statistics.median(self._pauses)


def pins_of(settings: Settings) -> Pins:
    """The values the settings pin (0 and ``auto`` pin nothing)."""
    return Pins(
        time_budget_ms=settings.engine.time_budget_ms,
        prefix_tokens=settings.fim.prefix_tokens,
        suffix_tokens=settings.fim.suffix_tokens,
        middle_tokens=settings.fim.middle_tokens,
        multi_line=settings.completion.multi_line,
        eager_start=settings.engine.eager_start,
    )


def paced_settings(settings: Settings, pacing: Pacing | None = None) -> Settings:
    """``settings`` with every auto value set: from ``pacing``, or else the fixed defaults.

    Pinned values are kept, so applying it twice changes nothing.
    """
    if pacing is None:
        pacing = derive_pacing(None, None, pins_of(settings))
    return replace(
        settings,
        fim=replace(
            settings.fim,
            prefix_tokens=settings.fim.prefix_tokens or pacing.prefix_tokens,
            suffix_tokens=settings.fim.suffix_tokens or pacing.suffix_tokens,
            middle_tokens=settings.fim.middle_tokens or pacing.middle_tokens,
        ),
        engine=replace(
            settings.engine,
            time_budget_ms=settings.engine.time_budget_ms or pacing.time_budget_ms,
            eager_start=settings.engine.eager_start
            if settings.engine.eager_start != "auto"
            else ("on" if pacing.eager_start else "off"),
        ),
        completion=replace(
            settings.completion,
            multi_line=settings.completion.multi_line
            if settings.completion.multi_line != "auto"
            else ("on" if pacing.multi_line else "off"),
        ),
    )
