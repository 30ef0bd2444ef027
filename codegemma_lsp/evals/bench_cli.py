"""``codegemma-lsp bench replay``: the typing-replay latency benchmark.

For each FIM mode asked for, it starts the real server twice over stdio,
once as configured and once as the baseline (``engine.kvReuse`` and
``engine.cache`` off: a fresh prompt per request), replays the recorded
sessions against each (see :mod:`codegemma_lsp.evals.replay`), and prints a
table; with ``--json`` the last line is one JSON object (one per mode, and a
last one holding them all for ``--mode all``).

``--quick`` replays the first 40% of each session, and the baseline at 2
request points per session, so the whole run takes a few minutes on 2 cores.

``--stop oracle`` (the default) starts both servers with ``--bench-oracle`` and
tells them, before each request, what the typist types next, so a generation
stops where a real model's would (see :mod:`codegemma_lsp.evals.replay`);
``--stop budget`` lets the random weights run to the server's own limits.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from codegemma_lsp.evals import (
    bench_model,
    candidate_bench,
    lookup_bench,
    storm_bench,
    team_bench,
)
from codegemma_lsp.evals.replay import ReplayOptions, SessionLog, SessionReplay
from codegemma_lsp.evals.replay_client import LspProcess, ProtocolError, child_env, server_command
from codegemma_lsp.evals.replay_metrics import (
    ServerRecord,
    ServerStats,
    Tokenizer,
    format_table,
    parse_stats,
    pause_trace,
    run_figures,
    summary,
)
from codegemma_lsp.evals.replay_session import Session, recorded_sessions
from codegemma_lsp.evals.server_process import start_server
from codegemma_lsp.pacing import STATIC
from codegemma_lsp.prompt import FimMode

QUICK_FRACTION = 0.4
QUICK_BASELINE_REQUESTS = 2
FULL_BASELINE_REQUESTS = 6
STOP_POLICIES = ("oracle", "budget")

Progress = Callable[[str], None]

_REPLAY_DESCRIPTION = """\
Replays recorded typing sessions (Python, TypeScript, Go) through the real server
over stdio, as Neovim 0.12 sends them, then the same sessions against a baseline
(engine.kvReuse and engine.cache off: a fresh prompt per request), and prints the
figures. The model is a GGUF of CodeGemma 2B's shapes with random weights, built
once (a few minutes; about 7 GB of free disk while it builds, 1.6 GB kept) and
cached under $XDG_CACHE_HOME/codegemma-lsp/bench. With --json the last line is the figures as
JSON (with --mode all: one line per mode, then one holding them all).

The headline is answered_in_pause: of the typist's pauses of at least 1 s, the share
in which a suggestion reached the editor before the next keystroke (also for
pauses of 600 ms, and the time to a suggestion from the pause's start). With the
random weights, generation stops where a real model's would: before each request
the replay tells the server what the typist types next (--stop oracle, the
default); --stop budget lets them run to the server's own limits instead. Each
server measures the machine's prompt and generation speed when it loads the
model, and the figures show it.

Re-evaluated tokens count every prompt token the server evaluated, cancelled and
background work included, leaving out each file's warm-up, over every token the
session typed; the keystroke figure also leaves out relocations (the requests
after a cursor move, up to the first one there whose prompt was evaluated), which
must re-read the text after the new cursor. The baseline keeps the fixed prompt
and time budgets (prefix 1024, suffix 256 tokens, 1.5 s) whatever the machine."""


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    model: Path | None
    backend: str | None = None
    threads: int | None = None
    quick: bool = False
    time_scale: float = 1.0
    baseline_requests: int | None = None
    baseline: bool = True
    sessions: tuple[str, ...] = ()
    seed: int = 0
    prompt_lookup: int | None = None
    stop: str = "oracle"
    pause_trace: Path | None = None


@dataclass
class RunResult:
    logs: list[SessionLog]
    stats: ServerStats
    peak_rss_mb: float | None
    warnings: list[str]
    machine: dict[str, Any] | None = None
    """The speed the server measured when it loaded the model."""


def plain_text(docstring: str) -> str:
    """A docstring's reST/Markdown marks (``code``, **bold**) taken out, for --help."""
    return re.sub(r"``(.+?)``", r"\1", docstring.replace("**", ""))


def add_bench_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bench`` and its ``replay`` subcommand on the top-level parser."""
    parser = subparsers.add_parser(
        "bench", help="speed benchmarks", description="Speed benchmarks."
    )
    benches = parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    replay = benches.add_parser(
        "replay",
        help="replay recorded typing sessions against the server, and against a baseline",
        description=_REPLAY_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("--json", action="store_true", help="end with a JSON line of the figures")
    replay.add_argument("--quick", action="store_true", help="a short run (a few minutes)")
    replay.add_argument(
        "--mode",
        choices=[*get_args(FimMode), "all"],
        help="fim.mode to measure (default: the server's default; all: each in turn)",
    )
    replay.add_argument(
        "--model",
        metavar="PATH",
        type=Path,
        help="GGUF to use (default: build or reuse the CodeGemma-2B-shaped benchmark model)",
    )
    replay.add_argument("--backend", help=argparse.SUPPRESS)
    replay.add_argument("--threads", type=int, help="llama.cpp threads (default: physical cores)")
    replay.add_argument("--session", action="append", default=[], help="replay only this session")
    replay.add_argument(
        "--baseline-requests",
        type=int,
        metavar="N",
        help="baseline request points per session "
        f"(default {QUICK_BASELINE_REQUESTS} with --quick, else {FULL_BASELINE_REQUESTS})",
    )
    replay.add_argument("--no-baseline", action="store_true", help="skip the baseline")
    replay.add_argument("--time-scale", type=float, default=1.0, help=argparse.SUPPRESS)
    replay.add_argument("--seed", type=int, default=0, help="seed of the simulated user")
    replay.add_argument(
        "--stop",
        choices=STOP_POLICIES,
        default="oracle",
        help="where generation stops: after the text the typist types next, up to the "
        "scope's end (oracle, the default), or at the server's own limits (budget)",
    )
    replay.add_argument(
        "--pause-trace",
        type=Path,
        metavar="PATH",
        help="write each pause of 600 ms or more of our run, and the requests in it, as JSON",
    )
    replay.add_argument(
        "--prompt-lookup",
        type=int,
        metavar="N",
        help="engine.promptLookup for our run (draft tokens per step; default: the server's)",
    )
    replay.add_argument(
        "--candidates",
        type=int,
        choices=range(1, 5),
        metavar="N",
        help="completion.candidates for our run (default: the server's auto, 1 on a CPU); "
        "the cost of 2..max(N, 3) candidates is measured after the replay either way",
    )
    replay.set_defaults(func=run_replay_command)
    lookup = benches.add_parser(
        "lookup",
        help="whether prompt-lookup speculative decoding would pay on this machine",
        description=plain_text((lookup_bench.__doc__ or "").split("\n\n", 1)[-1]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lookup.add_argument("--json", action="store_true", help="end with a JSON line of the figures")
    lookup.add_argument("--model", type=Path, metavar="PATH", help="GGUF to time")
    lookup.add_argument(
        "--draft", type=int, action="append", metavar="N", help="draft length (default: 4 and 8)"
    )
    lookup.add_argument("--repeats", type=int, default=7, help="timed batches per size")
    lookup.set_defaults(func=run_lookup_command)
    storm_bench.add_storm_parser(benches)
    team_bench.add_team_parser(benches)


def run_replay_command(args: argparse.Namespace) -> int:
    say = _stderr_progress
    model: Path | None = args.model
    if args.backend is None:
        model = bench_model.given_or_built(model, say)
        if model is None:
            return 1
    config = BenchConfig(
        model=model,
        backend=args.backend,
        threads=args.threads,
        quick=args.quick,
        time_scale=args.time_scale,
        baseline_requests=args.baseline_requests,
        baseline=not args.no_baseline,
        sessions=tuple(args.session),
        seed=args.seed,
        prompt_lookup=args.prompt_lookup,
        stop=args.stop,
        pause_trace=args.pause_trace,
    )
    modes: list[str | None] = list(get_args(FimMode)) if args.mode == "all" else [args.mode]
    count = token_counter(model)
    started = time.perf_counter()
    results = []
    for mode in modes:
        try:
            result = run_benchmark(config, mode, count, progress=say, candidates=args.candidates)
        except ProtocolError as exc:
            sys.stderr.write(f"codegemma-lsp: the replay failed: {exc}\n")
            return 1
        results.append(result)
        if args.json and len(modes) > 1:
            print(json.dumps(result), flush=True)
    if model is not None:
        say("timing 1 to 3 candidates from one prompt")
        cost = candidate_bench.measure_candidate_cost(
            model, up_to=max(3, args.candidates or 1), threads=args.threads
        )
        for result in results:
            result["candidate_cost"] = cost
    print(format_table(results), flush=True)
    for result in results:
        if result.get("candidate_cost"):
            print(candidate_bench.format_candidate_cost(result["candidate_cost"]), flush=True)
        print(
            f"joins: {result['joined_answers']} answers joined a running generation "
            f"(join rate {result['join_rate']})",
            flush=True,
        )
    for result in results:
        for warning in result.get("warnings", []):
            print(f"warning ({result['mode']}): {warning}", flush=True)
    print(f"replay took {time.perf_counter() - started:.0f} s", flush=True)
    if args.json:
        last = results[0] if len(results) == 1 else {"mode": "all", "modes": results}
        print(json.dumps(last), flush=True)
    return 0


def run_benchmark(
    config: BenchConfig,
    mode: str | None,
    count: Tokenizer,
    *,
    progress: Progress,
    candidates: int | None = None,
) -> dict[str, Any]:
    """Ours, then the baseline, for one FIM mode: the summary dictionary."""
    sessions = recorded_sessions(config.sessions or None)
    if config.quick:
        sessions = [session.shortened(QUICK_FRACTION) for session in sessions]
    label = mode or "default"
    oracle = config.stop == "oracle"
    ours_options = ReplayOptions(time_scale=config.time_scale, seed=config.seed, oracle=oracle)
    progress(f"[{label}] replaying {len(sessions)} sessions in real time")
    ours_init = _init_options(mode, baseline=False, prompt_lookup=config.prompt_lookup)
    if candidates is not None:
        ours_init["completion"] = {"candidates": candidates}
    ours = run_server(config, sessions, ours_init, ours_options, progress)
    if config.pause_trace is not None:
        trace = pause_trace(ours.logs, ours.stats.records)
        config.pause_trace.write_text(json.dumps(trace, indent=1) + "\n")
    baseline = None
    warnings = list(ours.warnings)
    if config.baseline:
        wanted = config.baseline_requests or (
            QUICK_BASELINE_REQUESTS if config.quick else FULL_BASELINE_REQUESTS
        )
        progress(f"[{label}] baseline: {wanted} requests per session, each awaited")
        base_options = ReplayOptions(
            time_scale=config.time_scale,
            closed_loop=True,
            sample_requests=wanted,
            seed=config.seed,
            oracle=oracle,
        )
        baseline = run_server(
            config, sessions, _init_options(mode, baseline=True), base_options, progress
        )
        warnings += [f"baseline: {w}" for w in baseline.warnings]
    ours_figures = run_figures(ours.logs, ours.stats, count, peak_rss_mb=ours.peak_rss_mb)
    base_figures = (
        run_figures(
            baseline.logs,
            baseline.stats,
            count,
            peak_rss_mb=baseline.peak_rss_mb,
            closed_loop=True,
        )
        if baseline
        else None
    )
    model_mb = config.model.stat().st_size / (1 << 20) if config.model else 0.0
    result = summary(
        mode or "default",
        ours_figures,
        base_figures,
        model_mb=model_mb,
        machine=ours.machine,
        stop=config.stop,
    )
    result |= join_figures(ours.stats.records)
    result["candidates"] = candidates
    result["baseline_machine"] = baseline.machine if baseline else None
    result["quick"] = config.quick
    result["sessions"] = [session.name for session in sessions]
    result["warnings"] = warnings
    return result


def join_figures(records: Sequence[ServerRecord] | None) -> dict[str, Any]:
    """Answers that joined a generation already running, and their share of the answers
    (the cache answer rate counts them too: a join is answered from the cache)."""
    answers = [r for r in records or [] if not r.cancelled and r.source in ("model", "cache")]
    joined = sum(1 for r in answers if r.joined)
    return {
        "joined_answers": joined,
        "join_rate": round(joined / len(answers), 3) if answers else 0.0,
    }


def _init_options(
    mode: str | None, *, baseline: bool, prompt_lookup: int | None = None
) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if mode is not None:
        options["fim"] = {"mode": mode}
    engine: dict[str, Any] = {}
    if baseline:
        # The fixed budgets, so the baseline stays one reference whatever the machine.
        engine |= {"kvReuse": False, "cache": False, "timeBudgetMs": STATIC.time_budget_ms}
        options["fim"] = options.get("fim", {}) | {
            "prefixTokens": STATIC.prefix_tokens,
            "suffixTokens": STATIC.suffix_tokens,
            "middleTokens": STATIC.middle_tokens,
        }
        options["completion"] = {"multiLine": "on"}
    if prompt_lookup is not None:
        engine["promptLookup"] = prompt_lookup
    if engine:
        options["engine"] = engine
    return options


def run_server(
    config: BenchConfig,
    sessions: Sequence[Session],
    init_options: dict[str, Any],
    options: ReplayOptions,
    progress: Progress,
) -> RunResult:
    """Start a server, replay every session against it, collect its stats, stop it."""
    with tempfile.TemporaryDirectory(prefix="codegemma-replay-") as scratch:
        root = Path(scratch)
        for session in sessions:
            path = root / session.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(session.initial_text, encoding="utf-8")
        command = server_command(
            model=config.model,
            backend=config.backend,
            threads=config.threads,
            oracle=options.oracle,
        )
        server = LspProcess(command, cwd=root, env=child_env())
        try:
            warnings, machine = start_server(server, root, init_options)
            logs = []
            for session in sessions:
                uri = (root / session.path).as_uri()
                log = SessionReplay(server, session, uri, options).run()
                progress(
                    f"  {session.name}: {len(log.requests)} requests, "
                    f"{log.typed_chars} chars typed in {log.duration_s:.0f} s"
                )
                logs.append(log)
                if not log.reached_final_text:
                    warnings.append(f"{session.name}: the document did not end as recorded")
            stats = parse_stats(server.call("codegemma/stats", {"records": True}))
            if stats.records is None:
                warnings.append("the server keeps no request records: token figures are missing")
            peak = server.peak_rss_mb()
        finally:
            server.close()
    return RunResult(logs, stats, peak, warnings, machine)


def run_lookup_command(args: argparse.Namespace) -> int:
    from codegemma_lsp.evals.humaneval_tasks import MissingDataError

    model = bench_model.given_or_built(args.model, _stderr_progress)
    if model is None:
        return 1
    drafts = sorted(set(args.draft or [4, 8]))
    if any(n < 1 for n in drafts):
        sys.stderr.write("codegemma-lsp: --draft must be at least 1\n")
        return 2
    try:
        cases = lookup_bench.humaneval_cases(vocab_tokenizer(model))
    except MissingDataError as exc:
        sys.stderr.write(f"codegemma-lsp: {exc}\n")
        return 1
    costs = lookup_bench.measure_batch_costs(model, range(1, max(drafts) + 2), args.repeats)
    result = lookup_bench.lookup_figures(cases, drafts, costs)
    sys.stdout.write(lookup_bench.format_lookup(result) + "\n")
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


def vocab_tokenizer(model: Path) -> Callable[[str], list[int]]:
    """Text to ids by the model's own tokenizer (its vocabulary alone is loaded)."""
    from codegemma_lsp.engine.llama_backend import LlamaTokenizer

    return LlamaTokenizer.from_file(model).tokenize


def token_counter(model: Path | None) -> Tokenizer:
    """Token counts by the benchmark model's tokenizer; a rough count with no model."""
    if model is None:
        return rough_token_count
    tokenize = vocab_tokenizer(model)
    return lambda text: len(tokenize(text))


_ROUGH_TOKEN = re.compile(r"\w+|\s+|[^\w\s]")


def rough_token_count(text: str) -> int:
    """Words, runs of blanks and single symbols: close enough where no tokenizer is at hand."""
    return len(_ROUGH_TOKEN.findall(text))


def _stderr_progress(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m codegemma_lsp.evals.bench_cli replay ...``: ``codegemma-lsp bench`` alone."""
    parser = argparse.ArgumentParser(prog="codegemma-lsp")
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
