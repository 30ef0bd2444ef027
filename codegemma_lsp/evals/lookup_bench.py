"""``codegemma-lsp bench lookup``: would prompt-lookup speculative decoding pay on this CPU?

Two measurements, combined into the speed it would give:

- **What a step costs.** Checking a draft of ``k`` tokens feeds ``k + 1``
  tokens in one batch and needs the logits of each; on the CodeGemma-2B-shaped
  benchmark model this measures the median time of such a batch against one
  token's (on a CPU the batch is far from free: every row of logits is a pass
  over the 256k-token output layer).
- **What drafts could save.** On HumanEval infilling, it replays the canonical
  middles as if the model had written them (an oracle: a real model agrees
  with its drafts at most this often) and counts the decoding steps prompt
  lookup would need, and how long each step's draft is.

The estimated speed is tokens per step divided by the mean cost of a step,
relative to plain decoding (1.0: no change; below 1: slower).
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codegemma_lsp.engine.lookup import draft_tokens

Tokenize = Callable[[str], list[int]]


@dataclass(frozen=True)
class OracleRun:
    """Prompt lookup over canonical middles: tokens written, steps taken, draft sizes."""

    tokens: int
    steps: int
    drafted: int
    accepted: int
    draft_sizes: Counter[int]
    """How many steps fed a draft of each length (0: no draft)."""

    @property
    def tokens_per_step(self) -> float:
        return self.tokens / self.steps if self.steps else 1.0

    @property
    def acceptance(self) -> float | None:
        return self.accepted / self.drafted if self.drafted else None


def oracle_lookup(cases: Iterable[tuple[list[int], list[int]]], draft_length: int) -> OracleRun:
    """Decode each (prompt, middle) as a model that always writes ``middle`` would.

    A step emits one token from the previous logits, then feeds it with a draft
    from the history; the draft's tokens that match the middle are kept for free.
    """
    tokens = steps = drafted = accepted = 0
    sizes: Counter[int] = Counter()
    for prompt, middle in cases:
        history = list(prompt)
        done = 0
        while done < len(middle):
            history.append(middle[done])
            done += 1
            steps += 1
            draft = draft_tokens(history, min(draft_length, len(middle) - done))
            sizes[len(draft)] += 1
            drafted += len(draft)
            kept = 0
            while kept < len(draft) and draft[kept] == middle[done + kept]:
                kept += 1
            accepted += kept
            history.extend(middle[done : done + kept])
            done += kept
        tokens += len(middle)
    return OracleRun(tokens, steps, drafted, accepted, sizes)


def estimated_speed(run: OracleRun, batch_cost: dict[int, float]) -> float:
    """Tokens per unit of time, relative to one token per single-token step."""
    if not run.steps:
        return 1.0
    single = batch_cost[1]
    total_cost = sum(n * batch_cost[size + 1] / single for size, n in run.draft_sizes.items())
    return run.tokens / total_cost


def measure_batch_costs(model: Path, sizes: Sequence[int], repeats: int) -> dict[int, float]:
    """Median milliseconds to feed a batch of each size (all logits) after a 400-token prompt."""
    import random

    from codegemma_lsp.engine.llama_backend import (
        LlamaBackend,
        eval_with_all_logits,
        trim_cache,
    )

    backend = LlamaBackend(model_path=model)
    backend.load()
    try:
        llm = backend.llama
        rng = random.Random(0)
        llm.eval([rng.randrange(1000, 20000) for _ in range(400)])
        base = llm.n_tokens
        costs: dict[int, float] = {}
        for size in sizes:
            times = []
            for _ in range(repeats):
                batch = [rng.randrange(1000, 20000) for _ in range(size)]
                started = time.perf_counter()
                eval_with_all_logits(llm, batch)
                times.append((time.perf_counter() - started) * 1000)
                trim_cache(llm, base)
            costs[size] = statistics.median(times)
        return costs
    finally:
        backend.close()


def humaneval_cases(tokenize: Tokenize) -> dict[str, list[tuple[list[int], list[int]]]]:
    from codegemma_lsp.evals import humaneval_tasks

    problems = humaneval_tasks.load_problems()
    sets = {
        "single": humaneval_tasks.single_line_tasks(problems),
        "multi": humaneval_tasks.multi_line_tasks(problems),
    }
    return {
        name: [
            (tokenize(task.prompt) + tokenize(task.suffix), tokenize(task.canonical_solution))
            for task in tasks
        ]
        for name, tasks in sets.items()
    }


def lookup_figures(
    cases: dict[str, list[tuple[list[int], list[int]]]],
    drafts: Sequence[int],
    costs: dict[int, float],
) -> dict[str, Any]:
    rows = []
    for name, items in cases.items():
        for length in drafts:
            run = oracle_lookup(items, length)
            rows.append(
                {
                    "set": name,
                    "draft": length,
                    "tokens_per_step": round(run.tokens_per_step, 3),
                    "acceptance": None if run.acceptance is None else round(run.acceptance, 3),
                    "estimated_speed": round(estimated_speed(run, costs), 3),
                }
            )
    return {
        "batch_ms": {str(size): round(ms, 1) for size, ms in costs.items()},
        "batch_cost_ratio": {str(size): round(ms / costs[1], 2) for size, ms in costs.items()},
        "oracle": rows,
    }


def format_lookup(result: dict[str, Any]) -> str:
    lines = ["batch  ms      x one token"]
    for size, ms in result["batch_ms"].items():
        lines.append(f"{size:<6} {ms:<7} {result['batch_cost_ratio'][size]}")
    lines.append("")
    lines.append("set     draft  tokens/step  acceptance  estimated speed")
    for row in result["oracle"]:
        lines.append(
            f"{row['set']:<7} {row['draft']:<6} {row['tokens_per_step']:<12} "
            f"{row['acceptance']!s:<11} {row['estimated_speed']}"
        )
    lines.append("(oracle: as if the model wrote the canonical middle; speed 1.0 = plain decoding)")
    return "\n".join(lines)
