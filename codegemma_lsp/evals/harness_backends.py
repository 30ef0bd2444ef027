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

from codegemma_lsp.engine.fake import FakeBackend


class OracleBackend(FakeBackend):
    """Harness backend: the canonical middle of one task (build one per task)."""

    name = "oracle"

    def __init__(self, middle: str) -> None:
        super().__init__(middle, tokens=1)


class EmptyBackend(FakeBackend):
    """Harness backend: generates nothing, for the floor of a task set."""

    name = "empty"

    def __init__(self) -> None:
        super().__init__("", tokens=1)
