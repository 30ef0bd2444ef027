"""The backend interface: token ids in, tokens out.

Errors::

    EngineError
     ├── ModelLoadError      the model could not be loaded (missing, not a GGUF, wrong architecture)
     └── BackendNotReady     a request arrived before the model finished loading

A backend knows nothing of prompts, context, syntax or LSP. It offers:

- a :class:`Tokenizer` (text to ids without special-token parsing, ids back to
  text, and the id of a special token by its text), and its context size ``n_ctx``;
- :meth:`Backend.generate`: evaluate the prompt ids (reusing the KV cache it holds)
  and generate under a :class:`GenerationPolicy` until a stop id, a limit, the stop
  check, the deadline or the cancel flag.

The pipeline (:mod:`codegemma_lsp.completion`) builds the prompt ids with the
tokenizer (:func:`codegemma_lsp.prompt.build_prompt`), already fitted to ``n_ctx``,
and names the stop ids in the policy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

StopReason = Literal["eos", "stop", "newline", "length", "cancelled", "time", "syntax"]
"""Why generation ended: an end id ("eos"), another stop id ("stop"), the end of the first
line ("newline"), the token limit ("length"), the cancel flag, the deadline ("time") or the
policy's stop check ("syntax")."""


class EngineError(Exception):
    """Base class of the engine's errors."""


class ModelLoadError(EngineError):
    """The model file could not be loaded; the message names the file and the reason."""


class BackendNotReady(EngineError):
    """The backend has not finished loading its model."""


class CancelToken:
    """A flag the generation loop checks once per token and between prompt batches."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.cancelled_at: float | None = None
        """``time.perf_counter()`` when first cancelled, to measure how fast work stops."""
        self.finish_batch = False
        """Set by :meth:`supersede`: a prompt micro-batch under way is finished, not aborted."""

    def cancel(self) -> None:
        """Stop as soon as possible, even in the middle of a prompt micro-batch."""
        self.finish_batch = False
        if self.cancelled_at is None:
            self.cancelled_at = time.perf_counter()
        self._event.set()

    def supersede(self) -> None:
        """Stop for a newer job of the same document: at the next token, or once the prompt
        micro-batch under way is done. The newer prompt shares the start of this one (edits
        change its tail), so that batch is its work too: on a slow CPU, aborting it would
        throw away seconds a keystroke apart, and a cold prompt would never get evaluated."""
        if self.cancelled_at is None:
            self.finish_batch = True
            self.cancelled_at = time.perf_counter()
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class Tokenizer(Protocol):
    """A model's vocabulary, as the prompt builder needs it."""

    def tokenize(self, text: str) -> list[int]:
        """Text to ids: no BOS, and special-token text stays text (it is not parsed)."""
        ...

    def detokenize(self, ids: Sequence[int]) -> str:
        """Ids back to text, special tokens written as their text (``<|fim_prefix|>``)."""
        ...

    def special_id(self, text: str) -> int | None:
        """The id of the special token spelled ``text``, or None if the vocabulary has none."""
        ...


@dataclass(frozen=True)
class GenerationPolicy:
    """How to generate from a prompt: limits, stop conditions, deadline and cache use."""

    max_new_tokens: int = 64
    """0 evaluates the prompt into the cache and generates nothing (a pre-warm)."""
    end_ids: frozenset[int] = frozenset()
    """Ids that end the text (the model's end of sequence): stop reason "eos"."""
    stop_ids: frozenset[int] = frozenset()
    """Other ids that end it (for fill-in-the-middle, the FIM markers): stop reason "stop"."""
    single_line: bool = False
    """Stop at the end of the first non-blank line (stop reason "newline")."""
    time_budget_ms: float | None = None
    """Deadline for generation, counted once the prompt is evaluated (stop reason "time")."""
    stop_check: Callable[[str], bool] | None = field(default=None, compare=False)
    """Called with the text so far at each line end; True stops there (stop reason "syntax")."""
    key: str | None = None
    """Which document this is for: a backend may keep a KV snapshot per key."""
    reuse_cache: bool = True
    """False evaluates the whole prompt afresh (the benchmark's baseline)."""
    lookup_tokens: int = 0
    """Prompt-lookup draft length for speculative decoding (0: off)."""
    candidates: int = 1
    """How many texts to make from the one prompt: the first greedy, the others from the
    next most likely first tokens (:attr:`Generation.alternatives`). A backend that cannot
    make several makes one."""
    on_text: Callable[[str], None] | None = field(default=None, compare=False)
    """Called from the generating thread with the first candidate's text so far, after each
    token, so that a request arriving meanwhile can see what is being produced."""


@dataclass(frozen=True)
class Generation:
    """What a backend produced, and what it cost."""

    text: str
    stop_reason: StopReason
    prompt_tokens: int = 0
    evaluated_tokens: int = 0
    generated_tokens: int = 0
    prompt_ms: float = 0.0
    generate_ms: float = 0.0
    network_ms: float = 0.0
    """A remote engine's requests: time on the network and in the server's queue, apart
    from the prompt and generation times the server reports (0 in-process)."""
    drafted_tokens: int = 0
    """Prompt-lookup draft tokens fed to the model, and of those, the ones it kept."""
    accepted_drafts: int = 0
    logprobs: tuple[float, ...] = ()
    """The log-probability of each generated token under the model's distribution (its
    confidence, :mod:`codegemma_lsp.confidence`); empty when the backend gives none."""
    alternatives: tuple[Generation, ...] = ()
    """The other candidates (``policy.candidates`` > 1), made from the same evaluated prompt:
    their text, stop reason, generated tokens and log-probabilities; no prompt cost of
    their own. ``generated_tokens`` above counts the first candidate's tokens only."""


class Backend(Protocol):
    """A source of generations: token ids in, tokens out."""

    name: str

    def load(self) -> None:
        """Load the model; raise :class:`ModelLoadError` with a clear reason on failure."""

    @property
    def ready(self) -> bool:
        """Whether :meth:`generate` may be called."""

    @property
    def tokenizer(self) -> Tokenizer:
        """The model's tokenizer; raises :class:`BackendNotReady` before :meth:`load`."""

    @property
    def n_ctx(self) -> int:
        """Context size in tokens: the prompt and its generation must fit in it."""

    def generate(
        self, prompt: Sequence[int], policy: GenerationPolicy, cancel: CancelToken
    ) -> Generation:
        """Evaluate ``prompt`` and generate under ``policy``; stop early once ``cancel`` is set.

        ``prompt`` must leave room in :attr:`n_ctx` for at least one new token.
        """

    def close(self) -> None:
        """Release the model."""


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens two sequences share from the start: what a KV cache can keep."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def single_line_end(text: str) -> int | None:
    """Where a single-line completion ends: at the newline closing its first non-blank line.

    Blank lines and indentation before the first non-blank line are kept, so a
    middle that starts on the next line still gets that line.
    """
    start = 0
    while (newline := text.find("\n", start)) != -1:
        if text[start:newline].strip():
            return newline
        start = newline + 1
    return None
