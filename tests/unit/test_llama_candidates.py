"""Several candidates from one prompt evaluation, on the tests' tiny CodeGemma-format model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from codegemma_lsp.engine.base import CancelToken, Generation, GenerationPolicy
from codegemma_lsp.engine.llama_backend import (
    LlamaBackend,
    candidate_room,
    first_tokens,
    log_softmax_at,
)
from codegemma_lsp.prompt import FimTokens, build_psm, context_budget
from codegemma_lsp.stats import RequestRecord
from tests.unit.test_llama_backend import PREFIX, SUFFIX, make_backend


@pytest.fixture
def backend(tiny_model_path: Path) -> Iterator[LlamaBackend]:
    backend = make_backend(tiny_model_path)
    yield backend
    backend.close()


def prompt_and_policy(backend: LlamaBackend, candidates: int) -> tuple[list[int], GenerationPolicy]:
    fim = FimTokens.lookup(backend.tokenizer)
    budget, max_new = context_budget(backend.n_ctx, 12)
    prompt = build_psm(backend.tokenizer, fim, PREFIX, SUFFIX, "a.py", budget=budget)
    policy = GenerationPolicy(
        max_new_tokens=max_new,
        end_ids=fim.end_ids,
        stop_ids=fim.stop_ids,
        key="a.py",
        candidates=candidates,
    )
    return prompt, policy


@pytest.mark.model
def test_three_candidates_come_from_one_prompt_evaluation(
    backend: LlamaBackend, tiny_model_path: Path
) -> None:
    evaluated: list[int] = []
    evaluate = backend._evaluate_prompt

    def counted(*args: object) -> int:
        n = evaluate(*args)  # type: ignore[arg-type]
        evaluated.append(n)
        return n

    backend._evaluate_prompt = counted  # type: ignore[method-assign]
    prompt, policy = prompt_and_policy(backend, 3)
    seen: list[str] = []
    generation = backend.generate(prompt, replace(policy, on_text=seen.append), CancelToken())

    # The prompt was evaluated once, and the record says so.
    assert evaluated == [len(prompt)]
    record = RequestRecord.from_generation("a.py", "model", 1.0, generation)
    assert record.prompt_tokens == record.evaluated_tokens == len(prompt)
    assert record.candidates == 3
    assert record.generated_tokens == generation.generated_tokens == 12
    assert record.alternative_tokens == sum(a.generated_tokens for a in generation.alternatives)
    # Three different candidates, each with its confidence.
    texts = [generation.text, *(a.text for a in generation.alternatives)]
    assert len(texts) == 3 and len(set(texts)) == 3
    for made in (generation, *generation.alternatives):
        assert len(made.logprobs) == made.generated_tokens > 0
        assert all(lp <= 0 for lp in made.logprobs)
    # The first candidate's text was seen growing, token by token.
    assert seen[-1] == generation.text and len(seen) == generation.generated_tokens

    # Afterwards the cache holds the prompt and the first candidate, as after one greedy
    # generation: the same request again evaluates one token and gives the same text.
    again = backend.generate(prompt, replace(policy, candidates=1), CancelToken())
    assert again.evaluated_tokens == 1
    assert again.text == generation.text
    fresh = make_backend(tiny_model_path)
    try:
        greedy = fresh.generate(prompt, replace(policy, candidates=1), CancelToken())
    finally:
        fresh.close()
    assert greedy.text == generation.text
    assert greedy.logprobs == pytest.approx(generation.logprobs, abs=1e-3)


@pytest.mark.model
def test_a_cancelled_candidate_generation_leaves_the_cache_usable(backend: LlamaBackend) -> None:
    prompt, policy = prompt_and_policy(backend, 3)
    cancel = CancelToken()
    calls = 0

    def stop_soon(_text: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            cancel.cancel()

    stopped = backend.generate(prompt, replace(policy, on_text=stop_soon), cancel)
    assert stopped.stop_reason == "cancelled"
    again = backend.generate(prompt, replace(policy, candidates=1), CancelToken())
    assert again.evaluated_tokens == 1  # the prompt is still there, nothing else is
    whole: Generation = backend.generate(prompt, replace(policy, candidates=1), CancelToken())
    assert whole.text == again.text


@pytest.mark.parametrize(
    ("wanted", "prompt", "max_new", "n_ctx", "expected"),
    [
        pytest.param(1, 10, 64, 4096, 1, id="one"),
        pytest.param(3, 10, 64, 4096, 3, id="room"),
        pytest.param(9, 10, 64, 4096, 4, id="at-most-the-context-sequences"),
        pytest.param(3, 4000, 48, 4096, 2, id="little-room"),
        pytest.param(3, 4000, 96, 4096, 1, id="no-room"),
    ],
)
def test_candidate_room(wanted: int, prompt: int, max_new: int, n_ctx: int, expected: int) -> None:
    assert candidate_room(wanted, prompt, max_new, n_ctx) == expected


def test_first_tokens_skip_the_end_tokens() -> None:
    logits = np.array([0.0, 5.0, 4.0, 3.0, 2.0, 1.0], dtype=np.float32)
    assert first_tokens(logits, 3, frozenset({2})) == [1, 3, 4]
    assert first_tokens(logits, 1, frozenset()) == [1]


def test_log_softmax_at() -> None:
    logits = np.log(np.array([0.5, 0.25, 0.25], dtype=np.float64))
    assert log_softmax_at(logits, 0) == pytest.approx(np.log(0.5))
    assert log_softmax_at(logits + 100, 1) == pytest.approx(np.log(0.25))
