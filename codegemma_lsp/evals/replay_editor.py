"""What Neovim 0.12 sends while someone types: the pure part of the replay client.

Read from Neovim's runtime (``lua/vim/lsp/_changetracking.lua`` and
``lua/vim/lsp/inline_completion.lua``):

- Each edit becomes one incremental content change at once, but changes are
  sent in batches: a ``didChange`` goes out when 150 ms have passed since the
  previous one (at once if they already have), and always just before any
  request, so the server never sees a request for text it lacks.
- Every cursor move in insert mode (each keystroke) restarts a 200 ms timer;
  when it runs out, ``textDocument/inlineCompletion`` is sent. Entering insert
  mode starts the timer too. Earlier requests are never cancelled, except when
  insert mode is left.
- Accepting an item replaces its range with its text (one edit), moves the
  cursor after it, then runs the item's command.

Positions are UTF-16 code units, the LSP default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

CHANGE_DEBOUNCE_MS = 150.0
REQUEST_DEBOUNCE_MS = 200.0


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def position_at(text: str, offset: int) -> dict[str, int]:
    """The LSP position (line, UTF-16 column) of code-point ``offset`` in ``text``."""
    line = text.count("\n", 0, offset)
    line_start = text.rfind("\n", 0, offset) + 1
    return {"line": line, "character": utf16_len(text[line_start:offset])}


def replace_change(text: str, start: int, end: int, new_text: str) -> tuple[str, dict[str, Any]]:
    """Replace ``text[start:end]``: the new text and the incremental content change."""
    change = {
        "range": {"start": position_at(text, start), "end": position_at(text, end)},
        "text": new_text,
    }
    return text[:start] + new_text + text[end:], change


@dataclass
class ChangeBatcher:
    """Neovim's batching of content changes into ``didChange`` notifications."""

    debounce_ms: float = CHANGE_DEBOUNCE_MS
    pending: list[dict[str, Any]] = field(default_factory=list)
    flush_at: float | None = None
    last_flush: float | None = None

    def add(self, change: dict[str, Any], now: float) -> bool:
        """Queue ``change``; True when it must be sent now."""
        self.pending.append(change)
        wait = self.debounce_ms
        if self.last_flush is not None:
            wait = max(self.debounce_ms - (now - self.last_flush), 0.0)
        self.flush_at = now + wait
        return wait == 0

    def due(self, now: float) -> bool:
        return self.flush_at is not None and now >= self.flush_at

    def take(self, now: float) -> list[dict[str, Any]]:
        """The changes to send now (possibly none), clearing the timer."""
        changes, self.pending, self.flush_at = self.pending, [], None
        if changes:
            self.last_flush = now
        return changes


@dataclass
class RequestTimer:
    """The 200 ms inline-completion timer that each cursor move restarts."""

    delay_ms: float = REQUEST_DEBOUNCE_MS
    fire_at: float | None = None

    def restart(self, now: float) -> None:
        self.fire_at = now + self.delay_ms

    def stop(self) -> None:
        self.fire_at = None

    def due(self, now: float) -> bool:
        if self.fire_at is not None and now >= self.fire_at:
            self.fire_at = None
            return True
        return False


def request_points(waits_ms: Sequence[float], delay_ms: float = REQUEST_DEBOUNCE_MS) -> list[int]:
    """Indices of events after which the timer fires before the next event.

    ``waits_ms[i]`` is the pause before event ``i``; the timer also fires after the last event.
    """
    points = [i for i in range(len(waits_ms) - 1) if waits_ms[i + 1] > delay_ms]
    if waits_ms:
        points.append(len(waits_ms) - 1)
    return points
