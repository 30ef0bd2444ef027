"""Bringing a ``codegemma-lsp serve`` process up for a benchmark: initialize it as Neovim
0.12 does and wait until it reports its model (or remote engine) ready.

Every benchmark that drives the real server starts it here, so they all negotiate the
same capabilities.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from codegemma_lsp.evals.replay_client import LspProcess, ProtocolError

LOAD_TIMEOUT_S = 300.0
"""How long a model may take to load (a 7B from a cold disk on a slow machine)."""


def start_server(
    server: LspProcess,
    root: Path,
    init_options: dict[str, Any],
    *,
    client: str = "codegemma-lsp bench replay (as Neovim 0.12)",
    timeout_s: float = LOAD_TIMEOUT_S,
    unreachable_engine_ok: bool = False,
) -> tuple[list[str], dict[str, Any] | None]:
    """Initialize the server and wait until its model is loaded: the warnings it showed,
    and the machine speed it measured (None if it reported none).

    A server that reports an error raises :class:`ProtocolError`, unless
    ``unreachable_engine_ok``: a remote engine that is busy (llama_cpp.server answers
    nothing while it evaluates a prompt) is tried again on each request, so its error
    becomes a warning."""
    server.call(
        "initialize",
        {
            "processId": os.getpid(),
            "clientInfo": {"name": client},
            "rootUri": root.as_uri(),
            "capabilities": {
                "general": {"positionEncodings": ["utf-16"]},
                "textDocument": {
                    "synchronization": {"didSave": True, "dynamicRegistration": False},
                    "inlineCompletion": {"dynamicRegistration": False},
                },
            },
            "initializationOptions": init_options,
        },
    )
    server.notify("initialized", {})
    warnings: list[str] = []
    deadline = time.perf_counter() + timeout_s
    while True:
        item = server.receive(deadline - time.perf_counter())
        if item is None:
            raise ProtocolError(f"the server was not ready within {timeout_s:.0f} s")
        message = item.message
        params = message.get("params") or {}
        if message.get("method") == "window/showMessage":
            warnings.append(str(params.get("message", "")))
        if message.get("method") == "codegemma/status":
            if params.get("state") == "ready":
                speed = params.get("speed")
                return warnings, speed if isinstance(speed, dict) else None
            if params.get("state") == "error":
                if not unreachable_engine_ok:
                    raise ProtocolError(
                        f"the server could not load the model: {params.get('message')}"
                    )
                warnings.append(f"engine not reachable at start: {params.get('message')}")
                return warnings, None
