"""A progress bar on stderr, for long benchmark runs; no dependency.

On a terminal it redraws one line with ``\\r`` (at most ten times a second);
elsewhere (a log file, CI) it writes a plain line at every tenth of the way,
so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 24


def format_duration(seconds: float) -> str:
    """``1:05:03``, ``4:07`` or ``12s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02}:{secs:02}"
    if minutes:
        return f"{minutes}:{secs:02}"
    return f"{secs}s"


def render(label: str, done: int, total: int, passed: int, elapsed: float) -> str:
    """One line of the bar: count, pass rate so far, speed and time left."""
    share = done / total if total else 1.0
    filled = round(share * _WIDTH)
    line = f"{label} [{'#' * filled}{'-' * (_WIDTH - filled)}] {done}/{total}"
    if done:
        line += f" pass {100 * passed / done:.1f}%"
    if done and elapsed > 0:
        rate = done / elapsed
        line += f" {rate:.1f}/s"
        if done < total:
            line += f" ETA {format_duration((total - done) / rate)}"
    return line


class ProgressBar:
    def __init__(
        self,
        label: str,
        total: int,
        stream: TextIO | None = None,
        *,
        interactive: bool | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._last_tenth = -1
        self._width = 0

    def update(self, done: int, passed: int) -> None:
        now = time.monotonic()
        line = render(self.label, done, self.total, passed, now - self._started)
        if self.interactive:
            if done < self.total and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            tenth = 10 * done // self.total if self.total else 10
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.interactive and self._width:
            self.stream.write("\n")
            self.stream.flush()
