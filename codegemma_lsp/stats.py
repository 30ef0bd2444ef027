"""Local usage counts and per-request figures: kept in memory; nothing leaves the machine.

The user's own numbers (shown, accepted, characters accepted and still there 30 s later,
latency, answers from the cache or a join) are also added to a small file per day in the
user's state directory (:mod:`codegemma_lsp.usage`), when the server flushes them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from codegemma_lsp.engine.base import Generation
from codegemma_lsp.retention import RetentionTracker

Source = Literal["model", "cache", "none", "prewarm", "precompute", "eager"]
"""Who answered a request; "prewarm" and "precompute" mark background work, not requests."""

BACKGROUND: frozenset[Source] = frozenset({"prewarm", "precompute", "eager"})


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (0.0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * (len(ordered) - 1))))
    return ordered[rank]


_PIPELINE_STAGES = ("plan", "context", "prompt", "truncate", "stop_check")
"""Stages of :mod:`codegemma_lsp.completion` that run outside the backend's llama.cpp calls
(``stop_check`` runs inside the generation loop, but is syntax work)."""


@dataclass(frozen=True)
class RequestRecord:
    """What one completion request cost; the replay benchmark reads these.

    Milliseconds per pipeline stage: ``plan_ms``, ``context_ms``, ``build_prompt_ms``
    (tokenizing and fitting the prompt), ``prompt_ms`` (evaluating it), ``generate_ms``,
    ``truncate_ms``; ``stop_check_ms`` is the part of ``generate_ms`` spent in the syntax
    stop check.
    """

    uri: str
    source: Source
    total_ms: float
    """From the request reaching the handler to the answer, queueing included."""
    llama_ms: float = 0.0
    overhead_ms: float = 0.0
    """Work outside llama.cpp calls: planning, truncation, bookkeeping (not queueing)."""
    prompt_tokens: int = 0
    evaluated_tokens: int = 0
    generated_tokens: int = 0
    prompt_ms: float = 0.0
    generate_ms: float = 0.0
    network_ms: float = 0.0
    """A remote engine: time on the network and in the server's queue, apart from the
    server's own ``prompt_ms`` and ``generate_ms`` (0 in-process)."""
    stop_reason: str = "-"
    """Why generation ended (see ``StopReason``); "error" when the engine failed."""
    cancelled: bool = False
    request_id: int | str | None = None
    """The JSON-RPC id of the request (None for background work)."""
    drafted_tokens: int = 0
    accepted_drafts: int = 0
    plan_ms: float = 0.0
    context_ms: float = 0.0
    build_prompt_ms: float = 0.0
    truncate_ms: float = 0.0
    stop_check_ms: float = 0.0
    candidates: int = 0
    """Candidates generated from the one prompt evaluation (0: no generation)."""
    alternative_tokens: int = 0
    """Tokens generated for the candidates after the first (not in ``generated_tokens``)."""
    shown_candidates: int = 0
    """Candidates in the answer, after truncation, repeats and ``minConfidence``."""
    suppressed: int = 0
    """Candidates left unshown for their low confidence."""
    joined: bool = False
    """Answered by joining a generation already running for this place (source "cache":
    no generation of its own; the joined one is recorded by the request that started it)."""

    @classmethod
    def from_generation(
        cls,
        uri: str,
        source: Source,
        total_ms: float,
        generation: Generation | None,
        *,
        stages_ms: Mapping[str, float] | None = None,
        handler_ms: float | None = None,
        cancelled: bool | None = None,
        request_id: int | str | None = None,
    ) -> RequestRecord:
        """The record of one request or piece of background work.

        ``stages_ms`` are the pipeline's timings (``CompletionOutcome.timings_ms``);
        ``handler_ms`` the handler's own work around it, for a request that was answered:
        ``overhead_ms`` is their sum, everything but llama.cpp. ``cancelled`` defaults to
        what the generation says.
        """
        stages = stages_ms or {}
        stop_check = stages.get("stop_check", 0.0)
        if cancelled is None:
            cancelled = generation is not None and generation.stop_reason == "cancelled"
        overhead = 0.0
        if handler_ms is not None:
            overhead = handler_ms + sum(stages.get(k, 0.0) for k in _PIPELINE_STAGES)
        record = cls(
            uri,
            source,
            total_ms,
            overhead_ms=overhead,
            cancelled=cancelled,
            request_id=request_id,
            plan_ms=stages.get("plan", 0.0),
            context_ms=stages.get("context", 0.0),
            build_prompt_ms=stages.get("prompt", 0.0),
            truncate_ms=stages.get("truncate", 0.0),
            stop_check_ms=stop_check,
        )
        if generation is None:
            return record
        return replace(
            record,
            llama_ms=generation.prompt_ms + generation.generate_ms - stop_check,
            prompt_tokens=generation.prompt_tokens,
            evaluated_tokens=generation.evaluated_tokens,
            generated_tokens=generation.generated_tokens,
            prompt_ms=generation.prompt_ms,
            generate_ms=generation.generate_ms,
            network_ms=generation.network_ms,
            stop_reason=generation.stop_reason,
            drafted_tokens=generation.drafted_tokens,
            accepted_drafts=generation.accepted_drafts,
            candidates=1 + len(generation.alternatives),
            alternative_tokens=sum(a.generated_tokens for a in generation.alternatives),
        )


SLOW_WINDOW = 20
"""The slow-server warning looks at the median latency of this many model answers."""


@dataclass
class Stats:
    shown: int = 0
    accepted: int = 0
    accepted_partially: int = 0
    records: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=5000))
    cancel_latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=5000))
    retention: RetentionTracker = field(default_factory=RetentionTracker)
    answered: int = 0
    """Requests answered (not cancelled), whoever answered: the daily file's ``requests``."""
    cache_answers: int = 0
    joined_answers: int = 0
    suppressed: int = 0
    unflushed_latencies_ms: list[float] = field(default_factory=list)
    """Latencies of answered requests since the last flush to the daily file."""
    model_latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=SLOW_WINDOW))
    """The latest model answers' latencies, for the slow-server warning."""
    _flushed: dict[str, int] = field(default_factory=dict)

    def record(self, record: RequestRecord) -> None:
        self.records.append(record)
        if record.source in BACKGROUND or record.cancelled:
            return
        self.answered += 1
        self.suppressed += record.suppressed
        if record.joined:
            self.joined_answers += 1
        elif record.source == "cache":
            self.cache_answers += 1
        elif record.source == "model" and record.stop_reason != "error":
            self.model_latencies_ms.append(record.total_ms)
        self.unflushed_latencies_ms = [*self.unflushed_latencies_ms, record.total_ms][-2000:]

    def record_cancel_latency(self, ms: float) -> None:
        self.cancel_latencies_ms.append(ms)

    def slow_median_ms(self) -> float | None:
        """The median latency of the last :data:`SLOW_WINDOW` model answers, once there are
        that many (None before)."""
        if len(self.model_latencies_ms) < SLOW_WINDOW:
            return None
        return percentile(list(self.model_latencies_ms), 0.5)

    def counts(self) -> dict[str, int]:
        """The user's counters, as the daily file names them (:data:`usage.COUNTERS`)."""
        retention = self.retention
        return {
            "requests": self.answered,
            "shown": self.shown,
            "accepted": self.accepted,
            "accepted_partially": self.accepted_partially,
            "accepted_chars": retention.accepted_chars,
            "retained_chars": retention.retained_chars,
            "judged_accepts": retention.judged,
            "cache_answers": self.cache_answers,
            "joined_answers": self.joined_answers,
            "suppressed": self.suppressed,
        }

    def take_unflushed(self) -> tuple[dict[str, int], list[float]]:
        """What changed since the last call: counter deltas and new latencies."""
        counts = self.counts()
        delta = {name: value - self._flushed.get(name, 0) for name, value in counts.items()}
        self._flushed = counts
        latencies, self.unflushed_latencies_ms = self.unflushed_latencies_ms, []
        return {k: v for k, v in delta.items() if v}, latencies

    def user_numbers(self) -> dict[str, Any]:
        """This session's numbers, as ``codegemma-lsp stats`` shows a day's."""
        retention = self.retention
        answers = [r for r in self.records if r.source not in BACKGROUND and not r.cancelled]
        latencies = [r.total_ms for r in answers]
        return {
            "shown": self.shown,
            "accepted": self.accepted,
            "accepted_partially": self.accepted_partially,
            "accepted_chars": retention.accepted_chars,
            "retained_chars": retention.retained_chars,
            "judged_accepts": retention.judged,
            "pending_accepts": retention.pending,
            "retention": (
                round(retention.retained_chars / retention.accepted_chars, 3)
                if retention.accepted_chars
                else 0.0
            ),
            "suppressed": self.suppressed,
            "cache_answers": self.cache_answers,
            "joined_answers": self.joined_answers,
            "cache_or_join_share": (
                round((self.cache_answers + self.joined_answers) / self.answered, 3)
                if self.answered
                else 0.0
            ),
            "latency_ms": {
                "p50": round(percentile(latencies, 0.5), 1),
                "p95": round(percentile(latencies, 0.95), 1),
            },
        }

    def summary(self, *, with_records: bool = False) -> dict[str, Any]:
        requests = [r for r in self.records if r.source not in BACKGROUND]
        answered = [r for r in requests if not r.cancelled]
        latencies = [r.total_ms for r in answered]
        cancels = list(self.cancel_latencies_ms)
        result: dict[str, Any] = {
            "shown": self.shown,
            "accepted": self.accepted,
            "accepted_partially": self.accepted_partially,
            "acceptance_rate": self.accepted / self.shown if self.shown else 0.0,
            "requests": len(requests),
            "cache_answers": sum(1 for r in answered if r.source == "cache" and not r.joined),
            "joined_answers": sum(1 for r in answered if r.joined),
            "latency_ms": {
                "count": len(latencies),
                "p50": percentile(latencies, 0.5),
                "p95": percentile(latencies, 0.95),
            },
            "cancel_latency_ms": {
                "count": len(cancels),
                "p50": percentile(cancels, 0.5),
                "p95": percentile(cancels, 0.95),
            },
        }
        remote = [r for r in answered if r.network_ms > 0]
        if remote:  # a remote engine: its network time apart from the server's own times
            result["remote_ms"] = {
                name: {
                    "p50": percentile([getattr(r, name) for r in remote], 0.5),
                    "p95": percentile([getattr(r, name) for r in remote], 0.95),
                }
                for name in ("network_ms", "prompt_ms", "generate_ms")
            }
        errors = sum(1 for r in requests if r.stop_reason == "error")
        if errors:
            result["engine_errors"] = errors
        result["user"] = self.user_numbers()
        if with_records:
            result["records"] = [asdict(r) for r in self.records]
            result["cancel_latencies_ms"] = cancels
        return result
