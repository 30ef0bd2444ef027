"""How sure the model was of a suggestion, and the rule that keeps unsure ones silent.

A candidate's confidence comes from the log-probabilities of the tokens it was
made of (the model's own distribution, before any sampling): their mean, their
minimum, and the probability of the first token, which decides where the
suggestion goes. Cursor's Tab showed that staying silent below a threshold
raises the share of suggestions people keep; ``completion.minConfidence``
applies that rule to the mean token probability, and the HumanEval table lets a
user choose the threshold from a run on their own machine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Confidence:
    mean_logprob: float
    min_logprob: float
    first_prob: float

    @property
    def mean_prob(self) -> float:
        """The geometric mean of the token probabilities, in [0, 1]: the figure thresholds use."""
        return math.exp(self.mean_logprob)

    def as_dict(self) -> dict[str, float]:
        return {
            "mean_logprob": round(self.mean_logprob, 4),
            "min_logprob": round(self.min_logprob, 4),
            "first_prob": round(self.first_prob, 4),
            "mean_prob": round(self.mean_prob, 4),
        }


def confidence_of(logprobs: Sequence[float]) -> Confidence | None:
    """The confidence of a candidate made of tokens with these log-probabilities."""
    if not logprobs:
        return None
    return Confidence(
        mean_logprob=sum(logprobs) / len(logprobs),
        min_logprob=min(logprobs),
        first_prob=math.exp(logprobs[0]),
    )


def shown(confidence: Confidence | None, min_confidence: float) -> bool:
    """Whether a candidate is shown: ``min_confidence`` 0 (the default) shows everything;
    a candidate with no confidence (a cache answer, a backend that gives none) is shown."""
    if min_confidence <= 0 or confidence is None:
        return True
    return confidence.mean_prob >= min_confidence


@dataclass(frozen=True, slots=True)
class ThresholdRow:
    threshold: float
    shown: int
    passed: int

    @property
    def pass_share(self) -> float:
        return self.passed / self.shown if self.shown else 0.0


DEFAULT_THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def threshold_table(
    results: Iterable[tuple[Confidence | None, bool]],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> list[ThresholdRow]:
    """For each threshold: how many suggestions a user would see, and how many of those pass.

    ``results`` are (confidence, passed) per task; a task with no suggestion has no
    confidence and is never shown, whatever the threshold.
    """
    rows = list(results)
    table = []
    for threshold in thresholds:
        kept = [passed for conf, passed in rows if conf is not None and shown(conf, threshold)]
        table.append(ThresholdRow(threshold, len(kept), sum(kept)))
    return table
