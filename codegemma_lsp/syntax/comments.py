"""The comment block at or above the cursor, and its text without comment markers.

Generating code from a comment needs the comment the user means: the one the
cursor is in, or the one right above the cursor when the cursor sits on a blank
line below it. A block is a run of comments, each alone on its line (blanks
before it only), on consecutive lines; a blank line or a line of code ends it.
A comment that follows code on its line is about that line, and never counts.

Comments are found with each language's ``comments.scm`` query, so a language
is supported by its folder in ``grammars/``; the markers stripped from the text
come from its ``language.toml`` (``line_comment``, ``block_comment``).
"""

from __future__ import annotations

from dataclasses import dataclass

import tree_sitter

from codegemma_lsp.syntax.languages import LanguageSpec
from codegemma_lsp.syntax.nodes import captures, is_blank, line_end, line_start

# How far either side of the cursor comments are looked for: enough for a long block.
_SEARCH_BYTES = 64 * 1024
MAX_BLANK_LINES_BETWEEN = 1
"""Blank lines allowed between a comment and the blank line the cursor is on: a
comment further up introduces what follows it, not what the cursor is to get."""
_BLANK = b" \t\r\f\v"


@dataclass(frozen=True)
class CommentBlock:
    """A run of comments on consecutive lines; offsets are UTF-8 byte offsets."""

    text: str
    """The comments' words, markers and their decoration (``*`` columns) removed."""
    start: int
    """The start of the first comment's line."""
    end: int
    """The end of the last comment's line: after its newline, or the end of the text."""
    indent: str
    """The blanks before the first comment on its line."""


@dataclass(frozen=True)
class _Comment:
    start: int  # the node's first byte
    end: int  # the node's end, its trailing newline (if the grammar includes one) left out
    first_line: int  # line start of the node's first line
    last_line: int  # line start of the node's last line


def comment_block(
    tree: tree_sitter.Tree | None, source: bytes, cursor: int, language: LanguageSpec | None
) -> CommentBlock | None:
    """The comment block the cursor is in, or the one just above the blank line it is on.

    One blank line may stand between the comment and the cursor's blank line
    (:data:`MAX_BLANK_LINES_BETWEEN`); code may not.
    ``None`` when there is no such block, or no tree to find comments in.
    """
    if tree is None or language is None:
        return None
    cursor = max(0, min(cursor, len(source)))
    here = line_start(source, cursor)
    lo = max(0, here - _SEARCH_BYTES)
    comments = _own_line_comments(tree, source, language, lo, cursor + _SEARCH_BYTES)
    anchor = _comment_on_line(comments, here)
    if anchor is None:
        if not is_blank(source[here : line_end(source, cursor)]):
            return None
        above = _previous_non_blank_line(source, here)
        anchor = _comment_ending_on(comments, above) if above is not None else None
        if anchor is None:
            return None
    index = comments.index(anchor)
    first = last = index
    while first > 0 and _adjacent(source, comments[first - 1], comments[first]):
        first -= 1
    while last + 1 < len(comments) and _adjacent(source, comments[last], comments[last + 1]):
        last += 1
    block = comments[first : last + 1]
    start = block[0].first_line
    text = "\n".join(
        comment_text(source[c.start : c.end].decode("utf-8", "replace"), language) for c in block
    )
    return CommentBlock(
        text=_tidy(text),
        start=start,
        end=line_end(source, block[-1].last_line),
        indent=source[start : block[0].start].decode("utf-8", "replace"),
    )


def _own_line_comments(
    tree: tree_sitter.Tree, source: bytes, language: LanguageSpec, lo: int, hi: int
) -> list[_Comment]:
    """Comments meeting ``[lo, hi)`` that have only blanks before them on their line."""
    found: dict[tuple[int, int], _Comment] = {}
    for node in captures(language, "comments", tree.root_node, lo, hi).get("comment", []):
        start, end = node.start_byte, node.end_byte
        while end > start and source[end - 1 : end] in (b"\n", b"\r"):
            end -= 1  # some grammars (Rust's line comments) end the node after the newline
        first_line = line_start(source, start)
        if source[first_line:start].strip(_BLANK) or end <= start:
            continue
        found[(start, end)] = _Comment(start, end, first_line, line_start(source, end))
    return sorted(found.values(), key=lambda c: c.start)


def _comment_on_line(comments: list[_Comment], line: int) -> _Comment | None:
    for comment in comments:
        if comment.first_line <= line <= comment.last_line:
            return comment
    return None


def _comment_ending_on(comments: list[_Comment], line: int) -> _Comment | None:
    for comment in comments:
        if comment.last_line == line:
            return comment
    return None


def _previous_non_blank_line(source: bytes, line: int) -> int | None:
    """The start of the nearest line above ``line`` that holds more than blanks, if no
    more than :data:`MAX_BLANK_LINES_BETWEEN` blank lines stand between."""
    for _ in range(MAX_BLANK_LINES_BETWEEN + 1):
        if line == 0:
            return None
        line = line_start(source, line - 1)
        if not is_blank(source[line : line_end(source, line)]):
            return line
    return None


def _adjacent(source: bytes, upper: _Comment, lower: _Comment) -> bool:
    """Whether ``lower`` starts on the line right after ``upper`` ends."""
    return line_end(source, upper.last_line) == lower.first_line


def comment_text(raw: str, language: LanguageSpec) -> str:
    """One comment's words: its markers, a doc marker's extra ``/``, ``!`` or ``*``,
    and the ``*`` column of a block comment taken away."""
    text = raw.strip()
    # The block marker first: it may begin with the line marker (Lua's ``--[[``).
    if language.block_comment:
        opener, closer = language.block_comment
        if text.startswith(opener):
            body = text[len(opener) :]
            if body.endswith(closer):
                body = body[: -len(closer)]
            body = body.lstrip("*!").rstrip("*")
            return _strip_star_column(body)
    line_marker = language.line_comment
    if line_marker and text.startswith(line_marker):
        body = text[len(line_marker) :]
        # ``///``, ``//!``, ``##``: a doc or emphasis marker is still a marker.
        body = body.lstrip(line_marker[-1] + "!")
        return body[1:] if body.startswith(" ") else body
    return text


def _strip_star_column(body: str) -> str:
    """A block comment's lines without their leading ``*`` decoration."""
    lines = body.split("\n")
    kept = [lines[0].strip()]
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("*"):
            stripped = stripped[1:]
            stripped = stripped[1:] if stripped.startswith(" ") else stripped
        kept.append(stripped.rstrip())
    return "\n".join(kept)


def _tidy(text: str) -> str:
    """Blank lines at either end dropped, trailing blanks too."""
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)
