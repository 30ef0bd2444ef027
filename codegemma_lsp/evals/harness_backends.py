"""Backends that check the HumanEval harness itself rather than a model.

They are real :class:`~codegemma_lsp.engine.base.Backend` implementations, so
their "generations" go through the whole completion pipeline (scope, windows,
prompt request, truncation) like a model's:

- :class:`OracleBackend` answers with the task's canonical middle. Scoring
  below 1.0 on the single- or multi-line set means the pipeline or the harness
  loses a correct answer somewhere (scope, truncation, program assembly,
  execution).
- :class:`EmptyBackend` answers nothing: the floor, the score of the tests
  against the program with its middle left out.
"""

from __future__ import annotations

from codegemma_lsp.engine.base import CancelToken, FimRequest, Generation


class _CannedBackend:
    """Returns ``text`` as the raw model output for every request."""

    name = "canned"

    def __init__(self, text: str) -> None:
        self.text = text
        self.requests = 0
        self._ready = False

    def load(self) -> None:
        self._ready = True

    @property
    def ready(self) -> bool:
        return self._ready

    def complete(self, request: FimRequest, cancel: CancelToken) -> Generation:
        self.requests += 1
        if cancel.cancelled:
            return Generation(text="", stop_reason="cancelled")
        return Generation(text=self.text, stop_reason="fim")

    def close(self) -> None:
        self._ready = False


class OracleBackend(_CannedBackend):
    """Harness backend: the canonical middle of one task (build one per task)."""

    name = "oracle"

    def __init__(self, middle: str) -> None:
        super().__init__(middle)


class EmptyBackend(_CannedBackend):
    """Harness backend: generates nothing, for the floor of a task set."""

    name = "empty"

    def __init__(self) -> None:
        super().__init__("")
