"""Cut points: where the prompt's windows of the document start and end.

A prompt holds three spans of the document around the cursor::

    source[prefix_start:middle_start]   stable text above the cursor
    source[middle_start:cursor]         the live region: what is being typed
    source[cursor:suffix_end]           text below the cursor

In plain PSM the prefix is ``source[prefix_start:cursor]``. In "psm-line" mode
the live region goes after ``<|fim_middle|>``, so a keystroke changes only the
prompt's tail. Either way the prompt starts at ``prefix_start``, and it has to
stay byte-identical between keystrokes for the model's KV cache to be reused.

The rule
--------
Boundaries. Every cut is on a line boundary: ``prefix_start`` and
``middle_start`` are line starts and ``suffix_end`` is a line end (just after a
newline, or the end of the text). With a syntax tree a start is the start of
the line on which a *boundary* begins: a statement, definition or comment that
the language's ``boundaries.scm`` captures and whose first byte is the first
non-blank byte of its line. An end is the end of the line on which a boundary
ends, with nothing but blanks or a comment after it on that line. So no window
starts or ends inside a token or an expression. Without a tree (an unknown
language), every non-blank line is a boundary and unindented lines play the
part of definitions.

Budgets. ``measure(source[prefix_start:cursor]) <= prefix_tokens``,
``measure(source[middle_start:cursor]) <= middle_tokens`` and
``measure(source[cursor:suffix_end]) <= suffix_tokens``.

Hysteresis. A cut from ``previous`` is kept, unchanged, while it still fits its
budget and is still a line start (or end) on the right side of the cursor. It
is *not* re-checked against the tree: while the user types, error recovery can
briefly re-shape the nodes around an unfinished line, and a start that was a
boundary when it was chosen is still a safe place to cut. When a start no
longer fits, it jumps forward to a fresh choice that fills at most
``jump_fill`` of its budget, so many keystrokes pass before it moves again.

Relocation. When the cursor is not where ``previous`` left it (its cursor,
carried through the edits, is elsewhere: the user moved), the suffix changes
and is evaluated again anyway, so the middle is kept only while it fits
``middle_fill`` (by default ``jump_fill``) of its budget. Keeping one that barely
fits would cost a second re-evaluation of the suffix a few keystrokes later, when
it overflows.

Fresh choices (no usable ``previous``):

- Middle: the outermost statement or definition that contains the cursor and
  fits ``middle_fill * middle_tokens``; else the earliest boundary that fits;
  else the start of the cursor's line. ``middle_tokens = 0`` puts it at the
  cursor (plain PSM).
- Prefix: the start of the file when everything before the cursor fits
  ``prefix_tokens``. Otherwise, among the boundaries from the earliest line
  start that fits ``jump_fill * prefix_tokens`` up to ``middle_start``: the
  earliest definition in the first half of that range, else the earliest
  boundary; moved up over comments (and attributes) right above it while they
  fit. With no boundary in range it is that earliest fitting line start.
- Suffix: the end of the file when the rest fits; else the last boundary end
  that fits ``suffix_tokens``; else the last line end that fits. The suffix
  does not grow while the user types before it, so it is filled to the whole
  budget.

When even the cursor's own line is over a budget, the cut falls inside that
line on a UTF-8 character boundary (kind ``byte-fallback``).

What ``previous`` must be. Its offsets must refer to the current text: the
caller moves them through each edit made since (``shift_window`` does this for
one edit) and passes windows of the same document only. A cut that cannot be
moved (the edit replaced the text around it) becomes ``LOST`` and is chosen
afresh. A stale offset that lands mid-line fails the checks above and is
chosen afresh too, so a mistake costs KV reuse, never a bad cut.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import tree_sitter

from codegemma_lsp.syntax.languages import LanguageSpec
from codegemma_lsp.syntax.nodes import (
    approx_tokens,
    captures,
    indentation,
    is_blank,
    is_line_end,
    is_line_start,
    line_end,
    line_ends_between,
    line_start,
    line_starts_between,
    line_text_end,
    node_key,
    starts_its_line,
    utf8_boundary_at_or_after,
    utf8_boundary_at_or_before,
)

Measure = Callable[[bytes], int]

CutKind = Literal[
    "file-start",
    "file-end",
    "definition",
    "statement",
    "line-fallback",
    "byte-fallback",
    "cursor",
]

LOST = -1
"""The offset of a cut that an edit destroyed; ``choose_window`` chooses it afresh."""


@dataclass(frozen=True, slots=True)
class WindowBudget:
    """Token budgets for the spans around the cursor.

    ``prefix_tokens`` covers everything before the cursor, the live region
    included; ``middle_tokens`` covers the live region alone (0: plain PSM).
    ``jump_fill`` is how full a start leaves its budget when it has to move,
    in (0, 1]: lower means rarer moves, with less context after each.
    ``middle_fill`` is the same for the live region alone (None: ``jump_fill``): a
    relocation evaluates the fresh live region again, so on a slow machine it is kept
    short while its budget stays large, and the live region then moves rarely.
    """

    prefix_tokens: int = 1024
    suffix_tokens: int = 256
    middle_tokens: int = 256
    jump_fill: float = 0.6
    middle_fill: float | None = None

    def __post_init__(self) -> None:
        for name, fill in (("jump_fill", self.jump_fill), ("middle_fill", self.middle_fill)):
            if fill is not None and not 0 < fill <= 1:
                raise ValueError(f"{name} must be in (0, 1], not {fill}")
        if min(self.prefix_tokens, self.suffix_tokens, self.middle_tokens) < 0:
            raise ValueError("token budgets cannot be negative")


@dataclass(frozen=True, slots=True)
class Cut:
    """One cut: its byte offset, what kind of boundary it is, and whether it was kept."""

    offset: int
    kind: CutKind
    kept: bool = False


@dataclass(frozen=True, slots=True)
class Window:
    """The spans of the document that go into the prompt (see the module docstring)."""

    prefix: Cut
    middle: Cut
    suffix: Cut
    cursor: int

    @property
    def prefix_start(self) -> int:
        return self.prefix.offset

    @property
    def middle_start(self) -> int:
        return self.middle.offset

    @property
    def suffix_end(self) -> int:
        return self.suffix.offset

    @property
    def kind(self) -> CutKind:
        """The kind of the prefix start, the cut that decides KV reuse; for logs."""
        return self.prefix.kind


def choose_window(
    tree: tree_sitter.Tree | None,
    source: bytes,
    cursor: int,
    budget: WindowBudget | None = None,
    *,
    language: LanguageSpec | None = None,
    previous: Window | None = None,
    measure: Measure = approx_tokens,
) -> Window:
    """Choose the prompt's windows around ``cursor`` (a byte offset into ``source``).

    Pure: the result depends only on the arguments. ``tree`` must be a parse of
    ``source`` by ``language``; with either missing, boundaries are lines.
    """
    budget = budget or WindowBudget()
    cursor = utf8_boundary_at_or_before(source, cursor)
    finder: _Finder
    if tree is not None and language is not None and language.query("boundaries") is not None:
        finder = _SyntaxFinder(tree, source, language, cursor)
    else:
        finder = _LineFinder(source, cursor)
    chooser = _Chooser(source, cursor, budget, measure, finder)
    relocated = previous is not None and previous.cursor != cursor
    middle = chooser.middle(previous.middle if previous else None, relocated=relocated)
    prefix = chooser.prefix(previous.prefix if previous else None, middle)
    suffix = chooser.suffix(previous.suffix if previous else None)
    return Window(prefix=prefix, middle=middle, suffix=suffix, cursor=cursor)


def shift_window(window: Window, start: int, old_end: int, new_end: int) -> Window:
    """Move a window's offsets through one edit that replaced ``[start, old_end)``.

    The replacement text spans ``[start, new_end)`` afterwards. Offsets at or
    before ``start`` stay (text inserted at a cut goes after it); offsets at or
    after ``old_end`` move by the change in length; a cut strictly inside the
    replaced range becomes ``LOST``.
    """
    delta = new_end - old_end

    def move(offset: int) -> int:
        if offset == LOST or offset <= start:
            return offset
        if offset >= old_end:
            return offset + delta
        return LOST

    def move_cut(cut: Cut) -> Cut:
        return replace(cut, offset=move(cut.offset))

    # The cursor follows what is typed at it, unlike a cut.
    cursor = window.cursor
    if cursor >= old_end:
        cursor += delta
    elif cursor >= start:
        cursor = new_end
    return Window(
        prefix=move_cut(window.prefix),
        middle=move_cut(window.middle),
        suffix=move_cut(window.suffix),
        cursor=cursor,
    )


# --- boundaries ---------------------------------------------------------------


@dataclass(slots=True)
class _Start:
    offset: int  # the line start
    kind: CutKind
    preferred: bool  # a definition (or, by lines, an unindented line)
    encloses: bool  # its node contains the cursor
    node: tree_sitter.Node | None
    end: int  # the end of its node; for lines, the line end


class _Finder:
    def starts(self, lo: int, hi: int) -> list[_Start]:
        """Boundary line starts in ``[lo, hi]``, ascending."""
        raise NotImplementedError

    def ends(self, lo: int, hi: int) -> list[tuple[int, CutKind]]:
        """Boundary line ends in ``[lo, hi]``, ascending."""
        raise NotImplementedError

    def leading(self, start: _Start, lo: int) -> int:
        """``start`` moved up over the comments that belong to it, not before ``lo``."""
        return start.offset


class _LineFinder(_Finder):
    """Boundaries for a language without a tree: non-blank lines."""

    def __init__(self, source: bytes, cursor: int) -> None:
        self.source = source
        self.cursor = cursor

    def starts(self, lo: int, hi: int) -> list[_Start]:
        found = []
        for ls in line_starts_between(self.source, lo, hi):
            le = line_end(self.source, ls)
            text = self.source[ls:le]
            # A line that opens with a closer ends something: no place to start.
            if is_blank(text) or text.lstrip()[:1] in (b"}", b")", b"]"):
                continue
            found.append(
                _Start(
                    offset=ls,
                    kind="line-fallback",
                    preferred=indentation(text) == 0,
                    encloses=ls <= self.cursor < le,
                    node=None,
                    end=le,
                )
            )
        return found

    def ends(self, lo: int, hi: int) -> list[tuple[int, CutKind]]:
        return [(le, "line-fallback") for le in line_ends_between(self.source, lo, hi)]


class _SyntaxFinder(_Finder):
    """Boundaries from the language's ``boundaries.scm``."""

    def __init__(
        self, tree: tree_sitter.Tree, source: bytes, language: LanguageSpec, cursor: int
    ) -> None:
        self.root = tree.root_node
        self.source = source
        self.language = language
        self.cursor = cursor
        self._leading: set[tuple[int, int, int]] = set()

    def _captures(self, lo: int, hi: int) -> dict[str, list[tree_sitter.Node]]:
        found = captures(self.language, "boundaries", self.root, lo, hi)
        self._leading.update(node_key(n) for n in found.get("boundary.leading", []))
        return found

    def starts(self, lo: int, hi: int) -> list[_Start]:
        source = self.source
        # A boundary on the line that starts at ``hi`` begins after its indentation.
        found = self._captures(lo, line_text_end(source, hi) + 1)
        by_line: dict[int, _Start] = {}
        for name in ("boundary.definition", "boundary.statement"):
            for node in found.get(name, []):
                begin = node.start_byte
                if node.is_missing or not starts_its_line(source, begin):
                    continue
                ls = line_start(source, begin)
                if not lo <= ls <= hi:
                    continue
                encloses = begin < self.cursor <= node.end_byte
                seen = by_line.get(ls)
                if seen is None:
                    by_line[ls] = _Start(
                        offset=ls,
                        kind="definition" if name == "boundary.definition" else "statement",
                        preferred=name == "boundary.definition",
                        encloses=encloses,
                        node=node,
                        end=node.end_byte,
                    )
                    continue
                seen.encloses = seen.encloses or encloses
                if node.end_byte > seen.end:
                    seen.node, seen.end = node, node.end_byte
        return [by_line[k] for k in sorted(by_line)]

    def ends(self, lo: int, hi: int) -> list[tuple[int, CutKind]]:
        source = self.source
        # Nodes that end on the line before ``lo`` give the line end ``lo``.
        found = self._captures(line_start(source, max(lo - 1, 0)), hi)
        by_line: dict[int, CutKind] = {}
        for name in ("boundary.statement", "boundary.definition"):
            for node in found.get(name, []):
                end = node.end_byte
                if node.is_missing or end <= node.start_byte:
                    continue
                if is_line_end(source, end):
                    le = end
                else:
                    if not self._only_comment_after(end):
                        continue
                    le = line_end(source, end)
                if lo <= le <= hi:
                    by_line[le] = "definition" if name == "boundary.definition" else "statement"
        return sorted(by_line.items())

    def _only_comment_after(self, end: int) -> bool:
        rest = self.source[end : line_text_end(self.source, end)].strip()
        if not rest:
            return True
        markers = [self.language.line_comment]
        if self.language.block_comment:
            markers.append(self.language.block_comment[0])
        return any(m and rest.startswith(m.encode()) for m in markers)

    def leading(self, start: _Start, lo: int) -> int:
        node = start.node
        if node is None:
            return start.offset
        best = start.offset
        sibling = node.prev_named_sibling
        while sibling is not None and node_key(sibling) in self._leading:
            between = self.source[sibling.end_byte : best]
            # Only a comment on the line right above belongs to what follows it.
            if between.count(b"\n") > 1 or not is_blank(between):
                break
            if not starts_its_line(self.source, sibling.start_byte):
                break
            ls = line_start(self.source, sibling.start_byte)
            if ls < lo:
                break
            best = ls
            sibling = sibling.prev_named_sibling
        return best


# --- choosing -----------------------------------------------------------------


class _Chooser:
    def __init__(
        self,
        source: bytes,
        cursor: int,
        budget: WindowBudget,
        measure: Measure,
        finder: _Finder,
    ) -> None:
        self.source = source
        self.cursor = cursor
        self.budget = budget
        self.measure = measure
        self.finder = finder

    def _fits_before(self, start: int, limit: int) -> bool:
        return self.measure(self.source[start : self.cursor]) <= limit

    def _target(self, limit: int) -> int:
        return max(0, int(limit * self.budget.jump_fill))

    def _middle_target(self, limit: int) -> int:
        fill = self.budget.middle_fill
        return self._target(limit) if fill is None else max(0, int(limit * fill))

    def middle(self, previous: Cut | None, *, relocated: bool = False) -> Cut:
        source, cursor = self.source, self.cursor
        limit = min(self.budget.middle_tokens, self.budget.prefix_tokens)
        if limit <= 0:
            return Cut(cursor, "cursor")
        keep_limit = self._middle_target(limit) if relocated else limit
        if (
            previous is not None
            and 0 <= previous.offset <= cursor
            and is_line_start(source, previous.offset)
            and self._fits_before(previous.offset, keep_limit)
        ):
            return replace(previous, kept=True)
        lo = _earliest_fitting_line_start(source, cursor, self._middle_target(limit), self.measure)
        own_line = line_start(source, cursor)
        if lo is None:
            return Cut(cursor, "cursor")
        starts = self.finder.starts(lo, own_line)
        enclosing = [s for s in starts if s.encloses]
        if enclosing:
            return Cut(enclosing[0].offset, enclosing[0].kind)
        if starts:
            return Cut(starts[0].offset, starts[0].kind)
        return Cut(own_line, "line-fallback")

    def prefix(self, previous: Cut | None, middle: Cut) -> Cut:
        source, cursor = self.source, self.cursor
        limit = self.budget.prefix_tokens
        hi = middle.offset
        if (
            previous is not None
            and 0 <= previous.offset <= hi
            and (is_line_start(source, previous.offset) or previous.offset == hi)
            and self._fits_before(previous.offset, limit)
        ):
            return replace(previous, kept=True)
        if self._fits_before(0, limit):
            return Cut(0, "file-start")
        target = self._target(limit)
        lo = _earliest_fitting_line_start(source, cursor, target, self.measure)
        if lo is None:
            return Cut(self._earliest_fitting_byte(target), "byte-fallback")
        if lo > hi:
            return Cut(hi, middle.kind)
        starts = self.finder.starts(lo, hi)
        if not starts:
            return Cut(lo, "line-fallback")
        half = lo + (hi - lo) // 2
        pick = next((s for s in starts if s.preferred and s.offset <= half), starts[0])
        return Cut(self.finder.leading(pick, lo), pick.kind)

    def suffix(self, previous: Cut | None) -> Cut:
        source, cursor = self.source, self.cursor
        limit = self.budget.suffix_tokens
        if cursor >= len(source):
            return Cut(cursor, "file-end")
        if limit <= 0:
            return Cut(cursor, "cursor")
        if (
            previous is not None
            and cursor < previous.offset <= len(source)
            and is_line_end(source, previous.offset)
            and self.measure(source[cursor : previous.offset]) <= limit
        ):
            return replace(previous, kept=True)
        if self.measure(source[cursor:]) <= limit:
            return Cut(len(source), "file-end")
        hi = _furthest_fitting_line_end(source, cursor, limit, self.measure)
        if hi is None:
            return Cut(self._furthest_fitting_byte(limit), "byte-fallback")
        ends = self.finder.ends(line_end(source, cursor), hi)
        if ends:
            return Cut(*ends[-1])
        return Cut(hi, "line-fallback")

    def _earliest_fitting_byte(self, limit: int) -> int:
        """The earliest character boundary in the cursor's line whose rest fits."""
        lo, hi = line_start(self.source, self.cursor), self.cursor
        while lo < hi:
            mid = (lo + hi) // 2
            if self._fits_before(mid, limit):
                hi = mid
            else:
                lo = mid + 1
        return utf8_boundary_at_or_after(self.source, lo)

    def _furthest_fitting_byte(self, limit: int) -> int:
        lo, hi = self.cursor, line_text_end(self.source, self.cursor)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.measure(self.source[self.cursor : mid]) <= limit:
                lo = mid
            else:
                hi = mid - 1
        return utf8_boundary_at_or_before(self.source, lo)


def _earliest_fitting_line_start(
    source: bytes, end: int, limit: int, measure: Measure
) -> int | None:
    """The earliest line start ``x`` with ``measure(source[x:end]) <= limit``.

    None when not even the start of ``end``'s own line fits. Assumes that
    ``measure`` grows with the text, and looks back only as far as it must.
    """
    own = line_start(source, end)
    if measure(source[own:end]) > limit:
        return None
    span = max(256, 5 * limit)
    while True:
        x = line_start(source, max(0, end - span))
        fits = measure(source[x:end]) <= limit
        if fits and x == 0:
            return 0
        if not fits:
            break
        span *= 2
    starts = line_starts_between(source, x, own)
    lo, hi = 0, len(starts) - 1  # starts[lo] does not fit, starts[hi] fits
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if measure(source[starts[mid] : end]) <= limit:
            hi = mid
        else:
            lo = mid
    return starts[hi]


def _furthest_fitting_line_end(
    source: bytes, start: int, limit: int, measure: Measure
) -> int | None:
    """The furthest line end ``y`` with ``measure(source[start:y]) <= limit``."""
    first = line_end(source, start)
    if measure(source[start:first]) > limit:
        return None
    span = max(256, 5 * limit)
    while True:
        y = line_end(source, min(len(source), start + span))
        fits = measure(source[start:y]) <= limit
        if fits and y == len(source):
            return y
        if not fits:
            break
        span *= 2
    ends = line_ends_between(source, first, y)
    lo, hi = 0, len(ends) - 1  # ends[lo] fits, ends[hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if measure(source[start : ends[mid]]) <= limit:
            lo = mid
        else:
            hi = mid
    return ends[lo]
