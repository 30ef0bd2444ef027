"""The imports a file makes, read with its language's ``imports.scm`` query.

Captures (see ``grammars/README.md``): ``@import`` is one import, ``@import.path``
the module it names as written, and, for Python, ``@import.name`` a name imported
from that module, which may itself be a submodule.
"""

from __future__ import annotations

from dataclasses import dataclass

import tree_sitter

from codegemma_lsp.syntax.languages import LanguageSpec
from codegemma_lsp.syntax.nodes import ancestors, captures, node_key


@dataclass(frozen=True)
class ImportRef:
    """One module named by an import, as written, with the names taken from it."""

    path: str
    names: tuple[str, ...] = ()


def _text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode("utf-8", "replace")


def extract_imports(
    spec: LanguageSpec, source: bytes, tree: tree_sitter.Tree | None = None
) -> tuple[ImportRef, ...]:
    """The imports of ``source`` in source order; a language without a query has none."""
    if spec.query("imports") is None:
        return ()
    if tree is None:
        tree = spec.parser().parse(source)
    found = captures(spec, "imports", tree.root_node, 0, len(source))
    statements = {node_key(node) for node in found.get("import", [])}
    names: dict[tuple[int, int, int], list[str]] = {}
    for node in sorted(found.get("import.name", []), key=lambda n: n.start_byte):
        owner = next((a for a in ancestors(node) if node_key(a) in statements), None)
        if owner is not None:
            names.setdefault(node_key(owner), []).append(_text(node))
    refs: list[ImportRef] = []
    for node in sorted(found.get("import.path", []), key=lambda n: n.start_byte):
        owner = next((a for a in ancestors(node) if node_key(a) in statements), None)
        taken = tuple(names.get(node_key(owner), ())) if owner is not None else ()
        refs.append(ImportRef(_text(node), taken))
    return tuple(dict.fromkeys(refs))
