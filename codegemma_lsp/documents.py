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

:class:`SourceText` is immutable and keeps sorted line-start tables, so a conversion
costs a binary search plus work on one line, and an edit rebuilds only what it touched
(the tail of each table is shifted, a C-speed list copy).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import AnyStr
from urllib.parse import unquote, urlparse

import tree_sitter

from codegemma_lsp.syntax.languages import LanguageRegistry, LanguageSpec, default_registry

# Lone surrogates can arrive from a JSON client; "surrogatepass" keeps every conversion
# total (one str char still encodes to one UTF-16 unit or three UTF-8 bytes).
_ERRORS = "surrogatepass"

# A match ends where an LSP line starts: after "\n", or after a "\r" that no "\n" follows.
_LSP_BREAK_STR = re.compile(r"\n|\r(?!\n)")
_LSP_BREAK_BYTES = re.compile(rb"\n|\r(?!\n)")
_ROW_BREAK_BYTES = re.compile(rb"\n")


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


def _splice_starts(
    starts: list[int], start: int, old_end: int, delta: int, found: list[int]
) -> list[int]:
    """A line-start table after replacing ``[start, old_end)``.

    A line start ``p`` depends on the characters at ``p - 1`` and ``p`` only, so starts
    before ``start`` are unchanged, starts after ``old_end`` just move by ``delta``, and
    ``found`` (the rescanned starts in ``[start, new_end]``) replaces the rest.
    """
    lo = bisect_left(starts, start)
    hi = bisect_right(starts, old_end)
    tail = starts[hi:] if delta == 0 else [p + delta for p in starts[hi:]]
    return starts[:lo] + found + tail


def _rescan(pattern: re.Pattern[AnyStr], data: AnyStr, lo: int, hi: int) -> list[int]:
    """Line starts ``p`` with ``lo <= p <= hi``, found by ``pattern`` in ``data``."""
    found = [0] if lo == 0 else []
    # The search runs one past hi so that the "\r(?!\n)" lookahead sees the next char.
    for match in pattern.finditer(data, max(lo - 1, 0), hi + 1):
        if match.start() < hi:
            found.append(match.end())
    return found


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


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class SourceText:
    """A text, its UTF-8 bytes and sorted line-start tables. Never mutated: an edit
    returns a new one, so a snapshot can share it across threads."""

    text: str
    encoded: bytes
    line_offsets: list[int]
    """Where each LSP line starts, as str offsets."""
    line_bytes: list[int]
    """Where each LSP line starts, as byte offsets."""
    row_bytes: list[int]
    """Where each tree-sitter row starts (after ``\\n`` only), as byte offsets."""

    @classmethod
    def from_text(cls, text: str) -> SourceText:
        encoded = text.encode("utf-8", _ERRORS)
        return cls(
            text=text,
            encoded=encoded,
            line_offsets=_rescan(_LSP_BREAK_STR, text, 0, len(text)),
            line_bytes=_rescan(_LSP_BREAK_BYTES, encoded, 0, len(encoded)),
            row_bytes=_rescan(_ROW_BREAK_BYTES, encoded, 0, len(encoded)),
        )

    def __repr__(self) -> str:
        return f"SourceText({len(self.text)} chars, {self.line_count} lines)"

    @property
    def line_count(self) -> int:
        """LSP lines: one more than there are line breaks."""
        return len(self.line_offsets)

    def line_end(self, line: int) -> int:
        """The str offset where ``line``'s content ends, before its line break."""
        if line + 1 >= len(self.line_offsets):
            return len(self.text)
        nxt = self.line_offsets[line + 1]
        return nxt - 2 if self.text.startswith("\r\n", nxt - 2) else nxt - 1

    def line_text(self, line: int) -> str:
        """The content of ``line`` without its line break; "" past the last line."""
        if not 0 <= line < len(self.line_offsets):
            return ""
        return self.text[self.line_offsets[line] : self.line_end(line)]

    def resolve(self, line: int, character: int, encoding: PositionEncoding) -> ResolvedPosition:
        """An LSP position in every coordinate system, clamped per the LSP rules."""
        if line >= len(self.line_offsets):
            end = len(self.encoded)
            return ResolvedPosition(len(self.text), end, self.point_at_byte(end), True)
        clamped = line < 0
        if clamped:
            line, character = 0, 0
        start = self.line_offsets[line]
        content = self.text[start : self.line_end(line)]
        index, adjusted = column_to_index(content, character, encoding)
        byte = self.line_bytes[line] + _utf8_len(content[:index])
        return ResolvedPosition(start + index, byte, self.point_at_byte(byte), clamped or adjusted)

    def line_of_offset(self, offset: int) -> int:
        return bisect_right(self.line_offsets, offset) - 1

    def position_at(self, offset: int, encoding: PositionEncoding) -> tuple[int, int]:
        """The LSP position of a str offset. An offset between ``\\r`` and ``\\n``, which
        LSP cannot express, maps to the end of its line."""
        offset = _clamp(offset, 0, len(self.text))
        line = self.line_of_offset(offset)
        start = self.line_offsets[line]
        end = min(offset, self.line_end(line))
        return line, code_units(self.text[start:end], encoding)

    def byte_at_offset(self, offset: int) -> int:
        offset = _clamp(offset, 0, len(self.text))
        line = self.line_of_offset(offset)
        return self.line_bytes[line] + _utf8_len(self.text[self.line_offsets[line] : offset])

    def offset_at_byte(self, byte: int) -> int:
        """The str offset of a byte offset; a byte inside a character snaps to its start."""
        byte = _clamp(byte, 0, len(self.encoded))
        line = bisect_right(self.line_bytes, byte) - 1
        while byte < len(self.encoded) and self.encoded[byte] & 0xC0 == 0x80:
            byte -= 1
        start = self.line_bytes[line]
        return self.line_offsets[line] + len(self.encoded[start:byte].decode("utf-8", _ERRORS))

    def point_at_byte(self, byte: int) -> Point:
        byte = _clamp(byte, 0, len(self.encoded))
        row = bisect_right(self.row_bytes, byte) - 1
        return row, byte - self.row_bytes[row]

    def replace(self, start: int, end: int, new_text: str) -> tuple[SourceText, TreeEdit]:
        """This text with str offsets ``[start, end)`` replaced, and the matching tree edit.
        Offsets are clamped into the text and ordered."""
        size = len(self.text)
        start, end = sorted((_clamp(start, 0, size), _clamp(end, 0, size)))
        start_byte = self.byte_at_offset(start)
        old_end_byte = start_byte + _utf8_len(self.text[start:end])
        piece = new_text.encode("utf-8", _ERRORS)
        new_end = start + len(new_text)
        new_end_byte = start_byte + len(piece)
        text = self.text[:start] + new_text + self.text[end:]
        encoded = self.encoded[:start_byte] + piece + self.encoded[old_end_byte:]
        byte_delta = new_end_byte - old_end_byte
        edited = SourceText(
            text=text,
            encoded=encoded,
            line_offsets=_splice_starts(
                self.line_offsets,
                start,
                end,
                new_end - end,
                _rescan(_LSP_BREAK_STR, text, start, new_end),
            ),
            line_bytes=_splice_starts(
                self.line_bytes,
                start_byte,
                old_end_byte,
                byte_delta,
                _rescan(_LSP_BREAK_BYTES, encoded, start_byte, new_end_byte),
            ),
            row_bytes=_splice_starts(
                self.row_bytes,
                start_byte,
                old_end_byte,
                byte_delta,
                _rescan(_ROW_BREAK_BYTES, encoded, start_byte, new_end_byte),
            ),
        )
        edit = TreeEdit(
            start_byte=start_byte,
            old_end_byte=old_end_byte,
            new_end_byte=new_end_byte,
            start_point=self.point_at_byte(start_byte),
            old_end_point=self.point_at_byte(old_end_byte),
            new_end_point=edited.point_at_byte(new_end_byte),
        )
        return edited, edit


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
    def line_count(self) -> int:
        return self.source.line_count

    def line_text(self, line: int) -> str:
        return self.source.line_text(line)

    def resolve(self, line: int, character: int) -> ResolvedPosition:
        return self.source.resolve(line, character, self.encoding)

    def offset_at(self, line: int, character: int) -> int:
        return self.source.resolve(line, character, self.encoding).offset

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


@dataclass(frozen=True, slots=True)
class DocumentSnapshot(_PositionMethods):
    """A document as it was at one version, safe to read from a worker thread while the
    event loop applies newer edits: everything in it is immutable."""

    uri: str
    version: int
    revision: int
    language: LanguageSpec | None
    encoding: PositionEncoding
    source: SourceText
    tree: tree_sitter.Tree | None


class Document(_PositionMethods):
    """One open document. Edits update the text, the line index and the tree."""

    __slots__ = (
        "_history",
        "_oldest",
        "_parser",
        "encoding",
        "language",
        "revision",
        "source",
        "tree",
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
    ) -> None:
        self.uri = uri
        self.version = version
        self.language = language
        self.encoding = encoding
        self.source = SourceText.from_text(text)
        self._parser = language.parser() if language is not None else None
        self.tree: tree_sitter.Tree | None = (
            self._parser.parse(self.source.encoded) if self._parser is not None else None
        )
        self._history: deque[tuple[int, tuple[TreeEdit, ...]]] = deque()
        self.revision = 0
        """Counts batches of edits; unlike the client's version it always moves."""
        # The oldest revision whose edits up to now are all still in the history.
        self._oldest = 0

    def __repr__(self) -> str:
        language = self.language.name if self.language else None
        return f"Document({self.uri!r}, version={self.version}, language={language!r})"

    def apply_changes(self, changes: Sequence[TextChange], version: int | None = None) -> int:
        """Apply LSP content changes in order, each against the text the previous one left,
        then reparse once. Returns how many changes had a range that had to be clamped."""
        source = self.source
        edits: list[TreeEdit] = []
        clamped = 0
        for change in changes:
            if change.start is None or change.end is None:
                start, end = 0, len(source.text)
            else:
                first = source.resolve(*change.start, self.encoding)
                last = source.resolve(*change.end, self.encoding)
                start, end = first.offset, last.offset
                if first.clamped or last.clamped or end < start:
                    clamped += 1
            source, edit = source.replace(start, end, change.text)
            edits.append(edit)
        self.source = source
        if version is not None:
            self.version = version
        self.revision += 1
        self._history.append((self.revision, tuple(edits)))
        if len(self._history) > self.HISTORY:
            self._oldest = self._history.popleft()[0]
        if self._parser is not None and self.tree is not None and edits:
            # Edit a copy, never the published tree: then a tree, once assigned to
            # self.tree, is never mutated, and snapshots can share it without copying.
            # (Tree.copy is a reference-count bump, and Tree.edit copies shared nodes.)
            old = self.tree.copy()
            for edit in edits:
                edit.apply(old)
            self.tree = self._parser.parse(source.encoded, old)
        return clamped

    def edits_since(self, revision: int) -> list[TreeEdit] | None:
        """The byte edits, in order, that lead from ``revision`` to the current text;
        None when the history no longer reaches back that far."""
        if revision == self.revision:
            return []
        if revision < self._oldest or revision > self.revision:
            return None
        return [edit for r, batch in self._history if r > revision for edit in batch]

    def snapshot(self) -> DocumentSnapshot:
        """An immutable view of this version; cheap (no text or tree is copied)."""
        return DocumentSnapshot(
            uri=self.uri,
            version=self.version,
            revision=self.revision,
            language=self.language,
            encoding=self.encoding,
            source=self.source,
            tree=self.tree,
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
    ) -> None:
        self.encoding = encoding
        self._registry = registry
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
        keeps a document (huge, binary) without a language, so it is never parsed."""
        language = self.registry.lookup(language_id, _path_of(uri)) if parse else None
        document = Document(uri, text, language=language, version=version, encoding=self.encoding)
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
