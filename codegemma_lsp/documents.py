"""Open documents: text, UTF-8 bytes, line index and an incrementally edited tree.

Four coordinate systems meet here, and every conversion between them is explicit:

- an LSP position: ``(line, character)``, where lines end at ``\\n``, ``\\r\\n`` or ``\\r``
  and the character counts code units of the negotiated :class:`PositionEncoding`;
- an *offset*: an index into the Python ``str``;
- a *byte*: an offset into the UTF-8 encoding, which tree-sitter and the syntax layer use;
- a tree-sitter *point*: ``(row, byte column)``, where rows end only at ``\\n``
  (tree-sitter's lexer ignores a lone ``\\r``, so its rows and LSP lines differ there).

Bad positions never raise. A line past the last line means the end of the document, a
character past the end of its line means the end of that line (before the line break),
and a position inside a character (half a surrogate pair, the middle of a UTF-8
sequence) snaps to the character's start; :class:`ResolvedPosition` says when any of
that happened, so the server can log it.

A document's text lives in blocks of whole lines of about 16 kB (:class:`SourceText`), so
an edit rebuilds the block it touches and shifts four small arrays of one entry per block
at C speed: a keystroke costs 0.08 ms in a 1 MB file and 0.3-0.5 ms in a 60 MB one (the
text is cut into blocks once, at the first edit). Everything else is computed when first
asked for, off the event loop where it can be: the text as one ``str``, its UTF-8 bytes,
each block's line tables, and the tree, parsed incrementally from the last tree plus the
edits since (see :class:`Document`). A document opened and never used costs its text.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import accumulate, chain, islice, repeat
from operator import add, sub
from typing import AnyStr
from urllib.parse import unquote, urlparse

import tree_sitter

from codegemma_lsp.syntax.languages import LanguageRegistry, LanguageSpec, default_registry
from codegemma_lsp.syntax.parsing import ParseTimeout, parse

log = logging.getLogger(__name__)

# Lone surrogates can arrive from a JSON client; "surrogatepass" keeps every conversion
# total (one str char still encodes to one UTF-16 unit or three UTF-8 bytes).
_ERRORS = "surrogatepass"

# A match ends where an LSP line starts: after "\n", or after a "\r" that no "\n" follows.
_LSP_BREAK_STR = re.compile(r"\n|\r(?!\n)")
_LSP_BREAK_BYTES = re.compile(rb"\n|\r(?!\n)")

MAX_LINE_CHARS = 20_000
"""A document with a longer line is never parsed, and a cursor on one gets no completion:
such lines are data (minified code, a blob), and parsing them costs seconds."""

PARSE_DEADLINE_S = 1.0
"""How long a parse may run, plus as much again per megabyte of text, before it is given
up: some grammars take seconds, even minutes, on odd text."""

# About how many characters a block holds; blocks end at line ends, so a long line makes a
# long block. An edit rebuilds its block and shifts one array entry per block after it.
_BLOCK_CHARS = 16_384


class PositionEncoding(StrEnum):
    """The LSP ``PositionEncodingKind`` values; UTF-16 is the protocol's default."""

    UTF8 = "utf-8"
    UTF16 = "utf-16"
    UTF32 = "utf-32"


Point = tuple[int, int]
"""A tree-sitter point: (row counted by ``\\n`` only, column in bytes)."""


# --- pure helpers on one line ------------------------------------------------------------


def code_units(s: str, encoding: PositionEncoding) -> int:
    """How many code units of ``encoding`` the string ``s`` takes."""
    if encoding is PositionEncoding.UTF32 or s.isascii():
        return len(s)
    if encoding is PositionEncoding.UTF16:
        return len(s.encode("utf-16-le", _ERRORS)) // 2
    return len(s.encode("utf-8", _ERRORS))


def column_to_index(line: str, character: int, encoding: PositionEncoding) -> tuple[int, bool]:
    """The str index within ``line`` (no line break) of an LSP character, and whether it
    was adjusted: clamped into the line, or snapped back to the start of a character."""
    if character <= 0:
        return 0, character < 0
    if encoding is PositionEncoding.UTF32 or line.isascii():
        return (character, False) if character <= len(line) else (len(line), True)
    if encoding is PositionEncoding.UTF16:
        units = line.encode("utf-16-le", _ERRORS)
        if character > len(units) // 2:
            return len(line), True
        cut = 2 * character
        # Little-endian: a unit's high byte is the odd one. Inside a pair means the
        # unit before the cut is a high surrogate and the unit after it a low one.
        before = units[cut - 1]
        after = units[cut + 1] if cut < len(units) else 0
        inside_pair = 0xD8 <= before <= 0xDB and 0xDC <= after <= 0xDF
        if inside_pair:
            cut -= 2
        return len(units[:cut].decode("utf-16-le", _ERRORS)), inside_pair
    data = line.encode("utf-8", _ERRORS)
    if character > len(data):
        return len(line), True
    cut = character
    while cut < len(data) and data[cut] & 0xC0 == 0x80:
        cut -= 1
    return len(data[:cut].decode("utf-8", _ERRORS)), cut != character


def _utf8_len(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode("utf-8", _ERRORS))


def _clamp(value: int, low: int, high: int) -> int:
    return low if value < low else high if value > high else value


# --- immutable text with its line index ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolvedPosition:
    """An LSP position resolved against a text: where it is, in every coordinate system."""

    offset: int
    byte: int
    point: Point
    clamped: bool
    """The position was out of range or inside a character, and was adjusted."""


@dataclass(frozen=True, slots=True)
class TreeEdit:
    """The arguments of ``tree_sitter.Tree.edit`` for one replacement."""

    start_byte: int
    old_end_byte: int
    new_end_byte: int
    start_point: Point
    old_end_point: Point
    new_end_point: Point

    def apply(self, tree: tree_sitter.Tree) -> None:
        tree.edit(
            start_byte=self.start_byte,
            old_end_byte=self.old_end_byte,
            new_end_byte=self.new_end_byte,
            start_point=self.start_point,
            old_end_point=self.old_end_point,
            new_end_point=self.new_end_point,
        )


def _line_starts(data: AnyStr, newline: AnyStr, pattern: re.Pattern[AnyStr] | None) -> array[int]:
    """Where lines start in one block: 0, then after each break, except after a final
    newline (the next block starts there). With no ``pattern`` the breaks are ``newline``,
    found at C speed; a pattern is for blocks with a lone ``\\r``."""
    if pattern is None:
        # After part i of the split, a newline: the running sum of (length + 1) is where
        # the next line starts; the last sum is one past the end, after no newline.
        starts = array(
            "q", accumulate(map(add, map(len, data.split(newline)), repeat(1)), initial=0)
        )
        starts.pop()
    else:
        starts = array("q", [0])
        starts.extend(match.end() for match in pattern.finditer(data))
    if data.endswith(newline):
        starts.pop()
    return starts


class _Block:
    """A run of whole lines. Every block but a text's last ends with ``\\n`` and the last
    never does (it may be empty), so a line, its break included, never spans two blocks,
    and every block starts both an LSP line and a tree-sitter row.

    Immutable, and shared by every version of a text that did not edit it; its tables are
    computed when first asked for (computing one twice on two threads does no harm)."""

    __slots__ = (
        "_line_bytes",
        "_longest",
        "_nbytes",
        "_row_bytes",
        "_starts",
        "ascii",
        "lines",
        "lone_cr",
        "rows",
        "text",
    )

    def __init__(self, text: str) -> None:
        self.text = text
        self.ascii = text.isascii()
        newlines = text.count("\n")
        ends_row = int(text.endswith("\n"))
        lone_crs = text.count("\r") - text.count("\r\n") if "\r" in text else 0
        self.lone_cr = lone_crs > 0
        self.lines = 1 + newlines + lone_crs - ends_row
        """LSP lines that start in this block."""
        self.rows = 1 + newlines - ends_row
        """tree-sitter rows that start in this block."""
        self._starts: array[int] | None = None
        self._line_bytes: array[int] | None = None
        self._row_bytes: array[int] | None = None
        self._nbytes = -1
        self._longest = -1

    @property
    def nbytes(self) -> int:
        if self._nbytes < 0:
            self._nbytes = len(self.text) if self.ascii else len(self.text.encode("utf-8", _ERRORS))
        return self._nbytes

    def starts(self) -> array[int]:
        """Where each LSP line starts, as str offsets into the block."""
        if self._starts is None:
            self._starts = _line_starts(self.text, "\n", _LSP_BREAK_STR if self.lone_cr else None)
        return self._starts

    def row_bytes(self) -> array[int]:
        """Where each tree-sitter row starts, as byte offsets into the block."""
        if self._row_bytes is None:
            if self.ascii:
                self._row_bytes = (
                    self.starts() if not self.lone_cr else _line_starts(self.text, "\n", None)
                )
            else:
                self._row_bytes = _line_starts(self.text.encode("utf-8", _ERRORS), b"\n", None)
        return self._row_bytes

    def line_bytes(self) -> array[int]:
        """Where each LSP line starts, as byte offsets into the block."""
        if self._line_bytes is None:
            if self.ascii:
                self._line_bytes = self.starts()
            elif not self.lone_cr:
                self._line_bytes = self.row_bytes()
            else:
                encoded = self.text.encode("utf-8", _ERRORS)
                self._line_bytes = _line_starts(encoded, b"\n", _LSP_BREAK_BYTES)
        return self._line_bytes

    def longest_line(self) -> int:
        """The longest line's length in characters, without its line break."""
        if self._longest < 0:
            starts, text = self.starts(), self.text
            ends_row = text.endswith("\n")
            if "\r" not in text:
                # Every line but a last one ends with one "\n"; pretend the last one does.
                ends = chain(islice(starts, 1, None), (len(text) + (not ends_row),))
                self._longest = max(map(sub, ends, starts)) - 1
            else:
                longest = 0
                for i, start in enumerate(starts):
                    nxt = starts[i + 1] if i + 1 < len(starts) else len(text)
                    if i + 1 < len(starts) or ends_row:
                        nxt -= 2 if text.startswith("\r\n", nxt - 2) else 1
                    longest = max(longest, nxt - start)
                self._longest = longest
        return self._longest


def _split(text: str, *, tail: bool) -> list[_Block]:
    """``text`` (whole lines, or a text's end when ``tail``) cut into blocks after a
    newline about every :data:`_BLOCK_CHARS` characters."""
    pieces: list[_Block] = []
    pos, size = 0, len(text)
    # Cut only while a decent block would remain, so no block is left tiny.
    while size - pos > _BLOCK_CHARS + _BLOCK_CHARS // 2:
        cut = text.find("\n", pos + _BLOCK_CHARS - 1)
        if cut < 0 or cut + 1 >= size:
            break
        pieces.append(_Block(text[pos : cut + 1]))
        pos = cut + 1
    rest = text[pos:] if pos else text
    pieces.append(_Block(rest))
    if tail and rest.endswith("\n"):
        pieces.append(_Block(""))
    return pieces


def _shifted(
    table: array[int], lo: int, hi: int, first: int, sizes: Sequence[int], delta: int
) -> array[int]:
    """A per-block table with entries ``[lo, hi)`` replaced by the running sums of
    ``sizes`` from ``first``, and the entries after them moved by ``delta``."""
    out = table[:lo]
    out.extend(accumulate(sizes[:-1], initial=first))
    rest = table[hi:]
    if delta:
        out.extend(map(add, rest, repeat(delta)))
    else:
        out.extend(rest)
    return out


class _Index:
    """A text's blocks and, per block, where it starts: str offset, LSP line, row and
    (computed when first asked for) byte."""

    __slots__ = ("_bytes", "blocks", "chars", "lines", "rows")

    def __init__(
        self,
        blocks: tuple[_Block, ...],
        chars: array[int],
        lines: array[int],
        rows: array[int],
        byte_starts: array[int] | None = None,
    ) -> None:
        self.blocks = blocks
        self.chars = chars
        self.lines = lines
        self.rows = rows
        self._bytes = byte_starts

    @classmethod
    def build(cls, blocks: Sequence[_Block]) -> _Index:
        head = blocks[:-1]
        return cls(
            tuple(blocks),
            array("q", accumulate((len(b.text) for b in head), initial=0)),
            array("q", accumulate((b.lines for b in head), initial=0)),
            array("q", accumulate((b.rows for b in head), initial=0)),
        )

    def byte_starts(self) -> array[int]:
        starts = self._bytes
        if starts is None:
            starts = array("q", accumulate((b.nbytes for b in self.blocks[:-1]), initial=0))
            self._bytes = starts
        return starts

    def has_byte_starts(self) -> bool:
        return self._bytes is not None


class SourceText:
    """A text in blocks of whole lines, with per-block start tables: a conversion costs two
    binary searches plus work on one line, and an edit rebuilds the blocks it touched and
    shifts the start tables after them (arrays of one entry per block, moved at C speed).

    Never mutated (only caches fill in), so a snapshot can share it across threads.
    :meth:`from_text` keeps the text whole; it is cut into blocks when first needed."""

    __slots__ = ("_encoded", "_index", "_length", "_text")

    def __init__(self, text: str | None, length: int, index: _Index | None) -> None:
        self._text = text
        self._length = length
        self._index = index
        self._encoded: bytes | None = None

    @classmethod
    def from_text(cls, text: str) -> SourceText:
        return cls(text, len(text), None)

    def _blocks(self) -> _Index:
        index = self._index
        if index is None:
            assert self._text is not None
            index = _Index.build(_split(self._text, tail=True))
            self._index = index
        return index

    def __repr__(self) -> str:
        return f"SourceText({self._length} chars)"

    def __len__(self) -> int:
        return self._length

    @property
    def length(self) -> int:
        """Characters (str length) of the text; free, unlike ``len(text)``."""
        return self._length

    @property
    def text(self) -> str:
        text = self._text
        if text is None:
            text = "".join(block.text for block in self._blocks().blocks)
            self._text = text
        return text

    @property
    def encoded(self) -> bytes:
        encoded = self._encoded
        if encoded is None:
            encoded = self.text.encode("utf-8", _ERRORS)
            self._encoded = encoded
        return encoded

    @property
    def byte_length(self) -> int:
        index = self._blocks()
        return index.byte_starts()[-1] + index.blocks[-1].nbytes

    # Whole tables, built on each call: for tests and inspection, not for conversions.

    @property
    def line_offsets(self) -> array[int]:
        """Where each LSP line starts, as str offsets."""
        index = self._blocks()
        return _flat(index.blocks, index.chars, _Block.starts)

    @property
    def line_bytes(self) -> array[int]:
        """Where each LSP line starts, as byte offsets."""
        index = self._blocks()
        return _flat(index.blocks, index.byte_starts(), _Block.line_bytes)

    @property
    def row_bytes(self) -> array[int]:
        """Where each tree-sitter row starts (after ``\\n`` only), as byte offsets."""
        index = self._blocks()
        return _flat(index.blocks, index.byte_starts(), _Block.row_bytes)

    # Lines.

    @property
    def line_count(self) -> int:
        """LSP lines: one more than there are line breaks."""
        index = self._blocks()
        return index.lines[-1] + index.blocks[-1].lines

    def _line_span(self, line: int) -> tuple[int, _Block, int, int, int]:
        """For ``0 <= line < line_count``: the block holding it, the block's index, the
        line's index within the block, and where its content starts and ends there."""
        index = self._blocks()
        k = bisect_right(index.lines, line) - 1
        block = index.blocks[k]
        local = line - index.lines[k]
        starts = block.starts()
        start = starts[local]
        if local + 1 < len(starts):
            nxt = starts[local + 1]
        elif k + 1 < len(index.blocks):
            nxt = len(block.text)
        else:
            return k, block, local, start, len(block.text)
        return k, block, local, start, nxt - (2 if block.text.startswith("\r\n", nxt - 2) else 1)

    def line_end(self, line: int) -> int:
        """The str offset where ``line``'s content ends, before its line break."""
        if line + 1 >= self.line_count:
            return self._length
        k, _, _, _, end = self._line_span(max(line, 0))
        return self._blocks().chars[k] + end

    def line_text(self, line: int) -> str:
        """The content of ``line`` without its line break; "" past the last line."""
        if not 0 <= line < self.line_count:
            return ""
        _, block, _, start, end = self._line_span(line)
        return block.text[start:end]

    def line_length(self, line: int) -> int:
        """Characters in ``line`` without its line break; 0 past the last line."""
        if not 0 <= line < self.line_count:
            return 0
        _, _, _, start, end = self._line_span(line)
        return end - start

    def has_long_line(self, limit: int = MAX_LINE_CHARS) -> bool:
        """Whether some line is longer than ``limit`` characters."""
        return any(
            len(block.text) > limit and block.longest_line() > limit
            for block in self._blocks().blocks
        )

    def line_of_offset(self, offset: int) -> int:
        index = self._blocks()
        offset = _clamp(offset, 0, self._length)
        k = bisect_right(index.chars, offset) - 1
        return index.lines[k] + bisect_right(index.blocks[k].starts(), offset - index.chars[k]) - 1

    # Positions.

    def _column(
        self, line: int, character: int, encoding: PositionEncoding
    ) -> tuple[int, _Block, int, int, str, int, bool]:
        """An in-range LSP position: block index, block, line index in the block, the
        line's start there, the line's content up to past the character, the character's
        index in that content, and whether it was adjusted."""
        k, block, local, start, end = self._line_span(line)
        # A position counts at least one code unit per character, so the characters past
        # it cannot matter: a long line is not copied whole for a position near its start.
        stop = end if character >= end - start else start + max(character, 0) + 1
        content = block.text[start:stop]
        index, adjusted = column_to_index(content, character, encoding)
        return k, block, local, start, content, index, adjusted

    def offset_of(self, line: int, character: int, encoding: PositionEncoding) -> tuple[int, bool]:
        """The str offset of an LSP position, clamped per the LSP rules, and whether it
        had to be; :meth:`resolve` without the bytes."""
        if line >= self.line_count:
            return self._length, True
        clamped = line < 0
        if clamped:
            line, character = 0, 0
        k, _, _, start, _, index, adjusted = self._column(line, character, encoding)
        return self._blocks().chars[k] + start + index, clamped or adjusted

    def resolve(self, line: int, character: int, encoding: PositionEncoding) -> ResolvedPosition:
        """An LSP position in every coordinate system, clamped per the LSP rules."""
        if line >= self.line_count:
            end = self.byte_length
            return ResolvedPosition(self._length, end, self.point_at_byte(end), True)
        clamped = line < 0
        if clamped:
            line, character = 0, 0
        k, block, local, start, content, index, adjusted = self._column(line, character, encoding)
        blocks = self._blocks()
        offset = blocks.chars[k] + start + index
        if block.ascii:
            byte = blocks.byte_starts()[k] + start + index
        else:
            byte = blocks.byte_starts()[k] + block.line_bytes()[local] + _utf8_len(content[:index])
        return ResolvedPosition(offset, byte, self.point_at_byte(byte), clamped or adjusted)

    def position_at(self, offset: int, encoding: PositionEncoding) -> tuple[int, int]:
        """The LSP position of a str offset. An offset between ``\\r`` and ``\\n``, which
        LSP cannot express, maps to the end of its line."""
        offset = _clamp(offset, 0, self._length)
        line = self.line_of_offset(offset)
        k, block, _, start, end = self._line_span(line)
        stop = min(offset - self._blocks().chars[k], end)
        return line, code_units(block.text[start:stop], encoding)

    def byte_at_offset(self, offset: int) -> int:
        index = self._blocks()
        offset = _clamp(offset, 0, self._length)
        k = bisect_right(index.chars, offset) - 1
        block = index.blocks[k]
        local = offset - index.chars[k]
        if block.ascii:
            return index.byte_starts()[k] + local
        starts = block.starts()
        line = bisect_right(starts, local) - 1
        within = _utf8_len(block.text[starts[line] : local])
        return index.byte_starts()[k] + block.line_bytes()[line] + within

    def offset_at_byte(self, byte: int) -> int:
        """The str offset of a byte offset; a byte inside a character snaps to its start."""
        index = self._blocks()
        byte_starts = index.byte_starts()
        byte = _clamp(byte, 0, self.byte_length)
        k = bisect_right(byte_starts, byte) - 1
        block = index.blocks[k]
        local = byte - byte_starts[k]
        if block.ascii:
            return index.chars[k] + local
        line_bytes = block.line_bytes()
        line = bisect_right(line_bytes, local) - 1
        starts = block.starts()
        start = starts[line]
        stop = starts[line + 1] if line + 1 < len(starts) else len(block.text)
        data = block.text[start:stop].encode("utf-8", _ERRORS)
        cut = local - line_bytes[line]
        while cut < len(data) and data[cut] & 0xC0 == 0x80:
            cut -= 1
        return index.chars[k] + start + len(data[:cut].decode("utf-8", _ERRORS))

    def point_at_byte(self, byte: int) -> Point:
        index = self._blocks()
        byte_starts = index.byte_starts()
        byte = _clamp(byte, 0, self.byte_length)
        k = bisect_right(byte_starts, byte) - 1
        local = byte - byte_starts[k]
        rows = index.blocks[k].row_bytes()
        row = bisect_right(rows, local) - 1
        return index.rows[k] + row, local - rows[row]

    # Edits.

    def replace(self, start: int, end: int, new_text: str) -> tuple[SourceText, TreeEdit]:
        """This text with str offsets ``[start, end)`` replaced, and the matching tree edit.
        Offsets are clamped into the text and ordered."""
        start, end = self._ordered(start, end)
        start_byte = self.byte_at_offset(start)
        old_end_byte = self.byte_at_offset(end)
        edited = self._spliced(start, end, new_text)
        new_end_byte = start_byte + _utf8_len(new_text)
        edit = TreeEdit(
            start_byte=start_byte,
            old_end_byte=old_end_byte,
            new_end_byte=new_end_byte,
            start_point=self.point_at_byte(start_byte),
            old_end_point=self.point_at_byte(old_end_byte),
            new_end_point=edited.point_at_byte(new_end_byte),
        )
        return edited, edit

    def splice(self, start: int, end: int, new_text: str) -> SourceText:
        """:meth:`replace` without the tree edit (and without computing any byte offset)."""
        return self._spliced(*self._ordered(start, end), new_text)

    def _ordered(self, start: int, end: int) -> tuple[int, int]:
        size = self._length
        low, high = sorted((_clamp(start, 0, size), _clamp(end, 0, size)))
        return low, high

    def _spliced(self, start: int, end: int, new_text: str) -> SourceText:
        index = self._blocks()
        blocks, chars = index.blocks, index.chars
        lo = bisect_right(chars, start) - 1
        hi = bisect_right(chars, end)
        # The end's block keeps something after the end unless it is the text's last (a
        # non-last block ends with a newline), so the joined run ends a line, or the text.
        joined = (
            blocks[lo].text[: start - chars[lo]]
            + new_text
            + blocks[hi - 1].text[end - chars[hi - 1] :]
        )
        if len(joined) < _BLOCK_CHARS // 2 and hi < len(blocks):
            joined += blocks[hi].text  # so that deletions do not leave tiny blocks behind
            hi += 1
        pieces = _split(joined, tail=hi == len(blocks))
        old = blocks[lo:hi]
        byte_starts = None
        if index.has_byte_starts():
            byte_starts = _shifted(
                index.byte_starts(),
                lo,
                hi,
                index.byte_starts()[lo],
                [p.nbytes for p in pieces],
                sum(p.nbytes for p in pieces) - sum(b.nbytes for b in old),
            )
        edited = _Index(
            blocks[:lo] + tuple(pieces) + blocks[hi:],
            _shifted(
                chars,
                lo,
                hi,
                chars[lo],
                [len(p.text) for p in pieces],
                len(new_text) - (end - start),
            ),
            _shifted(
                index.lines,
                lo,
                hi,
                index.lines[lo],
                [p.lines for p in pieces],
                sum(p.lines for p in pieces) - sum(b.lines for b in old),
            ),
            _shifted(
                index.rows,
                lo,
                hi,
                index.rows[lo],
                [p.rows for p in pieces],
                sum(p.rows for p in pieces) - sum(b.rows for b in old),
            ),
            byte_starts,
        )
        return SourceText(None, self._length - (end - start) + len(new_text), edited)


def _flat(
    blocks: Sequence[_Block], bases: Sequence[int], table: Callable[[_Block], array[int]]
) -> array[int]:
    out = array("q")
    for block, base in zip(blocks, bases, strict=True):
        out.extend(base + value for value in table(block))
    return out


# --- documents ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextChange:
    """One ``TextDocumentContentChangeEvent``: ``start``/``end`` are LSP positions in the
    document's encoding; ``None`` for either means the whole text is replaced."""

    start: tuple[int, int] | None
    end: tuple[int, int] | None
    text: str


class _PositionMethods:
    """Conversions shared by :class:`Document` and :class:`DocumentSnapshot`, in the
    document's negotiated encoding."""

    __slots__ = ()
    source: SourceText
    encoding: PositionEncoding

    @property
    def text(self) -> str:
        return self.source.text

    @property
    def encoded(self) -> bytes:
        """The UTF-8 bytes of :attr:`text`, what tree-sitter parsed."""
        return self.source.encoded

    @property
    def length(self) -> int:
        """``len(text)``, without joining the text."""
        return self.source.length

    @property
    def line_count(self) -> int:
        return self.source.line_count

    def line_text(self, line: int) -> str:
        return self.source.line_text(line)

    def resolve(self, line: int, character: int) -> ResolvedPosition:
        return self.source.resolve(line, character, self.encoding)

    def offset_at(self, line: int, character: int) -> int:
        return self.source.offset_of(line, character, self.encoding)[0]

    def byte_offset_at(self, line: int, character: int) -> int:
        return self.source.resolve(line, character, self.encoding).byte

    def position_at(self, offset: int) -> tuple[int, int]:
        return self.source.position_at(offset, self.encoding)

    def position_at_byte(self, byte: int) -> tuple[int, int]:
        return self.source.position_at(self.source.offset_at_byte(byte), self.encoding)

    def byte_at_offset(self, offset: int) -> int:
        return self.source.byte_at_offset(offset)

    def offset_at_byte(self, byte: int) -> int:
        return self.source.offset_at_byte(byte)

    def point_at_byte(self, byte: int) -> Point:
        return self.source.point_at_byte(byte)


class _Syntax:
    """A document's parser and its newest trees, shared with its snapshots.

    A tree is parsed where it is first wanted, which is the inference thread (planning a
    completion), never the event loop: from the newest earlier tree plus the edits made
    since, incrementally, or from scratch when the edit history no longer reaches back.
    Parsing goes through :func:`~codegemma_lsp.syntax.parsing.parse`, so the thread hands
    the GIL over while it parses and a parse past its deadline stops; then the snapshot has no
    tree (completion goes on without syntax), and a whole-file parse that ran out of time
    turns syntax off for the document, so no later request pays for it again.
    """

    KEEP = 1
    """How many trees are kept: the newest (a tree takes tens of bytes per byte of text).
    A request still on an older text parses it whole, and keeps the newer tree."""

    def __init__(
        self,
        language: LanguageSpec,
        history: deque[tuple[int, tuple[TreeEdit, ...]]],
        deadline_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.language = language
        self._history = history
        self._deadline_s = deadline_s
        self._clock = clock
        self._lock = threading.Lock()
        self._parser: tree_sitter.Parser | None = None
        self._trees: list[tuple[int, tree_sitter.Tree]] = []
        self._late: int | None = None
        """The revision whose parse ran out of time: it is not tried again."""
        self.disabled = False

    def tree_for(self, revision: int, source: SourceText) -> tree_sitter.Tree | None:
        """The tree of ``source``, the document's text at ``revision``."""
        if self.disabled or self._late == revision or source.has_long_line():
            return None
        with self._lock:
            for kept_revision, kept in self._trees:
                if kept_revision == revision:
                    return kept
            old = self._edited_base(revision)
            tree = self._parse(source.encoded, old)
            if tree is None:
                self._late = revision
                if old is None:
                    self.disabled = True
                    log.info(
                        "parsing %s took too long; syntax is off for this document",
                        self.language.name,
                    )
                return None
            self._trees = sorted([*self._trees, (revision, tree)], key=lambda kept: kept[0])
            del self._trees[: -self.KEEP]
            return tree

    def _edited_base(self, revision: int) -> tree_sitter.Tree | None:
        """A copy of the newest kept tree older than ``revision``, edited to match it; None
        when there is none or the history lost some of the edits between."""
        # A tuple of a deque is taken whole under the GIL, while the loop appends.
        history = tuple(self._history)
        for kept_revision, tree in reversed(self._trees):
            if kept_revision > revision:
                continue
            batches = [edits for r, edits in history if kept_revision < r <= revision]
            if len(batches) != revision - kept_revision:
                return None
            # Edit a copy, never a kept tree: a tree, once parsed, is never mutated, so
            # snapshots share it without copying (Tree.copy is a reference-count bump).
            old = tree.copy()
            for batch in batches:
                for edit in batch:
                    edit.apply(old)
            return old
        return None

    def _parse(self, data: bytes, old: tree_sitter.Tree | None) -> tree_sitter.Tree | None:
        if self._parser is None:
            self._parser = self.language.parser()
        budget = self._deadline_s * (1 + len(data) / 1_000_000)
        try:
            return parse(
                self._parser, data, old, deadline=self._clock() + budget, clock=self._clock
            )
        except ParseTimeout:
            return None


class DocumentSnapshot(_PositionMethods):
    """A document as it was at one version, safe to read from a worker thread while the
    event loop applies newer edits: everything in it is immutable.

    :attr:`tree` is parsed on first access (see :class:`_Syntax`), so read it on the
    thread that may spend the time; the event loop never should. A snapshot does not hold
    on to its tree: the document keeps its newest one, and a snapshot that outlives it (a
    request superseded before its answer went out) parses again if it is asked again.
    Then a storm of requests holds one tree, not one per request."""

    __slots__ = (
        "_syntax",
        "_tree",
        "encoding",
        "language",
        "revision",
        "source",
        "uri",
        "version",
    )

    def __init__(
        self,
        uri: str,
        version: int,
        revision: int,
        language: LanguageSpec | None,
        encoding: PositionEncoding,
        source: SourceText,
        tree: tree_sitter.Tree | None = None,
        *,
        syntax: _Syntax | None = None,
    ) -> None:
        self.uri = uri
        self.version = version
        self.revision = revision
        self.language = language
        self.encoding = encoding
        self.source = source
        self._tree = tree
        self._syntax = syntax

    def __repr__(self) -> str:
        return f"DocumentSnapshot({self.uri!r}, version={self.version}, revision={self.revision})"

    @property
    def tree(self) -> tree_sitter.Tree | None:
        """The text's tree; None without a language, with a line over
        :data:`MAX_LINE_CHARS`, or when the parse ran past its deadline."""
        if self._syntax is not None:
            return self._syntax.tree_for(self.revision, self.source)
        return self._tree


class Document(_PositionMethods):
    """One open document. Edits update the text and its line index on the event loop;
    the tree follows lazily, where a snapshot's :attr:`~DocumentSnapshot.tree` is read.

    A ``text_only`` document (too big, or binary) keeps its text and what edits need to
    find their place, nothing else: no tree, no byte offsets, no edit history."""

    __slots__ = (
        "_history",
        "_oldest",
        "_syntax",
        "encoding",
        "language",
        "revision",
        "source",
        "text_only",
        "uri",
        "version",
    )

    HISTORY = 64
    """How many batches of edits are kept for :meth:`edits_since`."""

    def __init__(
        self,
        uri: str,
        text: str,
        *,
        language: LanguageSpec | None = None,
        version: int = 0,
        encoding: PositionEncoding = PositionEncoding.UTF16,
        text_only: bool = False,
        parse_deadline_s: float = PARSE_DEADLINE_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.uri = uri
        self.version = version
        self.text_only = text_only
        self.language = None if text_only else language
        self.encoding = encoding
        self.source = SourceText.from_text(text)
        self._history: deque[tuple[int, tuple[TreeEdit, ...]]] = deque()
        self._syntax = (
            _Syntax(self.language, self._history, parse_deadline_s, clock)
            if self.language is not None
            else None
        )
        self.revision = 0
        """Counts batches of edits; unlike the client's version it always moves."""
        # The oldest revision whose edits up to now are all still in the history.
        self._oldest = 0

    def __repr__(self) -> str:
        language = self.language.name if self.language else None
        return f"Document({self.uri!r}, version={self.version}, language={language!r})"

    @property
    def tree(self) -> tree_sitter.Tree | None:
        """The tree of the current text, parsed now if it was not yet (see the class)."""
        if self._syntax is None:
            return None
        return self._syntax.tree_for(self.revision, self.source)

    def apply_changes(self, changes: Sequence[TextChange], version: int | None = None) -> int:
        """Apply LSP content changes in order, each against the text the previous one left.
        Returns how many changes had a range that had to be clamped."""
        source = self.source
        edits: list[TreeEdit] = []
        clamped = 0
        for change in changes:
            if change.start is None or change.end is None:
                start, end = 0, source.length
            else:
                start, first_clamped = source.offset_of(*change.start, self.encoding)
                end, last_clamped = source.offset_of(*change.end, self.encoding)
                if first_clamped or last_clamped or end < start:
                    clamped += 1
            if self.text_only:
                source = source.splice(start, end, change.text)
            else:
                source, edit = source.replace(start, end, change.text)
                edits.append(edit)
        self.source = source
        if version is not None:
            self.version = version
        self.revision += 1
        if self.text_only:
            self._oldest = self.revision
        else:
            self._history.append((self.revision, tuple(edits)))
            if len(self._history) > self.HISTORY:
                self._oldest = self._history.popleft()[0]
        return clamped

    def edits_since(self, revision: int) -> list[TreeEdit] | None:
        """The byte edits, in order, that lead from ``revision`` to the current text;
        None when the history no longer reaches back that far."""
        if revision == self.revision:
            return []
        if revision < self._oldest or revision > self.revision:
            return None
        return [edit for r, batch in tuple(self._history) if r > revision for edit in batch]

    def snapshot(self) -> DocumentSnapshot:
        """An immutable view of this version; cheap (no text is copied, nothing parsed)."""
        return DocumentSnapshot(
            uri=self.uri,
            version=self.version,
            revision=self.revision,
            language=self.language,
            encoding=self.encoding,
            source=self.source,
            syntax=self._syntax,
        )


def _path_of(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme else uri


class DocumentStore:
    """The open documents by URI. Documents opened after :attr:`encoding` changes use the
    new encoding (the server sets it once, from the ``initialize`` negotiation)."""

    def __init__(
        self,
        *,
        encoding: PositionEncoding = PositionEncoding.UTF16,
        registry: LanguageRegistry | None = None,
        parse_deadline_s: float = PARSE_DEADLINE_S,
    ) -> None:
        self.encoding = encoding
        self._registry = registry
        self._parse_deadline_s = parse_deadline_s
        self._documents: dict[str, Document] = {}

    @property
    def registry(self) -> LanguageRegistry:
        if self._registry is None:
            self._registry = default_registry()
        return self._registry

    def open(
        self,
        uri: str,
        text: str,
        *,
        language_id: str | None = None,
        version: int = 0,
        parse: bool = True,
    ) -> Document:
        """Open (or reopen) a document; its language comes from the LSP language id,
        else from the file extension, else it has none and no tree. ``parse=False``
        keeps a document (huge, binary) text-only: never parsed, no byte tables.
        Nothing is computed here: a document that is never used costs its text."""
        language = self.registry.lookup(language_id, _path_of(uri)) if parse else None
        document = Document(
            uri,
            text,
            language=language,
            version=version,
            encoding=self.encoding,
            text_only=not parse,
            parse_deadline_s=self._parse_deadline_s,
        )
        self._documents[uri] = document
        return document

    def change(self, uri: str, changes: Sequence[TextChange], version: int | None = None) -> int:
        """Apply changes to an open document (``KeyError`` if it is not open); returns how
        many had a range that had to be clamped."""
        return self._documents[uri].apply_changes(changes, version)

    def close(self, uri: str) -> None:
        self._documents.pop(uri, None)

    def get(self, uri: str) -> Document | None:
        return self._documents.get(uri)

    def __getitem__(self, uri: str) -> Document:
        return self._documents[uri]

    def __contains__(self, uri: object) -> bool:
        return uri in self._documents

    def __iter__(self) -> Iterator[str]:
        return iter(self._documents)

    def __len__(self) -> int:
        return len(self._documents)


TYPING_SPAN_LINES = 2
"""Changes of one batch further apart than this are not someone typing in one place."""


def cursor_after(document: Document, changes: Sequence[TextChange]) -> int | None:
    """Where an editor's cursor most likely is after ``changes`` were applied to
    ``document``: the end of the last change's new text, as a str offset.

    None when the batch says nothing about it: a whole-text replacement, or changes spread
    over lines far apart (a formatter's or a rename's edits), not typing at one place."""
    if not changes:
        return None
    last = changes[-1]
    if last.start is None:
        return None
    line = last.start[0]
    for change in changes:
        if change.start is None or abs(change.start[0] - line) > TYPING_SPAN_LINES:
            return None
    # Text before the last change's start is the same before and after it.
    return document.resolve(*last.start).offset + len(last.text)
