"""Running an editor headless in a process group of its own.

The editor starts the language server as its child; killing the whole group
(on timeout, and after a normal exit, since the editor may leave before its
server does) keeps no stray server behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def run_in_own_group(
    command: list[str], *, cwd: Path, env: dict[str, str], timeout_s: float
) -> tuple[str, int]:
    """Run ``command`` to its end (or ``timeout_s``); its output and exit status."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(process.pid)
        output, _ = process.communicate()
    kill_group(process.pid)
    return output.decode(errors="replace"), process.returncode
