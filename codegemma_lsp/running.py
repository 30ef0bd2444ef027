"""Generations still running, and the requests that can join them instead of starting anew.

A request's generation is registered at its place (the cursor's offset and the text
around it) with its :class:`Progress`: the first candidate's raw text so far, written by
the inference thread token by token. When the user types on and the editor asks again,
the new request looks here before it starts a generation of its own: if what the user
typed since is a start of what the generation has produced so far, the generation is
worth more than a new one, so it goes on and the request *joins* it. Once it is done,
its candidates go to the suggestion cache, which answers the joiner with the rest after
what was typed (the same way the first-line-first rest is joined: wait for the running
work, then answer from the cache).

The request that started a generation is cancelled when a newer one arrives (the
newest wins). Its generation is then *orphaned* rather than stopped, unless the text
already contradicts it; an orphan stops when an edit contradicts it, when a request
that cannot join it starts its own generation (the worker's newest-wins rule), or when
it ends by itself, its candidates then waiting in the cache for the next request.

Pure bookkeeping: no LSP, no model; the service decides when.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from codegemma_lsp.engine.base import CancelToken
from codegemma_lsp.suggestions import CONTEXT_CHARS


class Progress:
    """The text a generation has produced so far: written by the inference thread, read
    on the event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._text = ""

    def update(self, text: str) -> None:
        with self._lock:
            self._text = text

    @property
    def text(self) -> str:
        with self._lock:
            return self._text


@dataclass
class RunningGeneration:
    """A request's generation at one place of a document, while it runs."""

    anchor: int
    """The str offset where its text goes."""
    length: int
    """The document's length when the request was made."""
    before: str
    after: str
    job: Future[Any]
    token: CancelToken
    settled: asyncio.Future[None]
    """Done once the generation is over and its candidates, if any, are in the cache."""
    progress: Progress = field(default_factory=Progress)
    orphaned: bool = False
    """The request that started it is gone; the generation goes on for whoever joins."""
    joiners: int = 0

    @classmethod
    def at(
        cls, text: str, anchor: int, job: Future[Any], token: CancelToken, progress: Progress
    ) -> RunningGeneration:
        """The generation ``job`` for the place ``anchor`` of ``text``, on the running loop."""
        return cls(
            anchor=anchor,
            length=len(text),
            before=text[max(0, anchor - CONTEXT_CHARS) : anchor],
            after=text[anchor : anchor + CONTEXT_CHARS],
            job=job,
            token=token,
            settled=asyncio.get_running_loop().create_future(),
            progress=progress,
        )

    def typed(self, text: str) -> str | None:
        """What was typed at the place since the request, if ``text`` is the request's
        text with only that inserted at the anchor (as far as the context shows); else None."""
        grown = len(text) - self.length
        if grown < 0:
            return None
        start = max(0, self.anchor - len(self.before))
        if text[start : self.anchor] != self.before:
            return None
        end = self.anchor + grown
        if text[end : end + len(self.after)] != self.after:
            return None
        return text[self.anchor : end]

    def joinable(self, text: str, cursor: int) -> bool:
        """Whether a request at ``cursor`` in ``text`` can join: the user typed a start of
        what the generation has produced so far, and the cursor is right after it."""
        if self.job.done() or self.token.cancelled:
            return False
        typed = self.typed(text)
        return (
            typed is not None
            and cursor == self.anchor + len(typed)
            and self.progress.text.startswith(typed)
        )

    def contradicted(self, text: str) -> bool:
        """Whether ``text`` rules the generation out: the place changed, or what was typed
        there differs from what it produced (typing ahead of it does not, yet)."""
        typed = self.typed(text)
        if typed is None:
            return True
        produced = self.progress.text
        common = min(len(typed), len(produced))
        return typed[:common] != produced[:common]

    def settle(self) -> None:
        if not self.settled.done():
            self.settled.set_result(None)
