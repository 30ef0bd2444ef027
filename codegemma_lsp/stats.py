"""Local usage counts and per-request figures: kept in memory only; nothing leaves the machine."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

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


@dataclass(frozen=True)
class RequestRecord:
    """What one completion request cost; the replay benchmark reads these."""

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
    stop_reason: str = "-"
    cancelled: bool = False
    request_id: int | str | None = None
    """The JSON-RPC id of the request (None for background work)."""
    drafted_tokens: int = 0
    accepted_drafts: int = 0


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
        if with_records:
            result["records"] = [asdict(r) for r in self.records]
            result["cancel_latencies_ms"] = cancels
        return result
