"""Documents: edits, incremental trees, snapshots and the store.

The property tests check a :class:`Document` against models that share no code with it:
the text against a list of code units in the edit's encoding, and the tree against a
fresh parse of the final text.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import tree_sitter
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from codegemma_lsp.documents import (
    Document,
    DocumentStore,
    PositionEncoding,
    SourceText,
    TextChange,
    cursor_after,
)
from codegemma_lsp.syntax.languages import LanguageSpec, default_registry

ENCODINGS = list(PositionEncoding)
LANGUAGES = ["python", "javascript"]


def spec(name: str) -> LanguageSpec:
    found = default_registry().lookup(name)
    assert found is not None, f"grammar {name} is not installed"
    return found


# --- an independent model of LSP edits, in code units -------------------------------------


def to_units(text: str, encoding: PositionEncoding) -> list[int]:
    if encoding is PositionEncoding.UTF8:
        return list(text.encode("utf-8"))
    if encoding is PositionEncoding.UTF16:
        data = text.encode("utf-16-le")
        return [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]
    return [ord(c) for c in text]


def from_units(units: list[int], encoding: PositionEncoding) -> str:
    if encoding is PositionEncoding.UTF8:
        return bytes(units).decode("utf-8")
    if encoding is PositionEncoding.UTF16:
        return b"".join(u.to_bytes(2, "little") for u in units).decode("utf-16-le")
    return "".join(map(chr, units))


@dataclass
class UnitModel:
    """The document as code units; line breaks are the units of "\\r\\n", "\\r", "\\n"."""

    units: list[int]
    encoding: PositionEncoding

    @property
    def text(self) -> str:
        return from_units(self.units, self.encoding)

    def lines(self) -> list[tuple[int, int]]:
        """(start, end of content) of each line, in units."""
        lines, start, i, n = [], 0, 0, len(self.units)
        while i < n:
            unit = self.units[i]
            if unit in (10, 13):
                crlf = unit == 13 and i + 1 < n and self.units[i + 1] == 10
                lines.append((start, i))
                i += 2 if crlf else 1
                start = i
            else:
                i += 1
        lines.append((start, n))
        return lines

    def starts_char(self, k: int) -> bool:
        if k >= len(self.units):
            return True
        unit = self.units[k]
        if self.encoding is PositionEncoding.UTF8:
            return unit & 0xC0 != 0x80
        if self.encoding is PositionEncoding.UTF16:
            return not 0xDC00 <= unit <= 0xDFFF
        return True

    def offset(self, line: int, character: int) -> int:
        """The LSP rule: past the last line is the end; past a line's end is its end."""
        lines = self.lines()
        if line >= len(lines):
            return len(self.units)
        start, end = lines[line]
        return start + min(character, end - start)

    def position(self, offset: int) -> tuple[int, int]:
        line = max(i for i, (start, _) in enumerate(self.lines()) if start <= offset)
        return line, offset - self.lines()[line][0]

    def replace(self, start: int, end: int, text: str) -> None:
        self.units[start:end] = to_units(text, self.encoding)


# --- strategies -----------------------------------------------------------------------------

FRAGMENTS = [
    # Characters that differ between encodings.
    "😀",
    "👩‍💻",
    "漢字",
    "e\u0301",
    "ü",
    # Line breaks of every kind, and pieces that join or split a CRLF.
    "\r\n",
    "\r",
    "\n",
    # Not line breaks in LSP, though str.splitlines breaks at each of them.
    "\f",
    "\v",
    "\x1c\x1d\x1e",
    "\x85",
    "\u2028",
    "\u2029",
    # Code, so the trees have structure (Python and brace languages).
    "def f(x):\n",
    "    return x\n",
    "class A:\n    pass\n",
    "if x:",
    "x = 1",
    "(",
    ")",
    "[",
    "]",
    ":",
    "'",
    '"',
    "#",
    " ",
    "    ",
    "\t",
    "\\",
    "{",
    "}",
    ";",
    "function g() {",
    "/*",
    "*/",
    "`",
    "=>",
    "s = '😀 漢字'",
]

texts = st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join)
inserts = st.lists(st.sampled_from(FRAGMENTS), max_size=4).map("".join)


def draw_position(data: st.DataObject, model: UnitModel) -> tuple[int, int]:
    """A valid position, or one past the end of its line or of the document."""
    lines = model.lines()
    line = data.draw(st.integers(0, len(lines)), label="line")
    if line == len(lines):
        return line, data.draw(st.integers(0, 3))
    start, end = lines[line]
    inside = [k - start for k in range(start, end + 1) if model.starts_char(k)]
    past = st.integers(end - start + 1, end - start + 4)
    return line, data.draw(st.sampled_from(inside) | past, label="character")


def draw_batch(data: st.DataObject, model: UnitModel) -> list[TextChange]:
    """A batch of changes, each against the text the previous one left; applies them to
    the model too."""
    changes = []
    for _ in range(data.draw(st.integers(1, 4), label="batch size")):
        if data.draw(st.integers(0, 24), label="whole text?") == 0:
            text = data.draw(texts, label="replacement")
            changes.append(TextChange(None, None, text))
            model.units = to_units(text, model.encoding)
            continue
        first, second = draw_position(data, model), draw_position(data, model)
        start, end = model.offset(*first), model.offset(*second)
        if start > end:
            first, second, start, end = second, first, end, start
        text = data.draw(inserts, label="insert")
        changes.append(TextChange(first, second, text))
        model.replace(start, end, text)
    return changes


# --- tree comparison ------------------------------------------------------------------------

NodeRecord = tuple[str, bool, bool, int, int, tuple[int, int], tuple[int, int]]


def node_records(tree: tree_sitter.Tree) -> list[NodeRecord]:
    """Every node, named or not, in document order, with its ranges."""
    records: list[NodeRecord] = []
    cursor = tree.walk()
    while True:
        node = cursor.node
        assert node is not None
        records.append(
            (
                node.type,
                node.is_named,
                node.is_missing,
                node.start_byte,
                node.end_byte,
                node.start_point,
                node.end_point,
            )
        )
        if cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return records


def brute_point(encoded: bytes, byte: int) -> tuple[int, int]:
    before = encoded[:byte]
    return before.count(b"\n"), byte - (before.rfind(b"\n") + 1)


def assert_consistent(tree: tree_sitter.Tree, encoded: bytes) -> None:
    """Every node's points agree with its bytes, and children nest in order
    (what tree-sitter's own randomized tests check after edits)."""

    def check(node: tree_sitter.Node) -> None:
        assert node.start_byte <= node.end_byte <= len(encoded)
        assert node.start_point == brute_point(encoded, node.start_byte)
        assert node.end_point == brute_point(encoded, node.end_byte)
        last_end = node.start_byte
        for child in node.children:
            assert last_end <= child.start_byte and child.end_byte <= node.end_byte
            last_end = child.end_byte
            check(child)

    check(tree.root_node)


def assert_same_tree(incremental: tree_sitter.Tree, fresh: tree_sitter.Tree) -> None:
    assert str(incremental.root_node) == str(fresh.root_node)
    assert node_records(incremental) == node_records(fresh)


# --- property tests -------------------------------------------------------------------------


@pytest.mark.parametrize("language", [None, *LANGUAGES])
@pytest.mark.parametrize("encoding", ENCODINGS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), initial=texts)
def test_random_edits_match_the_models(
    language: str | None, encoding: PositionEncoding, data: st.DataObject, initial: str
) -> None:
    lang = spec(language) if language else None
    document = Document("file:///t", initial, language=lang, encoding=encoding)
    model = UnitModel(to_units(initial, encoding), encoding)
    for version in range(1, data.draw(st.integers(1, 4), label="batches") + 1):
        document.apply_changes(draw_batch(data, model), version=version)

        assert document.text == model.text
        assert document.version == version
        assert document.encoded == document.text.encode("utf-8")
        rebuilt = SourceText.from_text(document.text)
        assert document.source.line_offsets == rebuilt.line_offsets
        assert document.source.line_bytes == rebuilt.line_bytes
        assert document.source.row_bytes == rebuilt.row_bytes

        position = draw_position(data, model)
        resolved = document.resolve(*position)
        unit_offset = model.offset(*position)
        assert resolved.offset == len(from_units(model.units[:unit_offset], encoding))
        assert resolved.byte == len(document.text[: resolved.offset].encode())
        assert resolved.point == brute_point(document.encoded, resolved.byte)
        assert document.position_at(resolved.offset) == model.position(unit_offset)

        if lang is None:
            assert document.tree is None
            continue
        assert document.tree is not None
        assert_consistent(document.tree, document.encoded)
        fresh = lang.parser().parse(document.encoded)
        if node_records(document.tree) != node_records(fresh) and (
            document.tree.root_node.has_error and fresh.root_node.has_error
        ):
            # Error recovery depends on parse history; tree-sitter promises equality
            # with a fresh parse only for the trees it recovers identically.
            event("error recovery differs from a fresh parse")
            continue
        assert_same_tree(document.tree, fresh)


PROGRAMS = {
    "python": (
        "import os\r\n"
        "\r\n"
        "class Greeter:\r\n"
        '    """Says 😀 hello in 漢字 and cafe\u0301."""\n'
        "\n"
        "    def greet(self, name: str) -> str:\r\n"
        "        # a comment with 👩‍💻 and a lone\rcarriage return\n"
        '        return f"{name} 👋 {len(name)}"\n'
        "\n"
        "    def pairs(self):\n"
        "        return [(k, v) for k, v in {'é': 1, '字': 2}.items()]\n"
    ),
    "javascript": (
        "// 😀 greeting in 漢字\r\n"
        "function greet(name) {\r\n"
        "  /* cafe\u0301 with a lone\rcarriage return */\n"
        "  const s = `${name} 👋 ${name.length}`;\n"
        "  return [1, 2, 3].map((x) => x * 2);\n"
        "}\n"
        "\n"
        "class A { m() { return { '字': 1 }; } }\r\n"
    ),
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("encoding", ENCODINGS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_undoing_edits_restores_the_fresh_tree(
    language: str, encoding: PositionEncoding, data: st.DataObject
) -> None:
    """Break a valid program with random edits, then undo them one by one: the tree must
    equal a fresh parse exactly, since a valid program leaves no room for recovery choices."""
    lang = spec(language)
    program = PROGRAMS[language]
    fresh = lang.parser().parse(program.encode())
    assert not fresh.root_node.has_error
    document = Document("file:///t", program, language=lang, encoding=encoding)
    model = UnitModel(to_units(program, encoding), encoding)

    undo: list[TextChange] = []
    for _ in range(data.draw(st.integers(1, 5), label="edits")):
        first, second = draw_position(data, model), draw_position(data, model)
        start, end = sorted((model.offset(*first), model.offset(*second)))
        removed = model.units[start:end]
        text = data.draw(inserts, label="insert")
        document.apply_changes([TextChange(model.position(start), model.position(end), text)])
        model.replace(start, end, text)
        # The inverse range, widened where it would split a CRLF (LSP cannot address
        # the gap between "\r" and "\n"; such a position means the end of the line).
        lo, hi = start, start + len(to_units(text, encoding))
        if 0 < lo < len(model.units) and model.units[lo - 1 : lo + 1] == [13, 10]:
            lo, removed = lo - 1, [13, *removed]
        if 0 < hi < len(model.units) and model.units[hi - 1 : hi + 1] == [13, 10]:
            hi, removed = hi + 1, [*removed, 10]
        undo.append(
            TextChange(model.position(lo), model.position(hi), from_units(removed, encoding))
        )
        assert document.text == model.text

    for change in reversed(undo):
        document.apply_changes([change])
    assert document.text == program
    assert document.tree is not None
    assert_consistent(document.tree, document.encoded)
    assert_same_tree(document.tree, fresh)


# --- examples -------------------------------------------------------------------------------


def test_batch_reparses_once_with_every_edit() -> None:
    document = Document("file:///a.py", "def f(x):\r\n    return x\n", language=spec("python"))
    clamped = document.apply_changes(
        [
            TextChange((0, 4), (0, 5), "greet_😀"),
            TextChange((1, 11), (1, 12), "x + 1"),
            TextChange((2, 0), (2, 0), "print(greet_😀(1))\n"),
        ],
        version=3,
    )
    assert clamped == 0
    assert document.version == 3
    assert document.text == "def greet_😀(x):\r\n    return x + 1\nprint(greet_😀(1))\n"
    assert document.tree is not None
    assert_same_tree(document.tree, spec("python").parser().parse(document.encoded))


def test_whole_text_replacement() -> None:
    document = Document("file:///a.js", "let a = 1;", language=spec("javascript"), version=1)
    assert document.apply_changes([TextChange(None, None, "const 漢 = 2;\n")]) == 0
    assert document.text == "const 漢 = 2;\n"
    assert document.version == 1
    assert document.tree is not None
    assert document.tree.root_node.end_byte == len(document.encoded)


@pytest.mark.parametrize(
    ("change", "text"),
    [
        pytest.param(TextChange((0, 2), (0, 1), "Z"), "aZc", id="reversed-range"),
        pytest.param(TextChange((0, 9), (5, 0), "!"), "abc!", id="past-the-end"),
        pytest.param(TextChange((-1, 0), (0, 1), ""), "bc", id="negative"),
    ],
)
def test_bad_ranges_are_clamped_and_counted(change: TextChange, text: str) -> None:
    document = Document("file:///t", "abc")
    assert document.apply_changes([change]) == 1
    assert document.text == text


def test_snapshot_is_unaffected_by_later_edits() -> None:
    document = Document("file:///a.py", "x = '😀'\ny = 2\n", language=spec("python"), version=1)
    snapshot = document.snapshot()
    assert snapshot.tree is not None
    before = node_records(snapshot.tree)
    document.apply_changes([TextChange((0, 0), (0, 0), "import os\n")], version=2)
    assert (snapshot.version, snapshot.text) == (1, "x = '😀'\ny = 2\n")
    assert snapshot.encoded == snapshot.text.encode()
    assert node_records(snapshot.tree) == before
    assert snapshot.position_at(6) == (0, 7)
    assert document.snapshot().tree is document.tree


def test_document_without_language_has_no_tree() -> None:
    document = Document("file:///notes.txt", "héllo\r\nwörld")
    assert document.tree is None
    document.apply_changes([TextChange((1, 5), (1, 5), "!")])
    assert document.text == "héllo\r\nwörld!"
    assert document.line_count == 2
    assert document.line_text(1) == "wörld!"


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_document_conversions_use_its_encoding(encoding: PositionEncoding) -> None:
    document = Document("file:///t", "😀x\n", encoding=encoding)
    character = {
        PositionEncoding.UTF8: 4,
        PositionEncoding.UTF16: 2,
        PositionEncoding.UTF32: 1,
    }[encoding]
    assert document.offset_at(0, character) == 1
    assert document.byte_offset_at(0, character) == 4
    assert document.position_at(1) == (0, character)
    assert document.position_at_byte(4) == (0, character)
    assert document.byte_at_offset(1) == 4
    assert document.offset_at_byte(4) == 1
    assert document.point_at_byte(6) == (1, 0)


def test_store_opens_changes_and_closes() -> None:
    store = DocumentStore(encoding=PositionEncoding.UTF8)
    document = store.open("file:///src/m%C3%A9.py", "x = 1\n", version=1)
    assert document.language is not None and document.language.name == "python"
    assert document.encoding is PositionEncoding.UTF8
    assert store.open("file:///a", "", language_id="javascript").language == spec("javascript")
    assert store.open("file:///notes.txt", "hi").language is None
    assert store.change("file:///src/m%C3%A9.py", [TextChange((0, 4), (0, 5), "2")], 2) == 0
    assert store["file:///src/m%C3%A9.py"].text == "x = 2\n"
    assert len(store) == 3 and "file:///a" in store
    store.close("file:///a")
    store.close("file:///never-opened")
    assert store.get("file:///a") is None
    assert sorted(store) == ["file:///notes.txt", "file:///src/m%C3%A9.py"]
    with pytest.raises(KeyError):
        store.change("file:///a", [])


def test_edits_since_replays_the_byte_edits_of_later_batches() -> None:
    document = Document("file:///a.py", "ab\n", language=None)
    start = document.revision
    document.apply_changes([TextChange((0, 2), (0, 2), "c")])
    document.apply_changes([TextChange((0, 0), (0, 1), "")])
    edits = document.edits_since(start)
    assert edits is not None
    assert [(e.start_byte, e.old_end_byte, e.new_end_byte) for e in edits] == [(2, 2, 3), (0, 1, 0)]
    assert document.edits_since(document.revision) == []
    assert document.edits_since(document.revision + 1) is None


def test_edits_since_forgets_beyond_its_history() -> None:
    document = Document("file:///a.py", "", language=None)
    for _ in range(Document.HISTORY + 2):
        document.apply_changes([TextChange((0, 0), (0, 0), "x")])
    assert document.edits_since(0) is None
    assert document.edits_since(document.revision - Document.HISTORY) is not None


@pytest.mark.parametrize(
    ("changes", "cursor"),
    [
        pytest.param([TextChange((1, 4), (1, 4), "x")], len("def f():\n    x"), id="typed"),
        pytest.param(
            [TextChange((1, 4), (1, 4), "a"), TextChange((1, 5), (1, 5), "b")],
            len("def f():\n    ab"),
            id="batch: the last one",
        ),
        pytest.param([TextChange((1, 3), (1, 4), "")], len("def f():\n   "), id="backspace"),
        pytest.param(
            [TextChange((1, 4), (1, 4), "\n    ")], len("def f():\n    \n    "), id="enter"
        ),
        pytest.param([TextChange(None, None, "y = 1\n")], None, id="whole-text"),
        pytest.param(
            [TextChange((0, 0), (0, 0), "# x\n"), TextChange((4, 0), (4, 0), "z")],
            None,
            id="spread: a formatter, not typing",
        ),
        pytest.param([], None, id="none"),
    ],
)
def test_the_cursor_after_an_edit(changes: list[TextChange], cursor: int | None) -> None:
    document = Document("file:///a.py", "def f():\n    pass\n")
    document.apply_changes(changes)
    assert cursor_after(document, changes) == cursor
