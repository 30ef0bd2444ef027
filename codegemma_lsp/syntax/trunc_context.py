"""What the text around the cursor says about where a completion may end.

Truncation needs to know which block the cursor is in: inside a function a
completion may run on through several statements and close inner blocks, but it
must end where that function ends; in a class body or at the top level it ends
with the definition it opened. Indentation and the header lines above the
cursor answer this for any language, even while the document around the
cursor is broken; a parse of an unfinished function at the end of a file does
not (tree-sitter's recovery often leaves no function node there).

A *header* is a line above the cursor, less indented than everything after it
up to the cursor, so the cursor is inside the block it opens (or continues). The
words that say what a header opens are the language's (``[headers]`` in its
``language.toml``; ``grammars/unknown.toml`` for text of no known language).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

from codegemma_lsp.syntax.languages import HeaderWords
from codegemma_lsp.syntax.trunc_lexer import CLOSER_OF, LexRules

HeaderKind = Literal["function", "container", "control"]

_WORD = re.compile(r"[A-Za-z_]\w*")
_LABEL = re.compile(r"(?:case\b.*|default|[A-Za-z_]\w*)\s*:$")
# A line ending so continues onto the next: it cannot start a statement.
_CONTINUES = ("\\", ",", "(", "[", "=", "+", "-", "*", "/", "%", "&", "|", "^", "<", ">", ".", "?")


def indentation(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def first_word(text: str) -> str:
    match = _WORD.match(text)
    return match.group() if match else ""


@dataclass(frozen=True, slots=True)
class Syntax:
    """How truncation reads one language."""

    name: str
    lex: LexRules
    indent_blocks: bool
    """Blocks are made by indentation (``:`` opens one), not by brackets."""
    headers: HeaderWords = field(default_factory=HeaderWords)

    def is_comment(self, stripped: str) -> bool:
        lc = self.lex.line_comment
        if lc and stripped.startswith(lc):
            return True
        bc = self.lex.block_comment
        return bc is not None and (
            stripped.startswith(bc[0]) or stripped.startswith(bc[1]) or stripped.startswith("*")
        )

    def is_clause(self, stripped: str) -> bool:
        """A line that continues the statement before it (``else:``, ``} catch {``)."""
        return stripped[:1] in ")]}" or first_word(stripped) in self.headers.clause

    def is_ignorable(self, stripped: str) -> bool:
        """Blank, comment, preprocessor or attribute lines, and labels: never headers."""
        if not stripped or self.is_comment(stripped):
            return True
        if self.indent_blocks:
            return stripped.startswith("@")
        return stripped.startswith("#") or bool(_LABEL.match(stripped))

    def opens_block(self, stripped: str) -> bool:
        code = self.lex.code_end(stripped)
        if self.indent_blocks:
            return code.endswith(":")
        if self.headers.closers:  # keyword blocks: "if x then", "function f(a)"
            words = _WORD.findall(code)
            if words and words[-1] in self.headers.openers and code.endswith(words[-1]):
                return True
            return code.endswith(")") and self.kind_of(code) == "function"
        return code.endswith("{")

    def kind_of(self, stripped: str) -> HeaderKind:
        words = self.headers
        if not self.indent_blocks and stripped.startswith("}"):
            return "control"
        rest = stripped
        word = first_word(rest)
        while word and word in words.modifiers:  # "async def", "local function"
            rest = rest[len(word) :].lstrip()
            word = first_word(rest)
        if word in words.function:
            return "function"
        if self.indent_blocks:
            return "container" if word in words.container else "control"
        if word in words.control:
            return "control"
        head = re.split(r"[({=]", stripped, maxsplit=1)[0]
        if any(w in words.container for w in _WORD.findall(head)):
            return "container"
        if "(" in stripped or "=>" in stripped or "->" in stripped:
            return "function"
        return "control"


@dataclass(frozen=True, slots=True)
class Header:
    """A line above the cursor whose block holds the cursor."""

    offset: int  # where its line starts in the prefix
    indent: int
    source: str  # its line(s) as written, with newline(s)
    kind: HeaderKind
    opens: bool  # ends with the language's block opener (``:`` or ``{``)
    startable: bool  # a statement starts there (``else:`` does not)

    def closers(self, lex: LexRules) -> str:
        """What closes the brackets this header leaves open (for a synthetic tail)."""
        return "".join(CLOSER_OF[b.char] for b in reversed(lex.open_brackets(self.source)))


@dataclass(frozen=True, slots=True)
class CursorContext:
    prefix: str
    suffix: str
    line_prefix: str  # the cursor's line, up to the cursor
    rest: str  # the cursor's line after the cursor
    indent: int  # indentation of the line the completion's content starts on
    chain: tuple[Header, ...]  # innermost first
    function: Header | None  # outermost function inside the innermost container
    container: Header | None  # innermost container, when no function encloses the cursor
    function_depth: int  # brackets open at the cursor since the function's body opened

    @property
    def at_line_start(self) -> bool:
        return not self.line_prefix.strip()

    @property
    def rest_blank(self) -> bool:
        return not self.rest.strip()

    def next_line(self) -> str | None:
        """The first non-blank line the suffix puts after the completion, as written."""
        if not self.rest_blank:
            return self.line_prefix + self.rest if self.at_line_start else self.rest
        for line in self.suffix.split("\n", 20)[1:20]:
            if line.strip():
                return line
        return None


def cursor_context(
    prefix: str, suffix: str, content_indent: int | None, syntax: Syntax
) -> CursorContext:
    """Read the cursor's surroundings. ``content_indent`` is the indentation of the
    completion's first line when the cursor sits on a blank line."""
    row_start = prefix.rfind("\n") + 1
    line_prefix = prefix[row_start:]
    newline = suffix.find("\n")
    rest = suffix if newline < 0 else suffix[:newline]
    if line_prefix.strip():
        indent = indentation(line_prefix)
    else:
        # The deeper of the completion's first line and the rest of the cursor's
        # line: a completion that starts by running on must not move the cursor out.
        known = [i for i in (content_indent,) if i is not None]
        if rest.strip():
            known.append(len(line_prefix) + indentation(rest))
        indent = max(known, default=len(line_prefix))
    chain = _chain(prefix, row_start, line_prefix, rest, indent, syntax)
    function: Header | None = None
    container: Header | None = None
    for header in chain:
        if header.kind == "container":
            if function is None:
                container = header
            break
        if header.kind == "function":
            function = header  # the outermost: nested functions may return to it
    depth = 0
    if function is not None and not syntax.indent_blocks:
        stack = syntax.lex.open_brackets(prefix[function.offset :])
        body = next((i for i, b in enumerate(stack) if b.char == "{"), 0)
        depth = max(1, len(stack) - body)
    return CursorContext(
        prefix, suffix, line_prefix, rest, indent, tuple(chain), function, container, depth
    )


def _chain(
    prefix: str, row_start: int, line_prefix: str, rest: str, indent: int, syntax: Syntax
) -> list[Header]:
    chain: list[Header] = []
    limit = indent
    stripped = line_prefix.strip()
    if stripped and not rest.strip() and syntax.opens_block(stripped):
        header = _header_at(prefix, row_start, line_prefix, syntax)
        if header is not None:
            chain.append(header)
            limit = header.indent
            row_start = header.offset
    above = prefix[:row_start]
    end = len(above)
    while limit > 0:
        first = last_shallow_line(above, end, limit)
        if first < 0:
            break
        start = above.rfind("\n", 0, first) + 1
        line_end = above.find("\n", first)
        header = _header_at(
            prefix, start, above[start : line_end if line_end >= 0 else end], syntax
        )
        if header is not None:
            chain.append(header)
            limit = header.indent
            start = header.offset
        end = start
    return chain


def last_shallow_line(text: str, end: int, limit: int) -> int:
    """Where the first character of the last line before ``end`` that is indented
    less than ``limit`` is; -1 if none. Searches backwards chunk by chunk."""
    pattern = _shallow_line(limit)
    while end > 0:
        low = max(0, end - 8192)
        last = None
        for last in pattern.finditer(text, low, end):  # noqa: B007 (the last one is wanted)
            pass
        if last is not None:
            return last.end()
        end = low
    return -1


@cache
def _shallow_line(limit: int) -> re.Pattern[str]:
    """The start of a line indented less than ``limit``, up to its first character."""
    return re.compile(rf"^[ \t]{{0,{limit - 1}}}(?=\S)", re.MULTILINE)


def _header_at(prefix: str, start: int, line: str, syntax: Syntax) -> Header | None:
    stripped = line.strip()
    if syntax.is_ignorable(stripped):
        return None
    top = start
    previous_start, previous = _previous_code_line(prefix, start, syntax)
    if (
        not syntax.indent_blocks
        and syntax.lex.code_end(stripped) == "{"
        and previous is not None
        and indentation(previous) == indentation(line)
    ):
        # Allman style: the header is the line above, with its brace.
        top = previous_start
        previous_start, previous = _previous_code_line(prefix, previous_start, syntax)
    elif stripped[0] in ")]}" and not syntax.opens_block(stripped):
        return None
    # A statement continued from the lines above (a template line, a long
    # signature) starts up there.
    for _ in range(8):
        if previous is None or not is_continued(previous, syntax):
            break
        top = previous_start
        previous_start, previous = _previous_code_line(prefix, previous_start, syntax)
    else:
        return None
    return _header(prefix[top : start + len(line)], top, syntax)


def _header(source: str, start: int, syntax: Syntax) -> Header:
    stripped = source.strip()
    first_line = source.split("\n", 1)[0]
    return Header(
        offset=start,
        indent=indentation(first_line),
        source=source + "\n",
        kind=syntax.kind_of(stripped),
        opens=syntax.opens_block(stripped),
        startable=not syntax.is_clause(stripped),
    )


def _previous_code_line(prefix: str, start: int, syntax: Syntax) -> tuple[int, str | None]:
    end = start - 1
    while end >= 0:
        begin = prefix.rfind("\n", 0, end) + 1
        line = prefix[begin:end]
        stripped = line.strip()
        if stripped and not syntax.is_comment(stripped):
            return begin, line
        end = begin - 1
    return 0, None


def is_continued(line: str, syntax: Syntax) -> bool:
    """Whether ``line`` leaves its statement open for the next line."""
    return syntax.lex.code_end(line).endswith(_CONTINUES)
