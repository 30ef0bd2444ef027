"""Every grammar folder's queries compile, and capture what the syntax layer expects."""

from __future__ import annotations

import re

import pytest
import tree_sitter

from codegemma_lsp.syntax.languages import LanguageSpec, default_registry, grammars_dir
from tests.unit.syntax_samples import IMPORT_PATHS, LANGUAGES, SAMPLES, split_cursor

QUERY_KINDS = ("boundaries", "blocks", "imports", "strings", "comments")

# The capture names each kind may use; grammars/README.md documents them.
# Names starting with "_" are helpers for predicates and carry no meaning.
CAPTURE_NAMES = {
    "boundaries": {"boundary.definition", "boundary.statement", "boundary.leading"},
    "blocks": {"block", "block.opener"},
    "imports": {"import", "import.path", "import.name"},
    "strings": {"string", "interpolation"},
    "comments": {"comment"},
}


def _spec(name: str) -> LanguageSpec:
    spec = default_registry().by_name(name)
    assert spec is not None, f"grammar for {name} is not installed"
    return spec


def _parse(name: str) -> tuple[LanguageSpec, bytes, tree_sitter.Tree]:
    spec = _spec(name)
    source, _ = split_cursor(SAMPLES[name])
    return spec, source, spec.parser().parse(source)


def _captured_text(
    spec: LanguageSpec, kind: str, tree: tree_sitter.Tree, source: bytes
) -> dict[str, list[str]]:
    query = spec.query(kind)
    assert query is not None
    found = tree_sitter.QueryCursor(query).captures(tree.root_node)
    return {
        name: [
            source[n.start_byte : n.end_byte].decode()
            for n in sorted(nodes, key=lambda n: n.start_byte)
        ]
        for name, nodes in found.items()
    }


def test_every_sample_language_has_a_folder() -> None:
    assert set(LANGUAGES) <= set(default_registry().names)


@pytest.mark.parametrize(
    ("folder", "kind"),
    [
        pytest.param(folder.name, kind, id=f"{folder.name}-{kind}")
        for folder in sorted(grammars_dir().iterdir())
        if (folder / "language.toml").is_file()
        for kind in QUERY_KINDS
    ],
)
def test_query_compiles_with_documented_captures(folder: str, kind: str) -> None:
    spec = _spec(folder)
    assert spec.query_source(kind) is not None, f"grammars/{folder}/{kind}.scm is missing"
    query = spec.query(kind)
    assert query is not None
    names = {query.capture_name(i) for i in range(query.capture_count)}
    assert {n for n in names if not n.startswith("_")} <= CAPTURE_NAMES[kind]


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in LANGUAGES])
def test_imports_capture_the_import_targets(name: str) -> None:
    spec, source, tree = _parse(name)
    found = _captured_text(spec, "imports", tree, source)
    assert found.get("import.path") == IMPORT_PATHS[name]
    assert len(found.get("import", [])) == len(IMPORT_PATHS[name])


def test_python_imports_name_submodules() -> None:
    spec, source, tree = _parse("python")
    found = _captured_text(spec, "imports", tree, source)
    assert found.get("import.name") == ["abc", "defaultdict", "sibling", "thing"]


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in LANGUAGES])
def test_boundaries_find_the_definition_and_its_statements(name: str) -> None:
    spec, source, tree = _parse(name)
    found = _captured_text(spec, "boundaries", tree, source)
    definitions = found.get("boundary.definition", [])
    statements = found.get("boundary.statement", [])
    # The function holding the cursor is a definition, its `if` a statement.
    assert any(re.search(r"\b(total|Total|App)\b", d.split("\n")[0]) for d in definitions)
    assert any(s.lstrip().startswith("if") for s in statements)
    # A plain variable is no definition (a nested alternation once made it one).
    assert not any("add(" in d.split("\n")[0] for d in definitions)
    # A continuation line of a split call is never a statement of its own.
    assert not any(s.lstrip().startswith("b)") for s in statements)
    assert found.get("boundary.leading"), "comments should be able to lead a definition"


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in LANGUAGES])
def test_blocks_find_bodies_and_their_openers(name: str) -> None:
    spec, source, tree = _parse(name)
    found = _captured_text(spec, "blocks", tree, source)
    assert found.get("block")
    assert set(found.get("block.opener", [])) <= {"{", ":", "->"}
    assert found.get("block.opener")


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in LANGUAGES])
def test_strings_and_comments_are_captured(name: str) -> None:
    spec, source, tree = _parse(name)
    strings = _captured_text(spec, "strings", tree, source).get("string", [])
    comments = _captured_text(spec, "comments", tree, source).get("comment", [])
    assert any("v=" in s for s in strings)
    assert any(re.search("adds two numbers|shows a counter", c, re.IGNORECASE) for c in comments)


@pytest.mark.parametrize(
    ("name", "code", "expected"),
    [
        pytest.param("python", 'f"a{x}b"', ["{x}"], id="python-fstring"),
        pytest.param("javascript", "`a${x}b`", ["${x}"], id="javascript-template"),
        pytest.param("typescript", "`a${x}b`", ["${x}"], id="typescript-template"),
        pytest.param("tsx", "`a${x}b`", ["${x}"], id="tsx-template"),
        pytest.param("csharp", 'var s = $"a{x}b";', ["{x}"], id="csharp-interpolated"),
        pytest.param("kotlin", 'val s = "a${x}b"', ["${x}"], id="kotlin-template"),
    ],
)
def test_interpolations_are_code_inside_strings(name: str, code: str, expected: list[str]) -> None:
    spec = _spec(name)
    source = code.encode()
    found = _captured_text(spec, "strings", spec.parser().parse(source), source)
    assert found.get("interpolation") == expected
