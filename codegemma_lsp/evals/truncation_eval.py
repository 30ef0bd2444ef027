"""``codegemma-lsp eval truncation``: does truncating over-generated middles pay?

For each HumanEval multi-line infilling task it builds three typical
over-generations of the correct middle (see :func:`over_generations`), runs
the truncation function on each, executes the raw and the truncated programs
with the task's tests, and compares pass rates. A perfect truncation turns every
over-generation back into the canonical middle.

Shortcut: programs are executed once per distinct text. The tasks of one
HumanEval problem share two canonical programs (prompt + middle + suffix is the
whole solution; tasks whose middle starts it have one more blank line), and a
truncation that restores the middle exactly reproduces one, so canonical
programs run about twice per problem and their results are reused.
Programs with a syntax error are judged by compiling them, without a process
(:func:`codegemma_lsp.evals.execution.syntax_error`). The outcome is the same
as executing everything.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from codegemma_lsp.evals.execution import ExecResult, Limits, build_program, run_many
from codegemma_lsp.evals.humaneval_tasks import (
    InfillTask,
    load_problems,
    multi_line_tasks,
    read_tasks,
)

if TYPE_CHECKING:
    from codegemma_lsp.syntax.languages import LanguageSpec

Scope = Literal["line", "block"]


class TruncateFn(Protocol):
    def __call__(
        self,
        prefix: str,
        generated: str,
        suffix: str,
        language: LanguageSpec | None,
        *,
        scope: Scope | None = None,
    ) -> str: ...


SUFFIX_LINES = "suffix_lines"
EXTRA_FUNCTION = "extra_function"
DUPLICATE_CLOSING = "duplicate_closing"
KINDS = (SUFFIX_LINES, EXTRA_FUNCTION, DUPLICATE_CLOSING)

# Unrelated code a model tends to add after finishing the function; each task
# gets one, in turn, so that all of them are exercised.
_EXTRA_FUNCTIONS = (
    "\n\ndef helper(x):\n    return x * 2\n",
    '\n\ndef main():\n    print(helper(3))\n\n\nif __name__ == "__main__":\n    main()\n',
    "\n\nclass Node:\n    def __init__(self, value):\n"
    "        self.value = value\n        self.next = None\n",
    "\n\nimport unittest\n\n\nclass TestSolution(unittest.TestCase):\n"
    "    def test_example(self):\n        self.assertEqual(1 + 1, 2)\n",
    "\n\n# Example usage:\nprint({entry_point})\n",
)
_CLOSING_CHARACTERS = frozenset(")]},;")
_BRACKETS = frozenset(")]}")


@dataclass(frozen=True)
class Case:
    task: InfillTask
    kind: str
    generated: str


def over_generations(task: InfillTask, index: int) -> list[Case]:
    """The simulated over-generations of ``task`` (the ``index``-th task varies the details).

    - ``suffix_lines``: the middle, then the suffix's text up to the end of its
      second or third non-blank line (none when the suffix is blank);
    - ``extra_function``: the middle, then an unrelated definition or script;
    - ``duplicate_closing``: the middle, then its closing bracket line again, or
      else the suffix's first non-blank line, or else the middle's last line.
    """
    middle = task.canonical_solution
    newline = "" if not middle or middle.endswith("\n") else "\n"
    cases = []
    head = _head_lines(task.suffix, 2 + index % 2)
    if head.strip():
        cases.append(Case(task, SUFFIX_LINES, middle + head))
    extra = _EXTRA_FUNCTIONS[index % len(_EXTRA_FUNCTIONS)].format(entry_point=task.entry_point)
    cases.append(Case(task, EXTRA_FUNCTION, middle + newline + extra))
    cases.append(Case(task, DUPLICATE_CLOSING, middle + newline + _closing_line(task) + "\n"))
    return cases


def _head_lines(text: str, count: int) -> str:
    """``text`` up to and including the end of its ``count``-th non-blank line."""
    lines = text.splitlines(keepends=True)
    seen = 0
    for end, line in enumerate(lines, start=1):
        if line.strip():
            seen += 1
            if seen == count:
                return "".join(lines[:end])
    return text


def _closing_line(task: InfillTask) -> str:
    last = _last_non_blank(task.canonical_solution)
    stripped = last.strip()
    if stripped and set(stripped) <= _CLOSING_CHARACTERS and set(stripped) & _BRACKETS:
        return last
    first_of_suffix = next((line for line in task.suffix.splitlines() if line.strip()), None)
    return first_of_suffix if first_of_suffix is not None else last


def _last_non_blank(text: str) -> str:
    return next((line for line in reversed(text.splitlines()) if line.strip()), "")


@dataclass(frozen=True)
class KindReport:
    kind: str
    cases: int
    raw_passed: int
    truncated_passed: int
    exact: int
    regressions: int

    def as_json(self) -> dict[str, object]:
        return {
            "cases": self.cases,
            "raw_pass_rate": _rate(self.raw_passed, self.cases),
            "truncated_pass_rate": _rate(self.truncated_passed, self.cases),
            "exact_rate": _rate(self.exact, self.cases),
            "regressions": self.regressions,
        }


@dataclass(frozen=True)
class TruncationReport:
    tasks: int
    kinds: tuple[KindReport, ...]
    truncate_p50_ms: float
    truncate_p95_ms: float
    truncate_max_ms: float
    truncate_errors: int
    canonical_programs: int
    canonical_failures: int
    programs_run: int
    programs_reused: int
    seconds: float
    first_truncate_error: str = ""
    overall: KindReport = field(init=False)

    def __post_init__(self) -> None:
        total = KindReport(
            kind="all",
            cases=sum(k.cases for k in self.kinds),
            raw_passed=sum(k.raw_passed for k in self.kinds),
            truncated_passed=sum(k.truncated_passed for k in self.kinds),
            exact=sum(k.exact for k in self.kinds),
            regressions=sum(k.regressions for k in self.kinds),
        )
        object.__setattr__(self, "overall", total)

    def as_json(self) -> dict[str, object]:
        return {
            "tasks": self.tasks,
            "cases": self.overall.cases,
            "raw_pass_rate": _rate(self.overall.raw_passed, self.overall.cases),
            "truncated_pass_rate": _rate(self.overall.truncated_passed, self.overall.cases),
            "exact_rate": _rate(self.overall.exact, self.overall.cases),
            "regressions": self.overall.regressions,
            "truncate_p50_ms": round(self.truncate_p50_ms, 3),
            "truncate_p95_ms": round(self.truncate_p95_ms, 3),
            "truncate_max_ms": round(self.truncate_max_ms, 3),
            "truncate_errors": self.truncate_errors,
            "canonical_programs": self.canonical_programs,
            "canonical_failures": self.canonical_failures,
            "programs_run": self.programs_run,
            "programs_reused": self.programs_reused,
            "seconds": round(self.seconds, 1),
            "kinds": {k.kind: k.as_json() for k in self.kinds},
        }


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def percentile(values: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


Progress = Callable[[str], None]


def evaluate(
    tasks: Sequence[InfillTask],
    truncate: TruncateFn,
    *,
    language: LanguageSpec | None,
    scope: Scope | None = None,
    jobs: int | None = None,
    limits: Limits | None = None,
    progress: Progress | None = None,
) -> TruncationReport:
    """Truncate every over-generation of ``tasks``, execute, and count."""
    say = progress or (lambda _message: None)
    start = time.perf_counter()
    cases = [case for index, task in enumerate(tasks) for case in over_generations(task, index)]
    say(f"truncating {len(cases)} over-generations of {len(tasks)} tasks")
    truncated: list[str | None] = []
    timings_ms: list[float] = []
    errors: list[str] = []
    for case in cases:
        began = time.perf_counter()
        try:
            text: str | None = truncate(
                case.task.prompt, case.generated, case.task.suffix, language, scope=scope
            )
        except Exception as exc:  # a bug in truncate must not end the benchmark
            errors.append(f"{case.task.task_id} {case.kind}: {type(exc).__name__}: {exc}")
            text = None
        timings_ms.append((time.perf_counter() - began) * 1000)
        truncated.append(text)

    programs = _ProgramSet()
    canonical = {task.task_id: programs.add(task, task.canonical_solution) for task in tasks}
    raw = [programs.add(case.task, case.generated) for case in cases]
    cut = [
        programs.add(case.task, text) if text is not None else None
        for case, text in zip(cases, truncated, strict=True)
    ]
    say(f"executing {len(programs.texts)} distinct programs of {programs.requests}")
    results = run_many(
        programs.texts, jobs, limits=limits, on_done=_progress_counter(say, len(programs.texts))
    )

    kinds = tuple(_kind_report(kind, cases, truncated, raw, cut, results) for kind in KINDS)
    canonical_ids = set(canonical.values())
    return TruncationReport(
        tasks=len(tasks),
        kinds=kinds,
        truncate_p50_ms=percentile(timings_ms, 50),
        truncate_p95_ms=percentile(timings_ms, 95),
        truncate_max_ms=max(timings_ms, default=0.0),
        truncate_errors=len(errors),
        first_truncate_error=errors[0] if errors else "",
        canonical_programs=len(canonical_ids),
        canonical_failures=sum(not results[i].passed for i in canonical_ids),
        programs_run=len(programs.texts),
        programs_reused=programs.requests - len(programs.texts),
        seconds=time.perf_counter() - start,
    )


class _ProgramSet:
    """Distinct programs, each with an index into the list that is executed."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._index: dict[str, int] = {}
        self.requests = 0

    def add(self, task: InfillTask, middle: str) -> int:
        self.requests += 1
        text = build_program(task.prompt, middle, task.suffix, task.test, task.entry_point)
        index = self._index.get(text)
        if index is None:
            index = self._index[text] = len(self.texts)
            self.texts.append(text)
        return index


def _kind_report(
    kind: str,
    cases: Sequence[Case],
    truncated: Sequence[str | None],
    raw: Sequence[int],
    cut: Sequence[int | None],
    results: Sequence[ExecResult],
) -> KindReport:
    chosen = [i for i, case in enumerate(cases) if case.kind == kind]

    def passed(program: int | None) -> bool:
        return program is not None and results[program].passed

    return KindReport(
        kind=kind,
        cases=len(chosen),
        raw_passed=sum(passed(raw[i]) for i in chosen),
        truncated_passed=sum(passed(cut[i]) for i in chosen),
        exact=sum(truncated[i] == cases[i].task.canonical_solution for i in chosen),
        regressions=sum(passed(raw[i]) and not passed(cut[i]) for i in chosen),
    )


def _progress_counter(say: Progress, total: int) -> Callable[[int, ExecResult], None]:
    done = 0
    last = time.monotonic()

    def tick(_index: int, _result: ExecResult) -> None:
        nonlocal done, last
        done += 1
        now = time.monotonic()
        if done == total or now - last >= 2.0:
            last = now
            say(f"executed {done}/{total}")

    return tick


def format_table(report: TruncationReport) -> str:
    lines = [
        f"{report.tasks} tasks, {report.overall.cases} over-generations, "
        f"truncate p50 {report.truncate_p50_ms:.2f} ms, p95 {report.truncate_p95_ms:.2f} ms, "
        f"max {report.truncate_max_ms:.1f} ms",
        f"{'kind':<18} {'cases':>6} {'raw pass':>9} {'truncated':>10} {'exact':>7} "
        f"{'regressed':>10}",
    ]
    for kind in (*report.kinds, report.overall):
        lines.append(
            f"{kind.kind:<18} {kind.cases:>6} {_percent(kind.raw_passed, kind.cases):>9} "
            f"{_percent(kind.truncated_passed, kind.cases):>10} "
            f"{_percent(kind.exact, kind.cases):>7} {kind.regressions:>10}"
        )
    lines.append(
        f"programs executed {report.programs_run} (reused {report.programs_reused}), "
        f"canonical failures {report.canonical_failures}/{report.canonical_programs}, "
        f"truncate errors {report.truncate_errors}, {report.seconds:.0f} s"
    )
    return "\n".join(lines)


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def spread(tasks: Sequence[InfillTask], limit: int | None) -> list[InfillTask]:
    """``limit`` tasks evenly spaced over ``tasks`` (all of them without a limit)."""
    if limit is None or limit >= len(tasks):
        return list(tasks)
    return [tasks[i * len(tasks) // limit] for i in range(max(0, limit))]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "truncation",
        help="measure how truncating over-generated middles changes HumanEval pass rates",
        description="Simulates over-generated middles for HumanEval multi-line infilling "
        "tasks, truncates them, and compares pass rates before and after.",
    )
    parser.add_argument("--json", action="store_true", help="end the output with one JSON line")
    parser.add_argument("--limit", type=int, metavar="N", help="N tasks spread evenly over the set")
    parser.add_argument(
        "--jobs", type=int, metavar="J", default=os.cpu_count(), help="programs run at once"
    )
    parser.add_argument("--timeout", type=float, default=3.0, metavar="S", help="per program")
    parser.add_argument(
        "--scope", choices=("auto", "line", "block"), default="auto", help="passed to truncate"
    )
    parser.add_argument(
        "--tasks",
        type=Path,
        metavar="JSONL",
        help="infilling tasks to use (e.g. HumanEval-RandomSpanInfilling.jsonl.gz); "
        "default: multi-line tasks regenerated from HumanEval",
    )
    parser.set_defaults(func=run)


def _to_stderr(message: str) -> None:
    sys.stderr.write(f"eval truncation: {message}\n")
    sys.stderr.flush()


def run(args: argparse.Namespace, truncate: TruncateFn | None = None) -> int:
    """The command; ``truncate`` replaces the real truncation function in tests."""
    from codegemma_lsp.evals.humaneval_tasks import MissingDataError
    from codegemma_lsp.syntax.languages import default_registry

    if truncate is None:
        from codegemma_lsp.syntax.truncation import truncate as real_truncate

        truncate = real_truncate
    try:
        tasks = read_tasks(args.tasks) if args.tasks else multi_line_tasks(load_problems())
    except (MissingDataError, OSError, ValueError) as exc:
        sys.stderr.write(f"codegemma-lsp eval truncation: {exc}\n")
        return 2
    report = evaluate(
        spread(tasks, args.limit),
        truncate,
        language=default_registry().by_name("python"),
        scope=None if args.scope == "auto" else args.scope,
        jobs=args.jobs,
        limits=Limits(timeout_s=args.timeout),
        progress=_to_stderr,
    )
    sys.stdout.write(format_table(report) + "\n")
    if report.first_truncate_error:
        sys.stderr.write(f"first truncate error: {report.first_truncate_error}\n")
    if report.canonical_failures:
        sys.stderr.write(
            "canonical solutions failed: the harness or machine is not working as it should\n"
        )
    if args.json:
        sys.stdout.write(json.dumps(report.as_json()) + "\n")
    sys.stdout.flush()
    return 1 if report.canonical_failures else 0
