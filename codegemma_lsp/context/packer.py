"""Choose and order the context files for one prompt.

Choosing follows priority (the implementation a test tests, then imports by
depth, then the current file's tests). A file that does not fit whole goes in as
its outline, and one whose outline does not fit either is dropped; outlines come
first so that the budget covers many files' signatures before a few files'
bodies (see :func:`pack`). Tests of the current file go in whole or not at all:
a test outline says little.

Ordering follows training (reference/FACTS.md): a file comes after the files it
imports (topological order; deeper files first, then discovery order, then path,
so ties never depend on a set's iteration), and tests come after all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Measure = Callable[[str], int]
"""A token counter for a piece of prompt text."""


@dataclass(frozen=True)
class Candidate:
    """A file that may go in the pack."""

    rel: str
    text: str
    rank: int
    """Lower goes in first when the budget is short."""
    order: int
    """When it was found (import order, breadth first)."""
    depth: int = 1
    imports: tuple[str, ...] = ()
    """The other candidates it imports (edges of the dependency graph)."""
    test: bool = False
    """A test of the current file: packed after the dependencies, whole or not at all."""


@dataclass(frozen=True)
class PackedContext:
    """What goes before the current file: (workspace-relative path, text) in prompt order."""

    files: tuple[tuple[str, str], ...] = ()
    tokens: int = 0
    outlined: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()


EMPTY = PackedContext()


def file_cost(measure: Measure, rel: str, text: str) -> int:
    """Tokens one context file costs: ``path\\n{text}`` and its ``<|file_separator|>``."""
    return measure(f"{rel}\n{text}") + 1


def pack(
    candidates: Sequence[Candidate],
    *,
    max_tokens: int,
    measure: Measure,
    outlines: Callable[[Candidate], Sequence[str]],
) -> PackedContext:
    """The pack of ``candidates`` within ``max_tokens``; deterministic for equal inputs.

    ``outlines`` gives a file's shorter forms, shortest first (an outline focused on
    the names the current file uses, then the whole outline). Breadth first: every
    dependency goes in as its cheapest form, in priority order while the budget
    lasts; then, again in priority order, each is raised to the fullest form whose
    extra cost fits; then tests go in whole where they fit. So the budget covers the
    signatures of many files before the bodies of a few.
    """
    ordered = sorted(
        (c for c in candidates if c.text.strip()), key=lambda c: (c.rank, c.order, c.rel)
    )
    left = max_tokens
    forms: dict[str, list[tuple[int, str]]] = {}
    level: dict[str, int] = {}
    dropped: list[str] = []
    for candidate in ordered:
        if candidate.test:
            continue
        whole = (file_cost(measure, candidate.rel, candidate.text), candidate.text)
        options = [
            (file_cost(measure, candidate.rel, short), short)
            for short in outlines(candidate)
            if short.strip()
        ]
        # Fullest last; a shorter form no cheaper than a fuller one is pointless.
        kept = [whole]
        for option in reversed(options):
            if option[0] < kept[0][0]:
                kept.insert(0, option)
        forms[candidate.rel] = kept
        if kept[0][0] <= left:
            level[candidate.rel] = 0
            left -= kept[0][0]
        else:
            dropped.append(candidate.rel)
    for candidate in ordered:
        if candidate.rel not in level:
            continue
        options, now = forms[candidate.rel], level[candidate.rel]
        for better in range(len(options) - 1, now, -1):
            extra = options[better][0] - options[now][0]
            if extra <= left:
                level[candidate.rel] = better
                left -= extra
                break
    chosen = {rel: forms[rel][index][1] for rel, index in level.items()}
    outlined = sorted(rel for rel, index in level.items() if index < len(forms[rel]) - 1)
    for candidate in ordered:
        if candidate.test:
            cost = file_cost(measure, candidate.rel, candidate.text)
            if cost <= left:
                chosen[candidate.rel] = candidate.text
                left -= cost
            else:
                dropped.append(candidate.rel)
    kept_candidates = [c for c in ordered if c.rel in chosen]
    ordered_out = topological([c for c in kept_candidates if not c.test])
    ordered_out += sorted((c for c in kept_candidates if c.test), key=lambda c: (c.order, c.rel))
    return PackedContext(
        files=tuple((c.rel, chosen[c.rel]) for c in ordered_out),
        tokens=max_tokens - left,
        outlined=tuple(outlined),
        dropped=tuple(sorted(dropped)),
    )


def topological(nodes: Sequence[Candidate]) -> list[Candidate]:
    """Imported before importer; a cycle is broken at its smallest key."""
    by_rel = {node.rel: node for node in nodes}
    waiting = {
        node.rel: {dep for dep in node.imports if dep in by_rel and dep != node.rel}
        for node in nodes
    }

    def key(rel: str) -> tuple[int, int, str]:
        node = by_rel[rel]
        return (-node.depth, node.order, node.rel)

    ordered: list[Candidate] = []
    while waiting:
        ready = [rel for rel, deps in waiting.items() if not deps]
        pick = min(ready or waiting, key=key)
        ordered.append(by_rel[pick])
        del waiting[pick]
        for deps in waiting.values():
            deps.discard(pick)
    return ordered
