"""Small shared helpers for the syntax layer: lines in bytes, and query captures.

Everything here works on UTF-8 bytes and byte offsets, as tree-sitter does.
A "line start" is 0 or an offset just after ``\\n``; a "line end" is an offset
just after ``\\n`` or the end of the text, so ``source[line_start:line_end]``
is one whole line with its newline.
"""

from __future__ import annotations

from collections.abc import Iterator

import tree_sitter

from codegemma_lsp.syntax.languages import LanguageSpec

_BLANK = b" \t\r\f\v"
_BLANK_OR_NEWLINE = b" \t\r\n\f\v"


def approx_tokens(text: bytes) -> int:
    """A cheap token count for budgets: about 3.5 bytes a token, rounded up.

    Close enough for Gemma's tokenizer on source code; a caller that holds the
    real tokenizer may pass its own counter instead.
    """
    return (2 * len(text) + 6) // 7


def line_start(source: bytes, pos: int) -> int:
    """The start of the line that holds ``pos``."""
    return source.rfind(b"\n", 0, pos) + 1


def line_end(source: bytes, pos: int) -> int:
    """The end of the line that holds ``pos``, just after its newline.

    An offset that is itself a line start belongs to the line it starts.
    """
    nl = source.find(b"\n", pos)
    return len(source) if nl < 0 else nl + 1


def line_text_end(source: bytes, pos: int) -> int:
    """The end of the line that holds ``pos``, before its newline (and any ``\\r``)."""
    nl = source.find(b"\n", pos)
    end = len(source) if nl < 0 else nl
    if end > pos and source[end - 1 : end] == b"\r":
        end -= 1
    return end


def is_line_start(source: bytes, pos: int) -> bool:
    return pos == 0 or (0 < pos <= len(source) and source[pos - 1] == 0x0A)


def is_line_end(source: bytes, pos: int) -> bool:
    return pos == len(source) or (0 < pos <= len(source) and source[pos - 1] == 0x0A)


def starts_its_line(source: bytes, pos: int) -> bool:
    """Whether only blanks stand between the start of the line and ``pos``."""
    return not source[line_start(source, pos) : pos].strip(_BLANK)


def is_blank(text: bytes) -> bool:
    return not text.strip(_BLANK_OR_NEWLINE)


def indentation(line: bytes) -> int:
    """Columns of leading blanks, a tab counting as one (only compared within a file)."""
    return len(line) - len(line.lstrip(_BLANK))


def line_starts_between(source: bytes, lo: int, hi: int) -> list[int]:
    """Every line start in ``[lo, hi]``, ascending."""
    starts = [lo] if is_line_start(source, lo) else []
    pos = source.find(b"\n", lo, hi)
    while pos >= 0:
        starts.append(pos + 1)
        pos = source.find(b"\n", pos + 1, hi)
    return starts


def line_ends_between(source: bytes, lo: int, hi: int) -> list[int]:
    """Every line end in ``[lo, hi]`` (after a newline, or the end of the text), ascending."""
    ends = []
    pos = source.find(b"\n", max(lo - 1, 0), hi)
    while pos >= 0:
        if pos + 1 >= lo:
            ends.append(pos + 1)
        pos = source.find(b"\n", pos + 1, hi)
    if hi >= len(source) and (not ends or ends[-1] != len(source)):
        ends.append(len(source))
    return ends


def utf8_boundary_at_or_before(source: bytes, pos: int) -> int:
    """``pos`` moved back, if needed, so that it does not split a UTF-8 character."""
    pos = max(0, min(pos, len(source)))
    while 0 < pos < len(source) and (source[pos] & 0xC0) == 0x80:
        pos -= 1
    return pos


def utf8_boundary_at_or_after(source: bytes, pos: int) -> int:
    pos = max(0, min(pos, len(source)))
    while 0 < pos < len(source) and (source[pos] & 0xC0) == 0x80:
        pos += 1
    return pos


def captures(
    spec: LanguageSpec, kind: str, node: tree_sitter.Node, start: int, end: int
) -> dict[str, list[tree_sitter.Node]]:
    """Captures of the language's ``<kind>.scm`` among nodes meeting ``[start, end)``.

    A missing query file gives no captures, so a language folder may leave a kind out.
    """
    query = spec.query(kind)
    if query is None:
        return {}
    cursor = tree_sitter.QueryCursor(query)
    cursor.set_byte_range(max(0, start), max(start, end))
    return cursor.captures(node)


NodeKey = tuple[int, int, int]


def node_key(node: tree_sitter.Node) -> NodeKey:
    """A hashable identity for a node within one tree."""
    return (node.start_byte, node.end_byte, node.kind_id)


def ancestors(node: tree_sitter.Node | None) -> Iterator[tree_sitter.Node]:
    """``node`` and then each of its parents up to the root."""
    while node is not None:
        yield node
        node = node.parent
