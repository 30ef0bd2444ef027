"""The imports a file makes, read with its language's ``imports.scm`` query.

Captures (see ``grammars/README.md``): ``@import`` is one import, ``@import.path``
the module it names as written, and, for Python, ``@import.name`` a name imported
from that module, which may itself be a submodule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import tree_sitter

from codegemma_lsp.syntax.languages import LanguageSpec
from codegemma_lsp.syntax.nodes import ancestors, captures, node_key


@dataclass(frozen=True)
class ImportRef:
    """One module named by an import, as written, with the names taken from it.

    ``names`` are known for Python's ``from m import a, b`` and JavaScript's
    ``import d, { a, b as c } from "m"`` (the names as the module defines them);
    empty when the whole module is bound (``import m``, ``import * as m``, ``require``).
    """

    path: str
    names: tuple[str, ...] = ()


_JS_KEYWORDS = re.compile(r"\b(?:import|export|type|typeof)\b")
_JS_ALIAS = re.compile(r"([A-Za-z_$][\w$]*)\s+as\s+[A-Za-z_$][\w$]*")
_JS_NAME = re.compile(r"[A-Za-z_$][\w$]*")


def _js_names(statement: tree_sitter.Node) -> tuple[str, ...]:
    """The names an ES import or re-export takes from its module (none for ``* as m``)."""
    if statement.type not in ("import_statement", "export_statement"):
        return ()
    head = _text(statement).split(" from ", 1)[0]
    if "*" in head or "=" in head:
        return ()
    head = _JS_ALIAS.sub(r"\1", _JS_KEYWORDS.sub(" ", head))
    return tuple(dict.fromkeys(_JS_NAME.findall(head)))


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
    es_clause = spec.imports.names == "es_clause"
    for node in sorted(found.get("import.path", []), key=lambda n: n.start_byte):
        owner = next((a for a in ancestors(node) if node_key(a) in statements), None)
        taken = tuple(names.get(node_key(owner), ())) if owner is not None else ()
        if es_clause and owner is not None:
            taken = _js_names(owner)
        refs.append(ImportRef(_text(node), taken))
    return tuple(dict.fromkeys(refs))


def imports_settled(spec: LanguageSpec, tree: tree_sitter.Tree) -> bool:
    """Whether the imports parse cleanly, so that a change in them is meant, not half-typed.

    Unsettled: the file's root is an error, a top-level error node exists (an unfinished
    statement may have swallowed an import), or a top-level statement holding an import
    has an error in it.
    """
    root = tree.root_node
    if root.type == "ERROR" or any(child.type == "ERROR" for child in root.children):
        return False
    found = captures(spec, "imports", root, 0, root.end_byte).get("import", [])
    for node in found:
        top = node
        while top.parent is not None and top.parent != root:
            top = top.parent
        if top.has_error:
            return False
    return True
