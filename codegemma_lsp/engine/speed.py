"""How fast this machine runs the model: a short timed prompt and a few generated tokens.

The probe runs once after the model loads, on the inference thread (the host calls
:func:`measure_backend`), and its result sets the pacing of completions
(:mod:`codegemma_lsp.pacing`). Machines of one kind differ by 2.5x from day to day, so
a speed is measured, never assumed. Token identity does not change what a step costs,
so the prompt is any text cut to length, and generation feeds one fixed token.

Prompt speed is timed on one batch of ``PROBE_PROMPT_TOKENS``, the llama.cpp
micro-batch the backend uses, which is how a relocation's prompt is evaluated;
generation speed on single-token steps after it, each with the logits a real step
asks for (the median step, so that one step slowed by a busy neighbour weighs little).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import llama_cpp

log = logging.getLogger(__name__)

PROBE_PROMPT_TOKENS = 64
PROBE_GENERATED_TOKENS = 8
_WARMUP_TOKENS = 4

_PROBE_TEXT = (
    "def moving_average(values, width):\n"
    '    """The mean of each run of width values."""\n'
    "    total = sum(values[:width])\n"
    "    result = [total / width]\n"
    "    for index in range(width, len(values)):\n"
    "        total += values[index] - values[index - width]\n"
    "        result.append(total / width)\n"
    "    return result\n"
)


@dataclass(frozen=True)
class MachineSpeed:
    prompt_tps: float
    """Prompt tokens evaluated per second, in one batch."""
    generate_tps: float
    """Tokens generated per second, one step at a time."""
    prompt_tokens: int = PROBE_PROMPT_TOKENS
    generated_tokens: int = PROBE_GENERATED_TOKENS

    def describe(self) -> str:
        return f"prompt {self.prompt_tps:.0f} tokens/s, generation {self.generate_tps:.1f} tokens/s"

    def to_json(self) -> dict[str, float]:
        return {
            "prompt_tokens_per_s": round(self.prompt_tps, 1),
            "generated_tokens_per_s": round(self.generate_tps, 2),
        }

    @classmethod
    def from_json(cls, data: Any) -> MachineSpeed | None:
        """The speed in a status or stats message, or None where it is missing."""
        if not isinstance(data, dict):
            return None
        prompt, generate = data.get("prompt_tokens_per_s"), data.get("generated_tokens_per_s")
        if not isinstance(prompt, int | float) or not isinstance(generate, int | float):
            return None
        return cls(float(prompt), float(generate))


def probe_llama(
    llm: llama_cpp.Llama,
    *,
    prompt_tokens: int = PROBE_PROMPT_TOKENS,
    generated_tokens: int = PROBE_GENERATED_TOKENS,
    clock: Callable[[], float] = time.perf_counter,
) -> MachineSpeed:
    """Time a prompt and some generation on a loaded model; leaves its KV cache empty."""
    import llama_cpp

    text = _PROBE_TEXT.encode("utf-8")
    ids = [int(t) for t in llm.tokenize(text, add_bos=False, special=False)]
    while len(ids) < prompt_tokens + _WARMUP_TOKENS:
        ids += ids
    memory = llama_cpp.llama_get_memory(llm.ctx)

    def forget() -> None:
        llama_cpp.llama_memory_seq_rm(memory, 0, 0, -1)
        llm.n_tokens = 0

    try:
        # The first decodes after a load allocate buffers and touch the weights for the
        # first time, batched and single-token alike: keep them out of the timing.
        forget()
        llm.eval(ids[:_WARMUP_TOKENS])
        for step in range(_WARMUP_TOKENS):
            llm.eval([ids[step]])
        forget()
        started = clock()
        llm.eval(ids[:prompt_tokens])
        prompted = clock()
        steps = []
        for step in range(generated_tokens):
            llm.eval([ids[step % len(ids)]])
            steps.append(clock())
    finally:
        forget()
    # The median step: one step slowed by a busy neighbour says little about the machine.
    durations = [b - a for a, b in zip([prompted, *steps], steps, strict=False)]
    step_s = statistics.median(durations) if durations else 1.0
    return MachineSpeed(
        prompt_tps=prompt_tokens / max(prompted - started, 1e-6),
        generate_tps=1 / max(step_s, 1e-6),
        prompt_tokens=prompt_tokens,
        generated_tokens=generated_tokens,
    )


def measure_backend(backend: object) -> MachineSpeed | None:
    """The speed of a just-loaded backend, or None when it cannot be measured.

    A llama.cpp backend is probed; a fake states its speed (``declared_speed``) so
    tests can pace it; anything else, or a probe that fails, gives None and the
    fixed budgets. Call it on the inference thread, before the backend serves.
    """
    declared = getattr(backend, "declared_speed", None)
    if isinstance(declared, MachineSpeed):
        return declared
    from codegemma_lsp.engine.llama_backend import LlamaBackend

    if not isinstance(backend, LlamaBackend) or not backend.ready:
        return None
    started = time.perf_counter()
    try:
        speed = probe_llama(backend.llama)
    except Exception as exc:  # a failed probe costs the pacing, never the model
        log.warning("could not measure the machine's speed: %s", exc)
        return None
    log.info(
        "machine speed: %s (probe took %.0f ms)",
        speed.describe(),
        (time.perf_counter() - started) * 1000,
    )
    return speed
