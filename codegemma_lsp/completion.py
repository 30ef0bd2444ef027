"""The request pipeline: from a document snapshot and a cursor to the text to show.

It knows nothing of LSP. ``plan_completion`` is pure (scope and windows, from the
syntax layer); ``run_completion`` calls the backend on the inference thread;
``finish_completion`` is pure post-processing (syntax-whole truncation). The
server, the ``complete`` command and the HumanEval harness all go through
``run_completion``, so what they measure is what an editor shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from codegemma_lsp.config import Settings
from codegemma_lsp.documents import DocumentSnapshot, TreeEdit
from codegemma_lsp.engine.base import Backend, CancelToken, FimRequest, Generation
from codegemma_lsp.syntax.cutpoints import Window, WindowBudget, choose_window, shift_window
from codegemma_lsp.syntax.languages import LanguageSpec
from codegemma_lsp.syntax.scope import Scope, completion_scope
from codegemma_lsp.syntax.truncation import truncate, truncate_explained

# A single line rarely needs more; the cap keeps a runaway line from costing a block's budget.
SINGLE_LINE_MAX_TOKENS = 48


@dataclass(frozen=True)
class CompletionQuery:
    """One document snapshot, a cursor (a str index into its text) and the last window."""

    document: DocumentSnapshot
    cursor: int
    path: str | None = None
    previous: Window | None = None


@dataclass(frozen=True)
class CompletionPlan:
    scope: Scope
    reason: str
    window: Window | None = None
    request: FimRequest | None = None


@dataclass(frozen=True)
class CompletionOutcome:
    text: str
    plan: CompletionPlan
    generation: Generation | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def cancelled(self) -> bool:
        return self.generation is not None and self.generation.stop_reason == "cancelled"


def carry_window(window: Window, edits: list[TreeEdit]) -> Window:
    """Move a window's offsets through edits made since it was chosen."""
    for edit in edits:
        window = shift_window(window, edit.start_byte, edit.old_end_byte, edit.new_end_byte)
    return window


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def plan_completion(
    query: CompletionQuery, settings: Settings, *, force: bool = False
) -> CompletionPlan:
    """Scope, windows and the FIM request; ``force`` plans a block where the scope says none
    (pre-warming wants the prompt, not an answer)."""
    snapshot = query.document
    data = snapshot.encoded
    cursor = snapshot.byte_at_offset(query.cursor)
    trivia = settings.completion.comments
    decision = completion_scope(
        snapshot.tree, data, cursor, snapshot.language, in_comments=trivia, in_strings=trivia
    )
    if decision.scope is Scope.NONE and not force:
        return CompletionPlan(decision.scope, decision.reason)
    scope = Scope.BLOCK if decision.scope is Scope.NONE else decision.scope
    fim = settings.fim
    live = fim.mode == "psm-line"
    budget = WindowBudget(
        prefix_tokens=fim.prefix_tokens,
        suffix_tokens=fim.suffix_tokens,
        middle_tokens=fim.middle_tokens if live else 0,
    )
    window = choose_window(
        snapshot.tree, data, cursor, budget, language=snapshot.language, previous=query.previous
    )
    max_new = settings.completion.max_new_tokens
    middle_start = min(max(window.middle_start, window.prefix_start), cursor)
    request = FimRequest(
        prefix=_decode(data[window.prefix_start : cursor]),
        suffix=_decode(data[cursor : window.suffix_end]),
        path=query.path if fim.path_line else None,
        mode=fim.mode,
        live_start=len(_decode(data[window.prefix_start : middle_start])) if live else None,
        max_new_tokens=min(max_new, SINGLE_LINE_MAX_TOKENS) if scope is Scope.LINE else max_new,
        single_line=scope is Scope.LINE,
        key=snapshot.uri,
        reuse_cache=settings.engine.kv_reuse,
        time_budget_ms=settings.engine.time_budget_ms,
        lookup_tokens=settings.engine.prompt_lookup,
    )
    if scope is Scope.BLOCK:
        request = replace(request, stop_check=PastTheEnd(request, snapshot.language))
    return CompletionPlan(scope, decision.reason, window, request)


class PastTheEnd:
    """A stop check for block completions: true once the text has run past its syntactic
    end (the block closed, or it reached text the suffix already has), so generation stops
    there instead of at the token limit. It keeps the time it spends, which is work outside
    llama.cpp even though it runs inside the generation loop."""

    def __init__(self, request: FimRequest, language: LanguageSpec | None) -> None:
        self.prefix, self.suffix, self.language = request.prefix, request.suffix, language
        self.spent_ms = 0.0

    def __call__(self, text: str) -> bool:
        started = time.perf_counter()
        result = truncate_explained(self.prefix, text, self.suffix, self.language, scope="block")
        self.spent_ms += (time.perf_counter() - started) * 1000
        cut_by_rule = result.reason not in ("complete", "not_whole", "empty")
        return cut_by_rule and result.kept < len(text.rstrip())


def finish_completion(plan: CompletionPlan, raw: str, snapshot: DocumentSnapshot) -> str:
    """The part of the raw model output to show: whole syntax, no repeat of the suffix."""
    if plan.request is None:
        return ""
    scope: Literal["line", "block"] = "line" if plan.scope is Scope.LINE else "block"
    text = truncate(plan.request.prefix, raw, plan.request.suffix, snapshot.language, scope=scope)
    return text if text.strip() else ""


def run_completion(
    backend: Backend,
    query: CompletionQuery,
    settings: Settings,
    cancel: CancelToken,
    context: Callable[[], tuple[tuple[str, str], ...]] | None = None,
) -> CompletionOutcome:
    """Plan, generate and truncate. ``context`` gives the packed repository files; it is
    called here, on the inference thread, because a cold build reads files."""
    started = time.perf_counter()
    plan = plan_completion(query, settings)
    if plan.request is not None and context is not None:
        plan = replace(plan, request=replace(plan.request, context=context()))
    planned = time.perf_counter()
    timings = {"plan": (planned - started) * 1000}
    if plan.request is None or cancel.cancelled:
        return CompletionOutcome("", plan, timings_ms=timings)
    generation = backend.complete(plan.request, cancel)
    generated = time.perf_counter()
    timings["infer"] = (generated - planned) * 1000
    if isinstance(plan.request.stop_check, PastTheEnd):
        timings["stop_check"] = plan.request.stop_check.spent_ms
    if generation.stop_reason == "cancelled":
        return CompletionOutcome("", plan, generation, timings)
    text = finish_completion(plan, generation.text, query.document)
    timings["truncate"] = (time.perf_counter() - generated) * 1000
    return CompletionOutcome(text, plan, generation, timings)
