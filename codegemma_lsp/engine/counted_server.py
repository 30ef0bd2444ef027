"""llama-cpp-python's server, unchanged, with a count of the work it does (``bench team``).

``python -m codegemma_lsp.engine.counted_server COUNT_FILE [llama_cpp.server flags...]``
runs ``python -m llama_cpp.server`` in this process after wrapping ``Llama.generate``,
which every completion goes through, so that each call appends two JSON lines to
``COUNT_FILE``: when it starts, the prompt tokens it is about to evaluate (those after
the prefix its KV cache already holds, computed as ``generate`` itself computes it), and
when it ends, the tokens it generated and the seconds it took. A prompt is counted once
its evaluation starts, since nothing stops it before the first token. llama-server
reports the same figures itself (``/metrics``); this server reports none, and its
answers carry no timings.

A generation stopped by a client that went away is counted too, when its generator
is closed.

``--no-repack`` (taken before the server's own flags) loads the weights without
llama.cpp's repacking into extra buffer types, as llama-server's ``--no-repack``
does; on a CPU with AMX that is the default, since the repacked AMX kernels of this
llama.cpp crash in the first batched decode (see ``weight_buffers``).
"""

from __future__ import annotations

import json
import runpy
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from codegemma_lsp.engine.base import common_prefix
from codegemma_lsp.engine.weight_buffers import cpu_has_amx


def install_counter(path: Path) -> None:
    import llama_cpp

    original = llama_cpp.Llama.generate
    lock = threading.Lock()

    def generate(self: Any, tokens: Sequence[int], *args: Any, **kwargs: Any) -> Iterator[int]:
        reset = kwargs.get("reset", True)
        prefix = 0
        if reset and self.n_tokens > 0:
            # As Llama.generate decides what it keeps: the last token is evaluated anyway.
            prefix = common_prefix(self._input_ids.tolist(), list(tokens[:-1]))
        evaluated = len(tokens) - prefix
        write({"evaluated": evaluated})
        started = time.perf_counter()
        generated = 0
        try:
            for token in original(self, tokens, *args, **kwargs):
                generated += 1
                yield token
        finally:
            write({"generated": generated, "seconds": time.perf_counter() - started})

    def write(entry: dict[str, float]) -> None:
        with lock, path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")

    llama_cpp.Llama.generate = generate  # type: ignore[method-assign,assignment]


def read_counts(path: Path) -> dict[str, float]:
    """The sums of a count file: prompt tokens evaluated (or being evaluated), tokens
    generated and busy seconds of the calls that ended, calls started and still running."""
    totals = {"evaluated": 0.0, "generated": 0.0, "seconds": 0.0, "calls": 0.0, "running": 0.0}
    if not path.is_file():
        return totals
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if "evaluated" in entry:
            totals["evaluated"] += float(entry["evaluated"])
            totals["calls"] += 1
            totals["running"] += 1
        if "seconds" in entry:
            totals["generated"] += float(entry.get("generated", 0))
            totals["seconds"] += float(entry["seconds"])
            totals["running"] -= 1
    return totals


def disable_repack() -> None:
    """Every model loads with ``use_extra_bufts`` off (no weight repacking)."""
    import llama_cpp
    import llama_cpp.llama

    default = llama_cpp.llama_model_default_params

    def without_repack() -> Any:
        params = default()
        params.use_extra_bufts = False
        return params

    # Llama.__init__ reads it through the llama_cpp module it imported.
    llama_cpp.llama.llama_cpp.llama_model_default_params = without_repack  # type: ignore[attr-defined]


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        raise SystemExit(
            "usage: python -m codegemma_lsp.engine.counted_server COUNT_FILE [--no-repack] [flags]"
        )
    install_counter(Path(args[0]))
    rest = args[1:]
    no_repack = rest[:1] == ["--no-repack"]
    if no_repack:
        rest = rest[1:]
    if no_repack or cpu_has_amx():  # the AMX kernels crash (see llama_backend)
        disable_repack()
    sys.argv = ["llama_cpp.server", *rest]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
