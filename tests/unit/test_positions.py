"""Table tests for the position conversions in codegemma_lsp.documents."""

from __future__ import annotations

import pytest

from codegemma_lsp.documents import (
    PositionEncoding,
    SourceText,
    TreeEdit,
    code_units,
    column_to_index,
)

U8 = PositionEncoding.UTF8
U16 = PositionEncoding.UTF16
U32 = PositionEncoding.UTF32

# Lines: "a😀b" CRLF "漢字" CR "e\u0301x" LF "".
# Offsets: a=0 😀=1 b=2 \r=3 \n=4 漢=5 字=6 \r=7 e=8 ◌́=9 x=10 \n=11, end 12.
# Bytes:   a=0 😀=1..4 b=5 \r=6 \n=7 漢=8..10 字=11..13 \r=14 e=15 ◌́=16..17 x=18 \n=19, end 20.
# tree-sitter rows end only at "\n": row 1 holds both "漢字\r" and "e\u0301x".
MIXED = "a😀b\r\n漢字\re\u0301x\n"


@pytest.mark.parametrize(
    ("s", "encoding", "units"),
    [
        pytest.param("abc", U16, 3, id="ascii"),
        pytest.param("😀", U8, 4, id="emoji-utf8"),
        pytest.param("😀", U16, 2, id="emoji-utf16"),
        pytest.param("😀", U32, 1, id="emoji-utf32"),
        pytest.param("漢字", U8, 6, id="cjk-utf8"),
        pytest.param("漢字", U16, 2, id="cjk-utf16"),
        pytest.param("e\u0301", U8, 3, id="combining-utf8"),
        pytest.param("e\u0301", U16, 2, id="combining-utf16"),
        pytest.param("e\u0301", U32, 2, id="combining-utf32"),
        pytest.param("\ud800", U16, 1, id="lone-surrogate-does-not-raise"),
        pytest.param("", U8, 0, id="empty"),
    ],
)
def test_code_units(s: str, encoding: PositionEncoding, units: int) -> None:
    assert code_units(s, encoding) == units


@pytest.mark.parametrize(
    ("line", "character", "encoding", "expected"),
    [
        pytest.param("abc", 2, U16, (2, False), id="ascii"),
        pytest.param("abc", 3, U16, (3, False), id="ascii-end"),
        pytest.param("abc", 9, U16, (3, True), id="ascii-past-end"),
        pytest.param("abc", -1, U16, (0, True), id="negative"),
        pytest.param("a😀b", 3, U16, (2, False), id="after-pair-utf16"),
        pytest.param("a😀b", 2, U16, (1, True), id="inside-pair-utf16-snaps-back"),
        pytest.param("a😀b", 5, U8, (2, False), id="after-emoji-utf8"),
        pytest.param("a😀b", 3, U8, (1, True), id="inside-emoji-utf8-snaps-back"),
        pytest.param("a😀b", 2, U32, (2, False), id="after-emoji-utf32"),
        pytest.param("a😀b", 4, U16, (3, False), id="end-utf16"),
        pytest.param("a😀b", 5, U16, (3, True), id="past-end-utf16"),
        pytest.param("漢字", 1, U16, (1, False), id="cjk-utf16"),
        pytest.param("漢字", 3, U8, (1, False), id="cjk-utf8"),
        pytest.param("漢字", 4, U8, (1, True), id="inside-cjk-utf8"),
        pytest.param("e\u0301x", 1, U16, (1, False), id="combining-mark-is-its-own-char"),
        pytest.param("e\u0301x", 2, U8, (1, True), id="inside-combining-mark-utf8"),
        pytest.param("e\u0301x", 3, U8, (2, False), id="after-combining-mark-utf8"),
    ],
)
def test_column_to_index(
    line: str, character: int, encoding: PositionEncoding, expected: tuple[int, bool]
) -> None:
    assert column_to_index(line, character, encoding) == expected


@pytest.mark.parametrize(
    ("position", "encoding", "offset", "byte", "point", "clamped"),
    [
        pytest.param((0, 0), U16, 0, 0, (0, 0), False, id="origin"),
        pytest.param((0, 1), U16, 1, 1, (0, 1), False, id="before-emoji"),
        pytest.param((0, 2), U16, 1, 1, (0, 1), True, id="inside-surrogate-pair"),
        pytest.param((0, 3), U16, 2, 5, (0, 5), False, id="after-emoji-utf16"),
        pytest.param((0, 5), U8, 2, 5, (0, 5), False, id="after-emoji-utf8"),
        pytest.param((0, 2), U8, 1, 1, (0, 1), True, id="inside-emoji-utf8"),
        pytest.param((0, 2), U32, 2, 5, (0, 5), False, id="after-emoji-utf32"),
        pytest.param((0, 4), U16, 3, 6, (0, 6), False, id="end-of-line-before-crlf"),
        pytest.param((0, 9), U16, 3, 6, (0, 6), True, id="past-end-of-line-is-end-of-line"),
        pytest.param((1, 1), U16, 6, 11, (1, 3), False, id="cjk-utf16"),
        pytest.param((1, 3), U8, 6, 11, (1, 3), False, id="cjk-utf8"),
        pytest.param((1, 5), U8, 6, 11, (1, 3), True, id="inside-cjk-utf8"),
        pytest.param((1, 2), U32, 7, 14, (1, 6), False, id="end-of-line-before-lone-cr"),
        pytest.param((2, 0), U16, 8, 15, (1, 7), False, id="after-lone-cr-same-ts-row"),
        pytest.param((2, 1), U16, 9, 16, (1, 8), False, id="combining-mark"),
        pytest.param((2, 2), U8, 9, 16, (1, 8), True, id="inside-combining-mark-utf8"),
        pytest.param((2, 3), U16, 11, 19, (1, 11), False, id="end-of-line-before-lf"),
        pytest.param((3, 0), U16, 12, 20, (2, 0), False, id="last-empty-line"),
        pytest.param((3, 7), U16, 12, 20, (2, 0), True, id="past-end-of-last-line"),
        pytest.param((4, 0), U16, 12, 20, (2, 0), True, id="line-past-end-is-end-of-document"),
        pytest.param((-1, 3), U16, 0, 0, (0, 0), True, id="negative-line"),
        pytest.param((1, -3), U16, 5, 8, (1, 0), True, id="negative-character"),
    ],
)
def test_resolve(
    position: tuple[int, int],
    encoding: PositionEncoding,
    offset: int,
    byte: int,
    point: tuple[int, int],
    clamped: bool,
) -> None:
    resolved = SourceText.from_text(MIXED).resolve(*position, encoding)
    assert (resolved.offset, resolved.byte, resolved.point, resolved.clamped) == (
        offset,
        byte,
        point,
        clamped,
    )


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        pytest.param(0, {U8: (0, 0), U16: (0, 0), U32: (0, 0)}, id="origin"),
        pytest.param(2, {U8: (0, 5), U16: (0, 3), U32: (0, 2)}, id="after-emoji"),
        pytest.param(4, {U8: (0, 6), U16: (0, 4), U32: (0, 3)}, id="between-cr-and-lf"),
        pytest.param(6, {U8: (1, 3), U16: (1, 1), U32: (1, 1)}, id="cjk"),
        pytest.param(7, {U8: (1, 6), U16: (1, 2), U32: (1, 2)}, id="at-lone-cr"),
        pytest.param(8, {U8: (2, 0), U16: (2, 0), U32: (2, 0)}, id="after-lone-cr"),
        pytest.param(10, {U8: (2, 3), U16: (2, 2), U32: (2, 2)}, id="after-combining"),
        pytest.param(12, {U8: (3, 0), U16: (3, 0), U32: (3, 0)}, id="end"),
        pytest.param(99, {U8: (3, 0), U16: (3, 0), U32: (3, 0)}, id="past-end"),
        pytest.param(-5, {U8: (0, 0), U16: (0, 0), U32: (0, 0)}, id="negative"),
    ],
)
def test_position_at(offset: int, expected: dict[PositionEncoding, tuple[int, int]]) -> None:
    source = SourceText.from_text(MIXED)
    assert {enc: source.position_at(offset, enc) for enc in expected} == expected


@pytest.mark.parametrize(
    ("byte", "offset", "point"),
    [
        pytest.param(0, 0, (0, 0), id="origin"),
        pytest.param(1, 1, (0, 1), id="emoji-start"),
        pytest.param(3, 1, (0, 3), id="inside-emoji-snaps-offset-not-point"),
        pytest.param(5, 2, (0, 5), id="after-emoji"),
        pytest.param(7, 4, (0, 7), id="lf-of-crlf"),
        pytest.param(8, 5, (1, 0), id="row-start"),
        pytest.param(12, 6, (1, 4), id="inside-cjk"),
        pytest.param(15, 8, (1, 7), id="after-lone-cr"),
        pytest.param(17, 9, (1, 9), id="inside-combining"),
        pytest.param(20, 12, (2, 0), id="end"),
        pytest.param(50, 12, (2, 0), id="past-end"),
        pytest.param(-1, 0, (0, 0), id="negative"),
    ],
)
def test_byte_conversions(byte: int, offset: int, point: tuple[int, int]) -> None:
    source = SourceText.from_text(MIXED)
    assert source.offset_at_byte(byte) == offset
    assert source.point_at_byte(byte) == point


@pytest.mark.parametrize(
    ("offset", "byte"),
    [
        pytest.param(0, 0, id="origin"),
        pytest.param(2, 5, id="after-emoji"),
        pytest.param(7, 14, id="lone-cr"),
        pytest.param(10, 18, id="after-combining"),
        pytest.param(12, 20, id="end"),
        pytest.param(40, 20, id="past-end"),
    ],
)
def test_byte_at_offset(offset: int, byte: int) -> None:
    assert SourceText.from_text(MIXED).byte_at_offset(offset) == byte


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        pytest.param("", [""], id="empty"),
        pytest.param("abc", ["abc"], id="one-line"),
        pytest.param("a\n", ["a", ""], id="trailing-lf"),
        pytest.param("a\r\nb", ["a", "b"], id="crlf"),
        pytest.param("a\rb", ["a", "b"], id="lone-cr"),
        pytest.param("\n\r", ["", "", ""], id="lf-cr-is-two-breaks"),
        pytest.param("\r\r\n", ["", "", ""], id="cr-then-crlf"),
        pytest.param(MIXED, ["a😀b", "漢字", "e\u0301x", ""], id="mixed"),
    ],
)
def test_lines(text: str, lines: list[str]) -> None:
    source = SourceText.from_text(text)
    assert source.line_count == len(lines)
    assert [source.line_text(i) for i in range(source.line_count)] == lines
    assert source.line_text(len(lines)) == ""
    assert source.line_text(-1) == ""


@pytest.mark.parametrize(
    ("text", "start", "end", "new", "result", "edit"),
    [
        pytest.param(
            "x\n😀y",
            3,
            4,
            "漢\n",
            "x\n😀漢\n",
            TreeEdit(6, 7, 10, (1, 4), (1, 5), (2, 0)),
            id="replace-after-emoji",
        ),
        pytest.param(
            "a\r",
            2,
            2,
            "\nb",
            "a\r\nb",
            TreeEdit(2, 2, 4, (0, 2), (0, 2), (1, 1)),
            id="insert-lf-after-cr-joins-crlf",
        ),
        pytest.param(
            "a\r\nb",
            2,
            3,
            "",
            "a\rb",
            TreeEdit(2, 3, 2, (0, 2), (1, 0), (0, 2)),
            id="delete-lf-of-crlf",
        ),
        pytest.param(
            "abc",
            3,
            1,
            "Z",
            "aZ",
            TreeEdit(1, 3, 2, (0, 1), (0, 3), (0, 2)),
            id="reversed-range-is-ordered",
        ),
        pytest.param(
            "abc",
            -4,
            10,
            "",
            "",
            TreeEdit(0, 3, 0, (0, 0), (0, 3), (0, 0)),
            id="out-of-range-is-clamped",
        ),
    ],
)
def test_replace(text: str, start: int, end: int, new: str, result: str, edit: TreeEdit) -> None:
    edited, tree_edit = SourceText.from_text(text).replace(start, end, new)
    fresh = SourceText.from_text(result)
    assert edited.text == result
    assert edited.encoded == result.encode()
    assert (edited.line_offsets, edited.line_bytes, edited.row_bytes) == (
        fresh.line_offsets,
        fresh.line_bytes,
        fresh.row_bytes,
    )
    assert tree_edit == edit
