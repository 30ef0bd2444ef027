"""The replay benchmark's figures, from the client's request logs and the server's records.

The server answers ``codegemma/stats`` with ``{"records": true}`` by listing a
record per completion request (tokens evaluated, milliseconds inside and
outside llama.cpp, whether the cache answered, whether it was cancelled). The
parsing is tolerant: a missing field is None and its figure is left out, and a
server with no records at all still gets its latencies measured here.

Every figure has a value, whatever was shown: a share or a ratio with nothing to
divide is 0, and only a server that keeps no records leaves its token figures out.

Definitions:

- ``answered_in_pause`` (the headline): of the typist's recorded pauses of at
  least 1 s, the share in which a suggestion reached the client before the
  typist's next step: an answer to a request made in that pause (or a cache
  answer, or one that joined a precompute) that was still fresh. The random
  weights' text is often truncated to nothing, so an empty answer counts too,
  but only when the model finished its text: an answer the time budget cut
  (``stop_reason: "time"``) counts as none, since real weights would have stopped
  mid-way as well. A pause where the server declined to complete (``source:
  "none"``: the cursor is mid-word, say) is left out. ``answered_in_pause_600ms``
  is the same for pauses of at least 600 ms; ``time_to_suggestion_p50_ms`` and
  ``_p95_ms`` count from the pause's start (the typist's last step, so they hold
  the editor's 200 ms timer), a pause with no suggestion counting as its whole
  length. The baseline waits for each answer in virtual time, so its pause
  figures pair each of its measured latencies with each pause: with no reuse,
  every request costs the same wherever it falls;
- latency: client-side, from sending a request to reading its answer, over
  the requests answered (not cancelled), with or without an item: a random
  model's text is often cut to nothing, and that answer cost as much. Where
  records carry the request's JSON-RPC ``id``, requests the server declined
  without the model or the cache (``source: "none"``) are left out. With no
  request answered at all, the figures are those of the cancelled requests,
  from sending to the cancel: a lower bound (``latency_basis``);
- ``reeval_tokens_per_typed_token``: prompt tokens evaluated, each file's
  warm-up left out, divided by the tokens of all the text the session typed or
  deleted (counted from its edits, not from requests). Every evaluation counts:
  requests, the part of a cancelled request evaluated before it stopped,
  pre-warming and precomputing. A file's warm-up is its first request, and the
  requests after it up to the first one that got its prompt evaluated (it was
  answered, or it was generating when cancelled): they carry on evaluating the
  same cold prompt. Background work done before that counts as warm-up too;
- ``keystroke_reeval_tokens_per_typed_token``: the same, with each relocation
  left out as well: the requests after the cursor was moved somewhere, up to
  the first one there that got its prompt evaluated, and the text typed
  meanwhile. It is what a keystroke costs where the user types, apart from the
  cost of moving to a new place;
- ``cache_answer_rate``: answers from the cache over answers (not cancelled)
  from the cache or the model. Joining work already running (an eager start, a
  generation the user typed into, a block's rest) answers from the cache, and so
  does a remembered silence (a place where the model had nothing to offer);
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

from codegemma_lsp.evals.replay import RequestLog, SessionLog

Tokenizer = Callable[[str], int]
"""The number of tokens a text tokenizes to."""

TARGETS: dict[str, tuple[str, float]] = {
    "answered_in_pause": (">=", 0.7),
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
    stop_reason: str | None = None
    joined: bool = False
    """Answered by joining a generation already running (source "cache")."""


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
        stop_reason=data["stop_reason"] if isinstance(data.get("stop_reason"), str) else None,
        joined=data.get("joined") is True,
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
    """None only when the numerator is unknown; 0 when there is nothing to divide by."""
    if numerator is None or denominator is None:
        return None
    return numerator / denominator if denominator else 0.0


def _share(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


# ----- pauses ------------------------------------------------------------------------------

PAUSE_THRESHOLDS_MS = (1000.0, 600.0)


@dataclass(frozen=True)
class PauseFigures:
    """How the typist's pauses of at least ``threshold_ms`` went."""

    threshold_ms: float
    pauses: int
    """Pauses counted: the declined ones are left out."""
    answered: int
    declined: int
    answered_share: float
    time_p50_ms: float
    time_p95_ms: float
    """Time to a suggestion from the pause's start; a pause with none counts as its length."""


def answer_kind(request: RequestLog, record: ServerRecord | None) -> str:
    """ "suggestion", "declined" or "none" for an answered request.

    Without a record (a server that keeps none) any answer is a suggestion.
    """
    if request.outcome not in _ANSWERED or request.answered_at is None:
        return "none"
    if record is None:
        return "suggestion"
    if record.source == "none":
        return "declined"
    if record.cancelled or record.stop_reason in ("time", "cancelled"):
        return "none"
    return "suggestion"


def _records_by_id(
    records: Sequence[ServerRecord] | None,
) -> dict[tuple[str, int | str], ServerRecord]:
    found: dict[tuple[str, int | str], ServerRecord] = {}
    for record in records or []:
        if (
            record.uri is not None
            and record.request_id is not None
            and record.source
            in (
                "model",
                "cache",
                "none",
            )
        ):
            found[(record.uri, record.request_id)] = record
    return found


def pause_figures(
    logs: Sequence[SessionLog],
    records: Sequence[ServerRecord] | None,
    threshold_ms: float,
    *,
    closed_loop: bool = False,
    debounce_s: float = 0.2,
) -> PauseFigures:
    """Pauses of at least ``threshold_ms``: answered share and time to a suggestion.

    ``closed_loop``: the requests were awaited in virtual time, so each answered
    request's latency (plus the editor's ``debounce_s``, scaled as the pauses were) is
    tried against each pause.
    """
    by_id = _records_by_id(records)
    pauses = [(log, p) for log in logs for p in log.pauses if p.wait_ms >= threshold_ms]
    times: list[float] = []
    answered = declined = 0
    if closed_loop:
        samples: list[float | None] = []  # latency in seconds; None: no suggestion came
        for log in logs:
            for request in log.requests:
                kind = answer_kind(request, by_id.get((log.uri, request.id)))
                if kind == "suggestion" and request.latency_ms is not None:
                    samples.append(request.latency_ms / 1000)
                elif kind == "none" and request.outcome != "unanswered":
                    samples.append(None)
        for _, pause in pauses:
            length = pause.end - pause.start
            scale = length / (pause.wait_ms / 1000) if pause.wait_ms else 1.0
            for latency in samples:
                sample = None if latency is None else debounce_s * scale + latency
                hit = sample is not None and sample < length
                answered += hit
                times.append(1000 * (sample if hit and sample is not None else length))
        counted = len(pauses) * len(samples)
        return PauseFigures(
            threshold_ms,
            len(pauses),
            round(_share(answered, counted) * len(pauses)),
            0,
            _share(answered, counted),
            percentile(times, 0.5) or 0.0,
            percentile(times, 0.95) or 0.0,
        )
    for log, pause in pauses:
        first: float | None = None
        saw_decline = False
        for request in log.requests:
            at = request.answered_at
            if at is None or not pause.start < at <= pause.end or not request.fresh:
                continue
            kind = answer_kind(request, by_id.get((log.uri, request.id)))
            if kind == "suggestion":
                first = at if first is None else min(first, at)
            saw_decline = saw_decline or kind == "declined"
        if first is None and saw_decline:
            declined += 1
            continue
        answered += first is not None
        times.append(1000 * ((first if first is not None else pause.end) - pause.start))
    counted = len(pauses) - declined
    return PauseFigures(
        threshold_ms,
        counted,
        answered,
        declined,
        _share(answered, counted),
        percentile(times, 0.5) or 0.0,
        percentile(times, 0.95) or 0.0,
    )


def pause_trace(
    logs: Sequence[SessionLog], records: Sequence[ServerRecord] | None, threshold_ms: float = 600.0
) -> list[dict[str, Any]]:
    """Each pause of at least ``threshold_ms`` and what happened in it, for ``--pause-trace``.

    Times are milliseconds from the pause's start. No text is kept, only its size.
    """
    by_id = _records_by_id(records)
    trace: list[dict[str, Any]] = []
    for log in logs:
        for pause in log.pauses:
            if pause.wait_ms < threshold_ms:
                continue
            requests = []
            for request in log.requests:
                ends = request.answered_at or request.superseded_at or pause.end
                if ends <= pause.start or request.sent_at > pause.end:
                    continue
                record = by_id.get((log.uri, request.id))
                requests.append(
                    {
                        "id": request.id,
                        "sent_ms": _rounded(1000 * (request.sent_at - pause.start)),
                        "answered_ms": _rounded(1000 * (request.answered_at - pause.start))
                        if request.answered_at is not None
                        else None,
                        "outcome": request.outcome,
                        "fresh": request.fresh,
                        "kind": answer_kind(request, record),
                        "moved": request.moved,
                        "record": None
                        if record is None
                        else {
                            k: v
                            for k, v in vars(record).items()
                            if k not in ("uri", "request_id") and v is not None
                        },
                    }
                )
            trace.append(
                {
                    "session": log.name,
                    "wait_ms": pause.wait_ms,
                    "played_ms": _rounded(1000 * (pause.end - pause.start)),
                    "requests": requests,
                }
            )
    return trace


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
    answered_share: float
    """Requests answered (not cancelled), over requests the server did not decline."""
    median_latency_ms: float
    p95_latency_ms: float
    latency_basis: str
    """"answered", or "cancelled (lower bound)" when no request was answered."""
    typed_tokens: int
    evaluated_tokens: int | None
    reeval_tokens_per_typed_token: float | None
    keystroke_reeval_tokens_per_typed_token: float | None
    relocations: int
    tokens_per_relocation: float | None
    cache_answer_rate: float
    mean_prompt_tokens: float
    mean_generated_tokens: float
    """Over the model's answers (or, with none, all its records): prompt and completion size."""
    ms_per_generated_token: float
    """Generation time over generated tokens, over the model's answers (or all its records)."""
    draft_acceptance: float
    """Prompt-lookup draft tokens the model kept, over those drafted (0: no drafts)."""
    overhead_p95_ms: float
    cancel_latency_p95_ms: float
    cancel_latency_source: str
    peak_rss_mb: float | None
    accepted: int
    followed: int
    duration_s: float
    pauses: tuple[PauseFigures, ...] = ()
    """One per threshold of ``PAUSE_THRESHOLDS_MS``, longest first."""


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


def _prompt_done(records: Sequence[ServerRecord] | None) -> set[tuple[str, int | str]]:
    """Requests whose prompt was evaluated: answered, or generating when cancelled."""
    return {
        key
        for key, record in _records_by_id(records).items()
        if not record.cancelled or (record.generated_tokens or 0) > 0
    }


def _request_phases(log: SessionLog, done: set[tuple[str, int | str]]) -> dict[int, str]:
    """Each request's phase: "warmup", "relocation" or "keystroke"."""
    phases: dict[int, str] = {}
    phase = "warmup"
    for request in log.requests:
        if request.moved and phase != "warmup":
            phase = "relocation"
        phases[request.id] = phase
        if request.outcome in _ANSWERED or (log.uri, request.id) in done:
            phase = "keystroke"
    return phases


def session_typed_tokens(log: SessionLog, count: Tokenizer) -> int:
    """Tokens of everything the session typed or deleted, from its own edits.

    A log that kept no edits (an older one) counts the text between its requests.
    """
    if log.inserted or log.deleted:
        texts = [*log.inserted, *log.deleted]
    else:
        texts = [t for r in log.requests for t in (r.typed_text, r.deleted_text)]
    return sum(count(text) for text in texts)


def token_account(
    logs: Sequence[SessionLog], records: Sequence[ServerRecord] | None, count: Tokenizer
) -> TokenAccount:
    """Split typed and evaluated tokens into warm-up, relocation and keystroke parts.

    Typed tokens count the whole session. Records are matched to requests by their
    JSON-RPC id. Background records (and records of a server that sends no ids)
    take the phase of the last request record of their file before them; a file's
    records before any such record belong to its warm-up.
    """
    typed = relocation_typed = relocations = 0
    phase_of: dict[tuple[str, int | str], str] = {}
    done = _prompt_done(records)
    for log in logs:
        phases = _request_phases(log, done)
        relocations += sum(1 for r in log.requests if r.moved and phases[r.id] == "relocation")
        typed += session_typed_tokens(log, count)
        for request in log.requests:
            phase_of[(log.uri, request.id)] = phases[request.id]
            if phases[request.id] == "relocation":
                relocation_typed += count(request.typed_text) + count(request.deleted_text)
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


def _latencies(
    logs: Sequence[SessionLog], records: Sequence[ServerRecord] | None
) -> tuple[list[float], str]:
    declined = {
        (r.uri, r.request_id)
        for r in records or []
        if r.request_id is not None and r.source == "none"
    }
    answered = [
        request.latency_ms
        for log in logs
        for request in log.requests
        if request.outcome in _ANSWERED
        and request.latency_ms is not None
        and (log.uri, request.id) not in declined
    ]
    if answered:
        return answered, "answered"
    cancelled = [
        request.latency_ms
        for log in logs
        for request in log.requests
        if request.outcome == "cancelled" and request.latency_ms is not None
    ]
    return cancelled, "cancelled (lower bound)"


def run_figures(
    logs: Sequence[SessionLog],
    stats: ServerStats,
    count: Tokenizer,
    *,
    peak_rss_mb: float | None,
    closed_loop: bool = False,
) -> RunFigures:
    requests = [request for log in logs for request in log.requests]
    records = stats.records
    latencies, basis = _latencies(logs, records)
    outcomes = [request.outcome for request in requests]
    by_id = _records_by_id(records)
    declined = sum(
        1
        for log in logs
        for request in log.requests
        if answer_kind(request, by_id.get((log.uri, request.id))) == "declined"
    )
    account = token_account(logs, records, count)
    typed, evaluated = account.typed, account.evaluated
    keystroke_evaluated = (
        None
        if evaluated is None or account.relocation_evaluated is None
        else evaluated - account.relocation_evaluated
    )
    answers = [r for r in records or [] if not r.cancelled and r.source in ("model", "cache")]
    # An eager start is the model answering before the request: its sizes and speed count.
    generating = ("model", "eager")
    model_answers = [r for r in records or [] if not r.cancelled and r.source in generating]
    model_records = model_answers or [r for r in records or [] if r.source in generating]
    prompts = [r.prompt_tokens for r in model_records if r.prompt_tokens is not None]
    generated = [r.generated_tokens for r in model_records if r.generated_tokens is not None]
    timed = [r for r in model_records if r.generate_ms is not None and r.generated_tokens]
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
    answered = outcomes.count("items") + outcomes.count("empty")
    return RunFigures(
        requests=len(requests),
        answered_with_items=outcomes.count("items"),
        fresh_items=sum(1 for r in requests if r.fresh and r.outcome == "items"),
        empty=outcomes.count("empty"),
        cancelled=outcomes.count("cancelled"),
        errors=outcomes.count("error"),
        unanswered=outcomes.count("unanswered"),
        answered_share=_share(answered - declined, len(requests) - declined),
        median_latency_ms=median(latencies) or 0.0,
        p95_latency_ms=percentile(latencies, 0.95) or 0.0,
        latency_basis=basis if latencies else "none",
        typed_tokens=typed,
        evaluated_tokens=evaluated,
        reeval_tokens_per_typed_token=_ratio(evaluated, typed),
        keystroke_reeval_tokens_per_typed_token=_ratio(
            keystroke_evaluated, typed - account.relocation_typed
        ),
        relocations=account.relocations,
        tokens_per_relocation=_ratio(account.relocation_evaluated, account.relocations),
        cache_answer_rate=_share(sum(1 for r in answers if r.source == "cache"), len(answers)),
        mean_prompt_tokens=statistics.fmean(prompts) if prompts else 0.0,
        mean_generated_tokens=statistics.fmean(generated) if generated else 0.0,
        ms_per_generated_token=_share(generate_ms, sum(r.generated_tokens or 0 for r in timed)),
        draft_acceptance=_share(accepted, drafted),
        overhead_p95_ms=percentile(overheads, 0.95) or 0.0,
        cancel_latency_p95_ms=percentile(cancels, 0.95) or 0.0,
        cancel_latency_source=cancel_source,
        peak_rss_mb=peak_rss_mb,
        accepted=sum(log.accepted for log in logs),
        followed=sum(log.followed for log in logs),
        duration_s=sum(log.duration_s for log in logs),
        pauses=tuple(
            pause_figures(logs, records, threshold, closed_loop=closed_loop)
            for threshold in PAUSE_THRESHOLDS_MS
        ),
    )


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _pause(figures: RunFigures | None, threshold_ms: float) -> PauseFigures | None:
    if figures is None:
        return None
    return next((p for p in figures.pauses if p.threshold_ms == threshold_ms), None)


def summary(
    mode: str,
    ours: RunFigures,
    baseline: RunFigures | None,
    *,
    model_mb: float,
    machine: Mapping[str, Any] | None = None,
    stop: str = "budget",
) -> dict[str, Any]:
    """The JSON line: the headline figures first, each beside the baseline's, then details."""
    base_median = baseline.median_latency_ms if baseline else None
    result: dict[str, Any] = {}
    for suffix, threshold in (("", 1000.0), ("_600ms", 600.0)):
        for prefix, figures in (("", ours), ("baseline_", baseline)):
            pause = _pause(figures, threshold)
            value = pause.answered_share if pause else None
            result[f"{prefix}answered_in_pause{suffix}"] = _rounded(value, 3)
    for name in ("p50", "p95"):
        for prefix, figures in (("", ours), ("baseline_", baseline)):
            pause = _pause(figures, 1000.0)
            value = (pause.time_p50_ms if name == "p50" else pause.time_p95_ms) if pause else None
            result[f"{prefix}time_to_suggestion_{name}_ms"] = _rounded(value)
    result["machine"] = dict(machine) if machine else None
    result["stop"] = stop
    result |= {
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
    pauses = {
        f"pauses_{p.threshold_ms:.0f}ms": {
            "pauses": p.pauses,
            "answered": p.answered,
            "declined": p.declined,
            "answered_share": _rounded(p.answered_share, 3),
            "time_to_suggestion_p50_ms": _rounded(p.time_p50_ms),
            "time_to_suggestion_p95_ms": _rounded(p.time_p95_ms),
        }
        for p in figures.pauses
    }
    return {
        **pauses,
        "requests": figures.requests,
        "answered_share": _rounded(figures.answered_share, 3),
        "answered_with_items": figures.answered_with_items,
        "fresh_items": figures.fresh_items,
        "empty": figures.empty,
        "cancelled": figures.cancelled,
        "errors": figures.errors,
        "unanswered": figures.unanswered,
        "median_latency_ms": _rounded(figures.median_latency_ms),
        "p95_latency_ms": _rounded(figures.p95_latency_ms),
        "latency_basis": figures.latency_basis,
        "typed_tokens": figures.typed_tokens,
        "evaluated_tokens": figures.evaluated_tokens,
        "reeval_tokens_per_typed_token": _rounded(figures.reeval_tokens_per_typed_token, 3),
        "keystroke_reeval_tokens_per_typed_token": _rounded(
            figures.keystroke_reeval_tokens_per_typed_token, 3
        ),
        "relocations": figures.relocations,
        "tokens_per_relocation": _rounded(figures.tokens_per_relocation),
        "cache_answer_rate": _rounded(figures.cache_answer_rate, 3),
        "mean_prompt_tokens": _rounded(figures.mean_prompt_tokens),
        "mean_generated_tokens": _rounded(figures.mean_generated_tokens),
        "ms_per_generated_token": _rounded(figures.ms_per_generated_token),
        "draft_acceptance": _rounded(figures.draft_acceptance, 3),
        "overhead_p95_ms": _rounded(figures.overhead_p95_ms, 2),
        "cancel_latency_p95_ms": _rounded(figures.cancel_latency_p95_ms),
        "cancel_latency_source": figures.cancel_latency_source,
        "peak_rss_mb": _rounded(figures.peak_rss_mb),
        "accepted": figures.accepted,
        "followed": figures.followed,
        "duration_s": round(figures.duration_s, 1),
    }


def targets_met(result: Mapping[str, Any]) -> dict[str, bool | None]:
    """Each target: met, missed, or None when its figure is missing."""
    met: dict[str, bool | None] = {}
    for key, (sense, limit) in TARGETS.items():
        value = result.get(key)
        if value is None:
            met[key] = None
        else:
            met[key] = value >= limit if sense == ">=" else value <= limit
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


def _machine_cell(result: Mapping[str, Any]) -> str:
    machine = result.get("machine") or {}
    prompt, generated = machine.get("prompt_tokens_per_s"), machine.get("generated_tokens_per_s")
    if prompt is None or generated is None:
        return "-"
    return f"{prompt:.0f} / {generated:.1f}"


def format_table(results: Sequence[Mapping[str, Any]]) -> str:
    """One column per mode; each figure as "ours | baseline", with its target."""
    header = ["figure", *[str(r.get("mode")) for r in results], "target"]
    lines = [header]
    lines.append(["machine tok/s (prompt / gen)", *[_machine_cell(r) for r in results], ""])
    lines.append(["stop policy", *[str(r.get("stop", "-")) for r in results], ""])
    paired: list[tuple[str, str, str]] = [
        ("answered in pause >= 1 s", "answered_in_pause", ">= 0.7"),
        ("answered in pause >= 600 ms", "answered_in_pause_600ms", ""),
        ("time to suggestion p50 (ms)", "time_to_suggestion_p50_ms", ""),
        ("time to suggestion p95 (ms)", "time_to_suggestion_p95_ms", ""),
        ("median latency (ms)", "median_latency_ms", ""),
    ]
    for label, key, target in paired:
        cells = []
        for result in results:
            mark = {True: "", False: " !", None: ""}[result.get("targets_met", {}).get(key)]
            base_key = (
                "baseline_median_latency_ms" if key == "median_latency_ms" else f"baseline_{key}"
            )
            cells.append(f"{_cell(result.get(key))}{mark} | {_cell(result.get(base_key))}")
        lines.append([f"{label} (ours | base)", *cells, target])
    rows: list[tuple[str, str, str]] = [
        ("p95 latency (ms)", "p95_latency_ms", ""),
        ("latency ratio", "latency_ratio", "<= 0.1"),
        ("re-eval tokens / typed", "reeval_tokens_per_typed_token", "<= 1.5"),
        ("cache answer rate", "cache_answer_rate", ""),
        ("overhead p95 (ms)", "overhead_p95_ms", "<= 5"),
        ("cancel latency p95 (ms)", "cancel_latency_p95_ms", "<= 100"),
        ("peak RSS (MB)", "peak_rss_mb", f"<= model + {RSS_HEADROOM_MB:.0f}"),
        ("model (MB)", "model_mb", ""),
    ]
    for label, key, target in rows:
        cells = []
        for result in results:
            mark = {True: "", False: " !", None: ""}[result.get("targets_met", {}).get(key)]
            cells.append(_cell(result.get(key)) + mark)
        lines.append([label, *cells, target])
    for label, key in (
        ("pauses >= 1 s (answered)", "pauses_1000ms"),
        ("pauses >= 600 ms (answered)", "pauses_600ms"),
    ):
        cells = []
        for result in results:
            ours = (result.get("ours") or {}).get(key) or {}
            cells.append(f"{_cell(ours.get('pauses'))} ({_cell(ours.get('answered'))})")
        lines.append([label, *cells, ""])
    for label, key in (
        ("requests", "requests"),
        ("answered share", "answered_share"),
        ("answered with items", "answered_with_items"),
        ("items still fresh", "fresh_items"),
        ("cancelled", "cancelled"),
        ("re-eval / typed at keystrokes", "keystroke_reeval_tokens_per_typed_token"),
        ("typed tokens", "typed_tokens"),
        ("relocations", "relocations"),
        ("tokens per relocation", "tokens_per_relocation"),
        ("mean prompt tokens", "mean_prompt_tokens"),
        ("mean generated tokens", "mean_generated_tokens"),
        ("ms per generated token", "ms_per_generated_token"),
        ("draft acceptance", "draft_acceptance"),
        ("accepted", "accepted"),
        ("followed", "followed"),
    ):
        cells = [
            f"{_cell((r.get('ours') or {}).get(key))} | {_cell((r.get('baseline') or {}).get(key))}"
            for r in results
        ]
        lines.append([f"{label} (ours | base)", *cells, ""])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in lines
    ]
    text.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in text) + "\n(! marks a missed target)"
