"""Where a generated middle should end, read from its lines and brackets alone.

Each rule proposes the earliest offset at which the middle must stop, with a
reason; the earliest proposal wins. The parse in :mod:`trunc_window` then only
has to confirm that the text up to there is whole (or find the longest shorter
cut that is). Rules:

- ``line_scope``: a single-line completion ends with its first line of content.
- ``suffix_overlap``: the middle starts repeating the text after the cursor
  (the rest of the cursor's line, or the suffix's next lines).
- ``closer_in_suffix``: a closing bracket the middle did not open, which the
  suffix already supplies at the same place.
- ``block_end``: the middle leaves the function it is in, or finishes the
  definition it opened at the top level or in a class body.
- ``dead_code``: a second ``return`` (``raise``, ``break`` ...) right after
  one in the same block; models repeat the closing line of a function so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from codegemma_lsp.syntax.trunc_context import (
    CursorContext,
    Syntax,
    first_word,
    indentation,
    is_continued,
)
from codegemma_lsp.syntax.trunc_lexer import OPENERS, Bracket, Lexed, LexRules

Scope = Literal["line", "block"]

_TERMINAL_WORDS = frozenset({"return", "raise", "throw", "break", "continue"})


@dataclass(frozen=True, slots=True)
class Proposal:
    cut: int
    reason: str


@dataclass(frozen=True, slots=True)
class GenLine:
    start: int  # offset in the generated text
    end: int  # offset of its newline, or the end of the text
    full: str  # the line as it will read (the cursor's line includes its prefix)
    indent: int
    depth: int  # brackets the middle has opened (minus those it closed) at its start
    opaque: bool  # starts inside a string or comment

    @property
    def code(self) -> str:
        return self.full.strip()


@dataclass(frozen=True, slots=True)
class Generated:
    text: str
    lines: tuple[GenLine, ...]
    lexed: Lexed


def read_generated(text: str, ctx: CursorContext, lex: LexRules | None) -> Generated:
    lexed = lex.lex(text) if lex is not None else Lexed((), ())
    brackets = lexed.brackets
    opaque = lexed.opaque
    lines = []
    depth = b = o = 0
    start = 0
    while True:
        newline = text.find("\n", start)
        end = len(text) if newline < 0 else newline
        while b < len(brackets) and brackets[b].pos < start:
            depth += 1 if brackets[b].char in OPENERS else -1
            b += 1
        while o < len(opaque) and opaque[o][1] <= start:
            o += 1
        inside = o < len(opaque) and opaque[o][0] < start
        full = ctx.line_prefix + text[start:end] if start == 0 else text[start:end]
        lines.append(GenLine(start, end, full, indentation(full), depth, inside))
        if newline < 0:
            break
        start = newline + 1
    return Generated(text, tuple(lines), lexed)


def _line_of(gen: Generated, pos: int) -> int:
    lo, hi = 0, len(gen.lines) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if gen.lines[mid].start <= pos:
            lo = mid
        else:
            hi = mid - 1
    return lo


def line_cut(gen: Generated, ctx: CursorContext, i: int) -> int:
    """The cut that ends the middle just before line ``i``.

    When the cursor sits at the end of a line's indentation, the rest of that
    line must keep the indentation, so the cut takes the next line's along.
    """
    line = gen.lines[i]
    keeps_indent = (
        i > 0
        and ctx.at_line_start
        and ctx.line_prefix
        and not ctx.rest_blank
        and not ctx.rest[0].isspace()
    )
    if keeps_indent and gen.text.startswith(ctx.line_prefix, line.start):
        return line.start + len(ctx.line_prefix)
    return line.start


def propose(
    gen: Generated, ctx: CursorContext, syntax: Syntax | None, scope: Scope | None
) -> Proposal:
    """The earliest place the rules say the middle must end (its length if none)."""
    proposals = [Proposal(len(gen.text), "complete")]
    if scope == "line":
        proposals.append(_line_scope(gen))
    proposals.append(_rest_of_line(gen, ctx))
    proposals.append(_suffix_text(gen, ctx))
    if syntax is None:
        proposals.append(_dedent(gen, ctx))
    else:
        proposals.append(_brackets(gen, ctx, syntax))
        if syntax.indent_blocks:
            proposals.append(_indentation(gen, ctx, syntax))
        if syntax.headers.closers:
            proposals.append(_closing_word(gen, ctx, syntax))
        proposals.append(_dead_code(gen, ctx, syntax))
    best = min(proposals, key=lambda p: p.cut)
    overlap = _suffix_lines(gen, ctx, best.cut)
    return overlap if overlap.cut <= best.cut else best


_NONE = Proposal(1 << 62, "")


def _line_scope(gen: Generated) -> Proposal:
    for line in gen.lines:
        if line.code and line.end < len(gen.text):
            return Proposal(line.end, "line_scope")
        if line.code:
            break
    return _NONE


def _targets(ctx: CursorContext) -> list[str]:
    """The next few non-blank lines the suffix puts after the middle, as written."""
    rows = ctx.suffix.split("\n", 40)
    first = []
    if not ctx.rest_blank and ctx.at_line_start:
        first = [(ctx.line_prefix + ctx.rest).rstrip()]
    return (first + [row.rstrip() for row in rows[1:40] if row.strip()])[:3]


def _suffix_lines(gen: Generated, ctx: CursorContext, end: int) -> Proposal:
    """The middle repeats the suffix's next lines (looking no further than ``end``)."""
    targets = _targets(ctx)
    if not targets:
        return _NONE
    lines = [line for line in gen.lines if line.start < end]
    if not lines:
        return _NONE
    partial_last = lines[-1].end >= len(gen.text) and not gen.text.endswith("\n")
    for i in range(0 if ctx.at_line_start else 1, len(lines)):
        text = lines[i].full
        cut_short = i == len(lines) - 1 and partial_last and _is_partial_of(text, targets[0])
        if text.rstrip() != targets[0] and not cut_short:
            continue
        matched, more = _repeats(lines, i + 1, targets[1:], partial_last)
        # A middle may well contain the suffix's first line; it repeats the
        # suffix when it ends with it, or repeats two lines of it.
        if matched and (matched > 1 or not more):
            return Proposal(line_cut(gen, ctx, i), "suffix_overlap")
    return _NONE


def _is_partial_of(line: str, target: str) -> bool:
    return len(line.strip()) >= 3 and target.startswith(line.rstrip())


def _repeats(
    lines: list[GenLine], i: int, targets: list[str], partial_last: bool
) -> tuple[int, bool]:
    """How many lines, counting the one before ``i``, match the suffix's (0: a
    mismatch), and whether the middle has more code after them."""
    matched = 1
    for target in targets:
        i = _next_code_line(lines, i)
        if i >= len(lines):
            return matched, False
        line = lines[i].full.rstrip()
        last = i == len(lines) - 1
        if line != target and not (last and partial_last and target.startswith(line)):
            return 0, True
        matched += 1
        i += 1
    return matched, _next_code_line(lines, i) < len(lines)


def _next_code_line(lines: list[GenLine], i: int) -> int:
    while i < len(lines) and not lines[i].full.strip():
        i += 1
    return i


# How much of the suffix's text the middle must end with to count as repeating it.
_MIN_REPEATED = 6


def _suffix_text(gen: Generated, ctx: CursorContext) -> Proposal:
    """The middle ends by repeating the suffix's text from its start (a model cut
    off while it copies the suffix), wherever the middle's own text stops."""
    text, suffix = gen.text, ctx.suffix
    head = suffix.lstrip()[:_MIN_REPEATED]
    if len(head) < _MIN_REPEATED:
        return _NONE
    lead = len(suffix) - len(suffix.lstrip())
    at = text.find(head)
    while at >= 0:
        start = max(0, at - lead)
        # Where the copy starts: as much of the suffix's leading blank as the text has.
        while start < at and not suffix.startswith(text[start:at]):
            start += 1
        # A copy that starts inside deeper indentation is a different line (in Python,
        # ``        return False`` is not the suffix's ``    return False``).
        inside_indent = start > 0 and text[start - 1] in " \t"
        if suffix.startswith(text[start:]) and not inside_indent:
            return Proposal(start, "suffix_overlap")
        at = text.find(head, at + 1)
    return _NONE


def _rest_of_line(gen: Generated, ctx: CursorContext) -> Proposal:
    """The cursor's line already ends with text the middle's first line ends with."""
    rest = ctx.rest.strip()
    if ctx.at_line_start or not rest:
        return _NONE
    first = gen.lines[0]
    text = gen.text[: first.end].rstrip()
    if text.endswith(rest):
        return Proposal(len(text) - len(rest), "suffix_overlap")
    return _NONE


def _dedent(gen: Generated, ctx: CursorContext) -> Proposal:
    """Without a grammar: a line less indented than the cursor's ends the block."""
    for i in range(1, len(gen.lines)):
        line = gen.lines[i]
        if line.code and line.indent < ctx.indent:
            return Proposal(line_cut(gen, ctx, i), "block_end")
    return _NONE


def _supplied(ctx: CursorContext, char: str, indent: int | None) -> bool:
    """Whether the suffix goes on with ``char`` (at ``indent``, when given)."""
    following = ctx.next_line()
    if following is None or not following.lstrip().startswith(char):
        return False
    return indent is None or indentation(following) == indent


def _brackets(gen: Generated, ctx: CursorContext, syntax: Syntax) -> Proposal:
    stack: list[Bracket] = []
    unmatched = 0
    in_function = ctx.function is not None
    lex = syntax.lex
    for bracket in gen.lexed.brackets:
        if bracket.char in OPENERS:
            stack.append(bracket)
            continue
        i = _line_of(gen, bracket.pos)
        line = gen.lines[i]
        after = gen.text[bracket.pos + 1 : line.end]
        if stack:
            opener = stack.pop()
            closes_block = (
                not stack
                and unmatched == 0
                and opener.pos < line.start
                and not syntax.indent_blocks
                and not in_function
                and lex.net_depth(after) <= 0
            )
            if closes_block:
                return Proposal(line.end, "block_end")
            continue
        unmatched += 1
        on_cursor_line = i == 0 and not ctx.at_line_start
        first_on_line = not on_cursor_line and not gen.text[line.start : bracket.pos].strip()
        reopens = lex.net_depth(after) > 0
        if on_cursor_line:
            if not ctx.rest_blank:
                supplied = ctx.rest.lstrip().startswith(bracket.char)
            else:
                supplied = not reopens and _supplied(ctx, bracket.char, None)
            if supplied:
                return Proposal(bracket.pos, "closer_in_suffix")
        else:
            if first_on_line and reopens:
                continue  # a clause: "} else {"
            if _supplied(ctx, bracket.char, line.indent if first_on_line else None):
                cut = line_cut(gen, ctx, i) if first_on_line else bracket.pos
                return Proposal(cut, "closer_in_suffix")
        if syntax.indent_blocks:
            continue  # Python's brackets close expressions; its indentation closes blocks
        if not in_function or unmatched >= ctx.function_depth:
            return Proposal(line.end, "block_end")
    return _NONE


def _indentation(gen: Generated, ctx: CursorContext, syntax: Syntax) -> Proposal:
    base = ctx.indent
    floor = ctx.function.indent if ctx.function is not None else None
    ceiling = ctx.container.indent if ctx.container is not None else None
    first = gen.lines[0]
    opened = first.indent == base and bool(first.code) and syntax.opens_block(first.code)
    for i in range(1, len(gen.lines)):
        line = gen.lines[i]
        code = line.code
        if not code or line.opaque:
            continue
        if floor is not None:
            if line.indent <= floor:
                return Proposal(line_cut(gen, ctx, i), "block_end")
            continue
        if line.depth > 0:
            continue
        if ceiling is not None and line.indent <= ceiling:
            return Proposal(line_cut(gen, ctx, i), "block_end")
        if (
            opened
            and line.indent <= base
            and not syntax.is_clause(code)
            and not _continues(gen, i, syntax)
        ):
            return Proposal(line_cut(gen, ctx, i), "block_end")
        if line.indent == base and syntax.opens_block(code):
            opened = True
    return _NONE


def _closing_word(gen: Generated, ctx: CursorContext, syntax: Syntax) -> Proposal:
    """Where blocks close with a keyword (``end``): the block the cursor is in ends at the
    first line indented no deeper than its header. That line is kept when it is the
    closing keyword and the text after the cursor does not already have it."""
    if not ctx.chain:
        return _NONE
    header = ctx.chain[0]
    closers = syntax.headers.closers
    for i in range(1, len(gen.lines)):
        line = gen.lines[i]
        code = line.code
        if not code or line.opaque or line.depth > 0 or syntax.is_comment(code):
            continue
        if line.indent > header.indent:
            continue
        word = first_word(code)
        if word in closers and not _closes_in_suffix(ctx, word, line.indent):
            return Proposal(line.end, "block_end")
        return Proposal(line_cut(gen, ctx, i), "block_end")
    return _NONE


def _closes_in_suffix(ctx: CursorContext, word: str, indent: int) -> bool:
    """Whether the suffix's next line is the closing ``word`` at ``indent``."""
    following = ctx.next_line()
    return (
        following is not None
        and first_word(following.strip()) == word
        and indentation(following) == indent
    )


def _continues(gen: Generated, i: int, syntax: Syntax) -> bool:
    """Whether a decorator (or a continued line) right above line ``i`` leads into it."""
    for j in range(i - 1, -1, -1):
        code = gen.lines[j].code
        if code:
            return code.startswith("@") or is_continued(code, syntax)
    return False


def _dead_code(gen: Generated, ctx: CursorContext, syntax: Syntax) -> Proposal:
    terminal: tuple[int, int, str] | None = None  # (indent, depth after it, its keyword)
    lines = gen.lines
    for i, line in enumerate(lines):
        code = line.code
        if not code or line.opaque or syntax.is_comment(code):
            continue
        word = first_word(code)
        if terminal is not None:
            indent, depth, terminal_word = terminal
            if line.indent < indent:
                terminal = None
            elif line.indent == indent and line.depth == depth:
                if word == terminal_word:
                    return Proposal(line_cut(gen, ctx, i), "dead_code")
                terminal = None
        if word in _TERMINAL_WORDS and not is_continued(code, syntax):
            after = lines[i + 1].depth if i + 1 < len(lines) else line.depth
            if after <= line.depth:
                terminal = (line.indent, after, word)
    return _NONE
