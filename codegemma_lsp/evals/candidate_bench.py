"""What a second and third candidate cost: the same prompt, generated with 1, 2, 3 candidates.

Extra candidates share the prompt's evaluation (:mod:`codegemma_lsp.engine.llama_backend`
decodes them side by side, one token of each per step), so what they add is the cost of
a wider step: each step decodes ``k`` tokens instead of one. On a GPU a step of three is
nearly the price of one; on a CPU every row is another pass over the 256k-token output
layer, which is why ``completion.candidates`` is 1 on a CPU by default. ``bench replay``
prints these figures beside the replay's own.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from codegemma_lsp.engine.base import CancelToken, GenerationPolicy

PROMPT_TEXT = (
    "import os\n\n\ndef read_lines(path):\n    with open(path) as handle:\n"
    "        return [line.rstrip() for line in handle]\n\n\ndef count_words(path):\n    "
)
NEW_TOKENS = 16
REPEATS = 3


def measure_candidate_cost(
    model: Path, *, up_to: int = 3, threads: int | None = None, repeats: int = REPEATS
) -> dict[str, Any]:
    """Median generation time of :data:`NEW_TOKENS` tokens with 1..``up_to`` candidates,
    from a prompt already in the cache (so only the candidates' steps are timed)."""
    from codegemma_lsp.engine.llama_backend import LlamaBackend

    backend = LlamaBackend(model_path=model, n_threads=threads)
    backend.load()
    try:
        tokenizer = backend.tokenizer
        bos = tokenizer.special_id("<bos>")
        prompt = [*([bos] if bos is not None else []), *tokenizer.tokenize(PROMPT_TEXT)]
        # No end ids: every candidate runs the full length, so the steps are comparable.
        policy = GenerationPolicy(max_new_tokens=NEW_TOKENS, key="candidate-bench")
        backend.generate(prompt, replace(policy, max_new_tokens=0), CancelToken())
        times: dict[int, float] = {}
        for count in range(1, up_to + 1):
            runs = []
            for _ in range(repeats):
                made = backend.generate(prompt, replace(policy, candidates=count), CancelToken())
                runs.append(made.generate_ms)
            times[count] = statistics.median(runs)
    finally:
        backend.close()
    one = times[1]
    return {
        "new_tokens": NEW_TOKENS,
        "generate_ms": {str(k): round(v, 1) for k, v in times.items()},
        "extra_ms": {str(k): round(v - one, 1) for k, v in times.items() if k > 1},
        "relative": {str(k): round(v / one, 3) if one else None for k, v in times.items()},
    }


def format_candidate_cost(cost: dict[str, Any]) -> str:
    parts = [
        f"{k} candidates {ms:.0f} ms (x{cost['relative'][k]:.2f})"
        for k, ms in cost["generate_ms"].items()
        if k != "1"
    ]
    return (
        f"candidates: {cost['new_tokens']} tokens take {cost['generate_ms']['1']:.0f} ms with one; "
        + ", ".join(parts)
    )
