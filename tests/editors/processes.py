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
import sysconfig
from pathlib import Path


def path_with_our_scripts(path: str | None) -> str:
    """``path`` with this interpreter's scripts folder first, as in an activated venv.

    The README's set-ups start the ``codegemma-lsp`` console script by name, which a
    user's PATH finds once the package is installed; pytest run as
    ``.venv/bin/python -m pytest`` without activating the venv must find it too.
    """
    scripts = sysconfig.get_path("scripts")
    return os.pathsep.join(filter(None, [scripts, path]))


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
