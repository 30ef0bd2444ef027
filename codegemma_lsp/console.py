"""The process's own streams: stdout kept for one use, logs on stderr or in a file.

Every command that writes an answer on stdout (``serve``'s protocol, ``complete``,
the eval harness's JSON) first takes stdout for itself with :func:`protect_stdout`,
so that a library writing to fd 1 (llama.cpp does while loading) can never corrupt
the output.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import BinaryIO


def protect_stdout() -> BinaryIO:
    """A private binary stream on the real stdout; fd 1 (and sys.stdout) now go to stderr."""
    sys.stdout.flush()
    private_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(private_fd, "wb", buffering=0)


def setup_logging(verbose: int, log_file: str | None) -> None:
    handler: logging.Handler = (
        logging.FileHandler(log_file, encoding="utf-8")
        if log_file
        else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # pygls logs whole message bodies (document text) at INFO, and routine events such as
    # a cancel for a finished request at WARNING: keep both out unless asked with -vv.
    logging.getLogger("pygls").setLevel(logging.DEBUG if verbose >= 2 else logging.ERROR)
