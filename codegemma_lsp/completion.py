"""The request pipeline: from a document snapshot and a cursor to the text to show.

It knows nothing of LSP. ``plan_completion`` is pure (scope and windows);
``run_completion`` calls the backend on the inference thread; ``finish_completion``
is pure post-processing. The server and the ``complete`` command both go
through ``run_completion``, so what the command prints is what an editor shows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

import tree_sitter

from codegemma_lsp.config import Settings
from codegemma_lsp.engine.base import Backend, CancelToken, FimRequest, Generation
from codegemma_lsp.syntax.languages import LanguageSpec

log = logging.getLogger(__name__)

Scope = Literal["none", "line", "block"]

# The backend fits the windows to exact token budgets; this cheap bound keeps the
# text handed to the tokenizer small on huge files (code averages 3-4 chars a token).
CHARS_PER_TOKEN_BOUND = 6


@dataclass(frozen=True)
class CompletionQuery:
    """A read-only view of one document at one cursor (a str index into ``text``)."""

    text: str
    cursor: int
    language: LanguageSpec | None = None
    tree: tree_sitter.Tree | None = None
    path: str | None = None


@dataclass(frozen=True)
class CompletionPlan:
    request: FimRequest
    scope: Scope
    reason: str


@dataclass(frozen=True)
class CompletionOutcome:
    text: str
    plan: CompletionPlan | None
    generation: Generation | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def cancelled(self) -> bool:
        return self.generation is not None and self.generation.stop_reason == "cancelled"


def decide_scope(text: str, cursor: int) -> tuple[Scope, str]:
    """Line-based scope: code to the right of the cursor means a single line."""
    line_end = text.find("\n", cursor)
    rest_of_line = text[cursor : len(text) if line_end < 0 else line_end]
    if rest_of_line.strip():
        return "line", "code right of cursor"
    return "block", "end of line"


def plan_completion(query: CompletionQuery, settings: Settings) -> CompletionPlan | None:
    scope, reason = decide_scope(query.text, query.cursor)
    if scope == "none":
        return None
    fim = settings.fim
    prefix_start = max(0, query.cursor - fim.prefix_tokens * CHARS_PER_TOKEN_BOUND)
    suffix_end = min(len(query.text), query.cursor + fim.suffix_tokens * CHARS_PER_TOKEN_BOUND)
    request = FimRequest(
        prefix=query.text[prefix_start : query.cursor],
        suffix=query.text[query.cursor : suffix_end],
        path=query.path if fim.path_line else None,
        max_new_tokens=settings.completion.max_new_tokens,
        single_line=scope == "line",
    )
    return CompletionPlan(request=request, scope=scope, reason=reason)


def finish_completion(plan: CompletionPlan, raw: str) -> str:
    """The part of the raw model output to show."""
    text = raw
    if plan.scope == "line":
        text = text.split("\n", 1)[0]
    return text.rstrip()


def run_completion(
    backend: Backend, query: CompletionQuery, settings: Settings, cancel: CancelToken
) -> CompletionOutcome:
    started = time.perf_counter()
    plan = plan_completion(query, settings)
    planned = time.perf_counter()
    if plan is None or cancel.cancelled:
        return CompletionOutcome("", plan, timings_ms={"plan": (planned - started) * 1000})
    generation = backend.complete(plan.request, cancel)
    generated = time.perf_counter()
    text = "" if generation.stop_reason == "cancelled" else finish_completion(plan, generation.text)
    finished = time.perf_counter()
    return CompletionOutcome(
        text,
        plan,
        generation,
        timings_ms={
            "plan": (planned - started) * 1000,
            "infer": (generated - planned) * 1000,
            "finish": (finished - generated) * 1000,
        },
    )
