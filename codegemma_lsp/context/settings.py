"""The ``context`` settings section: how much repository context goes before the file.

The dataclass follows :mod:`codegemma_lsp.config`'s conventions (frozen, keyword-only,
``from __future__`` string annotations), so config can list it as a section as is.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTEXT_RANGES: dict[str, tuple[int, int]] = {
    "max_tokens": (0, 32768),
    "max_depth": (0, 8),
    "max_file_bytes": (1024, 1 << 26),
    "max_files": (0, 256),
    "recheck_seconds": (0, 3600),
}
"""Valid ranges of the whole-number keys, for config validation."""


@dataclass(frozen=True, kw_only=True)
class ContextSettings:
    enabled: bool = True
    max_tokens: int = 1024
    """Budget of the packed files. Each context token costs about 14 ms the first time on a
    2-core CPU, and nothing afterwards while the pack stays the same (KV reuse)."""
    max_depth: int = 2
    """How many import hops are followed from the current file."""
    max_file_bytes: int = 262_144
    """Larger files are never read as context."""
    max_files: int = 16
    """At most this many files are considered for one pack, nearest first."""
    tests: bool = True
    """Pair a test with its implementation, and an implementation with its tests."""
    recheck_seconds: int = 5
    """``context_for`` stats the files of a pack at most this often to notice outside edits;
    0 leaves it to explicit ``check_mtimes`` calls."""
