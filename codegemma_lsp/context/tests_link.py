"""Which file a test tests, and which tests test a file.

Naming conventions give the candidates (``test_app.py`` / ``app_test.go`` /
``app.test.ts`` / ``AppTest.java`` test ``app``), from the ``[tests]`` section of
each language's folder; when several files share the
name, the one whose identifiers the test uses most wins, then the one nearest the
test once test folders are set aside (``tests/pkg/test_mod.py`` and
``src/pkg/mod.py`` are neighbours), then the path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath

from codegemma_lsp.context.lexical import identifiers
from codegemma_lsp.syntax.languages import LanguageRegistry, default_registry

_TEST_DIRS = frozenset({"test", "tests", "__tests__", "spec", "specs", "testing"})
_SOURCE_DIRS = frozenset({"src", "main", "lib"})


@dataclass(frozen=True)
class Conventions:
    """Test-file naming, from the ``[tests]`` section of each language folder."""

    families: Mapping[str, str]
    """File extension -> family: files of one family can test one another."""
    names: Mapping[str, tuple[re.Pattern[str], ...]]
    """Family -> test-file name patterns, group 1 the name of the code tested."""
    by_folder: frozenset[str]
    """Families where a file in a test folder tests its namesake."""
    neutral_dirs: frozenset[str]
    """Folders set aside when telling how near two files are."""

    @classmethod
    def from_registry(cls, registry: LanguageRegistry) -> Conventions:
        families: dict[str, str] = {}
        names: dict[str, list[re.Pattern[str]]] = {}
        by_folder: set[str] = set()
        neutral = set(_TEST_DIRS | _SOURCE_DIRS)
        for spec in registry.specs:
            rules = spec.tests
            if rules.family is None:
                continue
            for ext in spec.extensions:
                families.setdefault(ext.lower(), rules.family)
            patterns = names.setdefault(rules.family, [])
            for name in rules.names:
                pattern = re.compile(name)
                if pattern not in patterns:
                    patterns.append(pattern)
            if rules.by_folder:
                by_folder.add(rules.family)
            neutral.update(rules.source_dirs)
        return cls(
            families,
            {family: tuple(found) for family, found in names.items()},
            frozenset(by_folder),
            frozenset(neutral),
        )


@cache
def conventions() -> Conventions:
    return Conventions.from_registry(default_registry())


def family(rel: str) -> str | None:
    return conventions().families.get(PurePosixPath(rel).suffix.lower())


def subject_of(rel: str) -> str | None:
    """The name of the code ``rel`` tests, lower-cased, when it is a test file; else None."""
    kind = family(rel)
    if kind is None:
        return None
    path = PurePosixPath(rel)
    rules = conventions()
    for pattern in rules.names.get(kind, ()):
        match = pattern.match(path.name)
        if match and match.group(1):
            return _stem_key(match.group(1))
    if kind in rules.by_folder and any(part in _TEST_DIRS for part in path.parts[:-1]):
        # __tests__/app.ts, Rust's tests/app.rs: the folder says test, the name says what.
        return _stem_key(path.name.split(".")[0])
    return None


def is_test(rel: str) -> bool:
    return subject_of(rel) is not None


def _stem_key(stem: str) -> str:
    return stem.lower().replace("-", "_")


def impl_key(rel: str) -> str:
    """The name tests use for ``rel``: its stem, lower-cased."""
    return _stem_key(PurePosixPath(rel).name.split(".")[0])


def proximity(a: str, b: str) -> int:
    """How many leading folders two paths share once test and source folders are set aside."""
    neutral = conventions().neutral_dirs
    left = [p for p in PurePosixPath(a).parts[:-1] if p not in neutral]
    right = [p for p in PurePosixPath(b).parts[:-1] if p not in neutral]
    shared = 0
    for x, y in zip(left, right, strict=False):
        if x != y:
            break
        shared += 1
    return shared - abs(len(left) - len(right))


@dataclass(frozen=True)
class PairingIndex:
    """The workspace's files by the name tests know them by."""

    impls: dict[tuple[str, str], tuple[str, ...]]
    tests: dict[tuple[str, str], tuple[str, ...]]

    @classmethod
    def build(cls, listing: Iterable[str]) -> PairingIndex:
        impls: dict[tuple[str, str], list[str]] = {}
        tests: dict[tuple[str, str], list[str]] = {}
        for rel in listing:
            kind = family(rel)
            if kind is None:
                continue
            subject = subject_of(rel)
            if subject is not None:
                tests.setdefault((kind, subject), []).append(rel)
            else:
                impls.setdefault((kind, impl_key(rel)), []).append(rel)
        return cls(
            {k: tuple(sorted(v)) for k, v in impls.items()},
            {k: tuple(sorted(v)) for k, v in tests.items()},
        )


def subject_keys(rel: str) -> set[tuple[str, str]]:
    """The index keys a file lives under, so that its arrival can be matched to packs."""
    kind = family(rel)
    if kind is None:
        return set()
    subject = subject_of(rel)
    return {(kind, subject if subject is not None else impl_key(rel))}


def implementation_of(
    test_rel: str,
    test_text: str,
    index: PairingIndex,
    read: Callable[[str], str | None],
) -> str | None:
    """The file ``test_rel`` most likely tests, or None."""
    kind, subject = family(test_rel), subject_of(test_rel)
    if kind is None or subject is None:
        return None
    candidates = [rel for rel in index.impls.get((kind, subject), ()) if rel != test_rel]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    used = identifiers(test_text)

    def score(rel: str) -> tuple[float, int, str]:
        text = read(rel) or ""
        overlap = len(used & identifiers(text)) / max(len(used), 1)
        return (-overlap, -proximity(test_rel, rel), rel)

    return min(candidates, key=score)


def find_tests(impl_rel: str, index: PairingIndex, limit: int = 2) -> list[str]:
    """Up to ``limit`` tests of ``impl_rel``, nearest first."""
    kind = family(impl_rel)
    if kind is None or is_test(impl_rel):
        return []
    found = index.tests.get((kind, impl_key(impl_rel)), ())
    ranked = sorted(found, key=lambda rel: (-proximity(impl_rel, rel), rel))
    return ranked[:limit]
