"""``codegemma-lsp bench storm``: a request storm against the real server over stdio.

It starts ``codegemma-lsp serve`` with a tiny random-weight model (built in
milliseconds and cached), opens one file, and types into it while asking for
an inline completion after every keystroke: 50 requests a second by default,
each right after an edit, so nearly every request supersedes the one before.
Ten times a second it also sends a cheap request (``codegemma/stats``) whose
latency is the event loop's: a loop busy with a big file, or a backlog of
superseded work, shows there first.

After the last request it waits for every answer, then for the server to go
idle, and reads its resident memory (``VmRSS``) and statistics. The figures:

- ``requests`` and ``answered``: completion requests sent, and those answered
  exactly once (a result or an error, such as -32800 for a superseded one);
  ``duplicate_answers`` counts any answered twice;
- ``max_concurrent_generations``: the most jobs the inference thread ever ran at
  once (the server's worker counts); ``skipped_jobs`` those cancelled before
  their turn, which cost nothing;
- ``backlog_ms``: from sending the last request to its answer;
- ``rss_growth_mb``: resident memory after the storm settles, less before it;
- ``loop_p95_ms``: the cheap request's 95th-percentile latency during the storm.

``--quick`` storms for 10 s instead of 60. With ``--json`` the last line is the
figures as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codegemma_lsp.evals.replay_client import LspProcess, ProtocolError, child_env, server_command
from codegemma_lsp.evals.server_process import start_server
from codegemma_lsp.stats import percentile

RATE = 50.0
"""Completion requests per second, each after one edit."""
PROBE_RATE = 10.0
"""Cheap requests per second, for the event loop's latency."""
FULL_SECONDS = 60.0
QUICK_SECONDS = 10.0
ANSWER_TIMEOUT_S = 120.0
"""How long the storm's requests may take to be answered, all of them, after the last."""
SETTLE_S = 3.0
"""How long the server must be idle before its memory is read."""

TYPED = "\n    total = compute(alpha, beta) + offset  # running total"
"""What the storm types, over and over, at the cursor."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|k|mb|m)?\s*$", re.IGNORECASE)
_UNITS = {None: 1, "b": 1, "k": 1000, "kb": 1000, "m": 1_000_000, "mb": 1_000_000}

SMALL_FILE = '''\
"""Inventory helpers."""

from dataclasses import dataclass


@dataclass
class Item:
    name: str
    price: float
    count: int


def total(items: list[Item]) -> float:
    result = 0.0
    for item in items:
        result += item.price * item.count
    return result


def cheapest(items: list[Item]) -> Item | None:
    best = None
    for item in items:
        if best is None or item.price < best.price:
            best = item
    return best
'''


def parse_size(text: str) -> int:
    """``1mb``, ``500kb``, ``2000`` as a number of bytes (decimal units)."""
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1mb or 500kb)")
    unit = match.group(2).lower() if match.group(2) else None
    return int(float(match.group(1)) * _UNITS[unit])


def generated_python(size: int) -> str:
    """Plausible Python of about ``size`` bytes: many small functions."""
    parts = ['"""A generated module for the storm benchmark."""\n\nimport math\n\n\n']
    length = len(parts[0])
    i = 0
    while length < size:
        part = (
            f"def function_{i}(alpha, beta, offset={i}):\n"
            f"    total = alpha * {i % 7 + 1} + beta\n"
            f"    if total > offset:\n"
            f"        return math.sqrt(total - offset)\n"
            f"    values = [total + k for k in range({i % 5 + 2})]\n"
            f"    return sum(values) / len(values)\n\n\n"
        )
        parts.append(part)
        length += len(part)
        i += 1
    return "".join(parts)


@dataclass
class StormOptions:
    seconds: float = FULL_SECONDS
    rate: float = RATE
    probe_rate: float = PROBE_RATE
    answer_timeout_s: float = ANSWER_TIMEOUT_S
    settle_s: float = SETTLE_S


@dataclass
class _Sent:
    at: float
    answers: int = 0
    answered_at: float | None = None
    outcome: str = "unanswered"


@dataclass
class _Typist:
    """The client's view of the document: where the cursor is, in UTF-16 units."""

    line: int
    character: int
    version: int = 1
    typed: int = 0

    def next_change(self, uri: str) -> dict[str, Any]:
        char = TYPED[self.typed % len(TYPED)]
        self.typed += 1
        self.version += 1
        here = {"line": self.line, "character": self.character}
        if char == "\n":
            self.line += 1
            self.character = 0
        else:
            self.character += len(char.encode("utf-16-le")) // 2
        return {
            "textDocument": {"uri": uri, "version": self.version},
            "contentChanges": [{"range": {"start": here, "end": here}, "text": char}],
        }


def cursor_at_middle(text: str) -> tuple[int, int]:
    """The end of a line near the middle of ``text``, as an LSP position (UTF-16)."""
    lines = text.split("\n")
    line = len(lines) // 2
    while line > 0 and not lines[line].strip():
        line -= 1
    return line, len(lines[line].encode("utf-16-le")) // 2


def rss_mb(pid: int) -> float | None:
    """A process's resident memory (``VmRSS``), where /proc has it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def tiny_model(directory: Path | None = None) -> Path:
    """The tiny random-weight CodeGemma the storm runs against, built once and cached."""
    from codegemma_lsp.evals.bench_model import cache_dir
    from codegemma_lsp.modelgen import write_tiny_codegemma

    path = (directory or cache_dir()) / "tiny-codegemma-storm.gguf"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        write_tiny_codegemma(partial)
        os.replace(partial, path)
    return path


def run_storm(server: LspProcess, path: Path, text: str, options: StormOptions) -> dict[str, Any]:
    """Storm an initialized server whose model is ready with edits to ``path``, which
    holds ``text``; the figures."""
    uri = path.as_uri()
    item = {"uri": uri, "languageId": _language_id(path), "version": 1, "text": text}
    server.notify("textDocument/didOpen", {"textDocument": item})
    line, character = cursor_at_middle(text)
    typist = _Typist(line, character)
    # One awaited request first: the document is parsed and the prompt warm, as in use.
    server.call("textDocument/inlineCompletion", _inline_params(uri, line, character), timeout=60)
    server.call("codegemma/stats", {}, timeout=60)
    rss_before = rss_mb(server.pid)

    completions: dict[int, _Sent] = {}
    probes: dict[int, _Sent] = {}
    stray = 0
    count = int(options.seconds * options.rate)
    started = time.perf_counter()
    next_probe = started
    sent = 0
    last_id: int | None = None
    probe_interval = 1.0 / options.probe_rate if options.probe_rate > 0 else float("inf")
    while sent < count:
        now = time.perf_counter()
        due = started + sent / options.rate
        if now >= due:
            server.notify("textDocument/didChange", typist.next_change(uri))
            params = _inline_params(uri, typist.line, typist.character)
            last_id, at = server.request("textDocument/inlineCompletion", params)
            completions[last_id] = _Sent(at)
            sent += 1
            continue
        if now >= next_probe:
            probe_id, at = server.request("codegemma/stats", {})
            probes[probe_id] = _Sent(at)
            next_probe += probe_interval
            continue
        stray += _take(server, min(due, next_probe) - now, completions, probes)
    storm_s = time.perf_counter() - started

    deadline = time.perf_counter() + options.answer_timeout_s
    while any(s.answers == 0 for s in completions.values()) and time.perf_counter() < deadline:
        stray += _take(server, deadline - time.perf_counter(), completions, probes)
    drained = time.perf_counter()
    _settle(server, options.settle_s)
    rss_after = rss_mb(server.pid)
    stats = server.call("codegemma/stats", {"records": True}, timeout=60)

    answers = Counter(s.answers for s in completions.values())
    outcomes = Counter(s.outcome for s in completions.values())
    last = completions[last_id] if last_id is not None else None
    loop = [(s.answered_at - s.at) * 1000 for s in probes.values() if s.answered_at is not None]
    latencies = [
        (s.answered_at - s.at) * 1000
        for s in completions.values()
        if s.answered_at is not None and s.outcome in ("items", "empty")
    ]
    worker = stats.get("worker") or {}
    records = stats.get("records") or []
    generations = sum(
        1 for r in records if r.get("evaluated_tokens", 0) or r.get("generated_tokens", 0)
    )
    return {
        "requests": len(completions),
        "answered": answers[1],
        "duplicate_answers": sum(n for k, n in answers.items() if k > 1),
        "unanswered": answers[0],
        "outcomes": dict(outcomes),
        "stray_messages": stray,
        "storm_s": round(storm_s, 2),
        "rate": options.rate,
        "max_concurrent_generations": worker.get("max_running"),
        "max_queued_jobs": worker.get("max_queued"),
        "jobs_run": worker.get("ran"),
        "skipped_jobs": worker.get("skipped"),
        "generations": generations,
        "backlog_ms": _ms(last.answered_at - last.at) if last and last.answered_at else None,
        "drain_ms": round((drained - started - storm_s) * 1000, 1),
        "rss_before_mb": _round(rss_before),
        "rss_after_mb": _round(rss_after),
        "rss_growth_mb": _round(rss_after - rss_before)
        if rss_after is not None and rss_before is not None
        else None,
        "loop_probes": len(probes),
        "loop_answered": len(loop),
        "loop_p50_ms": round(percentile(loop, 0.5), 1),
        "loop_p95_ms": round(percentile(loop, 0.95), 1),
        "loop_max_ms": round(max(loop, default=0.0), 1),
        "completion_p50_ms": round(percentile(latencies, 0.5), 1),
        "completion_p95_ms": round(percentile(latencies, 0.95), 1),
    }


def _take(
    server: LspProcess, timeout: float, completions: dict[int, _Sent], probes: dict[int, _Sent]
) -> int:
    """Read one message (or time out); returns 1 for an answer to no request of ours."""
    item = server.receive(max(timeout, 0.0))
    if item is None:
        return 0
    message = item.message
    if "method" in message or "id" not in message:
        return 0  # a notification, or a request the client already answered
    msg_id = message["id"]
    sent = completions.get(msg_id) or probes.get(msg_id)
    if sent is None:
        return 1
    sent.answers += 1
    if sent.answered_at is None:
        sent.answered_at = item.at
        sent.outcome = _outcome(message)
    return 0


def _outcome(message: dict[str, Any]) -> str:
    error = message.get("error")
    if error is not None:
        return "cancelled" if error.get("code") == -32800 else "error"
    result = message.get("result")
    items = result.get("items") if isinstance(result, dict) else result
    return "items" if items else "empty"


def _settle(server: LspProcess, idle_s: float) -> None:
    """Wait until the server's worker has had nothing to do for ``idle_s`` seconds."""
    deadline = time.perf_counter() + 60
    idle_since: float | None = None
    while time.perf_counter() < deadline:
        worker = server.call("codegemma/stats", {}, timeout=60).get("worker") or {}
        now = time.perf_counter()
        if worker.get("queued", 0) == 0:
            idle_since = idle_since or now
            if now - idle_since >= idle_s:
                return
        else:
            idle_since = None
        time.sleep(0.2)


def _inline_params(uri: str, line: int, character: int) -> dict[str, Any]:
    return {
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 2},
    }


def _language_id(path: Path) -> str:
    from codegemma_lsp.syntax.languages import default_registry

    spec = default_registry().lookup(None, str(path))
    return spec.name if spec is not None else "plaintext"


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def format_storm(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"file: {result['file']} ({result['file_bytes']} bytes)",
            f"requests {result['requests']}, answered once {result['answered']}, "
            f"twice or more {result['duplicate_answers']}, never {result['unanswered']} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(result['outcomes'].items()))})",
            f"storm {result['storm_s']} s at {result['rate']:g}/s; "
            f"backlog {result['backlog_ms']} ms (last request to its answer), "
            f"drained {result['drain_ms']} ms after the last",
            f"generations at once: max {result['max_concurrent_generations']}; jobs run "
            f"{result['jobs_run']}, skipped (cancelled before their turn) "
            f"{result['skipped_jobs']}, most queued {result['max_queued_jobs']}",
            f"event loop (cheap request) p50 {result['loop_p50_ms']} ms, "
            f"p95 {result['loop_p95_ms']} ms, max {result['loop_max_ms']} ms "
            f"({result['loop_answered']}/{result['loop_probes']} answered)",
            f"completion latency p50 {result['completion_p50_ms']} ms, "
            f"p95 {result['completion_p95_ms']} ms",
            f"RSS {result['rss_before_mb']} -> {result['rss_after_mb']} MB "
            f"(growth {result['rss_growth_mb']} MB, after the storm settled)",
        ]
    )


def add_storm_parser(benches: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bench storm``."""
    storm = benches.add_parser(
        "storm",
        help="50 completion requests a second, with edits between, against the real server",
        description=(__doc__ or "").split("\n\n", 1)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    storm.add_argument("--json", action="store_true", help="end with a JSON line of the figures")
    storm.add_argument(
        "--quick", action="store_true", help=f"storm for {QUICK_SECONDS:g} s, not {FULL_SECONDS:g}"
    )
    source = storm.add_mutually_exclusive_group()
    source.add_argument("--file", type=Path, metavar="PATH", help="storm a copy of this file")
    source.add_argument(
        "--size",
        type=parse_size,
        metavar="SIZE",
        help="storm a generated Python file of this size (1mb, 500kb; default: a small file)",
    )
    storm.add_argument("--seconds", type=float, help="how long to storm (overrides --quick)")
    storm.add_argument("--rate", type=float, default=RATE, help="requests per second")
    storm.add_argument(
        "--model", type=Path, metavar="PATH", help="GGUF to serve (default: the tiny model)"
    )
    storm.add_argument("--backend", help=argparse.SUPPRESS)
    storm.add_argument("--threads", type=int, help="llama.cpp threads")
    storm.set_defaults(func=run_storm_command)


def run_storm_command(args: argparse.Namespace) -> int:
    if args.file is not None:
        try:
            text = args.file.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as exc:
            sys.stderr.write(f"codegemma-lsp: cannot read {args.file}: {exc.strerror}\n")
            return 1
        name = args.file.name
    elif args.size is not None:
        text, name = generated_python(args.size), "generated.py"
    else:
        text, name = SMALL_FILE, "inventory.py"
    seconds = args.seconds or (QUICK_SECONDS if args.quick else FULL_SECONDS)
    options = StormOptions(seconds=seconds, rate=args.rate)
    model = args.model
    if model is None and args.backend is None:
        model = tiny_model()
    with tempfile.TemporaryDirectory(prefix="codegemma-storm-") as scratch:
        root = Path(scratch)
        path = root / name
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        command = server_command(model=model, backend=args.backend, threads=args.threads)
        server = LspProcess(command, cwd=root, env=child_env())
        try:
            start_server(server, root, {})
            sys.stderr.write(f"storming {name} for {seconds:g} s at {args.rate:g} requests/s\n")
            result = run_storm(server, path, text, options)
        except ProtocolError as exc:
            sys.stderr.write(f"codegemma-lsp: the storm failed: {exc}\n")
            return 1
        finally:
            server.close()
    result = {"file": name, "file_bytes": len(text.encode("utf-8", "surrogateescape")), **result}
    sys.stdout.write(format_storm(result) + "\n")
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    return 0
