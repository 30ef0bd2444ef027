"""Big documents: the text in blocks of lines, lazy tables, and trees parsed off the loop.

The block index is checked against brute force on the whole string, with blocks made tiny
so that every edit crosses block boundaries. That no edit costs work in proportion to the
file is checked by memory, not by the clock: an edit in a big file allocates about a
block. Parsing is checked with an injected clock, which also counts how often a parse ran.
"""

from __future__ import annotations

import re
import threading
import tracemalloc
from bisect import bisect_right
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from unittest.mock import patch

import pytest
import tree_sitter
from hypothesis import given, settings
from hypothesis import strategies as st

from codegemma_lsp import documents
from codegemma_lsp.documents import (
    MAX_LINE_CHARS,
    Document,
    DocumentStore,
    PositionEncoding,
    SourceText,
    TextChange,
    TreeEdit,
    code_units,
    column_to_index,
)
from codegemma_lsp.syntax.languages import LanguageSpec, default_registry

_ERRORS = "surrogatepass"


def spec(name: str) -> LanguageSpec:
    found = default_registry().lookup(name, None)
    assert found is not None
    return found


# --- brute force on the whole string ----------------------------------------------------------


def encode(text: str) -> bytes:
    return text.encode("utf-8", _ERRORS)


def lsp_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer(r"\n|\r(?!\n)", text)]


def lsp_byte_starts(data: bytes) -> list[int]:
    return [0] + [m.end() for m in re.finditer(rb"\n|\r(?!\n)", data)]


def row_starts(data: bytes) -> list[int]:
    return [0] + [m.end() for m in re.finditer(rb"\n", data)]


def line_end(text: str, line: int) -> int:
    starts = lsp_starts(text)
    if line + 1 >= len(starts):
        return len(text)
    nxt = starts[line + 1]
    return nxt - 2 if text.startswith("\r\n", nxt - 2) else nxt - 1


def point(data: bytes, byte: int) -> tuple[int, int]:
    return data.count(b"\n", 0, byte), byte - (data.rfind(b"\n", 0, byte) + 1)


def resolve(text: str, line: int, character: int, encoding: PositionEncoding) -> tuple[int, bool]:
    starts = lsp_starts(text)
    if line >= len(starts):
        return len(text), True
    clamped = line < 0
    if clamped:
        line, character = 0, 0
    index, adjusted = column_to_index(
        text[starts[line] : line_end(text, line)], character, encoding
    )
    return starts[line] + index, clamped or adjusted


def offset_at_byte(data: bytes, byte: int) -> int:
    byte = max(0, min(byte, len(data)))
    while byte < len(data) and data[byte] & 0xC0 == 0x80:
        byte -= 1
    return len(data[:byte].decode("utf-8", _ERRORS))


def longest_line(text: str) -> int:
    starts = lsp_starts(text)
    return max(line_end(text, i) - s for i, s in enumerate(starts))


# --- the block index against brute force ------------------------------------------------------

FRAGMENTS = ["a", "bc", "  ", "\n", "\r", "\r\n", "x\n", "é", "漢", "😀", "\ud83d", "\t"]
texts = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)
inserts = st.lists(st.sampled_from(FRAGMENTS), max_size=8).map("".join)


def check_blocks(source: SourceText) -> None:
    blocks = source._blocks().blocks
    assert all(block.text.endswith("\n") for block in blocks[:-1])
    assert not blocks[-1].text.endswith("\n")


def check_against_brute_force(source: SourceText, text: str, data: st.DataObject) -> None:
    encoded = encode(text)
    assert source.text == text
    assert source.length == len(source) == len(text)
    assert source.encoded == encoded
    assert source.byte_length == len(encoded)
    check_blocks(source)
    assert list(source.line_offsets) == lsp_starts(text)
    assert list(source.line_bytes) == lsp_byte_starts(encoded)
    assert list(source.row_bytes) == row_starts(encoded)
    count = len(lsp_starts(text))
    assert source.line_count == count
    for line in range(-1, count + 1):
        if 0 <= line < count:
            content = text[lsp_starts(text)[line] : line_end(text, line)]
            assert source.line_text(line) == content
            assert source.line_length(line) == len(content)
            assert source.line_end(line) == line_end(text, line)
        else:
            assert source.line_text(line) == ""
    limit = data.draw(st.integers(0, 12), label="long line limit")
    assert source.has_long_line(limit) == (longest_line(text) > limit)
    encoding = data.draw(st.sampled_from(list(PositionEncoding)), label="encoding")
    for _ in range(4):
        line = data.draw(st.integers(-1, count + 1), label="line")
        character = data.draw(st.integers(-1, 12), label="character")
        offset, clamped = resolve(text, line, character, encoding)
        assert source.offset_of(line, character, encoding) == (offset, clamped)
        resolved = source.resolve(line, character, encoding)
        byte = len(encode(text[:offset]))
        assert (resolved.offset, resolved.byte, resolved.clamped) == (offset, byte, clamped)
        assert resolved.point == point(encoded, byte)

        offset = data.draw(st.integers(-1, len(text) + 1), label="offset")
        inside = max(0, min(offset, len(text)))
        assert source.byte_at_offset(offset) == len(encode(text[:inside]))
        assert source.line_of_offset(offset) == bisect_right(lsp_starts(text), inside) - 1
        line = bisect_right(lsp_starts(text), inside) - 1
        stop = min(inside, line_end(text, line))
        expected = (line, code_units(text[lsp_starts(text)[line] : stop], encoding))
        assert source.position_at(offset, encoding) == expected

        byte = data.draw(st.integers(-1, len(encoded) + 1), label="byte")
        assert source.offset_at_byte(byte) == offset_at_byte(encoded, byte)
        inside_byte = max(0, min(byte, len(encoded)))
        assert source.point_at_byte(byte) == point(encoded, inside_byte)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), initial=texts, block=st.sampled_from([2, 3, 5, 8]))
def test_edits_in_small_blocks_match_brute_force(
    data: st.DataObject, initial: str, block: int
) -> None:
    with patch.object(documents, "_BLOCK_CHARS", block):
        source, text = SourceText.from_text(initial), initial
        check_against_brute_force(source, text, data)
        for _ in range(data.draw(st.integers(1, 6), label="edits")):
            start = data.draw(st.integers(-2, len(text) + 2), label="start")
            end = data.draw(st.integers(-2, len(text) + 2), label="end")
            new = data.draw(inserts, label="new text")
            low, high = sorted((max(0, min(start, len(text))), max(0, min(end, len(text)))))
            edited_text = text[:low] + new + text[high:]
            if data.draw(st.booleans(), label="with tree edit"):
                source, edit = source.replace(start, end, new)
                before, after = encode(text), encode(edited_text)
                start_byte = len(encode(text[:low]))
                old_end, new_end = len(encode(text[:high])), start_byte + len(encode(new))
                assert edit == TreeEdit(
                    start_byte,
                    old_end,
                    new_end,
                    point(before, start_byte),
                    point(before, old_end),
                    point(after, new_end),
                )
            else:
                source = source.splice(start, end, new)
            text = edited_text
            check_against_brute_force(source, text, data)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), initial=texts)
def test_text_only_documents_apply_edits_like_full_ones(data: st.DataObject, initial: str) -> None:
    with patch.object(documents, "_BLOCK_CHARS", 3):
        full = Document("file:///a", initial)
        text_only = Document("file:///b", initial, text_only=True)
        for _ in range(data.draw(st.integers(1, 5), label="edits")):
            line = data.draw(st.integers(0, full.line_count), label="line")
            character = data.draw(st.integers(0, 6), label="character")
            length = data.draw(st.integers(0, 6), label="length")
            new = data.draw(inserts, label="new text")
            change = TextChange((line, character), (line, character + length), new)
            assert full.apply_changes([change]) == text_only.apply_changes([change])
            assert text_only.text == full.text
            assert text_only.edits_since(text_only.revision - 1) is None
            assert text_only.edits_since(text_only.revision) == []
        assert text_only.tree is None and text_only.snapshot().tree is None


def test_a_block_is_about_the_block_size_and_an_edit_rebuilds_one() -> None:
    text = "".join(f"line {i}\n" for i in range(20_000))
    source = SourceText.from_text(text)
    blocks = source._blocks().blocks
    assert all(len(b.text) < 2 * documents._BLOCK_CHARS for b in blocks)
    middle = len(text) // 2
    edited, _ = source.replace(middle, middle, "x")
    after = edited._blocks().blocks
    assert len(after) == len(blocks)
    assert sum(a is not b for a, b in zip(blocks, after, strict=True)) == 1


# --- costs, measured in memory ----------------------------------------------------------------


@contextmanager
def allocations() -> Iterator[list[int]]:
    """The peak of memory newly allocated inside the block, in bytes."""
    peak: list[int] = []
    tracemalloc.start()
    try:
        yield peak
        peak.append(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def peak_allocation(step: Callable[[], object]) -> int:
    """The most memory ``step`` held at once beyond what was held before it, in bytes."""
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    step()
    return tracemalloc.get_traced_memory()[1] - before


BIG = "".join(f"    value_{i} = compute(alpha, beta) + {i}  # a comment\n" for i in range(150_000))


def test_opening_a_document_costs_nothing_but_its_text() -> None:
    assert len(BIG) > 7_000_000
    store = DocumentStore()
    store.open("file:///restore/first.py", "x = 1\n")  # loads the language registry
    with allocations() as peak:
        for i in range(100):
            document = store.open(f"file:///restore/m{i}.py", BIG, version=1)
            document.snapshot()
    assert peak[0] < 100 * 2048  # a few objects per document; the text is 7 MB


@pytest.mark.parametrize("text_only", [False, True], ids=["full", "text-only"])
def test_an_edit_in_a_big_file_costs_about_a_block(text_only: bool) -> None:
    document = Document("file:///big.py", BIG, language=spec("python"), text_only=text_only)
    document.apply_changes([TextChange((10, 0), (10, 0), "# first edit splits the text\n")])
    peaks = []
    tracemalloc.start()
    try:
        for i in range(50):
            line = (i * 7919) % 150_000
            change = TextChange((line, 4), (line, 5), "V")

            def edit(change: TextChange = change, version: int = i) -> None:
                document.apply_changes([change], version=version)
                document.snapshot()

            peaks.append(peak_allocation(edit))
    finally:
        tracemalloc.stop()
    assert max(peaks) < 6 * documents._BLOCK_CHARS  # the text is 7 MB
    assert document.line_text(7919).startswith("    Value_7918")  # after the line added


def test_an_edit_in_a_long_line_does_not_copy_the_line_per_position() -> None:
    line = "x" * 3_000_000
    document = Document("file:///min.js", line + "\nend\n")
    document.apply_changes([TextChange((0, 0), (0, 0), "y")])
    with allocations() as peak:
        assert document.offset_at(0, 5) == 5
        assert document.resolve(0, 10).byte == 10
    assert peak[0] < 100_000


# --- trees: parsed lazily, off the loop, with a deadline ----------------------------------------


class Clock:
    """A fake ``perf_counter``: counts its calls, moves ``step`` seconds per call."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 0.0
        self.step = step
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        self.now += self.step
        return self.now


PROGRAM = "".join(f"def f{i}(a, b):\n    return a + b * {i}\n\n\n" for i in range(200))


def fresh_tree(text: str) -> tree_sitter.Tree:
    return spec("python").parser().parse(encode(text))


def same_tree(a: tree_sitter.Tree | None, b: tree_sitter.Tree) -> bool:
    return a is not None and str(a.root_node) == str(b.root_node)


def test_snapshots_share_the_documents_newest_tree_and_hold_none_of_their_own() -> None:
    clock = Clock()
    document = Document("file:///a.py", PROGRAM, language=spec("python"), clock=clock)
    older = document.snapshot()
    assert older.tree is not None
    document.apply_changes([TextChange((0, 0), (0, 0), "x = 1\n")])
    newer = document.snapshot()
    assert newer.tree is document.tree is newer.tree
    assert older.tree is not newer.tree  # parsed again: the document kept only the newest
    assert same_tree(older.tree, fresh_tree(PROGRAM))


def test_edits_and_snapshots_parse_nothing_until_a_tree_is_read() -> None:
    clock = Clock()
    document = Document("file:///a.py", PROGRAM, language=spec("python"), clock=clock)
    snapshots = [document.snapshot()]
    for i in range(30):
        document.apply_changes([TextChange((i, 0), (i, 0), "# c\n")], version=i + 1)
        snapshots.append(document.snapshot())
    assert clock.calls == 0
    assert same_tree(snapshots[-1].tree, fresh_tree(document.text))
    assert clock.calls > 0
    assert snapshots[-1].tree is document.tree


def test_trees_follow_the_edits_incrementally_and_old_snapshots_stay_right() -> None:
    document = Document("file:///a.py", PROGRAM, language=spec("python"))
    first = document.snapshot()
    assert same_tree(first.tree, fresh_tree(PROGRAM))
    document.apply_changes([TextChange((1, 11), (1, 12), "(a - 1)")])
    middle = document.snapshot()
    document.apply_changes([TextChange((0, 0), (0, 0), "import os\n")])
    latest = document.snapshot()
    assert same_tree(latest.tree, fresh_tree(latest.text))
    assert same_tree(middle.tree, fresh_tree(middle.text))  # older than the newest tree
    for _ in range(Document.HISTORY + 5):  # past the history: a whole parse again
        document.apply_changes([TextChange((0, 0), (0, 0), "#")])
    assert same_tree(document.tree, fresh_tree(document.text))
    assert first.tree is not None and str(first.tree.root_node) == str(
        fresh_tree(PROGRAM).root_node
    )


def test_a_parse_past_its_deadline_gives_no_tree_and_turns_syntax_off() -> None:
    clock = Clock(step=60.0)  # every look at the clock is a minute later
    document = Document("file:///a.py", PROGRAM, language=spec("python"), clock=clock)
    assert document.snapshot().tree is None
    calls = clock.calls
    document.apply_changes([TextChange((0, 0), (0, 0), "x = 1\n")])
    assert document.snapshot().tree is None
    assert clock.calls == calls  # no second try


def test_an_incremental_parse_past_its_deadline_leaves_syntax_on() -> None:
    clock = Clock()
    document = Document("file:///a.py", PROGRAM, language=spec("python"), clock=clock)
    assert document.tree is not None
    document.apply_changes([TextChange((0, 0), (0, 0), "x = 1\n")])
    clock.step = 60.0
    assert document.snapshot().tree is None
    clock.step = 0.0
    calls = clock.calls
    assert document.snapshot().tree is None  # that text is not tried again
    assert clock.calls == calls
    document.apply_changes([TextChange((1, 0), (1, 0), "y = 2\n")])
    assert same_tree(document.snapshot().tree, fresh_tree(document.text))


def test_a_document_with_a_long_line_is_never_parsed() -> None:
    clock = Clock()
    long_line = "data = '" + "x" * MAX_LINE_CHARS + "'\n"
    document = Document("file:///a.py", PROGRAM + long_line, language=spec("python"), clock=clock)
    assert document.snapshot().tree is None
    end = document.line_count - 2
    document.apply_changes([TextChange((end, 0), (end + 1, 0), "")])  # the long line goes
    assert clock.calls == 0
    assert same_tree(document.tree, fresh_tree(PROGRAM))


def test_a_tree_parsed_on_another_thread_while_edits_arrive_is_right() -> None:
    document = Document("file:///a.py", PROGRAM * 5, language=spec("python"))
    results: list[bool] = []

    def parse_snapshots(snapshots: list[documents.DocumentSnapshot]) -> None:
        for snapshot in snapshots:
            results.append(same_tree(snapshot.tree, fresh_tree(snapshot.text)))

    for round_ in range(5):
        snapshots = []
        for i in range(10):
            document.apply_changes([TextChange((i * 3, 0), (i * 3, 0), f"y{round_} = {i}\n")])
            snapshots.append(document.snapshot())
        worker = threading.Thread(target=parse_snapshots, args=(snapshots[::3],))
        worker.start()
        for i in range(10):  # the loop goes on editing meanwhile
            document.apply_changes([TextChange((i, 0), (i, 1), "d")])
        worker.join()
    assert results and all(results)
