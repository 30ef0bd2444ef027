"""``codegemma-lsp eval humaneval``: HumanEval-Infilling pass@1 through the server's own pipeline.

Each task becomes an in-memory Python document, ``prompt + suffix``, with the
cursor where the middle was cut out: column 0 of the line that holds the
suffix's first code, as an editor user stands when inserting lines above
existing code. :func:`~codegemma_lsp.completion.run_completion` then does what
it does for an editor (scope, windows, prompt, engine, stopping, truncation),
under the same settings (defaults, ``CODEGEMMA_LSP_*`` variables, flags). So
the score measures the product, not a separate script.

The completion is executed with the task's tests in the sandbox of
:mod:`codegemma_lsp.evals.execution`. Generation is serial (one model); each
program is handed to a pool of sandboxes as soon as it exists, so execution
overlaps generation. Identical programs run once and share their result (an
oracle's programs are mostly the canonical solution).

Per-task results go to a JSONL file (``--out``): a header line with what
decides the outcome (set, backend, settings), then one line per task as it
finishes, with the suggestion's confidence beside pass/fail. Running again with
the same file skips the tasks it holds.

The confidence table says, for each ``completion.minConfidence`` threshold, how many
suggestions a user would have seen and what share of those passed: a user with the
real model picks the threshold from a run on their own machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

from codegemma_lsp.completion import CompletionQuery, run_completion
from codegemma_lsp.confidence import Confidence, ThresholdRow, threshold_table
from codegemma_lsp.config import Settings
from codegemma_lsp.documents import Document
from codegemma_lsp.engine.base import Backend, CancelToken
from codegemma_lsp.evals.execution import (
    ExecResult,
    Limits,
    build_program,
    network_isolated,
    run_program,
    syntax_error,
)
from codegemma_lsp.evals.harness_backends import EmptyBackend, OracleBackend
from codegemma_lsp.evals.humaneval_tasks import InfillTask
from codegemma_lsp.evals.progress import ProgressBar
from codegemma_lsp.evals.truncation_eval import percentile, spread
from codegemma_lsp.syntax.languages import LanguageSpec

SETS = ("single", "multi", "random-span")
CARD_SCORES = {"single": 78.41, "multi": 51.44}
"""CodeGemma 2B pass@1 (%) on HumanEval-Infilling, technical report Table 2 and model card."""
HARNESS_BACKENDS = ("oracle", "empty")

TASK_PATH = "humaneval.py"
"""The file name the prompt's path line carries (``fim.pathLine``)."""
_TASK_URI = "file:///humaneval/" + TASK_PATH

BackendFor = Callable[[InfillTask], Backend]
"""The backend that completes one task: the same loaded model for all, or an oracle per task."""


@dataclass(frozen=True)
class TaskCompletion:
    """What the pipeline showed for one task, and what it cost."""

    text: str
    scope: str
    reason: str
    completion_ms: float
    prompt_tokens: int = 0
    generated_tokens: int = 0
    error: str = ""
    confidence: dict[str, float] | None = None
    """The shown suggestion's :class:`~codegemma_lsp.confidence.Confidence` (None: none)."""


def complete_task(
    backend: Backend, task: InfillTask, settings: Settings, language: LanguageSpec | None
) -> TaskCompletion:
    """Complete ``task`` as an editor would: a document, a cursor, the server's pipeline.

    Never raises: a failure of the pipeline is the task's failure, not the run's.
    """
    started = time.perf_counter()
    try:
        document = Document(_TASK_URI, task.prompt + task.suffix, language=language)
        query = CompletionQuery(document.snapshot(), cursor=len(task.prompt), path=TASK_PATH)
        outcome = run_completion(query, backend, settings, CancelToken())
    except Exception as exc:  # a pipeline bug fails the task, never the run
        elapsed = (time.perf_counter() - started) * 1000
        return TaskCompletion("", "", "", elapsed, error=f"{type(exc).__name__}: {exc}")
    generation = outcome.generation
    confidence = outcome.candidates[0].confidence if outcome.candidates else None
    return TaskCompletion(
        text=outcome.text,
        scope=outcome.plan.scope.value,
        reason=outcome.plan.reason,
        completion_ms=(time.perf_counter() - started) * 1000,
        prompt_tokens=generation.prompt_tokens if generation else 0,
        generated_tokens=generation.generated_tokens if generation else 0,
        confidence=confidence.as_dict() if confidence is not None else None,
    )


@dataclass(frozen=True)
class TaskResult:
    """One line of the results file."""

    task_id: str
    passed: bool
    status: str  # passed, failed, timeout, error (the sandbox's), or error in the pipeline
    detail: str
    completion: str
    scope: str
    reason: str
    completion_ms: float
    execute_s: float
    prompt_tokens: int = 0
    generated_tokens: int = 0
    confidence: dict[str, float] | None = None

    @classmethod
    def of(cls, task: InfillTask, done: TaskCompletion, run: ExecResult) -> TaskResult:
        return cls(
            task_id=task.task_id,
            passed=run.passed,
            status=run.status,
            detail=run.detail,
            completion=done.text,
            scope=done.scope,
            reason=done.reason,
            completion_ms=round(done.completion_ms, 2),
            execute_s=round(run.seconds, 3),
            prompt_tokens=done.prompt_tokens,
            generated_tokens=done.generated_tokens,
            confidence=done.confidence,
        )

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> TaskResult:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__ if name in row})

    @property
    def confidence_of(self) -> Confidence | None:
        """The suggestion's confidence, None when there was no suggestion (or the row is
        from a run before confidences were written)."""
        data = self.confidence
        if not self.completion or not isinstance(data, dict):
            return None
        try:
            return Confidence(
                float(data["mean_logprob"]), float(data["min_logprob"]), float(data["first_prob"])
            )
        except (KeyError, TypeError, ValueError):
            return None


class ResumeMismatch(ValueError):
    """The results file holds a run with other settings; mixing them would mean nothing."""


class ResultsFile:
    """Per-task results as JSONL, appended as tasks finish, so a run can resume."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.header = header
        self._out: IO[str] | None = None

    def load(self) -> dict[str, TaskResult]:
        """The results already in the file; raises :class:`ResumeMismatch` for another run's."""
        if not self.path.exists():
            return {}
        results: dict[str, TaskResult] = {}
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a killed run: its task runs again
                if "run" in row:
                    self._check_header(row["run"], number)
                elif "task_id" in row and "passed" in row:
                    results[row["task_id"]] = TaskResult.from_json(row)
        return results

    def _check_header(self, found: dict[str, Any], number: int) -> None:
        if found == self.header:
            return
        keys = sorted(_differences(found, self.header))
        raise ResumeMismatch(
            f"{self.path} (line {number}) holds results of another run "
            f"(it differs in {', '.join(keys)}); use another --out file or delete it"
        )

    def append(self, result: TaskResult) -> None:
        if self._out is None:
            fresh = not self.path.exists() or self.path.stat().st_size == 0
            self._out = self.path.open("a", encoding="utf-8")
            if not fresh and not _ends_with_newline(self.path):
                self._out.write("\n")
            if fresh:
                self._out.write(json.dumps({"run": self.header}) + "\n")
        self._out.write(json.dumps(asdict(result)) + "\n")
        self._out.flush()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as data:
        data.seek(-1, os.SEEK_END)
        return data.read(1) == b"\n"


def _differences(a: Any, b: Any, where: str = "") -> Iterable[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a.keys() | b.keys():
            yield from _differences(a.get(key), b.get(key), f"{where}.{key}" if where else key)
    elif a != b:
        yield where or "everything"


@dataclass(frozen=True)
class Report:
    set_name: str
    tasks: int
    passed: int
    resumed: int
    seconds: float
    statuses: dict[str, int] = field(default_factory=dict)
    completion_ms_p50: float = 0.0
    completion_ms_p95: float = 0.0
    completion_ms_mean: float = 0.0
    execute_s_mean: float = 0.0
    programs_run: int = 0
    programs_reused: int = 0
    confidence_table: tuple[ThresholdRow, ...] = ()
    """Per ``completion.minConfidence`` threshold: suggestions shown, and of those passed."""

    @property
    def pass_at_1(self) -> float:
        return self.passed / self.tasks if self.tasks else 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "set": self.set_name,
            "tasks": self.tasks,
            "passed": self.passed,
            "pass_at_1": round(self.pass_at_1, 6),
            "seconds": round(self.seconds, 1),
            "resumed": self.resumed,
            "statuses": self.statuses,
            "completion_ms_p50": round(self.completion_ms_p50, 2),
            "completion_ms_p95": round(self.completion_ms_p95, 2),
            "completion_ms_mean": round(self.completion_ms_mean, 2),
            "execute_s_mean": round(self.execute_s_mean, 3),
            "programs_run": self.programs_run,
            "programs_reused": self.programs_reused,
            "card_pass_at_1": CARD_SCORES[self.set_name] / 100
            if self.set_name in CARD_SCORES
            else None,
            "confidence_table": [
                {
                    "min_confidence": row.threshold,
                    "shown": row.shown,
                    "passed": row.passed,
                    "pass_share": round(row.pass_share, 4),
                }
                for row in self.confidence_table
            ],
        }


class _Execution:
    """Runs distinct programs in a pool of sandboxes; hands results back to the caller's thread.

    ``syntax_error`` touches the global warnings filter, so programs are
    compiled in the calling thread; only the sandboxes run in the pool.
    """

    def __init__(self, jobs: int, limits: Limits) -> None:
        self.limits = limits
        self._pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="sandbox")
        self._finished: queue.SimpleQueue[tuple[str, ExecResult]] = queue.SimpleQueue()
        self._known: dict[str, ExecResult] = {}
        self._waiting: dict[str, list[Callable[[ExecResult], None]]] = {}
        self.run = 0
        self.reused = 0

    def submit(self, program: str, then: Callable[[ExecResult], None]) -> None:
        if (known := self._known.get(program)) is not None:
            self.reused += 1
            then(known)
        elif program in self._waiting:
            self.reused += 1
            self._waiting[program].append(then)
        elif (problem := syntax_error(program)) is not None:
            self.run += 1
            self._known[program] = ExecResult(False, "failed", 0.0, problem)
            then(self._known[program])
        else:
            self.run += 1
            self._waiting[program] = [then]
            future = self._pool.submit(run_program, program, self.limits, precheck=False)
            future.add_done_callback(partial(self._on_done, program))

    def _on_done(self, program: str, future: Future[ExecResult]) -> None:
        error = future.exception()
        result = (
            ExecResult(False, "error", 0.0, f"harness: {type(error).__name__}: {error}")
            if error is not None
            else future.result()
        )
        self._finished.put((program, result))

    def deliver(self, *, wait: bool) -> None:
        """Call the continuations of finished programs (all pending ones when ``wait``)."""
        while self._waiting:
            try:
                program, result = self._finished.get(block=wait)
            except queue.Empty:
                return
            self._known[program] = result
            for then in self._waiting.pop(program):
                then(result)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def evaluate(
    set_name: str,
    tasks: Sequence[InfillTask],
    backend_for: BackendFor,
    settings: Settings,
    *,
    language: LanguageSpec | None,
    jobs: int | None = None,
    limits: Limits | None = None,
    done: dict[str, TaskResult] | None = None,
    on_result: Callable[[TaskResult], None] | None = None,
    progress: ProgressBar | None = None,
) -> Report:
    """Complete and execute every task not already in ``done``; count all of them.

    ``on_result`` sees each new result as it finishes (the results file);
    results in ``done`` for tasks outside ``tasks`` are ignored.
    """
    started = time.perf_counter()
    wanted = {task.task_id for task in tasks}
    results = {task_id: r for task_id, r in (done or {}).items() if task_id in wanted}
    resumed = len(results)
    passed = sum(r.passed for r in results.values())
    if progress is not None:
        progress.update(len(results), passed)

    def record(result: TaskResult) -> None:
        nonlocal passed
        results[result.task_id] = result
        passed += result.passed
        if on_result is not None:
            on_result(result)
        if progress is not None:
            progress.update(len(results), passed)

    def executed(task: InfillTask, completion: TaskCompletion, run: ExecResult) -> None:
        record(TaskResult.of(task, completion, run))

    network_isolated()  # probe once, before the sandbox threads would race to
    execution = _Execution(max(1, jobs or os.cpu_count() or 1), limits or Limits())
    try:
        for task in tasks:
            if task.task_id in results:
                continue
            completion = complete_task(backend_for(task), task, settings, language)
            if completion.error:
                failure = ExecResult(False, "error", 0.0, f"completion: {completion.error}")
                record(TaskResult.of(task, completion, failure))
                continue
            program = build_program(
                task.prompt, completion.text, task.suffix, task.test, task.entry_point
            )
            execution.submit(program, partial(executed, task, completion))
            execution.deliver(wait=False)
        execution.deliver(wait=True)
    finally:
        execution.close()
        if progress is not None:
            progress.close()

    chosen = [results[task.task_id] for task in tasks if task.task_id in results]
    timings = [r.completion_ms for r in chosen]
    return Report(
        set_name=set_name,
        tasks=len(chosen),
        passed=sum(r.passed for r in chosen),
        resumed=resumed,
        seconds=time.perf_counter() - started,
        statuses=dict(Counter(r.status for r in chosen).most_common()),
        completion_ms_p50=percentile(timings, 50),
        completion_ms_p95=percentile(timings, 95),
        completion_ms_mean=sum(timings) / len(timings) if timings else 0.0,
        execute_s_mean=sum(r.execute_s for r in chosen) / len(chosen) if chosen else 0.0,
        programs_run=execution.run,
        programs_reused=execution.reused,
        confidence_table=tuple(threshold_table((r.confidence_of, r.passed) for r in chosen)),
    )


def card_line(report: Report) -> str:
    """How this run compares with the model card's number for the same set."""
    card = CARD_SCORES.get(report.set_name)
    ours = 100 * report.pass_at_1
    if card is None:
        return f"card: no published CodeGemma 2B score for {report.set_name}; this run {ours:.2f}"
    label = {"single": "single-line", "multi": "multi-line"}[report.set_name]
    return (
        f"card: CodeGemma 2B {label} pass@1 {card:.2f}; this run {ours:.2f} "
        f"({ours - card:+.2f} points)"
    )


def format_summary(report: Report, backend: str) -> str:
    failures = ", ".join(f"{k} {v}" for k, v in report.statuses.items() if k != "passed")
    return "\n".join(
        [
            f"humaneval {report.set_name}, backend {backend}: passed {report.passed}"
            f"/{report.tasks}, pass@1 {100 * report.pass_at_1:.2f}%"
            + (f" ({failures})" if failures else ""),
            f"per task: completion p50 {report.completion_ms_p50:.1f} ms, "
            f"p95 {report.completion_ms_p95:.1f} ms, mean {report.completion_ms_mean:.1f} ms; "
            f"execution mean {report.execute_s_mean:.3f} s",
            f"{report.seconds:.1f} s; {report.resumed} tasks resumed from the results file; "
            f"{report.programs_run} programs run, {report.programs_reused} reused",
            # Only a model's score means something next to the card's; the oracle's,
            # the empty floor's and a fake's do not.
            *([card_line(report)] if backend.startswith("llama:") else []),
            *confidence_lines(report),
        ]
    )


def confidence_lines(report: Report) -> list[str]:
    """The threshold table: what ``completion.minConfidence`` would show, and how much of
    it passes (a task with no suggestion is never shown)."""
    lines = ["minConfidence  shown  passed  pass share"]
    if report.confidence_table and report.confidence_table[0].shown == 0:
        lines.insert(0, "confidence: no suggestion carried one (none made, or no probabilities)")
    for row in report.confidence_table:
        lines.append(
            f"{row.threshold:>13.1f}  {row.shown:>5}  {row.passed:>6}  {row.pass_share:>10.1%}"
        )
    return lines


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "humaneval",
        help="pass@1 on HumanEval-Infilling through the server's completion pipeline",
        description="Completes each HumanEval-Infilling task as the server would for an editor "
        "(scope, prompt, engine, stopping, truncation), runs the tests in a sandbox, and "
        "reports pass@1 next to the model card's number.",
    )
    parser.add_argument("--set", choices=SETS, required=True, dest="task_set")
    parser.add_argument(
        "--tasks",
        type=Path,
        metavar="FILE",
        help="read the tasks from this JSONL(.gz) file; needed for random-span "
        "(HumanEval-RandomSpanInfilling.jsonl.gz), which cannot be regenerated",
    )
    parser.add_argument("--model", metavar="PATH", help="CodeGemma GGUF file (backend llama)")
    parser.add_argument(
        "--backend",
        metavar="KIND",
        help="llama (the default), oracle (the canonical middle: must score 1.0), "
        "empty (nothing: the floor), fake, or scripted:PATH",
    )
    parser.add_argument(
        "--fim-mode", choices=("psm", "psm-line", "spm", "spm2"), help="prompt layout"
    )
    parser.add_argument(
        "--max-new-tokens", type=int, metavar="N", help="completion.maxNewTokens for blocks"
    )
    parser.add_argument(
        "--time-budget-ms", type=int, metavar="MS", help="engine.timeBudgetMs per completion"
    )
    parser.add_argument("--n-ctx", type=int, help="context size in tokens")
    parser.add_argument("--threads", type=int, help="CPU threads for llama.cpp")
    parser.add_argument("--limit", type=int, metavar="N", help="N tasks spread evenly over the set")
    parser.add_argument(
        "--jobs", type=int, metavar="J", default=os.cpu_count(), help="programs run at once"
    )
    parser.add_argument("--timeout", type=float, default=3.0, metavar="S", help="per program")
    parser.add_argument(
        "--out", type=Path, metavar="FILE", help="per-task results (JSONL); resumes from it"
    )
    parser.add_argument(
        "--dump-tasks", type=Path, metavar="FILE", help="write the tasks as JSONL and stop"
    )
    parser.add_argument("--json", action="store_true", help="end the output with one JSON line")
    parser.set_defaults(func=run)


def settings_layer(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The flags as a settings layer, the highest-precedence source (as for ``serve``)."""
    wanted = {
        ("model", "path"): str(Path(args.model).expanduser()) if args.model else None,
        ("model", "backend"): args.backend if args.backend not in HARNESS_BACKENDS else None,
        ("model", "nCtx"): args.n_ctx,
        ("model", "threads"): args.threads,
        ("fim", "mode"): args.fim_mode,
        ("completion", "maxNewTokens"): args.max_new_tokens,
        ("engine", "timeBudgetMs"): args.time_budget_ms,
    }
    layer: dict[str, dict[str, Any]] = {}
    for (section, key), value in wanted.items():
        if value is not None:
            layer.setdefault(section, {})[key] = value
    return layer


def run_header(set_name: str, backend: str, settings: Settings) -> dict[str, Any]:
    """What decides a run's outcome; a results file resumes only a run with the same."""
    chosen = asdict(settings)
    chosen.pop("log", None)
    chosen["model"] = {"backend": settings.model.backend, "path": settings.model.path}
    return {"set": set_name, "backend": backend, "settings": chosen}


def _load_tasks(args: argparse.Namespace) -> list[InfillTask]:
    from codegemma_lsp.evals.humaneval_tasks import (
        load_problems,
        multi_line_tasks,
        read_tasks,
        single_line_tasks,
    )

    if args.tasks is not None:
        return read_tasks(args.tasks)
    if args.task_set == "random-span":
        raise ValueError(
            "random-span cannot be regenerated: pass --tasks with the official "
            "HumanEval-RandomSpanInfilling.jsonl.gz (github.com/openai/human-eval-infilling)"
        )
    problems = load_problems()
    return single_line_tasks(problems) if args.task_set == "single" else multi_line_tasks(problems)


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"codegemma-lsp eval humaneval: {message}\n")
    return status


def run(args: argparse.Namespace) -> int:
    """The command: 0 done, 1 backend failed (or the oracle lost answers), 2 bad input."""
    from codegemma_lsp.config import SettingsSources, env_layer
    from codegemma_lsp.console import protect_stdout, setup_logging
    from codegemma_lsp.engine.base import EngineError
    from codegemma_lsp.engine.host import describe, make_backend
    from codegemma_lsp.evals.humaneval_tasks import MissingDataError, dump_tasks
    from codegemma_lsp.syntax.languages import default_registry

    try:
        tasks = spread(_load_tasks(args), args.limit)
    except (MissingDataError, OSError, ValueError) as exc:
        return _fail(str(exc), 2)
    if args.dump_tasks is not None:
        dump_tasks(tasks, args.dump_tasks)
        sys.stderr.write(f"wrote {len(tasks)} tasks to {args.dump_tasks}\n")
        return 0

    setup_logging(0, None)
    logging.getLogger().setLevel(logging.WARNING)  # no per-request logs for thousands of tasks
    out = protect_stdout()  # llama.cpp writes to fd 1 while loading; the report owns stdout
    settings, problems = SettingsSources(
        environment=env_layer(), command_line=settings_layer(args)
    ).resolve()
    for problem in problems:
        sys.stderr.write(f"warning: {problem}\n")

    harness = args.backend if args.backend in HARNESS_BACKENDS else None
    shared: Backend | None = None
    if harness == "empty":
        shared = EmptyBackend()
    elif harness is None:
        try:
            shared = make_backend(settings.model)
        except EngineError as exc:
            return _fail(str(exc), 1)
    label = harness or f"{settings.model.backend}:{describe(settings.model)}"
    if shared is not None:
        try:
            shared.load()
        except EngineError as exc:
            return _fail(str(exc), 1)

    def backend_for(task: InfillTask) -> Backend:
        if shared is not None:
            return shared
        oracle = OracleBackend(task.canonical_solution)
        oracle.load()
        return oracle

    header = run_header(args.task_set, label, settings)
    results = ResultsFile(args.out, header) if args.out is not None else None
    try:
        done = results.load() if results is not None else {}
    except (ResumeMismatch, OSError) as exc:
        return _fail(str(exc), 2)
    try:
        report = evaluate(
            args.task_set,
            tasks,
            backend_for,
            settings,
            language=default_registry().lookup(None, TASK_PATH),
            jobs=args.jobs,
            limits=Limits(timeout_s=args.timeout),
            done=done,
            on_result=results.append if results is not None else None,
            progress=ProgressBar(f"humaneval {args.task_set}", len(tasks)),
        )
    except KeyboardInterrupt:
        where = f"; run again with --out {args.out} to resume" if args.out else ""
        return _fail(f"interrupted{where}", 130)
    finally:
        if results is not None:
            results.close()
        if shared is not None:
            shared.close()

    lines = [format_summary(report, label)]
    if args.json:
        lines.append(json.dumps({**report.as_json(), "backend": label}))
    out.write(("\n".join(lines) + "\n").encode("utf-8"))
    if harness == "oracle" and args.task_set != "random-span" and report.passed < report.tasks:
        return _fail(
            "the oracle lost correct answers: the pipeline or the harness is broken "
            "(see the failed tasks in --out)",
            1,
        )
    return 0
