"""Completion scope: whether to complete at the cursor, and how much.

A pure decision from the syntax at the cursor. The engine uses it for its
stopping rules and budgets:

- ``NONE``: offer nothing;
- ``LINE``: complete the rest of the current line;
- ``BLOCK``: complete a block: several lines, up to a syntactic end.

Rules, first match wins (with a tree):

1. In a comment, follow ``in_comments``; in a string (but not in code
   interpolated into it), follow ``in_strings``: ``"off"`` gives NONE,
   ``"line"`` LINE, ``"block"`` BLOCK.
2. Word characters on both sides of the cursor (the middle of an
   identifier): NONE.
3. Nothing but indentation before the cursor and text to its right on its
   line (code or closers): BLOCK. The completion is whole lines inserted
   above that text, so it must be free to end with a newline that pushes the
   text down; a LINE completion stops before its newline and would glue
   itself to the front of the text.
4. Code to the right of the cursor on its line, anything but blanks and
   closing brackets, quotes, ``;`` or ``,``: LINE.
5. Inside brackets that do not hold statements (an argument list, parameters,
   an array, an object, a parenthesised expression): LINE.
6. Otherwise the cursor is where statements go (the innermost container is
   a block that ``blocks.scm`` captures, or the file's root):

   a. nothing before the cursor on its line: BLOCK (a new statement may be
      a whole ``if`` or a function);
   b. the last token before the cursor opens a body (``@block.opener``:
      ``{``, Python's ``:``, ...) and that body is empty, meaning the next
      non-blank line is a closer or is not indented deeper than the
      opener's line: BLOCK;
   c. anything else: LINE.

Without a tree (an unknown language) the same questions are asked of the
text alone: 2, 3 and 4 as above; after a line ending in ``{`` or ``:`` whose
body is empty, BLOCK; otherwise LINE, since lines alone cannot tell a
statement list from the inside of a multi-line expression.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

import tree_sitter

from codegemma_lsp.syntax.languages import LanguageSpec
from codegemma_lsp.syntax.nodes import (
    ancestors,
    captures,
    indentation,
    is_blank,
    line_end,
    line_start,
    line_text_end,
    node_key,
    utf8_boundary_at_or_before,
)

TriviaSetting = Literal["off", "line", "block"]


class Scope(enum.Enum):
    NONE = "none"
    LINE = "line"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class ScopeDecision:
    """The scope and a short reason for logs (``"empty-block"``, ``"code-right"``...)."""

    scope: Scope
    reason: str


_CLOSERS = b")]}>\"'`;,"
_BLANKS = b" \t\r\n\f\v"
_OPEN_BRACKETS = frozenset({"(", "[", "{", "<", "${", "#{", "@{", "#[", "#("})
_TEXT_OPENERS = (b"{", b":")


def completion_scope(
    tree: tree_sitter.Tree | None,
    source: bytes,
    cursor: int,
    language: LanguageSpec | None,
    *,
    in_comments: TriviaSetting = "line",
    in_strings: TriviaSetting = "line",
) -> ScopeDecision:
    """Decide the completion scope at ``cursor`` (a byte offset into ``source``)."""
    cursor = utf8_boundary_at_or_before(source, cursor)
    start = line_start(source, cursor)
    before = source[start:cursor]
    after = source[cursor : line_text_end(source, cursor)]
    if tree is None or language is None:
        return _by_text(source, cursor, before, after, language, in_comments)

    root = tree.root_node
    trivia = _trivia_at(root, source, cursor, language)
    if trivia == "comment":
        return _from_setting(in_comments, "comment")
    if trivia == "string":
        return _from_setting(in_strings, "string")
    if _mid_identifier(before, after):
        return ScopeDecision(Scope.NONE, "mid-identifier")
    if _before_text(before, after):
        return ScopeDecision(Scope.BLOCK, "before-code")
    if _code_right(after):
        return ScopeDecision(Scope.LINE, "code-right")
    if _inside_brackets(root, source, cursor, language):
        return ScopeDecision(Scope.LINE, "inside-brackets")
    if is_blank(before):
        return ScopeDecision(Scope.BLOCK, "new-line")
    if _ends_with_opener(root, source, cursor, before, language) and _body_empty(
        source, cursor, before, after
    ):
        return ScopeDecision(Scope.BLOCK, "empty-block")
    return ScopeDecision(Scope.LINE, "statement")


def _from_setting(setting: TriviaSetting, reason: str) -> ScopeDecision:
    scope = {"off": Scope.NONE, "line": Scope.LINE, "block": Scope.BLOCK}[setting]
    return ScopeDecision(scope, reason)


def _is_word_byte(byte: int) -> bool:
    # Bytes of multi-byte UTF-8 characters count: identifiers may be non-ASCII.
    return byte >= 0x80 or chr(byte).isalnum() or byte in b"_$"


def _mid_identifier(before: bytes, after: bytes) -> bool:
    return bool(before) and bool(after) and _is_word_byte(before[-1]) and _is_word_byte(after[0])


def _before_text(before: bytes, after: bytes) -> bool:
    """Whether the cursor is in the indentation of a line that holds text."""
    return is_blank(before) and bool(after.strip(_BLANKS))


def _code_right(after: bytes) -> bool:
    return bool(after.strip(_BLANKS).translate(None, _CLOSERS + _BLANKS))


def _trivia_at(
    root: tree_sitter.Node, source: bytes, cursor: int, language: LanguageSpec
) -> Literal["comment", "string"] | None:
    lo, hi = max(cursor - 1, 0), cursor + 1
    block_end = language.block_comment[1].encode() if language.block_comment else None
    for node in captures(language, "comments", root, lo, hi).get("comment", []):
        if node.start_byte < cursor < node.end_byte:
            return "comment"
        # A line comment runs on up to the end of its line: typing at its end extends it.
        text = source[node.start_byte : node.end_byte]
        if (
            cursor == node.end_byte
            and not text.endswith(b"\n")
            and not (block_end and text.endswith(block_end))
        ):
            return "comment"
    found = captures(language, "strings", root, lo, hi)
    innermost: tuple[int, str] | None = None
    for name in ("string", "interpolation"):
        for node in found.get(name, []):
            if node.start_byte < cursor < node.end_byte and (
                innermost is None or node.start_byte >= innermost[0]
            ):
                innermost = (node.start_byte, name)
    if innermost is not None and innermost[1] == "string":
        return "string"
    return None


def _inside_brackets(
    root: tree_sitter.Node, source: bytes, cursor: int, language: LanguageSpec
) -> bool:
    """Whether the innermost container around the cursor is a bracket pair, not a block."""
    lo, hi = max(cursor - 1, 0), cursor + 1
    blocks = {node_key(n) for n in captures(language, "blocks", root, lo, hi).get("block", [])}
    for node in ancestors(root.descendant_for_byte_range(cursor, cursor)):
        if node.parent is None:
            return False
        if not node.start_byte < cursor < node.end_byte:
            continue
        if node_key(node) in blocks:
            return False
        first = node.child(0) if node.child_count else None
        if (
            first is not None
            and not first.is_named
            and first.type in _OPEN_BRACKETS
            and first.end_byte <= cursor
        ):
            return True
    return False


def _ends_with_opener(
    root: tree_sitter.Node,
    source: bytes,
    cursor: int,
    before: bytes,
    language: LanguageSpec,
) -> bool:
    last = cursor - (len(before) - len(before.rstrip(_BLANKS)))  # just after the last token
    openers = captures(language, "blocks", root, last - 1, last).get("block.opener", [])
    return any(node.end_byte == last for node in openers)


def _body_empty(source: bytes, cursor: int, opener_line: bytes, after: bytes) -> bool:
    """Whether nothing follows the opener on the cursor's line: its body is still to write."""
    if after.strip(_BLANKS):
        return True  # only closers follow the cursor (rule 3 let them through)
    pos = line_end(source, cursor)
    while pos < len(source):
        end = line_end(source, pos)
        line = source[pos:end]
        if not is_blank(line):
            stripped = line.lstrip(_BLANKS)
            return stripped[:1] in (b"}", b")", b"]") or indentation(line) <= indentation(
                opener_line
            )
        pos = end
    return True


def _by_text(
    source: bytes,
    cursor: int,
    before: bytes,
    after: bytes,
    language: LanguageSpec | None,
    in_comments: TriviaSetting,
) -> ScopeDecision:
    if language is not None and language.line_comment and language.line_comment.encode() in before:
        return _from_setting(in_comments, "comment")
    if _mid_identifier(before, after):
        return ScopeDecision(Scope.NONE, "mid-identifier")
    if _before_text(before, after):
        return ScopeDecision(Scope.BLOCK, "before-code")
    if _code_right(after):
        return ScopeDecision(Scope.LINE, "code-right")
    if is_blank(before):
        prev_end = line_start(source, cursor)
        while prev_end > 0:
            prev_start = line_start(source, prev_end - 1)
            prev = source[prev_start:prev_end]
            if not is_blank(prev):
                if prev.rstrip(_BLANKS).endswith(_TEXT_OPENERS) and _body_empty(
                    source, cursor, prev, after
                ):
                    return ScopeDecision(Scope.BLOCK, "empty-block")
                break
            prev_end = prev_start
        return ScopeDecision(Scope.LINE, "new-line")
    if before.rstrip(_BLANKS).endswith(_TEXT_OPENERS) and _body_empty(
        source, cursor, before, after
    ):
        return ScopeDecision(Scope.BLOCK, "empty-block")
    return ScopeDecision(Scope.LINE, "statement")
