"""The replay benchmark's figures, from the client's request logs and the server's records.

The server answers ``codegemma/stats`` with ``{"records": true}`` by listing a
record per completion request (tokens evaluated, milliseconds inside and
outside llama.cpp, whether the cache answered, whether it was cancelled). The
parsing is tolerant: a missing field is None and its figure is left out, and a
server with no records at all still gets its latencies measured here.

Definitions:

- latency: client-side, from sending a request to reading its answer, over
  the requests answered (not cancelled), with or without an item: a random
  model's text is often cut to nothing, and that answer cost as much. Where
  records carry the request's JSON-RPC ``id``, requests the server declined
  without the model or the cache (``source: "none"``) are left out;
- ``reeval_tokens_per_typed_token``: prompt tokens evaluated, divided by the
  tokens of the text typed (inserted or deleted) between requests, each file's
  warm-up left out of both. Every evaluation counts: requests, the part of a
  cancelled request evaluated before it stopped, pre-warming and precomputing.
  A file's warm-up is its first request, and, when that one was cancelled, the
  requests after it up to the first one answered (they carry on evaluating the
  same cold prompt), with any background work done before that answer;
- ``keystroke_reeval_tokens_per_typed_token``: the same, with each relocation
  left out as well: the requests after the cursor was moved somewhere, up to
  the first one answered there. It is what a keystroke costs where the user
  types, apart from the cost of moving to a new place;
- ``cache_answer_rate``: answers from the cache over answers (not cancelled)
  from the cache or the model;
- ``overhead_p95_ms``: p95 of the time spent outside llama.cpp, over the
  requests that were not cancelled;
- ``cancel_latency_p95_ms``: p95 of how long a superseded request took to stop,
  as the server measured it, or else as the client saw it (from the newer
  request's sending to the old one's answer).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from codegemma_lsp.evals.replay import SessionLog

Tokenizer = Callable[[str], int]
"""The number of tokens a text tokenizes to."""

TARGETS: dict[str, tuple[str, float]] = {
    "latency_ratio": ("<=", 0.1),
    "reeval_tokens_per_typed_token": ("<=", 1.5),
    "overhead_p95_ms": ("<=", 5.0),
    "cancel_latency_p95_ms": ("<=", 100.0),
}
RSS_HEADROOM_MB = 400.0


@dataclass(frozen=True)
class ServerRecord:
    request_id: int | str | None
    uri: str | None
    source: str | None
    prompt_tokens: int | None
    evaluated_tokens: int | None
    generated_tokens: int | None
    llama_ms: float | None
    overhead_ms: float | None
    total_ms: float | None
    cancelled: bool
    cancel_latency_ms: float | None
    generate_ms: float | None = None
    drafted_tokens: int | None = None
    accepted_drafts: int | None = None


def _number(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _integer(data: Mapping[str, Any], key: str) -> int | None:
    value = _number(data, key)
    return None if value is None else int(value)


def parse_record(data: Mapping[str, Any]) -> ServerRecord:
    uri, source = data.get("uri"), data.get("source")
    request_id = data.get("id", data.get("request_id"))
    return ServerRecord(
        request_id=request_id if isinstance(request_id, int | str) else None,
        uri=uri if isinstance(uri, str) else None,
        source=source if isinstance(source, str) else None,
        prompt_tokens=_integer(data, "prompt_tokens"),
        evaluated_tokens=_integer(data, "evaluated_tokens"),
        generated_tokens=_integer(data, "generated_tokens"),
        llama_ms=_number(data, "llama_ms"),
        overhead_ms=_number(data, "overhead_ms"),
        total_ms=_number(data, "total_ms"),
        cancelled=bool(data.get("cancelled", False)),
        cancel_latency_ms=_number(data, "cancel_latency_ms"),
        generate_ms=_number(data, "generate_ms"),
        drafted_tokens=_integer(data, "drafted_tokens"),
        accepted_drafts=_integer(data, "accepted_drafts"),
    )


@dataclass(frozen=True)
class ServerStats:
    records: list[ServerRecord] | None
    """None when the server keeps no records."""
    cancel_latencies_ms: list[float] | None


def parse_stats(result: Any) -> ServerStats:
    """Read a ``codegemma/stats`` result, whatever of it is there."""
    if not isinstance(result, Mapping):
        return ServerStats(None, None)
    raw = result.get("records")
    records = (
        [parse_record(r) for r in raw if isinstance(r, Mapping)] if isinstance(raw, list) else None
    )
    cancels: list[float] | None = None
    listed = result.get("cancel_latencies_ms")
    if isinstance(listed, list):
        cancels = [float(v) for v in listed if isinstance(v, int | float)]
    elif records is not None and any(r.cancel_latency_ms is not None for r in records):
        cancels = [r.cancel_latency_ms for r in records if r.cancel_latency_ms is not None]
    return ServerStats(records, cancels)


# ----- statistics ----------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


# ----- figures ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFigures:
    """What one replay (ours or the baseline) measured."""

    requests: int
    answered_with_items: int
    fresh_items: int
    """Items that arrived before the user moved on, so the user could act on them."""
    empty: int
    cancelled: int
    errors: int
    unanswered: int
    median_latency_ms: float | None
    p95_latency_ms: float | None
    typed_tokens: int
    evaluated_tokens: int | None
    reeval_tokens_per_typed_token: float | None
    keystroke_reeval_tokens_per_typed_token: float | None
    relocations: int
    tokens_per_relocation: float | None
    cache_answer_rate: float | None
    mean_prompt_tokens: float | None
    mean_generated_tokens: float | None
    """Over the model's answers: how long prompts and completions were."""
    ms_per_generated_token: float | None
    """Generation time over generated tokens, over the model's answers."""
    draft_acceptance: float | None
    """Prompt-lookup draft tokens the model kept, over those drafted (None: no drafts)."""
    overhead_p95_ms: float | None
    cancel_latency_p95_ms: float | None
    cancel_latency_source: str
    peak_rss_mb: float | None
    accepted: int
    followed: int
    duration_s: float


@dataclass(frozen=True)
class TokenAccount:
    """Tokens typed and evaluated, split by what the user was doing."""

    typed: int
    evaluated: int | None
    """Over everything but each file's warm-up (None: a record lacked its count)."""
    relocation_typed: int
    relocation_evaluated: int | None
    """The part of ``typed`` and ``evaluated`` spent on relocations."""
    relocations: int


_ANSWERED = ("items", "empty")


def _request_phases(log: SessionLog) -> dict[int, str]:
    """Each request's phase: "warmup", "relocation" or "keystroke"."""
    phases: dict[int, str] = {}
    phase = "warmup"
    for request in log.requests:
        if request.moved and phase != "warmup":
            phase = "relocation"
        phases[request.id] = phase
        if request.outcome in _ANSWERED:
            phase = "keystroke"
    return phases


def token_account(
    logs: Sequence[SessionLog], records: Sequence[ServerRecord] | None, count: Tokenizer
) -> TokenAccount:
    """Split typed and evaluated tokens into warm-up, relocation and keystroke parts.

    Records are matched to requests by their JSON-RPC id. Background records
    (and records of a server that sends no ids) take the phase of the last
    request record of their file before them; a file's records before any such
    record belong to its warm-up.
    """
    typed = relocation_typed = relocations = 0
    phase_of: dict[tuple[str, int | str], str] = {}
    for log in logs:
        phases = _request_phases(log)
        relocations += sum(1 for r in log.requests if r.moved and phases[r.id] == "relocation")
        for request in log.requests:
            phase_of[(log.uri, request.id)] = phases[request.id]
            tokens = count(request.typed_text) + count(request.deleted_text)
            if phases[request.id] != "warmup":
                typed += tokens
            if phases[request.id] == "relocation":
                relocation_typed += tokens
    if records is None:
        return TokenAccount(typed, None, relocation_typed, None, relocations)
    evaluated: int | None = 0
    relocation_evaluated: int | None = 0
    last_phase: dict[str | None, str] = {}
    for record in records:
        phase = last_phase.get(record.uri, "warmup")
        if record.request_id is not None and record.uri is not None:
            phase = phase_of.get((record.uri, record.request_id), phase)
            last_phase[record.uri] = phase
        elif phase == "warmup" and record.source == "model" and not record.cancelled:
            # No ids: a file's first answered model request ends its warm-up.
            last_phase[record.uri] = "keystroke"
        if phase == "warmup":
            continue
        if record.evaluated_tokens is None:
            evaluated = relocation_evaluated = None
            continue
        if evaluated is not None:
            evaluated += record.evaluated_tokens
        if phase == "relocation" and relocation_evaluated is not None:
            relocation_evaluated += record.evaluated_tokens
    return TokenAccount(typed, evaluated, relocation_typed, relocation_evaluated, relocations)


def client_cancel_latencies(logs: Iterable[SessionLog]) -> list[float]:
    return [
        (request.answered_at - request.superseded_at) * 1000
        for log in logs
        for request in log.requests
        if request.outcome == "cancelled"
        and request.answered_at is not None
        and request.superseded_at is not None
    ]


def run_figures(
    logs: Sequence[SessionLog],
    stats: ServerStats,
    count: Tokenizer,
    *,
    peak_rss_mb: float | None,
) -> RunFigures:
    requests = [request for log in logs for request in log.requests]
    declined = {
        (r.uri, r.request_id)
        for r in stats.records or []
        if r.request_id is not None and r.source == "none"
    }
    latencies = [
        request.latency_ms
        for log in logs
        for request in log.requests
        if request.outcome in ("items", "empty")
        and request.latency_ms is not None
        and (log.uri, request.id) not in declined
    ]
    outcomes = [request.outcome for request in requests]
    records = stats.records
    account = token_account(logs, records, count)
    typed, evaluated = account.typed, account.evaluated
    keystroke_evaluated = (
        None
        if evaluated is None or account.relocation_evaluated is None
        else evaluated - account.relocation_evaluated
    )
    answers = [r for r in records or [] if not r.cancelled and r.source in ("model", "cache")]
    cache_rate = (
        sum(1 for r in answers if r.source == "cache") / len(answers)
        if records is not None and answers
        else None
    )
    model_answers = [r for r in answers if r.source == "model"]
    prompts = [r.prompt_tokens for r in model_answers if r.prompt_tokens is not None]
    generated = [r.generated_tokens for r in model_answers if r.generated_tokens is not None]
    timed = [r for r in model_answers if r.generate_ms is not None and r.generated_tokens]
    generate_ms = sum(r.generate_ms or 0.0 for r in timed)
    drafted = sum(r.drafted_tokens or 0 for r in records or [])
    accepted = sum(r.accepted_drafts or 0 for r in records or [])
    # A cancelled request's record holds no measured overhead; background work has none.
    overheads = [
        r.overhead_ms
        for r in records or []
        if r.overhead_ms is not None and not r.cancelled and r.source in ("model", "cache", "none")
    ]
    if stats.cancel_latencies_ms:
        cancels, cancel_source = stats.cancel_latencies_ms, "server"
    else:
        cancels, cancel_source = client_cancel_latencies(logs), "client"
    return RunFigures(
        requests=len(requests),
        answered_with_items=outcomes.count("items"),
        fresh_items=sum(1 for request in requests if request.fresh),
        empty=outcomes.count("empty"),
        cancelled=outcomes.count("cancelled"),
        errors=outcomes.count("error"),
        unanswered=outcomes.count("unanswered"),
        median_latency_ms=median(latencies),
        p95_latency_ms=percentile(latencies, 0.95),
        typed_tokens=typed,
        evaluated_tokens=evaluated,
        reeval_tokens_per_typed_token=_ratio(evaluated, typed),
        keystroke_reeval_tokens_per_typed_token=_ratio(
            keystroke_evaluated, typed - account.relocation_typed
        ),
        relocations=account.relocations,
        tokens_per_relocation=_ratio(account.relocation_evaluated, account.relocations),
        cache_answer_rate=cache_rate,
        mean_prompt_tokens=statistics.fmean(prompts) if prompts else None,
        mean_generated_tokens=statistics.fmean(generated) if generated else None,
        ms_per_generated_token=_ratio(generate_ms, sum(r.generated_tokens or 0 for r in timed)),
        draft_acceptance=_ratio(accepted, drafted),
        overhead_p95_ms=percentile(overheads, 0.95),
        cancel_latency_p95_ms=percentile(cancels, 0.95) if cancels else None,
        cancel_latency_source=cancel_source,
        peak_rss_mb=peak_rss_mb,
        accepted=sum(log.accepted for log in logs),
        followed=sum(log.followed for log in logs),
        duration_s=sum(log.duration_s for log in logs),
    )


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def summary(
    mode: str, ours: RunFigures, baseline: RunFigures | None, *, model_mb: float
) -> dict[str, Any]:
    """The JSON line: the issue's keys first, then the details behind them."""
    base_median = baseline.median_latency_ms if baseline else None
    result: dict[str, Any] = {
        "median_latency_ms": _rounded(ours.median_latency_ms),
        "p95_latency_ms": _rounded(ours.p95_latency_ms),
        "baseline_median_latency_ms": _rounded(base_median),
        "latency_ratio": _rounded(_ratio(ours.median_latency_ms, base_median), 3),
        "reeval_tokens_per_typed_token": _rounded(ours.reeval_tokens_per_typed_token, 3),
        "cache_answer_rate": _rounded(ours.cache_answer_rate, 3),
        "overhead_p95_ms": _rounded(ours.overhead_p95_ms, 2),
        "cancel_latency_p95_ms": _rounded(ours.cancel_latency_p95_ms),
        "peak_rss_mb": _rounded(ours.peak_rss_mb),
        "model_mb": round(model_mb, 1),
        "mode": mode,
    }
    result["targets_met"] = targets_met(result)
    result["ours"] = _details(ours)
    result["baseline"] = _details(baseline) if baseline else None
    return result


def _details(figures: RunFigures) -> dict[str, Any]:
    return {
        "requests": figures.requests,
        "answered_with_items": figures.answered_with_items,
        "fresh_items": figures.fresh_items,
        "empty": figures.empty,
        "cancelled": figures.cancelled,
        "errors": figures.errors,
        "unanswered": figures.unanswered,
        "median_latency_ms": _rounded(figures.median_latency_ms),
        "p95_latency_ms": _rounded(figures.p95_latency_ms),
        "typed_tokens": figures.typed_tokens,
        "evaluated_tokens": figures.evaluated_tokens,
        "keystroke_reeval_tokens_per_typed_token": _rounded(
            figures.keystroke_reeval_tokens_per_typed_token, 3
        ),
        "relocations": figures.relocations,
        "tokens_per_relocation": _rounded(figures.tokens_per_relocation),
        "mean_prompt_tokens": _rounded(figures.mean_prompt_tokens),
        "mean_generated_tokens": _rounded(figures.mean_generated_tokens),
        "ms_per_generated_token": _rounded(figures.ms_per_generated_token),
        "draft_acceptance": _rounded(figures.draft_acceptance, 3),
        "cancel_latency_source": figures.cancel_latency_source,
        "peak_rss_mb": _rounded(figures.peak_rss_mb),
        "accepted": figures.accepted,
        "followed": figures.followed,
        "duration_s": round(figures.duration_s, 1),
    }


def targets_met(result: Mapping[str, Any]) -> dict[str, bool | None]:
    """Each target: met, missed, or None when its figure is missing."""
    met: dict[str, bool | None] = {}
    for key, (_, limit) in TARGETS.items():
        value = result.get(key)
        met[key] = None if value is None else value <= limit
    rss, model = result.get("peak_rss_mb"), result.get("model_mb")
    met["peak_rss_mb"] = None if rss is None or model is None else rss <= model + RSS_HEADROOM_MB
    return met


# ----- the table -----------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)


def format_table(results: Sequence[Mapping[str, Any]]) -> str:
    """One column per mode: the figures, each with its target and whether it is met."""
    rows: list[tuple[str, str, str]] = [
        ("median latency (ms)", "median_latency_ms", ""),
        ("p95 latency (ms)", "p95_latency_ms", ""),
        ("baseline median (ms)", "baseline_median_latency_ms", ""),
        ("latency ratio", "latency_ratio", "<= 0.1"),
        ("re-eval tokens / typed", "reeval_tokens_per_typed_token", "<= 1.5"),
        ("cache answer rate", "cache_answer_rate", ""),
        ("overhead p95 (ms)", "overhead_p95_ms", "<= 5"),
        ("cancel latency p95 (ms)", "cancel_latency_p95_ms", "<= 100"),
        ("peak RSS (MB)", "peak_rss_mb", f"<= model + {RSS_HEADROOM_MB:.0f}"),
        ("model (MB)", "model_mb", ""),
    ]
    header = ["figure", *[str(r.get("mode")) for r in results], "target"]
    lines = [header]
    for label, key, target in rows:
        cells = []
        for result in results:
            mark = {True: "", False: " !", None: ""}[result.get("targets_met", {}).get(key)]
            cells.append(_cell(result.get(key)) + mark)
        lines.append([label, *cells, target])
    for label, key in (
        ("requests (ours)", "requests"),
        ("answered with items", "answered_with_items"),
        ("items still fresh", "fresh_items"),
        ("cancelled", "cancelled"),
        ("re-eval / typed at keystrokes", "keystroke_reeval_tokens_per_typed_token"),
        ("relocations", "relocations"),
        ("tokens per relocation", "tokens_per_relocation"),
        ("mean prompt tokens", "mean_prompt_tokens"),
        ("mean generated tokens", "mean_generated_tokens"),
        ("ms per generated token", "ms_per_generated_token"),
        ("draft acceptance", "draft_acceptance"),
        ("accepted", "accepted"),
        ("followed", "followed"),
    ):
        lines.append([label, *[_cell((r.get("ours") or {}).get(key)) for r in results], ""])
    for label, key in (
        ("baseline requests", "requests"),
        ("baseline prompt tokens", "mean_prompt_tokens"),
        ("baseline generated tokens", "mean_generated_tokens"),
    ):
        lines.append([label, *[_cell((r.get("baseline") or {}).get(key)) for r in results], ""])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in lines
    ]
    text.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in text) + "\n(! marks a missed target)"
