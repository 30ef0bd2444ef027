"""Brackets in a stretch of source text, for truncation.

A regular expression skips strings and comments well enough to count brackets
in a generated middle or a header line; it needs no tree and no complete
document, which a parser does. It is approximate on purpose (verbatim and raw
strings, nested block comments): whatever it gets wrong, the parse that judges
each cut catches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

OPENERS = "([{"
CLOSERS = ")]}"
MATCHING = {")": "(", "]": "[", "}": "{"}
CLOSER_OF = {"(": ")", "[": "]", "{": "}"}

# Rust's lifetimes ('a) are not strings; only its character literals are.
_RUST_CHAR = r"'(?:\\(?:u\{[0-9a-fA-F]{1,6}\}|x[0-9a-fA-F]{2}|.)|[^'\\\n])'"
_QUOTED_CHAR = r"'(?:\\.|[^'\\\n])*(?:'|(?=\n)|\Z)"


@dataclass(frozen=True, slots=True)
class Bracket:
    pos: int
    char: str


@dataclass(frozen=True, slots=True)
class Lexed:
    """Brackets in order, and the spans of strings and comments (sorted, disjoint)."""

    brackets: tuple[Bracket, ...]
    opaque: tuple[tuple[int, int], ...]


@cache
def _pattern(
    line_comment: str | None, block_comment: tuple[str, str] | None, rust: bool
) -> re.Pattern[str]:
    parts = []
    if block_comment is not None:
        start, end = (re.escape(s) for s in block_comment)
        parts.append(rf"{start}.*?(?:{end}|\Z)")
    if line_comment:
        parts.append(rf"{re.escape(line_comment)}[^\n]*")
    parts += [
        r'"""(?:\\.|[^\\])*?(?:"""|\Z)',
        r"'''(?:\\.|[^\\])*?(?:'''|\Z)",
        r'"(?:\\.|[^"\\\n])*(?:"|(?=\n)|\Z)',
        _RUST_CHAR if rust else _QUOTED_CHAR,
        r"`(?:\\.|[^`\\])*(?:`|\Z)",
    ]
    opaque = "|".join(parts)
    return re.compile(rf"(?P<opaque>{opaque})|(?P<bracket>[()\[\]{{}}])", re.DOTALL)


@dataclass(frozen=True, slots=True)
class LexRules:
    """What the lexer must know of a language."""

    line_comment: str | None
    block_comment: tuple[str, str] | None
    rust_lifetimes: bool = False

    def lex(self, text: str) -> Lexed:
        pattern = _pattern(self.line_comment, self.block_comment, self.rust_lifetimes)
        brackets: list[Bracket] = []
        opaque: list[tuple[int, int]] = []
        for match in pattern.finditer(text):
            if match.lastgroup == "bracket":
                brackets.append(Bracket(match.start(), match.group()))
            else:
                opaque.append(match.span())
        return Lexed(tuple(brackets), tuple(opaque))

    def open_brackets(self, text: str) -> list[Bracket]:
        """The brackets still open at the end of ``text``, outermost first."""
        stack: list[Bracket] = []
        for bracket in self.lex(text).brackets:
            if bracket.char in OPENERS:
                stack.append(bracket)
            elif stack:
                stack.pop()
        return stack

    def net_depth(self, text: str) -> int:
        """Openers minus closers in ``text`` (strings and comments skipped)."""
        depth = 0
        for bracket in self.lex(text).brackets:
            depth += 1 if bracket.char in OPENERS else -1
        return depth

    def code_end(self, line: str) -> str:
        """``line`` without trailing comments, right-stripped."""
        code = line.rstrip()
        markers = [m for m in (self.line_comment, *(self.block_comment or ())) if m]
        if not any(m in code for m in markers):
            return code
        for start, end in reversed(self.lex(code).opaque):
            if end < len(code) or not code.startswith(tuple(markers), start):
                break
            code = code[:start].rstrip()
        return code
