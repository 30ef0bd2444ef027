"""llama-cpp-python's server, unchanged, with a count of the work it does (``bench team``).

``python -m codegemma_lsp.engine.counted_server COUNT_FILE [llama_cpp.server flags...]``
runs ``python -m llama_cpp.server`` in this process after wrapping ``Llama.generate``,
which every completion goes through, so that each call appends one JSON line to
``COUNT_FILE``: the prompt tokens it evaluated (those after the prefix its KV cache
already held, computed as ``generate`` itself computes it), the tokens it generated,
and the seconds it took. llama-server reports the same figures itself (``/metrics``);
this server reports none, and its answers carry no timings.

A generation stopped by a client that went away is counted too, when its generator
is closed.
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


def _common_prefix(cached: Sequence[int], tokens: Sequence[int]) -> int:
    n = 0
    for a, b in zip(cached, tokens, strict=False):
        if a != b:
            break
        n += 1
    return n


def install_counter(path: Path) -> None:
    import llama_cpp

    original = llama_cpp.Llama.generate
    lock = threading.Lock()

    def generate(self: Any, tokens: Sequence[int], *args: Any, **kwargs: Any) -> Iterator[int]:
        reset = kwargs.get("reset", True)
        prefix = 0
        if reset and self.n_tokens > 0:
            # As Llama.generate decides what it keeps: the last token is evaluated anyway.
            prefix = _common_prefix(self._input_ids.tolist(), list(tokens[:-1]))
        evaluated = len(tokens) - prefix
        started = time.perf_counter()
        generated = 0
        try:
            for token in original(self, tokens, *args, **kwargs):
                generated += 1
                yield token
        finally:
            line = {
                "evaluated": evaluated,
                "generated": generated,
                "seconds": time.perf_counter() - started,
            }
            with lock, path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(line) + "\n")

    llama_cpp.Llama.generate = generate  # type: ignore[method-assign,assignment]


def read_counts(path: Path) -> dict[str, float]:
    """The sums of a count file: evaluated and generated tokens, busy seconds, calls."""
    totals = {"evaluated": 0.0, "generated": 0.0, "seconds": 0.0, "calls": 0.0}
    if not path.is_file():
        return totals
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        for key in ("evaluated", "generated", "seconds"):
            totals[key] += float(entry.get(key, 0))
        totals["calls"] += 1
    return totals


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        raise SystemExit("usage: python -m codegemma_lsp.engine.counted_server COUNT_FILE [flags]")
    install_counter(Path(args[0]))
    sys.argv = ["llama_cpp.server", *args[1:]]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
