"""Parsing with a deadline: the same trees as a plain parse, a clean stop, no leak."""

from __future__ import annotations

import gc
import sys
import tracemalloc

import pytest

from codegemma_lsp.syntax import parsing
from codegemma_lsp.syntax.languages import LanguageSpec, default_registry
from codegemma_lsp.syntax.parsing import ParseTimeout, parse


def spec(name: str) -> LanguageSpec:
    found = default_registry().lookup(name, None)
    assert found is not None
    return found


PROGRAM = "".join(
    f"def f{i}(a, b):\n    return [a + k for k in range({i})]\n\n" for i in range(3000)
)
DATA = PROGRAM.encode()


def test_a_parse_within_its_deadline_is_a_plain_parse() -> None:
    assert len(DATA) > 2 * parsing.READ_CHUNK
    parser = spec("python").parser()
    tree = parse(parser, DATA, deadline=float("inf"))
    assert str(tree.root_node) == str(spec("python").parser().parse(DATA).root_node)
    edited = DATA.replace(b"def f7(", b"def g7(")
    old = tree.copy()
    at = DATA.index(b"def f7(") + 4
    old.edit(
        start_byte=at,
        old_end_byte=at + 1,
        new_end_byte=at + 1,
        start_point=(21, 4),
        old_end_point=(21, 5),
        new_end_point=(21, 5),
    )
    again = parse(parser, edited, old, deadline=float("inf"))
    assert str(again.root_node) == str(spec("python").parser().parse(edited).root_node)


class Ticks:
    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_parse_past_its_deadline_stops_and_the_parser_starts_afresh() -> None:
    parser = spec("python").parser()
    with pytest.raises(ParseTimeout):
        parse(parser, DATA, deadline=1.0, clock=Ticks(step=10.0))
    small = b"x = 1\n"
    tree = parse(parser, small, deadline=float("inf"))
    assert tree.root_node.end_byte == len(small) and not tree.root_node.has_error


def test_a_clock_that_fails_stops_the_parse_instead_of_crashing() -> None:
    def broken() -> float:
        raise RuntimeError("no clock")

    with pytest.raises(ParseTimeout):
        parse(spec("python").parser(), DATA, deadline=1.0, clock=broken)


def test_parsing_keeps_nothing_it_read() -> None:
    parser = spec("javascript").parser()
    data = ("let a = [1, 2, 3];\n" * 300).encode()
    assert len(data) < parsing.READ_CHUNK  # the one read hands tree-sitter ``data`` itself
    before = sys.getrefcount(data)
    for _ in range(5):
        tree = parse(parser, data, deadline=float("inf"))
        del tree
    gc.collect()
    assert sys.getrefcount(data) == before
    parser = spec("python").parser()
    parse(parser, DATA, deadline=float("inf"))  # first-use allocations are not a leak
    tracemalloc.start()
    try:
        for _ in range(4):
            parse(parser, DATA, deadline=float("inf"))
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert retained < len(DATA) // 10  # a leak keeps all it read, 4 times over
