"""The comment block at or above the cursor, table-tested in every grammar folder."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from codegemma_lsp.syntax.comments import comment_block
from codegemma_lsp.syntax.languages import LanguageSpec, default_registry, grammars_dir
from tests.unit.syntax_samples import split_cursor


@dataclass(frozen=True)
class Syntax:
    """How to write a few lines in a language, for the shared cases below."""

    line: str  # a line comment marker
    block: tuple[str, str] | None  # a block comment's markers
    code: str  # a statement, at the indentation the cases use
    open: str  # a line that opens a body
    close: str  # the line that closes it ("" where indentation does)


SYNTAX: dict[str, Syntax] = {
    "python": Syntax("#", None, "x = 1", "def f():", ""),
    "c": Syntax("//", ("/*", "*/"), "int x = 1;", "void f(void) {", "}"),
    "cpp": Syntax("//", ("/*", "*/"), "int x = 1;", "void f() {", "}"),
    "csharp": Syntax("//", ("/*", "*/"), "int x = 1;", "class A {", "}"),
    "go": Syntax("//", ("/*", "*/"), "x := 1", "func f() {", "}"),
    "java": Syntax("//", ("/*", "*/"), "int x = 1;", "class A {", "}"),
    "javascript": Syntax("//", ("/*", "*/"), "let x = 1;", "function f() {", "}"),
    "kotlin": Syntax("//", ("/*", "*/"), "val x = 1", "fun f() {", "}"),
    "lua": Syntax("--", ("--[[", "]]"), "local x = 1", "local function f()", "end"),
    "rust": Syntax("//", ("/*", "*/"), "let x = 1;", "fn f() {", "}"),
    "tsx": Syntax("//", ("/*", "*/"), "let x = 1;", "function f() {", "}"),
    "typescript": Syntax("//", ("/*", "*/"), "let x: number = 1;", "function f() {", "}"),
}

INDENT = "    "


def _spec(name: str) -> LanguageSpec:
    spec = default_registry().by_name(name)
    assert spec is not None, f"grammar for {name} is not installed"
    return spec


def _find(name: str, text: str) -> tuple[str | None, str | None, bytes]:
    """The block's text and indentation for ``text`` with a cursor mark, and the source."""
    spec = _spec(name)
    source, cursor = split_cursor(text)
    block = comment_block(spec.parser().parse(source), source, cursor, spec)
    if block is None:
        return None, None, source
    return block.text, block.indent, source


def _body(s: Syntax, *lines: str) -> str:
    """``lines`` inside a body opened and closed as the language does."""
    inner = "".join(f"{INDENT}{line}\n" for line in lines)
    return f"{s.open}\n{inner}{s.close}\n" if s.close else f"{s.open}\n{inner}"


def _cases() -> list[object]:
    """(language, source with a cursor mark, expected text or None)."""
    cases: list[object] = []
    for name, s in SYNTAX.items():
        c = s.line
        table = [
            (
                "below-a-line-block",
                _body(s, s.code, f"{c} parse the date", f"{c} and return it as UTC", "█"),
                "parse the date\nand return it as UTC",
            ),
            (
                "on-a-comment-line",
                _body(s, f"{c} parse the date█", f"{c} and return it as UTC", s.code),
                "parse the date\nand return it as UTC",
            ),
            (
                "one-blank-line-between",
                _body(s, f"{c} sort the list", "", "█"),
                "sort the list",
            ),
            ("two-blank-lines-between", _body(s, f"{c} sort the list", "", "", "█"), None),
            (
                "only-the-nearest-block",
                _body(s, f"{c} an older note", "", f"{c} sort the list", "█"),
                "sort the list",
            ),
            ("code-between", _body(s, f"{c} sort the list", s.code, "█"), None),
            ("after-code-on-its-line", _body(s, f"{s.code} {c} sort the list", "█"), None),
            ("on-a-code-line", _body(s, f"{c} sort the list", f"{s.code}█"), None),
            ("no-comment", _body(s, s.code, "█"), None),
            (
                "doc-marker",
                _body(s, f"{c}{c[-1]} parse the date", "█"),
                "parse the date",
            ),
        ]
        if s.block is not None:
            opener, closer = s.block
            table += [
                (
                    "block-comment-with-star-column",
                    _body(
                        s, f"{opener}*", " * parse the date", " * and return UTC", f" {closer}", "█"
                    ),
                    "parse the date\nand return UTC",
                ),
                (
                    "inside-a-block-comment",
                    _body(s, f"{opener} parse█ the date {closer}", s.code),
                    "parse the date",
                ),
                (
                    "block-then-line-comments",
                    _body(s, f"{opener} parse the date {closer}", f"{c} as UTC", "█"),
                    "parse the date\nas UTC",
                ),
            ]
        cases += [pytest.param(name, text, want, id=f"{name}-{case}") for case, text, want in table]
    return cases


@pytest.mark.parametrize(("name", "text", "expected"), _cases())
def test_comment_block(name: str, text: str, expected: str | None) -> None:
    found, indent, _ = _find(name, text)
    assert found == expected
    if expected is not None:
        assert indent == INDENT


def _folders() -> list[str]:
    return sorted(p.name for p in grammars_dir().iterdir() if (p / "language.toml").is_file())


def _marker_cases() -> list[object]:
    """For every grammar folder, cases made from its own comment markers alone (top-level
    comments), so that a language added as a folder is tested before anyone writes its
    table above."""
    cases: list[object] = []
    for name in _folders():
        spec = default_registry().by_name(name)
        if spec is None:
            continue
        table: list[tuple[str, str, str | None]] = []
        if spec.line_comment:
            c = spec.line_comment
            table += [
                ("line-block", f"{c} parse the date\n{c} as UTC\n█\n", "parse the date\nas UTC"),
                ("in-the-block", f"{c} parse█ the date\n", "parse the date"),
                ("too-far", f"{c} parse the date\n\n\n█\n", None),
            ]
        if spec.block_comment:
            opener, closer = spec.block_comment
            table.append(("block", f"{opener} parse the date {closer}\n█\n", "parse the date"))
        cases += [pytest.param(name, text, want, id=f"{name}-{case}") for case, text, want in table]
    return cases


@pytest.mark.parametrize(("name", "text", "expected"), _marker_cases())
def test_comment_block_from_the_folders_markers(name: str, text: str, expected: str | None) -> None:
    found, indent, _ = _find(name, text)
    assert found == expected
    if expected is not None:
        assert indent == ""


def test_every_grammar_folder_is_covered() -> None:
    folders = _folders()
    assert set(SYNTAX) <= set(folders)
    for name in folders:  # installed, so the marker cases above ran for it
        assert default_registry().by_name(name) is not None, name


@pytest.mark.parametrize(
    ("name", "text", "expected", "span"),
    [
        pytest.param(
            "python",
            "import os\n\n# read the file\n# and count its lines\n█\n",
            "read the file\nand count its lines",
            "# read the file\n# and count its lines\n",
            id="python-top-level",
        ),
        pytest.param(
            "rust",
            "//! a crate\n\n/// parse the date\n█",
            "parse the date",
            "/// parse the date\n",
            id="rust-at-the-end-of-the-text",
        ),
        pytest.param(
            "javascript",
            "/**\n * Returns the sum.\n *\n * @param a first\n */\n█\n",
            "Returns the sum.\n\n@param a first",
            "/**\n * Returns the sum.\n *\n * @param a first\n */\n",
            id="javascript-jsdoc-keeps-its-blank-line",
        ),
        pytest.param(
            "go",
            "package main\r\n\r\n// sum the numbers\r\n█\r\n",
            "sum the numbers",
            "// sum the numbers\r\n",
            id="go-crlf",
        ),
        pytest.param(
            "python",
            "# héllo 😀 日本 in UTF-8\n█",
            "héllo 😀 日本 in UTF-8",
            "# héllo 😀 日本 in UTF-8\n",
            id="python-non-ascii",
        ),
        pytest.param("python", "█", None, "", id="empty-file"),
        pytest.param("python", '"""a docstring is not a comment"""\n█\n', None, "", id="docstring"),
    ],
)
def test_comment_block_span(name: str, text: str, expected: str | None, span: str) -> None:
    spec = _spec(name)
    source, cursor = split_cursor(text)
    block = comment_block(spec.parser().parse(source), source, cursor, spec)
    if expected is None:
        assert block is None
        return
    assert block is not None
    assert block.text == expected
    assert source[block.start : block.end].decode() == span


def test_no_tree_or_language_means_no_block() -> None:
    spec = _spec("python")
    source = b"# sort\n\n"
    assert comment_block(None, source, len(source), spec) is None
    assert comment_block(spec.parser().parse(source), source, len(source), None) is None
