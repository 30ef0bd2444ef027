"""The benchmark's oracle stop: generation ends where a real model's would.

``codegemma-lsp bench replay`` runs a model of CodeGemma 2B's shapes with random
weights. Its speed per token is real, but where it stops is not: its text is noise,
so it runs to a limit that a real completion rarely reaches, and the benchmark would
time the limit rather than the engine. So, for a server started with ``serve
--bench-oracle`` (a flag only the benchmark passes; no setting reaches this), the
replay tells the server before each request what the typist types next at the
cursor (the ``codegemma/benchOracle`` notification), and generation is cut to what
a model that got it right would write:

- the text is the typist's next text cut at the completion's scope, by the same
  truncation that cuts the model's output (one line, or the block);
- a block answered by its first line (:mod:`codegemma_lsp.first_line`) stops after
  that line, and its rest after the rest;
- the model may generate exactly the tokens of that text plus one, the step in
  which a real model would choose its end token; none of the model's own stops
  apply, since random weights stop at random.

The random weights then cost what real ones would, and their text stays noise. A
place the replay said nothing about (background work, such as a precompute after
an accept) gets the empty text: the model stops at once.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from codegemma_lsp.engine.base import GenerationPolicy, Tokenizer, single_line_end
from codegemma_lsp.prompt import PromptParts
from codegemma_lsp.syntax.languages import LanguageSpec
from codegemma_lsp.syntax.scope import Scope
from codegemma_lsp.syntax.truncation import truncate

MAX_TYPED_CHARS = 2000
"""More than any completion holds; keeps truncation's parse short."""


def oracle_completion(
    parts: PromptParts, typed: str, scope: Scope, language: LanguageSpec | None
) -> str:
    """What a right completion of ``scope`` holds, when the typist types ``typed`` next."""
    if not typed.strip():
        return ""
    kind: Literal["line", "block"] = "line" if scope is Scope.LINE else "block"
    return truncate(parts.prefix, typed[:MAX_TYPED_CHARS], parts.suffix, language, scope=kind)


def oracle_policy(policy: GenerationPolicy, text: str, tokenizer: Tokenizer) -> GenerationPolicy:
    """``policy`` cut to the tokens of ``text`` and one more, with the model's stops off."""
    tokens = len(tokenizer.tokenize(text)) if text else 0
    return replace(
        policy,
        max_new_tokens=min(policy.max_new_tokens, tokens + 1),
        end_ids=frozenset(),
        stop_ids=frozenset(),
        single_line=False,
        stop_check=None,
    )


def answered_text(oracle: str, first_line_only: bool) -> str:
    """The part of the oracle's completion that one answer generates."""
    if not first_line_only:
        return oracle
    end = single_line_end(oracle)
    return oracle if end is None else oracle[:end]


class OracleBook:
    """What the typist types next, per document, as the benchmark said just before a request.

    Only the newest entry per document is kept; it applies to the revision and cursor it
    was given for.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, int, str]] = {}

    def tell(self, uri: str, revision: int, cursor: int, typed: str) -> None:
        self._entries[uri] = (revision, cursor, typed)

    def typed_at(self, uri: str, revision: int, cursor: int) -> str:
        """The text told for this place, or "" (nothing is typed there)."""
        entry = self._entries.get(uri)
        if entry is None or entry[:2] != (revision, cursor):
            return ""
        return entry[2]

    def forget(self, uri: str) -> None:
        self._entries.pop(uri, None)
