"""Judging a cut by parsing a window of the document around the cursor.

Parsing the whole of a 2000-line file costs about 4 ms, so a cut is judged on a
window: the prefix from the start of a statement that holds the cursor, the
completion, and the suffix up to the next statement at that statement's level
or lower. When the window starts inside a class (or another block), the header
lines of the blocks around it are put before it and their closing brackets
after it, so the window parses as it does in the whole document. The outermost
such window within :data:`WINDOW_BUDGET` wins.

A cut is whole when its window has no more ERROR or MISSING nodes than the same
window without the completion (the document may be broken already, and its
breakage must not count against the completion), and none of them starts inside
the completion (which would be new breakage hidden by a repair elsewhere).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import tree_sitter

from codegemma_lsp.syntax.languages import LanguageSpec
from codegemma_lsp.syntax.parsing import parse
from codegemma_lsp.syntax.trunc_context import (
    CursorContext,
    Header,
    Syntax,
    indentation,
    is_continued,
    last_shallow_line,
)

# Characters of prefix plus suffix in a window: about 0.1 ms of parsing a kilobyte.
WINDOW_BUDGET = 6000


@dataclass(frozen=True, slots=True)
class ParseWindow:
    """The piece of the document truncation parses to judge a cut (not the prompt's
    :class:`~codegemma_lsp.syntax.cutpoints.Window`)."""

    head: str  # synthetic headers, then the prefix from the window's start
    tail: str  # the suffix up to the window's end, then synthetic closers


@dataclass(frozen=True, slots=True)
class _Level:
    start: int
    indent: int
    outer: tuple[Header, ...]  # outermost first


def choose_parse_window(
    ctx: CursorContext, syntax: Syntax, budget: int | None = None
) -> ParseWindow:
    prefix, suffix = ctx.prefix, ctx.suffix
    budget = WINDOW_BUDGET if budget is None else budget
    if len(prefix) + len(suffix) <= budget:
        return ParseWindow(prefix, suffix)
    chosen: tuple[_Level, int] | None = None
    innermost: _Level | None = None
    before = _code_line_at_cursor(ctx, syntax)
    for level in _levels(ctx, syntax):
        if not _outside_strings(prefix[: level.start], syntax):
            continue
        innermost = level
        room = budget - (len(prefix) - level.start)
        end = _window_end(suffix, level.indent, syntax, max(room, 0), before)
        if end is not None:
            chosen = (level, end)
            break
    if chosen is None:
        if innermost is None:
            return ParseWindow(prefix, suffix)
        end = _window_end(suffix, innermost.indent, syntax, None, before)
        chosen = (innermost, len(suffix) if end is None else end)
    level, end = chosen
    head = "".join(h.source for h in level.outer) + prefix[level.start :]
    closers = "".join("\n" + h.closers(syntax.lex) for h in reversed(level.outer))
    return ParseWindow(head, suffix[:end] + closers)


def _levels(ctx: CursorContext, syntax: Syntax) -> list[_Level]:
    """Where a window may start, outermost first."""
    prefix = ctx.prefix
    outermost_first = tuple(reversed(ctx.chain))
    levels = []
    for i, header in enumerate(outermost_first):
        outer = outermost_first[:i]
        if not all(h.opens for h in outer):
            break
        start = header.offset
        if not header.startable:  # "else:": start at its "if"
            start = _statement_start_before(prefix, header.offset, header.indent, syntax)
            if _indentation_at(prefix, start) != header.indent:
                continue
        levels.append(_Level(start, header.indent, outer))
    if not ctx.chain:
        start = _statement_start_before(
            prefix, len(prefix) - len(ctx.line_prefix), ctx.indent, syntax
        )
        levels.append(_Level(start, _indentation_at(prefix, start), ()))
    return levels


def _indentation_at(text: str, start: int) -> int:
    end = text.find("\n", start)
    return indentation(text[start : end if end >= 0 else len(text)])


def _statement_start_before(prefix: str, row_start: int, indent: int, syntax: Syntax) -> int:
    """The start of the nearest line above ``row_start``, indented ``indent`` or less,
    that starts a statement (0 if none)."""
    end = row_start
    while True:
        first = last_shallow_line(prefix, end, indent + 1)
        if first < 0:
            return 0
        start = prefix.rfind("\n", 0, first) + 1
        line_end = prefix.find("\n", first)
        stripped = prefix[start : line_end if line_end >= 0 else len(prefix)].strip()
        if not syntax.is_ignorable(stripped) and not syntax.is_clause(stripped):
            above = prefix.rfind("\n", 0, max(start - 1, 0)) + 1
            if start == 0 or not is_continued(prefix[above : start - 1], syntax):
                return start
        end = start


def _window_end(
    suffix: str, indent: int, syntax: Syntax, room: int | None, before: str
) -> int | None:
    """The start of the first line after the cursor's that begins a statement at
    ``indent`` or less (or closes an outer block); None when past ``room``.
    ``before`` is the last line of code before the suffix's second line."""
    first_row = suffix.find("\n") + 1
    if first_row == 0:
        return len(suffix)
    pattern = _line_at_most(indent)
    pos = first_row - 1
    endpos = len(suffix) if room is None else min(len(suffix), room)
    while True:
        match = pattern.search(suffix, pos, endpos)
        if match is None:
            return len(suffix) if room is None or room >= len(suffix) else None
        start = match.start() + 1
        end = suffix.find("\n", start)
        line = suffix[start : end if end >= 0 else len(suffix)]
        stripped = line.strip()
        pos = start
        if syntax.is_comment(stripped) or _continues_above(
            suffix, first_row, start, syntax, before
        ):
            continue
        if indentation(line) < indent:
            return start
        if not syntax.is_clause(stripped) and not (
            stripped.startswith("#") and not syntax.indent_blocks
        ):
            return start


@cache
def _line_at_most(indent: int) -> re.Pattern[str]:
    return re.compile(rf"\n[ \t]{{0,{indent}}}(?=\S)")


def _continues_above(text: str, first_row: int, start: int, syntax: Syntax, before: str) -> bool:
    """Whether the code line above ``start`` goes on into it (``before`` is the
    code line above ``first_row``)."""
    end = start - 1
    while end > first_row:
        begin = text.rfind("\n", 0, end) + 1
        line = text[begin:end]
        stripped = line.strip()
        if stripped and not syntax.is_comment(stripped):
            return is_continued(line, syntax)
        end = begin - 1
    return is_continued(before, syntax)


def _code_line_at_cursor(ctx: CursorContext, syntax: Syntax) -> str:
    """The cursor's line, or the last line of code above it when it is blank."""
    line = ctx.line_prefix + ctx.rest
    end = len(ctx.prefix) - len(ctx.line_prefix) - 1
    while not line.strip() or syntax.is_comment(line.strip()):
        if end < 0:
            return ""
        begin = ctx.prefix.rfind("\n", 0, end) + 1
        line = ctx.prefix[begin:end]
        end = begin - 1
    return line


def _outside_strings(text: str, syntax: Syntax) -> bool:
    """Whether ``text`` ends outside multi-line strings and block comments (roughly)."""
    if text.count('"""') % 2 or text.count("'''") % 2 or text.count("`") % 2:
        return False
    block = syntax.lex.block_comment
    return block is None or text.count(block[0]) <= text.count(block[1])


@dataclass(frozen=True, slots=True)
class Verdict:
    errors: int
    first_error: int | None  # where the first error at or after the middle starts, in the middle
    inside: bool  # an error starts inside the middle: the middle itself is broken

    def whole(self, baseline: int) -> bool:
        return self.errors <= baseline and not self.inside


class Judge:
    """Parses the window with a middle in place and counts the damage.

    Every parse stops at ``deadline`` (a ``time.perf_counter()`` value) with
    :class:`~codegemma_lsp.syntax.parsing.ParseTimeout`.
    """

    def __init__(self, spec: LanguageSpec, window: ParseWindow, deadline: float) -> None:
        self._parser = spec.parser()
        self._head = window.head.encode()
        self._tail = window.tail.encode()
        self._deadline = deadline
        self.parses = 0
        self.baseline = self._count(b"").errors

    def verdict(self, middle: str) -> Verdict:
        return self._count(middle.encode())

    def _count(self, body: bytes) -> Verdict:
        self.parses += 1
        tree = self._parse(self._head + body + self._tail)
        low = len(self._head)
        errors, first = _errors(tree.root_node, low)
        if first is None:
            return Verdict(errors, None, inside=False)
        offset = min(first, low + len(body)) - low
        inside = 0 < offset < len(body)
        return Verdict(errors, len(body[:offset].decode("utf-8", errors="ignore")), inside)

    def _parse(self, source: bytes) -> tree_sitter.Tree:
        return parse(self._parser, source, deadline=self._deadline)


def _errors(root: tree_sitter.Node, low: int) -> tuple[int, int | None]:
    """ERROR and MISSING nodes under ``root``, and the first start at or after ``low``.

    A missing *hidden* token (Python's ``_newline``, ``_indent``) is no child
    of anything; it shows only as a node that has an error while none of its
    children has one. It counts at the end of that node.
    """
    count = 0
    first: int | None = None
    stack = [root] if root.has_error else []
    while stack:
        node = stack.pop()
        broken = [child for child in node.children if child.has_error]
        if node.is_error or node.is_missing:
            at = node.start_byte
        elif not broken:
            at = node.end_byte
        else:
            stack.extend(broken)
            continue
        count += 1
        if at >= low and (first is None or at < first):
            first = at
        stack.extend(broken)
    return count, first
