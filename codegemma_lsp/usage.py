"""The user's own numbers, per day, in one small JSON file each: never sent anywhere.

Files live in the user's state directory (``platformdirs``; on Linux
``~/.local/state/codegemma-lsp/usage/YYYY-MM-DD.json``). A day's file holds counts
and a bounded sample of latencies, so it stays a few kilobytes however long the
editor runs. The server adds to today's file when it flushes (every minute and at
exit); ``codegemma-lsp stats`` prints them. Nothing here holds code or file names.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

LATENCY_SAMPLES = 2000
"""Latencies kept per day for p50/p95; older ones give way to newer."""

COUNTERS = (
    "requests",
    "shown",
    "accepted",
    "accepted_partially",
    "accepted_chars",
    "retained_chars",
    "judged_accepts",
    "cache_answers",
    "joined_answers",
    "suppressed",
)


def usage_dir() -> Path:
    """Where the daily files live; ``CODEGEMMA_LSP_STATE_DIR`` moves it (tests use that)."""
    override = os.environ.get("CODEGEMMA_LSP_STATE_DIR")
    if override:
        return Path(override) / "usage"
    import platformdirs

    return Path(platformdirs.user_state_dir("codegemma-lsp", appauthor=False)) / "usage"


@dataclass
class DayUsage:
    day: str
    requests: int = 0
    shown: int = 0
    accepted: int = 0
    accepted_partially: int = 0
    accepted_chars: int = 0
    retained_chars: int = 0
    judged_accepts: int = 0
    cache_answers: int = 0
    joined_answers: int = 0
    suppressed: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], day: str) -> DayUsage:
        usage = cls(day)
        for f in fields(cls):
            if f.name in COUNTERS and isinstance(data.get(f.name), int):
                setattr(usage, f.name, data[f.name])
        raw = data.get("latencies_ms")
        if isinstance(raw, list):
            usage.latencies_ms = [float(x) for x in raw if isinstance(x, int | float)]
        return usage

    def add(self, delta: Mapping[str, int], latencies: Iterable[float]) -> None:
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + int(delta.get(name, 0)))
        self.latencies_ms = [*self.latencies_ms, *latencies][-LATENCY_SAMPLES:]

    def summary(self) -> dict[str, Any]:
        from codegemma_lsp.stats import percentile

        data = {k: v for k, v in asdict(self).items() if k != "latencies_ms"}
        data["latency_ms"] = {
            "p50": round(percentile(self.latencies_ms, 0.5), 1),
            "p95": round(percentile(self.latencies_ms, 0.95), 1),
        }
        data["acceptance_rate"] = round(self.accepted / self.shown, 3) if self.shown else 0.0
        data["retention"] = (
            round(self.retained_chars / self.accepted_chars, 3) if self.accepted_chars else 0.0
        )
        answered = self.requests or 0
        data["cache_or_join_share"] = (
            round((self.cache_answers + self.joined_answers) / answered, 3) if answered else 0.0
        )
        return data


def _path(directory: Path, day: str) -> Path:
    return directory / f"{day}.json"


def load_day(day: str, directory: Path | None = None) -> DayUsage:
    path = _path(directory or usage_dir(), day)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return DayUsage(day)
    return DayUsage.from_json(data if isinstance(data, dict) else {}, day)


def add_to_day(
    delta: Mapping[str, int],
    latencies: Iterable[float],
    *,
    day: str | None = None,
    directory: Path | None = None,
) -> DayUsage:
    """Add counts to a day's file (today by default), written atomically."""
    directory = directory or usage_dir()
    day = day or date.today().isoformat()
    usage = load_day(day, directory)
    usage.add(delta, latencies)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".usage-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(usage), handle)
        os.replace(tmp, _path(directory, day))
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return usage


def all_days(directory: Path | None = None) -> list[DayUsage]:
    directory = directory or usage_dir()
    if not directory.is_dir():
        return []
    days = sorted(p.stem for p in directory.glob("*.json") if not p.name.startswith("."))
    return [load_day(day, directory) for day in days]
