"""Truncation: the part of a generated middle worth showing.

Models run on past the end of what they were asked for: after the block, into
the text that already follows the cursor, into a new function. Truncation is a
pure function of (prefix, generated, suffix, language) that keeps the longest
beginning of the generated text which

1. stops where the rules in :mod:`trunc_rules` say it must (the end of the
   block it is in or opened, text the suffix already has, a closing bracket
   the suffix supplies, a single line when asked for one), and
2. is syntactically whole: ``prefix + kept + suffix`` has no more ERROR or
   MISSING nodes than ``prefix + suffix`` had, judged on a window of the
   document around the cursor (:mod:`trunc_window`).

Cuts are tried from the longest: the rules' cut first, then the ends of lines
before it (skipping those past the first error the last parse found); the empty
completion is always whole. Most calls parse twice: the document without the
middle, and the rules' cut. An unknown language (``language=None``) gets the
line rules alone, without parsing.

The kept text is always a prefix of the generated text, its trailing
whitespace fitted to the cursor (:func:`_finish`): from column 0 it is whole
lines with their final newline; where the rest of the cursor's line is blank
it ends with its last character; where that rest follows it, it ends where the
rest joins (with the indentation it needs, without blank lines before it).

Every parse stops at a deadline (:data:`PARSE_DEADLINE_S`): some grammars take
seconds, even minutes, on odd text. Past it the rules' cut is returned unjudged.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import cache

from codegemma_lsp.syntax.languages import LanguageSpec, fallback_headers
from codegemma_lsp.syntax.parsing import ParseTimeout
from codegemma_lsp.syntax.trunc_context import (
    CursorContext,
    Syntax,
    cursor_context,
    indentation,
)
from codegemma_lsp.syntax.trunc_lexer import LexRules
from codegemma_lsp.syntax.trunc_rules import (
    Generated,
    Proposal,
    Scope,
    line_cut,
    propose,
    read_generated,
)
from codegemma_lsp.syntax.trunc_window import Judge, choose_parse_window

__all__ = ["Scope", "TruncationResult", "truncate", "truncate_explained"]

log = logging.getLogger(__name__)

# Parses spent looking for a whole cut shorter than the rules' cut.
MAX_PARSES = 8
# Parsing time allowed per call; tree-sitter can take seconds on odd text.
PARSE_DEADLINE_S = 0.05


@dataclass(frozen=True, slots=True)
class TruncationResult:
    """The text to show, and why it ends there (for logs)."""

    text: str
    reason: str  # a rule from trunc_rules, "complete", "not_whole", "empty" or "unjudged"
    kept: int  # characters of the generated text kept before trimming
    parses: int


def truncate(
    prefix: str,
    generated: str,
    suffix: str,
    language: LanguageSpec | None,
    *,
    scope: Scope | None = None,
) -> str:
    """The part of ``generated`` to show between ``prefix`` and ``suffix``."""
    return truncate_explained(prefix, generated, suffix, language, scope=scope).text


def truncate_explained(
    prefix: str,
    generated: str,
    suffix: str,
    language: LanguageSpec | None,
    *,
    scope: Scope | None = None,
) -> TruncationResult:
    """:func:`truncate`, with the reason for the cut."""
    if not generated.strip():
        return TruncationResult("", "empty", 0, 0)
    deadline = time.perf_counter() + PARSE_DEADLINE_S
    syntax = _syntax(language) if language is not None else None
    ctx = cursor_context(prefix, suffix, _content_indent(prefix, generated), syntax or _PLAIN)
    gen = read_generated(generated, ctx, syntax.lex if syntax else None)
    proposal = propose(gen, ctx, syntax, scope)
    if language is None or syntax is None:
        return TruncationResult(
            _finish(gen.text, proposal.cut, ctx), proposal.reason, proposal.cut, 0
        )
    try:
        window = choose_parse_window(ctx, syntax)
        return _judged(gen, ctx, proposal, Judge(language, window, deadline))
    except ParseTimeout:
        log.info("truncation: %s parse timed out; the cut is not checked", language.name)
        text = _finish(gen.text, proposal.cut, ctx)
        return TruncationResult(text, "unjudged", proposal.cut, 0)


def _judged(
    gen: Generated, ctx: CursorContext, proposal: Proposal, judge: Judge
) -> TruncationResult:
    """The longest whole cut at or before the rules' cut."""
    tried: set[str] = set()
    limit = proposal.cut
    for cut in _cuts(gen, ctx, proposal.cut):
        if cut > limit:
            continue
        text = _finish(gen.text, cut, ctx)
        if text in tried:
            continue
        tried.add(text)
        reason = proposal.reason if cut == proposal.cut else "not_whole"
        if not text:
            return TruncationResult("", reason, cut, judge.parses)
        if judge.parses >= MAX_PARSES:
            break
        verdict = judge.verdict(text)
        if verdict.whole(judge.baseline):
            return TruncationResult(text, reason, cut, judge.parses)
        if verdict.first_error is not None:
            limit = min(limit, _line_end_after(gen.text, verdict.first_error))
    return TruncationResult("", "not_whole", 0, judge.parses)


_PLAIN = Syntax("", LexRules(None, None), indent_blocks=False, headers=fallback_headers())


@cache
def _syntax(language: LanguageSpec) -> Syntax:
    lex = LexRules(
        language.line_comment, language.block_comment, rust_lifetimes=language.quote_lifetimes
    )
    return Syntax(
        language.name, lex, indent_blocks=language.indent_blocks, headers=language.headers
    )


def _content_indent(prefix: str, generated: str) -> int | None:
    """The indentation of the completion's first line of content, when the
    cursor's line is blank before the cursor."""
    line_prefix = prefix[prefix.rfind("\n") + 1 :]
    if line_prefix.strip():
        return None
    for i, line in enumerate(generated.split("\n", 8)[:8]):
        if line.strip():
            return indentation(line_prefix + line if i == 0 else line)
    return None


def _cuts(gen: Generated, ctx: CursorContext, first: int) -> list[int]:
    """Cuts to try, longest first: the rules' cut, then line ends (or starts) before it."""
    if not ctx.at_line_start and not ctx.rest_blank:
        ends = [line.end for line in gen.lines]  # the suffix goes on on the cursor's line
    else:
        ends = [line_cut(gen, ctx, i) for i in range(1, len(gen.lines))]
    return [first, *sorted((c for c in ends if c < first), reverse=True)]


def _line_end_after(text: str, pos: int) -> int:
    newline = text.find("\n", pos)
    return len(text) if newline < 0 else newline + 1


def _finish(text: str, cut: int, ctx: CursorContext) -> str:
    """``text[:cut]`` with its trailing whitespace fitted to the cursor."""
    kept = text[:cut]
    body = kept.rstrip()
    if not body:
        return ""
    end = len(body)
    newline = text.find("\n", end)
    ends_line = newline >= 0 and not text[end:newline].strip()
    if not ctx.line_prefix and ends_line:
        # From column 0 the completion is whole lines: keep the newline that ends
        # the last one, even when a repeat of the suffix claimed it.
        return text[: newline + 1]
    if ctx.rest_blank:
        return body
    if ctx.at_line_start and ctx.line_prefix and not ctx.rest[0].isspace():
        # The cursor ends its line's indentation, and the rest of that line
        # follows: the completion must end with a newline and that indentation.
        if ends_line and text.startswith(ctx.line_prefix, newline + 1):
            return text[: newline + 1 + len(ctx.line_prefix)]
        return body  # the parse will reject it rather than move the rest
    # The rest of the cursor's line joins the line the completion ends on: blank
    # lines before it go, indentation the completion put there for it stays.
    tail = kept[end:]
    if tail.count("\n") <= 1:
        return kept
    rows = tail.split("\n")
    for k in range(1, len(rows)):
        if rows[k]:
            return text[: end + len("\n".join(rows[: k + 1]))]
    return text[: end + 1] if ctx.at_line_start else body
