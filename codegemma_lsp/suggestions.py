"""Answering without the model: suggestions the user is typing into.

When the user types the first characters of the last suggestion, the rest of
it is still the model's best guess, so it is returned at once. The same store
holds suggestions precomputed after an accept, anchored where the accepted
text ends. A suggestion is only reused while the text around its anchor is
unchanged, apart from what the user typed into it.

It also remembers the last place where the model had nothing to offer (its whole
answer was cut away, or it ended at once): greedy decoding of the same prompt gives
the same nothing, so a request there is answered at once, without the model.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

CONTEXT_CHARS = 256
"""How much text on each side of the anchor must be unchanged for a reuse."""

PER_DOCUMENT = 4
"""Places (anchors) remembered per document; each may hold several candidates."""


@dataclass(frozen=True)
class Suggestion:
    id: int
    anchor: int
    """The str offset in the document where the suggestion is inserted."""
    text: str
    before: str
    """The document's text just before the anchor, when the suggestion was made."""
    after: str
    """The document's text just after the anchor."""

    def rest_after_typing(self, text: str, cursor: int) -> str | None:
        """The part not yet typed, if the document is this suggestion's context plus a
        typed start of it, with the cursor right after what was typed; else None."""
        if cursor < self.anchor:
            return None
        typed = text[self.anchor : cursor]
        if not self.text.startswith(typed):
            return None
        if text[max(0, self.anchor - len(self.before)) : self.anchor] != self.before:
            return None
        if text[cursor : cursor + len(self.after)] != self.after:
            return None
        rest = self.text[len(typed) :]
        return rest if rest.strip() else None

    def accepted_end(self, text: str) -> int | None:
        """Where the suggestion ends if ``text`` holds it fully inserted at its anchor."""
        end = self.anchor + len(self.text)
        if text[self.anchor : end] != self.text or not self.rest_is_context(text, end):
            return None
        return end

    def rest_is_context(self, text: str, end: int) -> bool:
        start = max(0, self.anchor - len(self.before))
        return text[start : self.anchor] == self.before and text[end : end + len(self.after)] == (
            self.after
        )


@dataclass(frozen=True)
class Silence:
    """A place where the model had nothing to offer: ``typed`` after ``anchor``."""

    anchor: int
    typed: str
    before: str
    after: str

    def covers(self, text: str, cursor: int) -> bool:
        """Whether ``cursor`` in ``text`` is exactly that place, its context unchanged."""
        end = self.anchor + len(self.typed)
        return (
            cursor == end
            and text[self.anchor : end] == self.typed
            and text[max(0, self.anchor - len(self.before)) : self.anchor] == self.before
            and text[end : end + len(self.after)] == self.after
        )


class SuggestionStore:
    def __init__(self) -> None:
        self._by_uri: dict[str, list[Suggestion]] = {}
        self._silent: dict[str, Silence] = {}
        self._ids = itertools.count(1)

    def add_silence(self, uri: str, text: str, anchor: int, typed: str = "") -> None:
        """Remember that the model offers nothing after ``typed`` at ``anchor`` of ``text``
        (``typed`` is not in ``text``: it is what a predicted Enter would insert)."""
        self._silent[uri] = Silence(
            anchor,
            typed,
            text[max(0, anchor - CONTEXT_CHARS) : anchor],
            text[anchor : anchor + CONTEXT_CHARS],
        )

    def silent_at(self, uri: str, text: str, cursor: int) -> bool:
        found = self._silent.get(uri)
        return found is not None and found.covers(text, cursor)

    def add(self, uri: str, text: str, anchor: int, suggestion: str) -> Suggestion:
        return self.add_candidates(uri, text, anchor, [suggestion])[0]

    def add_candidates(
        self, uri: str, text: str, anchor: int, suggestions: list[str]
    ) -> list[Suggestion]:
        """Remember the candidates for one place (the first is the one shown first); they
        replace what the place held."""
        before = text[max(0, anchor - CONTEXT_CHARS) : anchor]
        after = text[anchor : anchor + CONTEXT_CHARS]
        added = [
            Suggestion(id=next(self._ids), anchor=anchor, text=s, before=before, after=after)
            for s in suggestions
        ]
        silent = self._silent.get(uri)
        if silent is not None and silent.anchor == anchor:
            del self._silent[uri]
        items = [*added, *(s for s in self._by_uri.get(uri, []) if s.anchor != anchor)]
        anchors: list[int] = []
        for item in items:
            if item.anchor not in anchors:
                anchors.append(item.anchor)
        kept = set(anchors[:PER_DOCUMENT])
        self._by_uri[uri] = [item for item in items if item.anchor in kept]
        return added

    def lookup(self, uri: str, text: str, cursor: int) -> tuple[Suggestion, str] | None:
        """The newest suggestion whose rest applies at ``cursor``, and that rest."""
        for item in self._by_uri.get(uri, []):
            rest = item.rest_after_typing(text, cursor)
            if rest is not None:
                return item, rest
        return None

    def lookup_candidates(self, uri: str, text: str, cursor: int) -> list[tuple[Suggestion, str]]:
        """Like :meth:`lookup`, with the other candidates of the same place whose rest
        also applies after what was typed (each rest once), in their order."""
        first = self.lookup(uri, text, cursor)
        if first is None:
            return []
        found = [first]
        for item in self._by_uri.get(uri, []):
            if item.anchor != first[0].anchor or item is first[0]:
                continue
            rest = item.rest_after_typing(text, cursor)
            if rest is not None and all(rest != r for _, r in found):
                found.append((item, rest))
        return found

    def get(self, uri: str, suggestion_id: int) -> Suggestion | None:
        return next((s for s in self._by_uri.get(uri, []) if s.id == suggestion_id), None)

    def forget(self, uri: str) -> None:
        self._by_uri.pop(uri, None)
        self._silent.pop(uri, None)
