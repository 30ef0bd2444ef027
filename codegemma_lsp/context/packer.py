"""Choose and order the context files for one prompt.

Choosing follows priority (the implementation a test tests, then imports by
depth, then the current file's tests), and each file goes in whole if it fits
the budget that is left, else as its outline, else not at all. Tests of the
current file go in whole or not at all: a test outline says little.

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
    outline: Callable[[Candidate], str],
) -> PackedContext:
    """The pack of ``candidates`` within ``max_tokens``; deterministic for equal inputs."""
    left = max_tokens
    chosen: dict[str, tuple[Candidate, str]] = {}
    outlined: list[str] = []
    dropped: list[str] = []
    for candidate in sorted(candidates, key=lambda c: (c.rank, c.order, c.rel)):
        if not candidate.text.strip():
            continue
        cost = file_cost(measure, candidate.rel, candidate.text)
        if cost <= left:
            chosen[candidate.rel] = (candidate, candidate.text)
            left -= cost
            continue
        short = "" if candidate.test else outline(candidate)
        short_cost = file_cost(measure, candidate.rel, short) if short.strip() else left + 1
        if short_cost <= left:
            chosen[candidate.rel] = (candidate, short)
            outlined.append(candidate.rel)
            left -= short_cost
        else:
            dropped.append(candidate.rel)
    ordered = topological([c for c, _ in chosen.values() if not c.test])
    ordered += sorted((c for c, _ in chosen.values() if c.test), key=lambda c: (c.order, c.rel))
    return PackedContext(
        files=tuple((c.rel, chosen[c.rel][1]) for c in ordered),
        tokens=max_tokens - left,
        outlined=tuple(sorted(outlined)),
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
