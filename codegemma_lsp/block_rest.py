"""The rest of a block answered by its first line (see :mod:`codegemma_lsp.first_line`).

The rest continues where the first line stopped: its prompt is the first line's prompt
plus the line and its newline, so the KV cache already holds nearly all of it (the
model's own tokens for the line, which the line's text tokenizes back to), and its
policy is the whole block's, less what the line used: fewer new tokens, the time left
of the budget, and a syntax check that sees the line too. The block's text is the line,
its newline and the rest, truncated as a block.

These functions run on the inference thread; the service decides when.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from codegemma_lsp.completion import (
    CompletionOutcome,
    CompletionPrompt,
    finish_completion,
)
from codegemma_lsp.documents import DocumentSnapshot
from codegemma_lsp.engine.base import Backend, CancelToken, Generation, single_line_end
from codegemma_lsp.oracle import oracle_policy
from codegemma_lsp.prompt import FimTokens


def line_is_whole(outcome: CompletionOutcome) -> bool:
    """Whether the first-line answer's generation got to the end of its line.

    With the benchmark's oracle, the line's end is its token count, not the text.
    """
    generation = outcome.generation
    if generation is None:
        return False
    if outcome.plan.oracle is not None:
        prompt = outcome.prompt
        return (
            prompt is not None
            and generation.stop_reason == "length"
            and generation.generated_tokens >= prompt.policy.max_new_tokens
        )
    return generation.stop_reason == "newline"


def has_rest(outcome: CompletionOutcome) -> bool:
    """Whether a block answered by its first line has more to generate."""
    if outcome.plan.rest is None or outcome.cancelled or not line_is_whole(outcome):
        return False
    oracle = outcome.plan.oracle
    return oracle is None or bool(_oracle_rest(oracle).strip())


def shows_first_line(outcome: CompletionOutcome, snapshot: DocumentSnapshot) -> bool:
    """Whether the first line is worth showing alone (truncation keeps it whole).

    With the oracle, that is decided on the text a right model would have written.
    """
    oracle = outcome.plan.oracle
    if oracle is None:
        return bool(outcome.text)
    end = single_line_end(oracle)
    first = oracle if end is None else oracle[:end]
    return bool(finish_completion(outcome.plan, first, snapshot))


def _oracle_rest(oracle: str) -> str:
    end = single_line_end(oracle)
    return "" if end is None else oracle[end:]


def _seeing_the_line(
    check: Callable[[str], bool] | None, line: str
) -> Callable[[str], bool] | None:
    if check is None:
        return None
    return lambda rest: check(line + rest)


def rest_prompt(outcome: CompletionOutcome, backend: Backend) -> CompletionPrompt | None:
    """The prompt and policy that generate the rest, or None when none is left to make."""
    plan, prompt, generation = outcome.plan, outcome.prompt, outcome.generation
    block = plan.rest
    if block is None or prompt is None or generation is None or not has_rest(outcome):
        return None
    line = generation.text + "\n"
    budget = block.time_budget_ms
    if budget is not None:
        budget -= generation.generate_ms
        if budget <= 0:
            return None
    new_tokens = block.max_new_tokens - generation.generated_tokens
    if new_tokens <= 0:
        return None
    tokenizer = backend.tokenizer
    special = FimTokens.lookup(tokenizer)
    policy = replace(
        block,
        max_new_tokens=new_tokens,
        time_budget_ms=budget,
        end_ids=special.end_ids,
        stop_ids=special.stop_ids,
        stop_check=_seeing_the_line(block.stop_check, line),
    )
    if plan.oracle is not None:
        policy = oracle_policy(policy, _oracle_rest(plan.oracle), tokenizer)
    ids = [*prompt.ids, *tokenizer.tokenize(line)]
    return CompletionPrompt(ids, policy, prompt.parts)


def generate_rest(
    outcome: CompletionOutcome, snapshot: DocumentSnapshot, backend: Backend, cancel: CancelToken
) -> CompletionOutcome | None:
    """The whole block: the first line's outcome continued (None: nothing more to make).

    The returned generation holds the rest's own cost; its text is the block's raw text.
    """
    prompt = rest_prompt(outcome, backend)
    first = outcome.generation
    if prompt is None or first is None or cancel.cancelled:
        return None
    started = time.perf_counter()
    generation = backend.generate(prompt.ids, prompt.policy, cancel)
    raw = first.text + "\n" + generation.text
    generated = time.perf_counter()
    timings = {"generate": (generated - started) * 1000}
    if generation.stop_reason == "cancelled":
        return CompletionOutcome("", outcome.plan, generation, timings, prompt)
    text = finish_completion(outcome.plan, raw, snapshot)
    timings["truncate"] = (time.perf_counter() - generated) * 1000
    return CompletionOutcome(text, outcome.plan, replace(generation, text=raw), timings, prompt)


def joined(first: Generation, rest: Generation) -> Generation:
    """One generation's cost and text from a first line and its rest."""
    return replace(
        rest,
        text=first.text + "\n" + rest.text,
        prompt_tokens=first.prompt_tokens,
        evaluated_tokens=first.evaluated_tokens + rest.evaluated_tokens,
        generated_tokens=first.generated_tokens + rest.generated_tokens,
        prompt_ms=first.prompt_ms + rest.prompt_ms,
        generate_ms=first.generate_ms + rest.generate_ms,
        network_ms=first.network_ms + rest.network_ms,
        drafted_tokens=first.drafted_tokens + rest.drafted_tokens,
        accepted_drafts=first.accepted_drafts + rest.accepted_drafts,
    )


def whole_block(first: CompletionOutcome, rest: CompletionOutcome) -> CompletionOutcome:
    """One answer from a first line and the rest generated right after it, in one job."""
    assert first.generation is not None and rest.generation is not None
    generation = joined(first.generation, replace(rest.generation, text=""))
    timings = dict(first.timings_ms)
    for stage, ms in rest.timings_ms.items():
        timings[stage] = timings.get(stage, 0.0) + ms
    plan = replace(first.plan, rest=None)
    return CompletionOutcome(
        rest.text, plan, replace(generation, text=rest.generation.text), timings, first.prompt
    )


def next_line_prompt(
    outcome: CompletionOutcome, indent: str, backend: Backend
) -> CompletionPrompt | None:
    """The prompt of the likely next place: after the shown first line, on the next line.

    It is the answered prompt plus the line, a newline and ``indent``, with nothing to
    generate, so evaluating it only fills the KV cache (the :mod:`first_line` warm-up).
    """
    prompt = outcome.prompt
    if prompt is None or not outcome.text.strip():
        return None
    end = single_line_end(outcome.text)
    line = outcome.text if end is None else outcome.text[:end]
    ids = [*prompt.ids, *backend.tokenizer.tokenize(line + "\n" + indent)]
    policy = replace(prompt.policy, max_new_tokens=0, stop_check=None)
    return CompletionPrompt(ids, policy, prompt.parts)
