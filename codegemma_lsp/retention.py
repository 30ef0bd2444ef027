"""Accepted characters that are still there later: the figure Copilot optimises for.

An accept says the user took a suggestion; it does not say the user kept it. The
tracker follows each accepted range through the edits made after it, as byte
intervals of the document's UTF-8 text. Text deleted from inside a range leaves
it; text typed inside it is not counted as accepted. Once a range is
``window_s`` old, the characters still covered count as retained.

Pure: no clock of its own (callers pass ``now``), no LSP, no document.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

RETENTION_WINDOW_S = 30.0
"""How long after an accept the accepted text is checked, as Copilot does."""


@dataclass(frozen=True, slots=True)
class ByteEdit:
    """One edit in byte offsets: ``[start, old_end)`` became ``[start, new_end)``."""

    start: int
    old_end: int
    new_end: int


def move_intervals(intervals: list[tuple[int, int]], edit: ByteEdit) -> list[tuple[int, int]]:
    """``intervals`` (sorted, disjoint, half-open) after ``edit``.

    Bytes the edit removed leave their interval; bytes it inserted are not added,
    so an insertion strictly inside an interval splits it in two.
    """
    delta = edit.new_end - edit.old_end
    moved: list[tuple[int, int]] = []
    for start, end in intervals:
        if end <= edit.start:  # wholly before the edit (touching its start included)
            moved.append((start, end))
        elif start >= edit.old_end:  # wholly after: shifted
            moved.append((start + delta, end + delta))
        else:
            if start < edit.start:  # the part before the edit stays
                moved.append((start, edit.start))
            if end > edit.old_end:  # the part after the removed text moves past the insert
                moved.append((edit.new_end, end + delta))
    return [(s, e) for s, e in moved if e > s]


@dataclass
class _Accepted:
    uri: str
    accepted_at: float
    chars: int
    intervals: list[tuple[int, int]]


@dataclass
class RetentionTracker:
    """Accepted ranges per document, moved through edits until they are judged."""

    window_s: float = RETENTION_WINDOW_S
    accepted_chars: int = 0
    retained_chars: int = 0
    judged: int = 0
    _pending: list[_Accepted] = field(default_factory=list)

    def accept(self, uri: str, start_byte: int, text: str, now: float) -> None:
        """The user accepted ``text``, now in the document at ``start_byte``."""
        if not text:
            return
        size = len(text.encode("utf-8", "surrogatepass"))
        self.accepted_chars += len(text)
        self._pending.append(_Accepted(uri, now, len(text), [(start_byte, start_byte + size)]))

    def edited(self, uri: str, edits: Iterable[ByteEdit]) -> None:
        """Edits applied to ``uri``, in order."""
        mine = [entry for entry in self._pending if entry.uri == uri]
        if not mine:
            return
        for edit in edits:
            for entry in mine:
                entry.intervals = move_intervals(entry.intervals, edit)

    def due(self, now: float) -> bool:
        """Whether some range is old enough to judge."""
        return any(now - e.accepted_at >= self.window_s for e in self._pending)

    def judge(
        self,
        now: float,
        count_chars: Callable[[str, int, int], int | None],
        *,
        uri: str | None = None,
    ) -> int:
        """Judge every range at least ``window_s`` old (all of ``uri``'s when it is given,
        for a document that is closing); returns the characters retained.

        ``count_chars(uri, start_byte, end_byte)`` counts the characters of the current
        text in a byte range, or None when the document is gone (nothing retained).
        """
        ready = [
            e
            for e in self._pending
            if (e.uri == uri if uri is not None else now - e.accepted_at >= self.window_s)
        ]
        retained = 0
        for entry in ready:
            kept = sum(count_chars(entry.uri, s, e) or 0 for s, e in entry.intervals)
            retained += min(kept, entry.chars)
            self._pending.remove(entry)
            self.judged += 1
        self.retained_chars += retained
        return retained

    @property
    def pending(self) -> int:
        return len(self._pending)
