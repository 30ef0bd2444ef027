"""The backend interface: one small protocol, several implementations.

Errors::

    EngineError
     ├── ModelLoadError      the model could not be loaded (missing, not a GGUF, wrong architecture)
     └── BackendNotReady     a request arrived before the model finished loading

A backend turns a fill-in-the-middle request into generated text. It knows
nothing of LSP; the prompt layout lives in :mod:`codegemma_lsp.prompt`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from codegemma_lsp.prompt import FimMode, PromptParts

StopReason = Literal["eos", "fim", "newline", "length", "cancelled", "time", "syntax"]


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

    def cancel(self) -> None:
        if self.cancelled_at is None:
            self.cancelled_at = time.perf_counter()
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass(frozen=True)
class FimRequest:
    """Everything a backend needs to fill one middle.

    ``prefix`` and ``suffix`` are already cut to their windows; ``path`` is the
    workspace-relative path written on the prompt's first line, if any;
    ``prefix[live_start:]`` is the live region that ``psm-line`` puts after
    ``<|fim_middle|>``; ``context`` holds (path, text) of repository files packed
    before the current one.
    """

    prefix: str
    suffix: str
    path: str | None = None
    max_new_tokens: int = 64
    single_line: bool = False
    mode: FimMode = "psm"
    live_start: int | None = None
    context: tuple[tuple[str, str], ...] = ()
    key: str | None = None
    """Which document this is for: the backend keeps a KV snapshot per key."""
    reuse_cache: bool = True
    """False evaluates the whole prompt afresh (the benchmark's baseline)."""
    time_budget_ms: float | None = None
    lookup_tokens: int = 0
    """Prompt-lookup draft length for speculative decoding (0: off)."""
    stop_check: Callable[[str], bool] | None = field(default=None, compare=False)
    """Called with the text so far at each line end; True stops at the syntactic end."""

    @property
    def parts(self) -> PromptParts:
        return PromptParts(self.prefix, self.suffix, self.path, self.live_start, self.context)


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
    drafted_tokens: int = 0
    """Prompt-lookup draft tokens fed to the model, and of those, the ones it kept."""
    accepted_drafts: int = 0


class Backend(Protocol):
    """A source of fill-in-the-middle completions."""

    name: str

    def load(self) -> None:
        """Load the model; raise :class:`ModelLoadError` with a clear reason on failure."""

    @property
    def ready(self) -> bool:
        """Whether :meth:`complete` may be called."""

    def complete(self, request: FimRequest, cancel: CancelToken) -> Generation:
        """Generate the middle for ``request``; stop early once ``cancel`` is set."""

    def close(self) -> None:
        """Release the model."""
