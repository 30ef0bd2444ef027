"""Choosing and ordering the packed files: topological, tests last, budget, outlines."""

from __future__ import annotations

import random

import pytest

from codegemma_lsp.context.packer import Candidate, PackedContext, file_cost, pack, topological


def measure(text: str) -> int:
    return len(text)


def outline_of(candidate: Candidate) -> list[str]:
    return [candidate.text[:4]]


def files(packed: PackedContext) -> list[str]:
    return [rel for rel, _ in packed.files]


def test_dependencies_come_before_the_files_that_import_them() -> None:
    nodes = [
        Candidate("app.py", "a", rank=1, order=0, depth=1, imports=("models.py", "util.py")),
        Candidate("models.py", "m", rank=1, order=1, depth=1, imports=("util.py",)),
        Candidate("util.py", "u", rank=2, order=2, depth=2),
    ]
    assert [c.rel for c in topological(nodes)] == ["util.py", "models.py", "app.py"]


def test_ties_go_deeper_first_then_discovery_order() -> None:
    nodes = [
        Candidate("b.py", "b", rank=1, order=0, depth=1),
        Candidate("a.py", "a", rank=1, order=1, depth=1),
        Candidate("deep.py", "d", rank=2, order=2, depth=2),
    ]
    assert [c.rel for c in topological(nodes)] == ["deep.py", "b.py", "a.py"]


def test_a_cycle_is_broken_deterministically() -> None:
    nodes = [
        Candidate("a.py", "a", rank=1, order=0, imports=("b.py",)),
        Candidate("b.py", "b", rank=1, order=1, imports=("a.py",)),
    ]
    assert [c.rel for c in topological(nodes)] == ["a.py", "b.py"]
    assert [c.rel for c in topological(nodes[::-1])] == ["a.py", "b.py"]


def test_tests_come_after_every_dependency() -> None:
    candidates = [
        Candidate("tests/test_app.py", "t", rank=1000, order=2, test=True),
        Candidate("util.py", "u", rank=1, order=0),
        Candidate("models.py", "m", rank=2, order=1, depth=2),
    ]
    packed = pack(candidates, max_tokens=1000, measure=measure, outlines=outline_of)
    assert files(packed) == ["models.py", "util.py", "tests/test_app.py"]


def test_the_order_of_the_input_does_not_matter() -> None:
    candidates = [
        Candidate(f"m{i}.py", f"text {i}", rank=1 + i % 3, order=i, depth=1 + i % 3)
        for i in range(12)
    ]
    expected = pack(candidates, max_tokens=120, measure=measure, outlines=outline_of)
    for seed in range(5):
        shuffled = candidates[:]
        random.Random(seed).shuffle(shuffled)
        assert pack(shuffled, max_tokens=120, measure=measure, outlines=outline_of) == expected


def test_a_file_that_does_not_fit_is_outlined_then_dropped() -> None:
    big = Candidate("big.py", "x" * 100, rank=1, order=0)
    small = Candidate("small.py", "y" * 10, rank=2, order=1)
    huge = Candidate("huge.py", "z" * 500, rank=3, order=2)
    budget = file_cost(measure, "small.py", small.text) + file_cost(measure, "big.py", "xxxx") + 5
    packed = pack([big, small, huge], max_tokens=budget, measure=measure, outlines=outline_of)
    assert packed.files == (("big.py", "xxxx"), ("small.py", "y" * 10))
    assert packed.outlined == ("big.py",)
    assert packed.dropped == ("huge.py",)
    assert packed.tokens == budget - 5


def test_outlines_of_all_come_before_the_whole_of_one() -> None:
    first = Candidate("a.py", "a" * 100, rank=1, order=0)
    second = Candidate("b.py", "b" * 100, rank=1, order=1)
    outline_cost = file_cost(measure, "a.py", "aaaa")
    whole_cost = file_cost(measure, "a.py", first.text)
    tight = pack([first, second], max_tokens=whole_cost + 5, measure=measure, outlines=outline_of)
    assert tight.files == (("a.py", "aaaa"), ("b.py", "bbbb"))
    roomy = pack(
        [first, second], max_tokens=whole_cost + outline_cost, measure=measure, outlines=outline_of
    )
    assert roomy.files == (("a.py", first.text), ("b.py", "bbbb"))
    assert roomy.outlined == ("b.py",)


def test_forms_are_raised_as_far_as_the_budget_allows() -> None:
    first = Candidate("a.py", "a" * 100, rank=1, order=0)
    second = Candidate("b.py", "b" * 100, rank=1, order=1)

    def two_forms(candidate: Candidate) -> list[str]:
        return [candidate.text[:2], candidate.text[:20]]

    cost = {n: file_cost(measure, "a.py", "a" * n) for n in (2, 20, 100)}
    packed = pack(
        [first, second],
        max_tokens=cost[20] + cost[2] + 3,
        measure=measure,
        outlines=two_forms,
    )
    assert packed.files == (("a.py", "a" * 20), ("b.py", "bb"))
    assert packed.outlined == ("a.py", "b.py")


def test_priority_decides_who_gets_the_budget() -> None:
    impl = Candidate("impl.py", "i" * 40, rank=0, order=5)
    dep = Candidate("dep.py", "d" * 40, rank=1, order=0)
    budget = file_cost(measure, "impl.py", impl.text) + 10
    packed = pack([dep, impl], max_tokens=budget, measure=measure, outlines=lambda c: [])
    assert files(packed) == ["impl.py"]
    assert packed.dropped == ("dep.py",)


def test_tests_go_in_whole_or_not_at_all() -> None:
    test = Candidate("test_a.py", "t" * 50, rank=1000, order=0, test=True)
    packed = pack([test], max_tokens=20, measure=measure, outlines=outline_of)
    assert packed == PackedContext(dropped=("test_a.py",))


@pytest.mark.parametrize("text", ["", "  \n\n"], ids=["empty", "blank"])
def test_blank_files_are_left_out(text: str) -> None:
    candidate = Candidate("pkg/__init__.py", text, rank=1, order=0)
    packed = pack([candidate], max_tokens=100, measure=measure, outlines=outline_of)
    assert packed == PackedContext()
