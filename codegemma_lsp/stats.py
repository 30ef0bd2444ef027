"""Local usage counts and per-request figures: kept in memory only; nothing leaves the machine."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from codegemma_lsp.engine.base import Generation

Source = Literal["model", "cache", "none", "prewarm", "precompute"]
"""Who answered a request; "prewarm" and "precompute" mark background work, not requests."""

BACKGROUND: frozenset[Source] = frozenset({"prewarm", "precompute"})


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
        )


@dataclass
class Stats:
    shown: int = 0
    accepted: int = 0
    accepted_partially: int = 0
    records: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=5000))
    cancel_latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=5000))

    def record(self, record: RequestRecord) -> None:
        self.records.append(record)

    def record_cancel_latency(self, ms: float) -> None:
        self.cancel_latencies_ms.append(ms)

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
            "cache_answers": sum(1 for r in answered if r.source == "cache"),
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
        if with_records:
            result["records"] = [asdict(r) for r in self.records]
            result["cancel_latencies_ms"] = cancels
        return result
