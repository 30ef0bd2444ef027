"""Parsing with a deadline: tree-sitter reading through callbacks, and what that costs.

A parse can be stopped, and reports its progress, only when it reads its input through a
callback (a ``bytes`` source ignores the progress callback). Reading that way also lets
other threads run: between reads and progress reports the parsing thread runs Python
code, so it hands the GIL over, and the event loop never waits for a whole parse.

py-tree-sitter 0.26.1 keeps a reference to every object a read callback returns, so each
parse would leak what it read (about the size of the text, every time). :func:`parse`
measures that once per process, on a probe, and gives the references back after each
parse; a release that fixes the leak measures zero and gets nothing back. Its progress
callback must never raise either: the binding does not check for an error there.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
import time
from collections.abc import Callable

import tree_sitter

log = logging.getLogger(__name__)

READ_CHUNK = 65_536
"""Bytes handed to tree-sitter per read: no read copies the rest of a big text."""

Clock = Callable[[], float]


class ParseTimeout(Exception):
    """A parse ran past its deadline (some grammars take seconds on odd text)."""


def parse(
    parser: tree_sitter.Parser,
    data: bytes,
    old_tree: tree_sitter.Tree | None = None,
    *,
    deadline: float,
    clock: Clock = time.perf_counter,
) -> tree_sitter.Tree:
    """``data`` parsed by ``parser`` (incrementally from ``old_tree``, already edited to
    match, if given); :class:`ParseTimeout` once ``clock()`` passes ``deadline``."""
    kept = _kept_per_read(parser)
    returned: list[bytes] = []
    parsing = True

    def read(at: int, _point: tuple[int, int]) -> bytes:
        piece = data[at : at + READ_CHUNK]
        if parsing and piece:
            returned.append(piece)
        return piece

    def late(_offset: int, _has_error: bool) -> bool:
        try:
            return clock() > deadline
        except Exception:  # an exception here would crash the binding: stop instead
            return True

    try:
        if old_tree is None:
            return parser.parse(read, progress_callback=late)
        return parser.parse(read, old_tree, progress_callback=late)
    except ValueError:  # halted by the progress callback
        parser.reset()  # else the next parse would resume this one
        raise ParseTimeout from None
    finally:
        parsing = False
        if kept == 1:
            for piece in returned:
                _give_back(piece)
        returned.clear()


# --- the read-callback reference leak ---------------------------------------------------------

_probe_lock = threading.Lock()
_kept: int | None = None


def _kept_per_read(parser: tree_sitter.Parser) -> int:
    """How many references the binding keeps to each object a read callback returns."""
    global _kept
    if _kept is None:
        with _probe_lock:
            if _kept is None:
                _kept = _probe(parser)
    return _kept


def _probe(parser: tree_sitter.Parser) -> int:
    if not hasattr(sys, "getrefcount"):
        return 0
    piece = bytes(bytearray(b"\n"))  # a fresh object that nothing else holds
    returns = 0

    def read(at: int, _point: tuple[int, int]) -> bytes:
        nonlocal returns
        if at == 0:
            returns += 1
            return piece
        return b""

    before = sys.getrefcount(piece)
    parser.parse(read, progress_callback=lambda _offset, _has_error: False)
    parser.reset()
    kept = sys.getrefcount(piece) - before
    if returns and kept == returns:
        log.debug("tree-sitter keeps a reference to each read; they are given back")
        for _ in range(returns):
            _give_back(piece)
        return 1
    if kept:
        log.warning("tree-sitter keeps %d references for %d reads; parses leak", kept, returns)
    return 0


_decref = ctypes.pythonapi.Py_DecRef
_decref.argtypes = [ctypes.py_object]
_decref.restype = None


def _give_back(piece: bytes) -> None:
    _decref(piece)
