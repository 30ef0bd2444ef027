"""``codegemma-lsp bench team``: N editors, N daemons, one inference server.

It starts one engine on 127.0.0.1 with the benchmark model (llama.cpp's
``llama-server`` when one is on PATH, else llama-cpp-python's ``llama_cpp.server``),
then N daemons pointed at it, and replays N recorded typing sessions through them at
once, in real time, as :mod:`codegemma_lsp.evals.replay` plays them for ``bench
replay`` (the oracle stop included). It reports, for each client, the median and p95
latency of its answered requests; for the server, the prompt tokens it evaluated per
typed token (all clients together) and its throughput.

It does that twice, in the same run, with a fresh engine each time:

- **pinned**: each document keeps its KV cache. With llama-server the daemons pin each
  document to a slot (``id_slot`` from a hash of the daemon and the document, over
  ``-np N`` slots). llama_cpp.server has one slot and no ``id_slot``; its nearest
  equivalent is its RAM prompt cache (``--cache true``), which saves each finished
  request's KV state and restores the one with the longest common prefix.
- **shared**: every request goes to one KV cache, as llama.vim and llama.vscode do by
  pinning everyone to slot 0 (llama-server ``model.slots = 1``; llama_cpp.server with
  its cache off).

llama-server reports its own work (``/metrics``); llama_cpp.server runs under
:mod:`codegemma_lsp.engine.counted_server`, which counts what its ``generate`` evaluates.
With ``--json`` the last line holds the figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from codegemma_lsp.engine.counted_server import read_counts
from codegemma_lsp.engine.http_stream import RemoteError, parse_url, request_json
from codegemma_lsp.engine.llama_backend import LlamaTokenizer, physical_cores
from codegemma_lsp.engine.weight_buffers import cpu_has_amx
from codegemma_lsp.evals import bench_model
from codegemma_lsp.evals.replay import ReplayOptions, SessionLog, SessionReplay
from codegemma_lsp.evals.replay_client import LspProcess, ProtocolError, child_env, server_command
from codegemma_lsp.evals.replay_metrics import (
    RunFigures,
    ServerStats,
    Tokenizer,
    parse_stats,
    percentile,
    run_figures,
)
from codegemma_lsp.evals.replay_session import Session, recorded_sessions
from codegemma_lsp.evals.server_process import start_server

QUICK_FRACTION = 0.4
ENGINE_START_TIMEOUT_S = 300.0
DAEMON_START_TIMEOUT_S = 120.0
CTX_PER_SLOT = 4096
ANSWER_TIMEOUT_S = 60.0
"""After a client's last keystroke: how long its unanswered requests may still take
(each is bounded by the daemon's own ``model.timeoutMs`` anyway)."""

Progress = Callable[[str], None]

ARMS = ("pinned", "shared")


@dataclass(frozen=True, kw_only=True)
class TeamConfig:
    clients: int
    model: Path
    engine: str
    """``llama-server`` or ``llama-cpp-python``."""
    quick: bool = False
    threads: int | None = None
    time_scale: float = 1.0
    session_fraction: float | None = None
    """Replay this fraction of each session (default: all, or 40% with --quick)."""
    seed: int = 0
    no_repack: bool = False
    """Load the weights without llama.cpp's repacking (see ``engine.counted_server``)."""
    timeout_ms: int | None = None
    """The daemons' ``model.timeoutMs`` (None: their default)."""


@dataclass
class Engine:
    kind: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    count_path: Path | None = None
    """llama_cpp.server: the counting wrapper's file (llama-server has /metrics)."""
    started_wall: float = field(default_factory=time.perf_counter)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def engine_command(config: TeamConfig, port: int, arm: str, scratch: Path) -> list[str]:
    """The engine's command line for one arm (pure, for tests)."""
    threads = str(config.threads or physical_cores())
    if config.engine == "llama-server":
        return [
            "llama-server",
            "-m",
            str(config.model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-np",
            str(config.clients),
            "-c",
            str(CTX_PER_SLOT * config.clients),
            "--cache-reuse",
            "256",
            "--metrics",
            "-t",
            threads,
            *(["--no-repack"] if config.no_repack or cpu_has_amx() else []),
        ]
    command = [
        sys.executable,
        "-m",
        "codegemma_lsp.engine.counted_server",
        str(scratch / f"counts-{arm}.jsonl"),
        *(["--no-repack"] if config.no_repack or cpu_has_amx() else []),
        "--model",
        str(config.model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(CTX_PER_SLOT),
        "--n_threads",
        threads,
    ]
    if arm == "pinned":
        command += ["--cache", "true", "--cache_type", "ram"]
    return command


def start_engine(config: TeamConfig, arm: str, scratch: Path, progress: Progress) -> Engine:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = engine_command(config, port, arm, scratch)
    log_path = scratch / f"engine-{arm}.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    count_path = Path(command[3]) if config.engine == "llama-cpp-python" else None
    engine = Engine(config.engine, f"http://127.0.0.1:{port}", process, log_path, count_path)
    probe = "/health" if config.engine == "llama-server" else "/v1/models"
    deadline = time.monotonic() + ENGINE_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise ProtocolError(f"the engine exited while starting:\n{tail}")
        try:
            request_json(parse_url(engine.url), "GET", probe, deadline=time.monotonic() + 5)
            break
        except RemoteError:
            if time.monotonic() > deadline:
                engine.stop()
                raise ProtocolError(
                    f"the engine did not start within {ENGINE_START_TIMEOUT_S:.0f} s"
                ) from None
            time.sleep(0.25)
    progress(f"[{arm}] {config.engine} listening on {engine.url}")
    engine.started_wall = time.perf_counter()
    return engine


def server_work(engine: Engine) -> dict[str, float] | None:
    """What the engine did since it started: evaluated and generated tokens, busy seconds."""
    if engine.count_path is not None:
        counts = read_counts(engine.count_path)
        return {
            "evaluated_tokens": counts["evaluated"],
            "generated_tokens": counts["generated"],
            "busy_s": counts["seconds"],
            "requests": counts["calls"],
            "unfinished": counts["running"],
        }
    try:
        text = _get_text(engine.url, "/metrics")
    except RemoteError:
        return None
    metrics = parse_metrics(text)
    return {
        "evaluated_tokens": metrics.get("llamacpp:prompt_tokens_total", 0.0),
        "generated_tokens": metrics.get("llamacpp:tokens_predicted_total", 0.0),
        "busy_s": metrics.get("llamacpp:prompt_seconds_total", 0.0)
        + metrics.get("llamacpp:tokens_predicted_seconds_total", 0.0),
    }


def _get_text(url: str, path: str) -> str:
    from codegemma_lsp.engine.http_stream import HttpStream, status_error

    with HttpStream(parse_url(url), "GET", path, deadline=time.monotonic() + 10) as stream:
        head = stream.open()
        body = stream.read_body()
        if head.status != 200:
            raise status_error(stream, body)
    return body.decode("utf-8", errors="replace")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text: each sample's name and value (labels dropped)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(" ")
        try:
            values[name.split("{", 1)[0]] = float(rest.split()[0])
        except (ValueError, IndexError):
            continue
    return values


@dataclass
class ClientRun:
    index: int
    session: str
    log: SessionLog | None = None
    stats: ServerStats | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    """The daemon's own ``codegemma/stats`` summary (its ``remote_ms`` split)."""
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def run_client(
    run: ClientRun,
    session: Session,
    config: TeamConfig,
    engine: Engine,
    arm: str,
    scratch: Path,
) -> None:
    root = scratch / f"{arm}-client-{run.index}"
    path = root / session.path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(session.initial_text, encoding="utf-8")
    backend = "llama-server" if engine.kind == "llama-server" else "openai"
    # The model file gives the daemon its vocabulary: it tokenizes locally.
    command = [
        *server_command(model=config.model, backend=backend, oracle=True),
        "--url",
        engine.url,
    ]
    model: dict[str, Any] = {}
    if engine.kind == "llama-server":
        model["slots"] = 0 if arm == "pinned" else 1
    if config.timeout_ms is not None:
        model["timeoutMs"] = config.timeout_ms
    init_options: dict[str, Any] = {"model": model} if model else {}
    server = LspProcess(command, cwd=root, env=child_env())
    try:
        warnings, _ = start_server(
            server,
            root,
            init_options,
            client="codegemma-lsp bench team (as Neovim 0.12)",
            timeout_s=DAEMON_START_TIMEOUT_S,
            unreachable_engine_ok=True,
        )
        run.warnings += warnings
        options = ReplayOptions(
            time_scale=config.time_scale,
            seed=config.seed + run.index,
            oracle=True,
            answer_timeout_s=ANSWER_TIMEOUT_S,
        )
        run.log = SessionReplay(server, session, path.as_uri(), options).run()
        raw = server.call("codegemma/stats", {"records": True})
        run.stats = parse_stats(raw)
        if isinstance(raw, dict):
            run.summary = {k: v for k, v in raw.items() if k != "records"}
    except (ProtocolError, OSError) as exc:
        run.error = str(exc)
    finally:
        server.close()


def team_sessions(config: TeamConfig) -> list[Session]:
    """One session per client, the recorded ones in turn."""
    recorded = recorded_sessions(None)
    fraction = config.session_fraction or (QUICK_FRACTION if config.quick else None)
    if fraction is not None:
        recorded = [session.shortened(fraction) for session in recorded]
    return [recorded[i % len(recorded)] for i in range(config.clients)]


def run_arm(
    config: TeamConfig, arm: str, count: Tokenizer, scratch: Path, progress: Progress
) -> dict[str, Any]:
    sessions = team_sessions(config)
    engine = start_engine(config, arm, scratch, progress)
    runs = [ClientRun(i, session.name) for i, session in enumerate(sessions)]
    try:
        started = time.perf_counter()
        threads = [
            threading.Thread(
                target=run_client, args=(run, session, config, engine, arm, scratch), daemon=True
            )
            for run, session in zip(runs, sessions, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall_s = time.perf_counter() - started
        work = server_work(engine)
    finally:
        engine.stop()
    result = arm_figures(runs, work, wall_s, count)
    result["engine_log"] = str(engine.log_path)
    for run in runs:
        progress(
            f"[{arm}] client {run.index} ({run.session}): "
            + (f"failed: {run.error}" if run.error else "done")
        )
    return result


def arm_figures(
    runs: Sequence[ClientRun], work: dict[str, float] | None, wall_s: float, count: Tokenizer
) -> dict[str, Any]:
    """Per-client latency, and the server's work over what was typed (pure, for tests)."""
    clients: list[dict[str, Any]] = []
    latencies: list[float] = []
    typed_total = 0
    warnings: list[str] = []
    for run in runs:
        entry: dict[str, Any] = {"client": run.index, "session": run.session}
        warnings += [f"client {run.index}: {w}" for w in run.warnings]
        if run.error or run.log is None or run.stats is None:
            entry["error"] = run.error or "no log"
            clients.append(entry)
            continue
        figures = run_figures([run.log], run.stats, count, peak_rss_mb=None)
        records = run.stats.records or []
        # Requests the daemon declined without the model (no completion at that place)
        # are answered at once: they are no measure of the engine.
        declined = {r.request_id for r in records if r.source == "none"}
        answered = [
            request.latency_ms
            for request in run.log.requests
            if request.outcome in ("items", "empty")
            and request.latency_ms is not None
            and request.id not in declined
        ]
        latencies += answered
        typed_total += figures.typed_tokens
        errors = sum(1 for r in records if r.stop_reason == "error")
        remote = run.summary.get("remote_ms") or {}
        entry.update(
            requests=figures.requests,
            declined=len(declined),
            answered=len(answered),
            cancelled=figures.cancelled,
            unanswered=figures.unanswered,
            lsp_errors=figures.errors,
            engine_errors=errors,
            p50_ms=_round(percentile(answered, 0.5)),
            p95_ms=_round(percentile(answered, 0.95)),
            typed_tokens=figures.typed_tokens,
            answered_in_pause=_pause_share(figures),
            remote_p50_ms={
                name: _round(times.get("p50"), 1)
                for name, times in remote.items()
                if isinstance(times, dict)
            },
        )
        clients.append(entry)
    server: dict[str, Any] | None = None
    reeval = None
    if work is not None:
        server = {
            "evaluated_tokens": int(work["evaluated_tokens"]),
            "generated_tokens": int(work["generated_tokens"]),
            "busy_s": round(work["busy_s"], 1),
            "wall_s": round(wall_s, 1),
            "prompt_tokens_per_s": _round(work["evaluated_tokens"] / work["busy_s"])
            if work["busy_s"]
            else None,
            "generated_tokens_per_wall_s": round(work["generated_tokens"] / wall_s, 2),
            "busy_share": round(work["busy_s"] / wall_s, 2) if wall_s else None,
        }
        if "requests" in work:  # llama_cpp.server's count: how many it took up
            server["requests_started"] = int(work["requests"])
            server["unfinished_at_end"] = int(work["unfinished"])
        reeval = round(work["evaluated_tokens"] / typed_total, 1) if typed_total else None
    return {
        "clients": clients,
        "p50_ms": _round(percentile(latencies, 0.5)),
        "p95_ms": _round(percentile(latencies, 0.95)),
        "answered": len(latencies),
        "typed_tokens": typed_total,
        "reeval_tokens_per_typed_token": reeval,
        "server": server,
        "warnings": warnings,
    }


def _pause_share(figures: RunFigures) -> float | None:
    """Of the typist's pauses of a second or more, the share a suggestion reached."""
    return round(figures.pauses[0].answered_share, 2) if figures.pauses else None


def _round(value: float | None, digits: int = 0) -> float | None:
    return None if value is None else round(value, digits)


def comparison(pinned: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    def ratio(key: str) -> float | None:
        a, b = shared.get(key), pinned.get(key)
        return (
            round(a / b, 2)
            if isinstance(a, int | float) and isinstance(b, int | float) and b
            else None
        )

    return {
        "shared_over_pinned_p50": ratio("p50_ms"),
        "shared_over_pinned_p95": ratio("p95_ms"),
        "shared_over_pinned_reeval": ratio("reeval_tokens_per_typed_token"),
    }


MEANING = {
    "llama-server": (
        "pinned: each document's requests go to its own slot of -np N (id_slot from a hash "
        "of the daemon and the document); shared: every request to slot 0, as llama.vim and "
        "llama.vscode send them."
    ),
    "llama-cpp-python": (
        "llama_cpp.server has one slot and takes no id_slot, so slots cannot be pinned. "
        "pinned: its RAM prompt cache on (--cache true), which keeps each finished request's "
        "KV state and restores the one with the longest common prefix, the nearest it has "
        "to a cache per document; shared: one KV cache for everyone, which each client's "
        "request evicts. It runs one request at a time, and notices a client that left only "
        "after the prompt is evaluated, so a cancelled request still costs its prompt."
    ),
}


def format_team(result: dict[str, Any]) -> str:
    lines = [
        f"bench team: {result['clients']} clients, engine {result['engine']}"
        + (" (quick)" if result["quick"] else ""),
        "",
        f"{'arm':<8} {'client':<28} {'answered':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'cancel':>6} {'errors':>6} {'declined':>8}",
    ]
    for arm in ARMS:
        figures = result["arms"][arm]
        for client in figures["clients"]:
            name = f"{client['client']} {client['session']}"
            if "error" in client:
                lines.append(f"{arm:<8} {name:<28} failed: {client['error']}")
                continue
            lines.append(
                f"{arm:<8} {name:<28} {client['answered']:>8} {_cell(client['p50_ms']):>8} "
                f"{_cell(client['p95_ms']):>8} {client['cancelled']:>6} "
                f"{client['engine_errors']:>6} {client['declined']:>8}"
            )
        lines.append(
            f"{arm:<8} {'all clients':<28} {figures['answered']:>8} "
            f"{_cell(figures['p50_ms']):>8} {_cell(figures['p95_ms']):>8}"
        )
        server = figures["server"] or {}
        lines.append(
            f"{'':<8} server: {_cell(figures['reeval_tokens_per_typed_token'])} prompt tokens "
            f"evaluated per typed token; {_cell(server.get('prompt_tokens_per_s'))} prompt "
            f"tokens/s busy; {_cell(server.get('generated_tokens_per_wall_s'))} generated "
            f"tokens/s of wall time; busy {_cell(server.get('busy_share'))} of the time"
        )
        lines.append("")
    lines.append(
        "answered: requests answered through the engine or the suggestion cache (latency "
        "from the request to its answer); declined: requests the daemon answered at once "
        "without the engine (no completion at that place); cancel: superseded by the "
        "client's next request."
    )
    lines.append(result["meaning"])
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def run_team(config: TeamConfig, progress: Progress) -> dict[str, Any]:
    tokenizer = LlamaTokenizer.from_file(config.model)

    def count(text: str) -> int:
        return len(tokenizer.tokenize(text))

    with tempfile.TemporaryDirectory(prefix="codegemma-team-") as scratch:
        arms = {arm: run_arm(config, arm, count, Path(scratch), progress) for arm in ARMS}
    return {
        "bench": "team",
        "engine": config.engine,
        "clients": config.clients,
        "quick": config.quick,
        "model": config.model.name,
        "no_repack": config.no_repack or cpu_has_amx(),
        "daemon_timeout_ms": config.timeout_ms or 15_000,
        "sessions": [session.name for session in team_sessions(config)],
        "arms": arms,
        "comparison": comparison(arms["pinned"], arms["shared"]),
        "meaning": MEANING[config.engine],
    }


def add_team_parser(benches: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    team = benches.add_parser(
        "team",
        help="N daemons sharing one inference server, per-document KV against one shared",
        description=(__doc__ or "").split("\n\n", 1)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    team.add_argument("--clients", type=int, default=4, help="editors at once (default 4)")
    team.add_argument("--quick", action="store_true", help="40%% of each session")
    team.add_argument("--json", action="store_true", help="end with a JSON line of the figures")
    team.add_argument(
        "--model", type=Path, metavar="PATH", help="GGUF (default: the benchmark model)"
    )
    team.add_argument(
        "--engine",
        choices=("auto", "llama-server", "llama-cpp-python"),
        default="auto",
        help="auto: llama-server if on PATH, else llama_cpp.server",
    )
    team.add_argument("--threads", type=int, help="engine threads (default: physical cores)")
    team.add_argument(
        "--no-repack",
        action="store_true",
        help="load the weights without llama.cpp's repacking (on CPUs where it crashes)",
    )
    team.add_argument(
        "--timeout-ms", type=int, metavar="MS", help="the daemons' model.timeoutMs (default 15000)"
    )
    team.add_argument("--time-scale", type=float, default=1.0, help=argparse.SUPPRESS)
    team.add_argument("--session-fraction", type=float, help=argparse.SUPPRESS)
    team.set_defaults(func=run_team_command)


def run_team_command(args: argparse.Namespace) -> int:
    def say(message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    if args.clients < 1:
        sys.stderr.write("codegemma-lsp: --clients must be at least 1\n")
        return 2
    engine = args.engine
    if engine == "auto":
        engine = "llama-server" if shutil.which("llama-server") else "llama-cpp-python"
    if engine == "llama-cpp-python":
        missing = [m for m in ("llama_cpp", "uvicorn", "sse_starlette") if not find_spec(m)]
        if missing:
            sys.stderr.write(
                "codegemma-lsp: llama_cpp.server is not installed: "
                "pip install 'codegemma-lsp[team]'\n"
            )
            return 1
    model = bench_model.given_or_built(args.model, say)
    if model is None:
        return 1
    config = TeamConfig(
        clients=args.clients,
        model=model,
        engine=engine,
        quick=args.quick,
        threads=args.threads,
        time_scale=args.time_scale,
        session_fraction=args.session_fraction,
        no_repack=args.no_repack,
        timeout_ms=args.timeout_ms,
    )
    started = time.perf_counter()
    try:
        result = run_team(config, say)
    except ProtocolError as exc:
        sys.stderr.write(f"codegemma-lsp: bench team failed: {exc}\n")
        return 1
    sys.stdout.write(format_team(result) + "\n")
    sys.stdout.write(f"bench team took {time.perf_counter() - started:.0f} s\n")
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    return 0
