"""Names in source text, for the heuristics that need no type information.

Used to pair a test with the file it tests (identifier overlap), to pick package
neighbours a file uses, and to focus outlines on the names a file needs.
"""

from __future__ import annotations

import re

import tree_sitter

from codegemma_lsp.syntax.languages import LanguageSpec
from codegemma_lsp.syntax.nodes import captures

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def identifiers(text: str) -> frozenset[str]:
    """Every word that could be an identifier, comments and strings included."""
    return frozenset(_IDENT.findall(text))


def code_identifiers(
    spec: LanguageSpec, source: bytes, tree: tree_sitter.Tree | None = None
) -> frozenset[str]:
    """The identifiers of ``source`` outside comments and strings (prose names nothing)."""
    if tree is None:
        tree = spec.parser().parse(source)
    root, end = tree.root_node, len(source)
    skipped = [
        (node.start_byte, node.end_byte)
        for kind, name in (("comments", "comment"), ("strings", "string"))
        for node in captures(spec, kind, root, 0, end).get(name, [])
    ]
    if not skipped:
        return identifiers(source.decode("utf-8", "replace"))
    pieces, at = [], 0
    for start, stop in sorted(skipped):
        if start > at:
            pieces.append(source[at:start])
        at = max(at, stop)
    pieces.append(source[at:])
    return identifiers(b" ".join(pieces).decode("utf-8", "replace"))
