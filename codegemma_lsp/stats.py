"""Local usage counts: kept in memory only; nothing leaves the machine."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (0.0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * (len(ordered) - 1))))
    return ordered[rank]


@dataclass
class Stats:
    shown: int = 0
    accepted: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))

    def record_latency(self, ms: float) -> None:
        self.latencies_ms.append(ms)

    def summary(self) -> dict[str, Any]:
        values = list(self.latencies_ms)
        return {
            "shown": self.shown,
            "accepted": self.accepted,
            "acceptance_rate": self.accepted / self.shown if self.shown else 0.0,
            "latency_ms": {
                "count": len(values),
                "p50": percentile(values, 0.5),
                "p95": percentile(values, 0.95),
            },
        }
