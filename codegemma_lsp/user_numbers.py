"""The user's own numbers, as the server sees them: what was shown, what was taken, and
how much of what was taken is still there 30 s later.

The server tells it what each answer showed (:meth:`UserNumbers.shown`), what the user
accepted (``codegemma.accept`` and ``codegemma.acceptPartial``), and every edit, as byte
edits of the document (:meth:`UserNumbers.edited`). An accepted suggestion is found where
it was shown, and its byte range goes to the :class:`~codegemma_lsp.retention.RetentionTracker`,
which moves it through later edits. :meth:`UserNumbers.tick`, run every few seconds by the
server, judges the ranges that are old enough; :meth:`UserNumbers.flush` adds the counts
since the last flush to today's file (:mod:`codegemma_lsp.usage`).

No LSP and no clock of its own: the clock is injected, so tests move time themselves.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

from codegemma_lsp.documents import Document, TreeEdit
from codegemma_lsp.retention import ByteEdit
from codegemma_lsp.stats import Stats
from codegemma_lsp.usage import add_to_day

log = logging.getLogger(__name__)

TICK_S = 5.0
"""How often the server judges accepted ranges that have become old enough."""
FLUSH_S = 60.0
"""How often the server adds the counts to today's file (and at exit)."""
SHOWN_KEPT = 256
"""Answers remembered for their accept: (document, suggestion id) to where and what."""
FIND_SLACK = 256
"""How far from where it was shown an accepted text is looked for (the user may have
typed a little before accepting)."""


class UserNumbers:
    def __init__(
        self,
        stats: Stats,
        documents: Callable[[str], Document | None],
        *,
        clock: Callable[[], float] = time.monotonic,
        directory: Path | None = None,
    ) -> None:
        self.stats = stats
        self.documents = documents
        self.clock = clock
        self.directory = directory
        """Where the daily files go (None: :func:`codegemma_lsp.usage.usage_dir`)."""
        self._shown: OrderedDict[tuple[str, int], tuple[int, str]] = OrderedDict()

    def shown(self, uri: str, offset: int, items: Iterable[tuple[str, int]]) -> None:
        """An answer showed ``items`` (text, suggestion id) at the str ``offset``."""
        self.stats.shown += 1
        for text, suggestion_id in items:
            key = (uri, suggestion_id)
            self._shown[key] = (offset, text)
            self._shown.move_to_end(key)
        while len(self._shown) > SHOWN_KEPT:
            self._shown.popitem(last=False)

    def accepted(self, uri: str, suggestion_id: object, chars: int | None = None) -> None:
        """The user took the suggestion, whole (``chars`` None) or its first ``chars``
        characters (a partial accept). Its text is followed from where it now is."""
        if chars is None:
            self.stats.accepted += 1
        else:
            self.stats.accepted_partially += 1
        if not isinstance(suggestion_id, int):
            return
        shown = self._shown.get((uri, suggestion_id))
        document = self.documents(uri)
        if shown is None or document is None or document.text_only:
            return
        offset, text = shown
        taken = text if chars is None else text[: max(0, chars)]
        if not taken:
            return
        at = _find(document.text, taken, offset)
        if at is None:
            log.debug("accepted text not found where it was shown; not followed")
            return
        self.stats.retention.accept(uri, document.byte_at_offset(at), taken, self.clock())
        if chars is not None:  # the rest is shown again from here, under the same id
            self._shown[(uri, suggestion_id)] = (at + len(taken), text[len(taken) :])

    def edited(self, uri: str, edits: Iterable[TreeEdit]) -> None:
        self.stats.retention.edited(
            uri, [ByteEdit(e.start_byte, e.old_end_byte, e.new_end_byte) for e in edits]
        )

    def closing(self, uri: str) -> None:
        """A document closes: its accepted ranges are judged now, as they stand."""
        tracker = self.stats.retention
        tracker.judge(self.clock(), self._count_chars, uri=uri)
        for key in [k for k in self._shown if k[0] == uri]:
            del self._shown[key]

    def tick(self) -> int:
        """Judge the accepted ranges old enough; the characters found still there."""
        tracker = self.stats.retention
        if not tracker.due(self.clock()):
            return 0
        return tracker.judge(self.clock(), self._count_chars)

    def finish(self) -> None:
        """At exit: judge every accepted range as it stands now, then flush."""
        self.stats.retention.judge(math.inf, self._count_chars)
        self.flush()

    def flush(self) -> None:
        """Add what changed since the last flush to today's file; never raises."""
        delta, latencies = self.stats.take_unflushed()
        if not delta and not latencies:
            return
        try:
            add_to_day(delta, latencies, directory=self.directory)
        except OSError as exc:
            log.warning("could not write today's usage numbers: %s", exc)

    def _count_chars(self, uri: str, start: int, end: int) -> int | None:
        document = self.documents(uri)
        if document is None or document.text_only:
            return None
        size = document.source.byte_length
        start, end = min(start, size), min(end, size)
        return document.offset_at_byte(end) - document.offset_at_byte(start)


def _find(text: str, taken: str, offset: int) -> int | None:
    """Where the accepted ``taken`` is: at ``offset`` (as shown), else the nearest place
    close by."""
    if text.startswith(taken, offset):
        return offset
    low = max(0, offset - FIND_SLACK)
    found = text.find(taken, low, offset + len(taken) + FIND_SLACK)
    return None if found == -1 else found
