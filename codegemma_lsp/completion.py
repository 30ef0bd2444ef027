"""The request pipeline: from a document snapshot and a cursor to the text to show.

It knows nothing of LSP. :func:`run_completion` runs five stages in order, on the
inference thread, and times each one:

1. **plan** (:func:`plan_completion`, pure): the scope (a line, a block, nothing)
   and the prompt's window, cut at syntax nodes; the prompt's text
   (:class:`~codegemma_lsp.prompt.PromptParts`) and the generation's limits
   (:class:`~codegemma_lsp.engine.base.GenerationPolicy`);
2. **context**: the repository files packed before the current one, from the
   snapshot's own text and tree (a :data:`ContextProvider`);
3. **prompt** (:func:`build_completion_prompt`): the token ids, from
   :func:`codegemma_lsp.prompt.build_prompt` with the backend's tokenizer, already
   fitted to its ``n_ctx``, and the policy with the special tokens' stop ids;
4. **generate**: ``backend.generate(ids, policy, cancel)``, ids in, tokens out;
5. **truncate** (:func:`finish_completion`, pure): the syntactically whole part.

The cancel flag is read between stages. The server, the ``complete`` and ``prompt``
commands and the HumanEval harness all go through these functions, so what they
show is what an editor gets: ``codegemma-lsp prompt`` prints the ids of stage 3.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from codegemma_lsp.confidence import Confidence, confidence_of, shown
from codegemma_lsp.config import FimMode, Settings
from codegemma_lsp.documents import DocumentSnapshot, TreeEdit
from codegemma_lsp.engine.base import (
    Backend,
    CancelToken,
    Generation,
    GenerationPolicy,
    Tokenizer,
)
from codegemma_lsp.first_line import first_line_policy, line_policy
from codegemma_lsp.oracle import answered_text, oracle_completion, oracle_policy
from codegemma_lsp.pacing import middle_fill, paced_settings
from codegemma_lsp.prompt import FimTokens, PromptParts, build_prompt, context_budget
from codegemma_lsp.syntax.cutpoints import Window, WindowBudget, choose_window, shift_window
from codegemma_lsp.syntax.languages import LanguageSpec
from codegemma_lsp.syntax.scope import Scope, completion_scope
from codegemma_lsp.syntax.truncation import truncate, truncate_explained

# A single line rarely needs more; the cap keeps a runaway line from costing a block's budget.
SINGLE_LINE_MAX_TOKENS = 48

ContextFiles = tuple[tuple[str, str], ...]
"""Repository files packed before the current one: (workspace-relative path, text)."""

ContextProvider = Callable[[DocumentSnapshot], ContextFiles]
"""The context stage: the packed files for a snapshot, from its text and tree. It may
read files, so it runs on the inference thread; a cold build is finished even when the
request is cancelled meanwhile, so that the next keystroke finds it warm."""

STAGES = ("plan", "context", "prompt", "generate", "truncate")
"""The pipeline's stages, in order; :attr:`CompletionOutcome.timings_ms` has one key each
(for the stages that ran), and ``stop_check``: the part of ``generate`` spent in the
syntax stop check."""


@dataclass(frozen=True)
class CompletionQuery:
    """One document snapshot, a cursor (a str index into its text) and the last window."""

    document: DocumentSnapshot
    cursor: int
    path: str | None = None
    previous: Window | None = None
    first_line: bool = False
    """Answer a block with its first line; the caller generates the rest
    (:mod:`codegemma_lsp.block_rest`). Without it a block is answered whole, unless
    ``completion.multiLine`` is off, which keeps the first line alone."""
    oracle: str | None = None
    """Benchmark only: what the typist types next here (:mod:`codegemma_lsp.oracle`)."""


@dataclass(frozen=True)
class CompletionPlan:
    """Stage 1's answer: where the completion goes, and what the prompt holds."""

    scope: Scope
    reason: str
    window: Window | None = None
    parts: PromptParts | None = None
    """The prompt's text, without context files (stage 2 adds them); None: no completion."""
    mode: FimMode = "psm"
    policy: GenerationPolicy = field(default_factory=GenerationPolicy)
    """Limits, deadline, stop check and cache key; stage 3 adds the stop ids."""
    rest: GenerationPolicy | None = None
    """A block answered by its first line: the whole block's policy, for its rest."""
    oracle: str | None = None
    """Benchmark only: the completion a right model would write (:mod:`codegemma_lsp.oracle`)."""


@dataclass(frozen=True)
class CompletionPrompt:
    """Stage 3's answer: the ids the model is given, and the policy to generate with."""

    ids: list[int]
    policy: GenerationPolicy
    parts: PromptParts
    """The text the ids were built from, context files included (before the n_ctx fit)."""


@dataclass(frozen=True)
class Candidate:
    """One suggestion to show: its truncated text, and how sure the model was of it."""

    text: str
    confidence: Confidence | None = None


@dataclass(frozen=True)
class CompletionOutcome:
    text: str
    """The first candidate's text ("" when none is shown)."""
    plan: CompletionPlan
    generation: Generation | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    """Milliseconds per stage (see :data:`STAGES`)."""
    prompt: CompletionPrompt | None = None
    candidates: tuple[Candidate, ...] = ()
    """Every candidate to show, the first one's text being :attr:`text`; empty when the
    outcome was made without them (a block's rest), which means :attr:`text` alone."""
    suppressed: int = 0
    """Candidates left unshown because their confidence was below ``completion.minConfidence``."""

    @property
    def cancelled(self) -> bool:
        return self.generation is not None and self.generation.stop_reason == "cancelled"

    @property
    def texts(self) -> tuple[str, ...]:
        """The texts to show, first candidate first."""
        if self.candidates:
            return tuple(c.text for c in self.candidates)
        return (self.text,) if self.text else ()


def carry_window(window: Window, edits: list[TreeEdit]) -> Window:
    """Move a window's offsets through edits made since it was chosen."""
    for edit in edits:
        window = shift_window(window, edit.start_byte, edit.old_end_byte, edit.new_end_byte)
    return window


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


# ----- 1. plan --------------------------------------------------------------------------


def plan_completion(
    query: CompletionQuery, settings: Settings, *, force: bool = False
) -> CompletionPlan:
    """Scope, window, prompt text and generation policy; ``force`` plans a block where the
    scope says none (pre-warming wants the prompt, not an answer). Auto budgets get the
    fixed defaults unless the caller paced the settings (:mod:`codegemma_lsp.pacing`)."""
    settings = paced_settings(settings)
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
        middle_fill=middle_fill(fim.suffix_tokens, fim.middle_tokens),
    )
    window = choose_window(
        snapshot.tree, data, cursor, budget, language=snapshot.language, previous=query.previous
    )
    middle_start = min(max(window.middle_start, window.prefix_start), cursor)
    parts = PromptParts(
        prefix=_decode(data[window.prefix_start : cursor]),
        suffix=_decode(data[cursor : window.suffix_end]),
        path=query.path if fim.path_line else None,
        live_start=len(_decode(data[window.prefix_start : middle_start])) if live else None,
    )
    max_new = settings.completion.max_new_tokens
    engine = settings.engine
    policy = GenerationPolicy(
        max_new_tokens=min(max_new, SINGLE_LINE_MAX_TOKENS) if scope is Scope.LINE else max_new,
        single_line=scope is Scope.LINE,
        time_budget_ms=engine.time_budget_ms,
        stop_check=PastTheEnd(parts, snapshot.language) if scope is Scope.BLOCK else None,
        key=snapshot.uri,
        reuse_cache=engine.kv_reuse,
        lookup_tokens=engine.prompt_lookup,
    )
    rest = None
    multi_line = settings.completion.multi_line
    if scope is Scope.BLOCK and (query.first_line or multi_line == "off"):
        rest = policy if multi_line == "on" else None
        policy = first_line_policy(policy)
    elif scope is Scope.LINE:
        policy = line_policy(policy, parts.suffix)
    oracle = (
        oracle_completion(parts, query.oracle, scope, snapshot.language)
        if query.oracle is not None
        else None
    )
    if oracle == "" and not force:  # the benchmark: a right model would show nothing here
        return CompletionPlan(scope, "oracle-empty", window)
    return CompletionPlan(
        scope, decision.reason, window, parts, fim.mode, policy, rest=rest, oracle=oracle
    )


class PastTheEnd:
    """A stop check for block completions: true once the text has run past its syntactic
    end (the block closed, or it reached text the suffix already has), so generation stops
    there instead of at the token limit. It keeps the time it spends, which is work outside
    llama.cpp even though it runs inside the generation loop."""

    def __init__(self, parts: PromptParts, language: LanguageSpec | None) -> None:
        self.prefix, self.suffix, self.language = parts.prefix, parts.suffix, language
        self.spent_ms = 0.0

    def __call__(self, text: str) -> bool:
        started = time.perf_counter()
        result = truncate_explained(self.prefix, text, self.suffix, self.language, scope="block")
        self.spent_ms += (time.perf_counter() - started) * 1000
        cut_by_rule = result.reason not in ("complete", "not_whole", "empty")
        return cut_by_rule and result.kept < len(text.rstrip())


# ----- 3. prompt ------------------------------------------------------------------------


def build_completion_prompt(
    plan: CompletionPlan, files: ContextFiles, tokenizer: Tokenizer, n_ctx: int
) -> CompletionPrompt:
    """The prompt ids for ``plan`` with the context ``files``, fitted to ``n_ctx`` with room
    for the plan's new tokens, and the policy with the vocabulary's stop ids.

    Raises ValueError when the plan has no prompt, or the vocabulary lacks a FIM token.
    """
    if plan.parts is None:
        raise ValueError(f"no prompt: {plan.reason}")
    special = FimTokens.lookup(tokenizer)
    budget, max_new = context_budget(n_ctx, plan.policy.max_new_tokens)
    parts = replace(plan.parts, context=files)
    ids = build_prompt(tokenizer, special, parts, plan.mode, budget)
    policy = replace(
        plan.policy, max_new_tokens=max_new, end_ids=special.end_ids, stop_ids=special.stop_ids
    )
    if plan.oracle is not None:
        first_only = plan.scope is Scope.BLOCK and plan.policy.single_line
        policy = oracle_policy(policy, answered_text(plan.oracle, first_only), tokenizer)
    return CompletionPrompt(ids, policy, parts)


# ----- 5. truncate ----------------------------------------------------------------------


def finish_completion(plan: CompletionPlan, raw: str, snapshot: DocumentSnapshot) -> str:
    """The part of the raw model output to show: whole syntax, no repeat of the suffix."""
    if plan.parts is None:
        return ""
    scope: Literal["line", "block"] = "line" if plan.scope is Scope.LINE else "block"
    text = truncate(plan.parts.prefix, raw, plan.parts.suffix, snapshot.language, scope=scope)
    return text if text.strip() else ""


def finish_candidates(
    plan: CompletionPlan,
    generation: Generation,
    snapshot: DocumentSnapshot,
    min_confidence: float = 0.0,
) -> tuple[tuple[Candidate, ...], int]:
    """Each candidate truncated, empty ones and repeats dropped, and those less sure than
    ``min_confidence`` left out: (the candidates to show, how many were left out)."""
    kept: list[Candidate] = []
    suppressed = 0
    for made in (generation, *generation.alternatives):
        text = finish_completion(plan, made.text, snapshot)
        if not text or any(c.text == text for c in kept):
            continue
        candidate = Candidate(text, confidence_of(made.logprobs))
        if shown(candidate.confidence, min_confidence):
            kept.append(candidate)
        else:
            suppressed += 1
    return tuple(kept), suppressed


ACCELERATED_CANDIDATES = 3
"""``completion.candidates`` auto, where a GPU or a remote engine makes extra ones cheap."""
_REMOTE_BACKENDS = ("llama-server", "openai")


def candidate_count(settings: Settings, backend: Backend) -> int:
    """``completion.candidates``, with auto (0) decided by where the model runs."""
    wanted = settings.completion.candidates
    if wanted > 0:
        return wanted
    accelerated = getattr(backend, "accelerated", None)
    if accelerated is None:
        accelerated = backend.name in _REMOTE_BACKENDS
    return ACCELERATED_CANDIDATES if accelerated else 1


# ----- the pipeline ---------------------------------------------------------------------


class _Laps:
    """Milliseconds per stage, each measured from the end of the one before."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.ms[stage] = (now - self._last) * 1000
        self._last = now


def run_completion(
    query: CompletionQuery,
    backend: Backend,
    settings: Settings,
    cancel: CancelToken,
    context: ContextProvider | None = None,
    *,
    warm: bool = False,
    on_text: Callable[[str], None] | None = None,
) -> CompletionOutcome:
    """Plan, gather context, build the prompt, generate and truncate.

    ``warm`` evaluates the prompt into the backend's cache and generates nothing
    (a pre-warm: the plan is forced, and the outcome's text is empty). ``on_text`` sees
    the first candidate's raw text grow as it is generated (from the inference thread).
    """
    laps = _Laps()

    def stopped(plan: CompletionPlan, prompt: CompletionPrompt | None = None) -> CompletionOutcome:
        tokens = len(prompt.ids) if prompt is not None else 0
        return CompletionOutcome(
            "", plan, Generation("", "cancelled", prompt_tokens=tokens), laps.ms, prompt
        )

    # 1. plan
    plan = plan_completion(query, settings, force=warm)
    laps.lap("plan")
    if plan.parts is None:
        return CompletionOutcome("", plan, timings_ms=laps.ms)
    if cancel.cancelled:
        return stopped(plan)
    # 2. context
    files = context(query.document) if context is not None else ()
    laps.lap("context")
    if cancel.cancelled:
        return stopped(plan)
    # 3. prompt
    prompt = build_completion_prompt(plan, files, backend.tokenizer, backend.n_ctx)
    if warm:
        prompt = replace(prompt, policy=replace(prompt.policy, max_new_tokens=0, stop_check=None))
    else:
        count = candidate_count(settings, backend)
        prompt = replace(prompt, policy=replace(prompt.policy, candidates=count, on_text=on_text))
    laps.lap("prompt")
    if cancel.cancelled:
        return stopped(plan, prompt)
    # 4. generate
    generation = backend.generate(prompt.ids, prompt.policy, cancel)
    laps.lap("generate")
    if isinstance(prompt.policy.stop_check, PastTheEnd):
        laps.ms["stop_check"] = prompt.policy.stop_check.spent_ms
    if generation.stop_reason == "cancelled" or warm:
        return CompletionOutcome("", plan, generation, laps.ms, prompt)
    # 5. truncate
    min_confidence = settings.completion.min_confidence
    candidates, suppressed = finish_candidates(plan, generation, query.document, min_confidence)
    laps.lap("truncate")
    text = candidates[0].text if candidates else ""
    return CompletionOutcome(text, plan, generation, laps.ms, prompt, candidates, suppressed)
