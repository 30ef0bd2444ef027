"""The ``eval`` command and its benchmarks.

Each benchmark module offers ``add_parser(subparsers)``, which registers one
subcommand and stores its handler with ``set_defaults(func=...)``; the handler
takes the parsed arguments and returns the exit status. A new benchmark is one
more entry in ``_BENCHMARKS``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from codegemma_lsp.evals import humaneval_eval, truncation_eval

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

_BENCHMARKS: tuple[Registrar, ...] = (humaneval_eval.add_parser, truncation_eval.add_parser)


def add_eval_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``eval`` and its benchmark subcommands on the top-level parser."""
    parser = subparsers.add_parser(
        "eval",
        help="benchmarks on HumanEval-Infilling",
        description="Benchmarks on HumanEval-Infilling (needs the 'eval' extra).",
    )
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for register in _BENCHMARKS:
        register(benchmarks)
