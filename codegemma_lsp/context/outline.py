"""An outline of a file: its definitions' signatures and docstrings, bodies left out.

A context file too large for the budget is packed as its outline before it is
dropped. The outline is built from the language's own queries, so it needs no
per-language code: ``boundaries.scm`` says what a definition is (and which
comments and attributes lead one), ``blocks.scm`` what a body is.

- A function's body becomes ``{ ... }`` (or an indented ``...`` in Python, after the
  docstring).
- A class, impl, struct, namespace... keeps its members: definitions as outlines,
  other members (fields, constants) when they are short.
- At the top level, short statements (imports, constants, type aliases) stay;
  long ones and loose comments go.

Kept lines are copied from the source as they are, so indentation survives.
"""

from __future__ import annotations

import re

import tree_sitter

from codegemma_lsp.context.lexical import identifiers
from codegemma_lsp.syntax.languages import LanguageSpec
from codegemma_lsp.syntax.nodes import captures, line_end, line_start, node_key

SHORT_LINES = 3
"""A member or top-level statement of at most this many lines is kept whole."""
BODYLESS_LINES = 12
"""A definition without a body (an interface type, a type alias) is kept up to this size."""
DOCSTRING_LINES = 12

_WORD = re.compile(r"[A-Za-z_]\w*")
_DECLARING_WORDS = frozenset(
    {
        "const",
        "let",
        "var",
        "type",
        "static",
        "public",
        "private",
        "protected",
        "export",
        "pub",
        "final",
        "readonly",
        "declare",
        "extern",
        "val",
        "internal",
        "default",
    }
)
_CONTAINER_WORDS = (
    "class",
    "interface",
    "struct",
    "enum",
    "impl",
    "trait",
    "namespace",
    "object",
    "record",
    "mod",
)
_CONTAINER_BODIES = ("declaration_list", "class_body", "interface_body", "enum", "annotation_type")


def outline(
    spec: LanguageSpec,
    source: bytes,
    tree: tree_sitter.Tree | None = None,
    *,
    focus: frozenset[str] | None = None,
) -> str:
    """The outline of ``source``; empty when the language has no definition query.

    With ``focus``, only the definitions named there are kept (a class whose name is
    not there keeps just its members that are), with the short statements that
    mention one of the names; imports go. That is what a file that uses those
    names needs to see of this one.
    """
    if tree is None:
        tree = spec.parser().parse(source)
    return _Outliner(spec, source, tree, focus).run()


def _lines(node: tree_sitter.Node) -> int:
    return node.end_point[0] - node.start_point[0] + 1


def _text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode("utf-8", "replace")


def definition_name(node: tree_sitter.Node, depth: int = 0) -> str | None:
    """The name a definition defines, from the grammar's ``name``/``declarator`` fields."""
    name = node.child_by_field_name("name")
    if name is not None:
        return _text(name)
    declarator = node.child_by_field_name("declarator")
    if declarator is not None:
        if declarator.type.endswith("identifier"):
            return _text(declarator)
        if depth < 4 and (found := definition_name(declarator, depth + 1)) is not None:
            return found
    typ = node.child_by_field_name("type")
    if typ is not None and typ.type.endswith("identifier") and declarator is None:
        return _text(typ)  # Rust's `impl Type`
    if depth < 2:
        for child in node.named_children:
            if (
                child.type not in ("block", "body")
                and (found := definition_name(child, depth + 1)) is not None
            ):
                return found
    return None


class _Outliner:
    def __init__(
        self,
        spec: LanguageSpec,
        source: bytes,
        tree: tree_sitter.Tree,
        focus: frozenset[str] | None,
    ) -> None:
        self.source = source
        self.root = tree.root_node
        self.focus = focus
        end = len(source)
        found = captures(spec, "boundaries", self.root, 0, end)
        self.definitions = {node_key(n) for n in found.get("boundary.definition", [])}
        self.leading = {node_key(n) for n in found.get("boundary.leading", [])}
        self.blocks = {
            node_key(n) for n in captures(spec, "blocks", self.root, 0, end).get("block", [])
        }
        self.imports = {
            node_key(n) for n in captures(spec, "imports", self.root, 0, end).get("import", [])
        }
        self.out: list[bytes] = []

    def run(self) -> str:
        if not self.definitions:
            return ""
        self.members(self.root.named_children, focus=self.focus)
        text = b"".join(self.out).decode("utf-8", "replace")
        return text if text.endswith("\n") or not text else text + "\n"

    # --- pieces ---------------------------------------------------------------------------

    def is_def(self, node: tree_sitter.Node) -> bool:
        return node_key(node) in self.definitions

    def whole_lines(self, start: int, end: int) -> bytes:
        """The lines from the one holding ``start`` to the one holding ``end - 1``."""
        return self.source[
            line_start(self.source, start) : line_end(self.source, max(end - 1, start))
        ]

    def emit(self, text: bytes) -> None:
        if text:
            self.out.append(text if text.endswith(b"\n") else text + b"\n")

    def named_in(self, node: tree_sitter.Node, focus: frozenset[str]) -> bool:
        name = definition_name(node)
        return name is None or bool(identifiers(name) & focus)

    def statement_kept(self, node: tree_sitter.Node, focus: frozenset[str] | None) -> bool:
        if _lines(node) > SHORT_LINES or node.type in ("{", "}"):
            return False
        if focus is None or "package" in node.type:
            return True
        if node_key(node) in self.imports or "import" in node.type or "include" in node.type:
            return False
        # What a statement defines is its first name (`X = ...`, `var X`, `type X = ...`);
        # a statement that only mentions a name (or a lone string) is not about it.
        line = self.whole_lines(node.start_byte, node.start_byte + 1).decode("utf-8", "replace")
        line = line.lstrip()
        if not line or not (line[0].isalpha() or line[0] == "_"):
            return False
        names = [w for w in _WORD.findall(line) if w not in _DECLARING_WORDS]
        return bool(names) and names[0] in focus

    # --- structure ------------------------------------------------------------------------

    def body_and_inner(
        self, node: tree_sitter.Node
    ) -> tuple[tree_sitter.Node | None, list[tree_sitter.Node]]:
        """The first body of ``node`` and the definitions directly inside it, bodies apart."""
        body: tree_sitter.Node | None = None
        inner: list[tree_sitter.Node] = []
        stack = list(reversed(node.children))
        while stack:
            child = stack.pop()
            if self.is_def(child):
                inner.append(child)
            elif node_key(child) in self.blocks:
                if body is None:
                    body = child
            else:
                stack.extend(reversed(child.children))
        return body, inner

    def separate(self, node: tree_sitter.Node, previous_row: int) -> None:
        """Keep a blank line where the source had one, so definitions stay apart."""
        if node.start_point[0] - previous_row > 1 and self.out and self.out[-1] != b"\n":
            self.out.append(b"\n")

    def members(
        self,
        nodes: list[tree_sitter.Node],
        previous_row: int | None = None,
        focus: frozenset[str] | None = None,
    ) -> bool:
        """Outline a list of members; ``previous_row`` is the last row already emitted.

        Returns whether a focused name was found (always True without ``focus``).
        """
        matched = focus is None
        pending: list[tree_sitter.Node] = []
        if previous_row is None:
            previous_row = nodes[0].start_point[0] if nodes else 0
        for node in nodes:
            if node_key(node) in self.leading:
                if pending and pending[-1].end_point[0] + 1 < node.start_point[0]:
                    pending = []
                pending.append(node)
                continue
            attached = (
                [] if not pending or pending[-1].end_point[0] + 1 < node.start_point[0] else pending
            )
            pending = []
            mark = len(self.out)
            self.separate(attached[0] if attached else node, previous_row)
            if self.is_def(node):
                for comment in attached:
                    self.emit(self.whole_lines(comment.start_byte, comment.end_byte))
                whole = focus is None or self.named_in(node, focus)
                kept = self.definition(
                    node, node.start_byte, node.end_byte, None if whole else focus
                )
                if whole or kept:
                    matched = True
                else:
                    del self.out[mark:]
                    continue
            elif self.statement_kept(node, focus):
                self.emit(self.whole_lines(node.start_byte, node.end_byte))
            else:
                del self.out[mark:]
                continue
            previous_row = node.end_point[0]
        return matched

    def definition(
        self,
        node: tree_sitter.Node,
        start: int,
        end: int,
        focus: frozenset[str] | None = None,
    ) -> bool:
        """Outline ``node``, whose text (with wrappers such as decorators) is ``[start, end)``.

        With ``focus`` (the node's own name is not in it), only members named there
        are kept; returns whether there were any.
        """
        if self.source.count(b"\n", start, end) == 0:
            if focus is not None:
                return False
            self.emit(self.whole_lines(start, end))
            return True
        body, inner = self.body_and_inner(node)
        if body is None:
            if len(inner) == 1:
                # A wrapper (decorators, `export`, `template<>`, `typedef`): outline the inside.
                return self.definition(inner[0], start, end, focus)
            if inner:
                self.emit(self.whole_lines(start, start + 1))
                later = [c for c in node.named_children if c.start_point[0] > node.start_point[0]]
                return self.members(later, focus=focus)
            if focus is not None:
                return False
            self.bodyless(start, end)
            return True
        if focus is not None and not self.is_container(node, body):
            return False
        if self.source[body.start_byte : body.start_byte + 1] == b"{":
            return self.braced(node, body, start, end, focus)
        return self.indented(node, body, start, focus)

    def bodyless(self, start: int, end: int) -> None:
        text = self.whole_lines(start, end)
        if text.count(b"\n") <= BODYLESS_LINES:
            self.emit(text)
        else:
            self.emit(self.whole_lines(start, start + 1).rstrip(b"\n") + b" ...")

    def is_container(self, node: tree_sitter.Node, body: tree_sitter.Node) -> bool:
        """A body that holds members (class, impl, struct...) rather than statements."""
        return (
            any(self.is_def(child) for child in body.named_children)
            or any(word in node.type for word in _CONTAINER_WORDS)
            or any(word in body.type for word in _CONTAINER_BODIES)
        )

    def braced(
        self,
        node: tree_sitter.Node,
        body: tree_sitter.Node,
        start: int,
        end: int,
        focus: frozenset[str] | None,
    ) -> bool:
        close = body.end_byte - 1
        head = self.source[line_start(self.source, start) : body.start_byte + 1]
        tail = self.source[close : line_end(self.source, max(end - 1, close))]
        if not self.is_container(node, body):
            self.emit(head + b" ... " + tail)
            return True
        self.emit(head)
        matched = self.members(list(body.named_children), focus=focus)
        self.emit(
            self.source[line_start(self.source, close) : line_end(self.source, max(end - 1, close))]
        )
        return matched

    def indented(
        self,
        node: tree_sitter.Node,
        body: tree_sitter.Node,
        start: int,
        focus: frozenset[str] | None,
    ) -> bool:
        self.emit(
            self.source[line_start(self.source, start) : line_start(self.source, body.start_byte)]
        )
        statements = body.named_children
        previous_row = None
        documented = bool(statements) and _is_docstring(statements[0])
        if documented:
            self.docstring(statements[0])
            previous_row = statements[0].end_point[0]
            statements = statements[1:]
        if self.is_container(node, body) and statements:
            return self.members(statements, previous_row, focus)
        if not documented:
            # A docstring is a body already; otherwise `...` keeps the outline valid Python.
            first = self.source[line_start(self.source, body.start_byte) : body.start_byte]
            self.emit(first + b"...")
        return focus is None

    def docstring(self, node: tree_sitter.Node) -> None:
        text = self.whole_lines(node.start_byte, node.end_byte)
        lines = text.splitlines(keepends=True)
        if len(lines) > DOCSTRING_LINES:
            blank = next((i for i, line in enumerate(lines) if not line.strip()), len(lines) - 1)
            lines = [*lines[:blank], lines[-1]]
        self.emit(b"".join(lines))


def _is_docstring(node: tree_sitter.Node) -> bool:
    return (
        node.type == "expression_statement"
        and node.named_child_count == 1
        and node.named_children[0].type in ("string", "concatenated_string")
    )
