"""The model's first use over real stdio: download with $/progress, one load per settings.

The hub is a stand-in on 127.0.0.1 (tests/hub.py); the server finds it through
``HF_ENDPOINT``, caches into a temporary ``HF_HOME``, and learns the tiny model's
registry entry from ``CODEGEMMA_LSP_REGISTRY``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SERVER
from tests.hub import TINY_FILE, TINY_REPO, StandInHub, hub_env, serve_hub, tiny_registry
from tests.lsp.raw_client import RawClient

COMMENT_SOURCE = "def add(a, b):\n    # add the two numbers and \n    return a + b\n"

Message = dict[str, Any]


@pytest.fixture
def hub(tiny_model_path: Path) -> Iterator[StandInHub]:
    with serve_hub() as running:
        running.add(TINY_REPO, TINY_FILE, tiny_model_path.read_bytes())
        yield running


def _env(hub: StandInHub, tmp_path: Path, tiny: Path, **settings: str) -> dict[str, str]:
    data = tiny.read_bytes()
    import hashlib

    registry = tiny_registry(
        tmp_path / "models.json", sha256=hashlib.sha256(data).hexdigest(), size=len(data)
    )
    env = hub_env(hub, tmp_path / "hf", registry)
    env.update(CODEGEMMA_LSP_MODEL_ID="tiny", CODEGEMMA_LSP_MODEL_QUANT="F32", **settings)
    return env


def _pump(
    client: RawClient,
    until: Callable[[Message], bool],
    *,
    configuration: Any = None,
    timeout: float = 60.0,
) -> Message:
    """Read messages until ``until`` matches, answering the server's own requests."""
    deadline = time.monotonic() + timeout
    while True:
        message = client.wait_for(lambda m: True, timeout=max(0.1, deadline - time.monotonic()))
        if "method" in message and "id" in message:
            result: Any = None
            if message["method"] == "workspace/configuration":
                result = [configuration for _ in message["params"]["items"]]
            client.send({"jsonrpc": "2.0", "id": message["id"], "result": result})
        if until(message):
            return message


def _status(state: str) -> Callable[[Message], bool]:
    return lambda m: m.get("method") == "codegemma/status" and m["params"]["state"] == state


def _initialize(client: RawClient, root: Path, **params: Any) -> None:
    capabilities = {
        "window": {"workDoneProgress": True},
        "workspace": {"configuration": True},
    }
    msg_id = client.request(
        "initialize",
        {"processId": None, "rootUri": root.as_uri(), "capabilities": capabilities, **params},
    )
    client.response(msg_id)
    client.notify("initialized", {})


def _progress(client: RawClient) -> list[Message]:
    return [m["params"] for m in client.received if m.get("method") == "$/progress"]


def _is_progress_end(message: Message) -> bool:
    return message.get("method") == "$/progress" and message["params"]["value"]["kind"] == "end"


def _wait_progress_end(client: RawClient, configuration: Any = None) -> None:
    """The end follows the status notification that caused it."""
    if not any(_is_progress_end(m) for m in client.received):
        _pump(client, _is_progress_end, configuration=configuration)


def _stop(client: RawClient) -> None:
    client.response(client.request("shutdown"))
    client.notify("exit")
    assert client.close() == 0


def test_server_downloads_on_first_use_with_progress_and_completes(
    hub: StandInHub, tiny_model_path: Path, tmp_path: Path
) -> None:
    env = _env(hub, tmp_path, tiny_model_path)
    client = RawClient([*SERVER, "-v"], cwd=tmp_path, env=env)
    _initialize(client, tmp_path)
    _pump(client, lambda m: _status("ready")(m) or _status("error")(m))
    statuses = [m["params"] for m in client.received if m.get("method") == "codegemma/status"]
    assert statuses[-1]["state"] == "ready", client.stderr
    _wait_progress_end(client)
    downloading = [s for s in statuses if s["state"] == "downloading"]
    assert downloading and downloading[-1]["progress"] == 100, statuses
    # $/progress: a begin that promises percentages, reports that give them, one end.
    values = [p["value"] for p in _progress(client)]
    assert values[0]["kind"] == "begin", values
    assert values[0]["percentage"] == 0 and TINY_FILE in values[0]["message"], values
    percentages = [v["percentage"] for v in values if v["kind"] == "report" and "percentage" in v]
    assert percentages and percentages == sorted(percentages) and percentages[-1] == 100, values
    assert [v["kind"] for v in values].count("end") == 1, values
    cached = list((tmp_path / "hf" / "hub").rglob(TINY_FILE))
    assert cached and cached[0].read_bytes() == tiny_model_path.read_bytes()

    uri = (tmp_path / "demo.py").as_uri()
    client.notify(
        "textDocument/didOpen",
        {
            "textDocument": {
                "uri": uri,
                "languageId": "python",
                "version": 1,
                "text": COMMENT_SOURCE,
            }
        },
    )
    reply = client.response(
        client.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": 1, "character": 29},
                "context": {"triggerKind": 2},
            },
        ),
        timeout=30,
    )
    assert reply["result"]["items"][0]["insertText"], reply
    _stop(client)


def test_with_download_off_the_error_gives_the_command(
    hub: StandInHub, tiny_model_path: Path, tmp_path: Path
) -> None:
    env = _env(hub, tmp_path, tiny_model_path, CODEGEMMA_LSP_MODEL_DOWNLOAD="false")
    client = RawClient([*SERVER], cwd=tmp_path, env=env)
    _initialize(client, tmp_path)
    error = _pump(client, _status("error"))
    assert "run `codegemma-lsp download tiny --quant F32`" in error["params"]["message"]
    shown = _pump(client, lambda m: m.get("method") == "window/showMessage")
    assert "codegemma-lsp download tiny --quant F32" in shown["params"]["message"]
    assert not [m for m in hub.requests if m[0] == "GET"], "nothing was downloaded"
    _stop(client)


def test_the_same_settings_twice_load_the_model_once(tmp_path: Path) -> None:
    """Neovim's start: initializationOptions, then a workspace/configuration pull, and a
    didChangeConfiguration with the same settings sent right after initialized."""
    settings = {"model": {"nCtx": 1024}}
    client = RawClient([*SERVER, "--backend", "fake"], cwd=tmp_path)
    _initialize(client, tmp_path, initializationOptions={"codegemma": settings})
    client.notify("workspace/didChangeConfiguration", {"settings": {"codegemma": settings}})
    _pump(client, _status("ready"), configuration=settings)
    _wait_progress_end(client, settings)
    # Anything a second load would send comes within moments of the first.
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            _pump(client, lambda m: False, configuration=settings, timeout=0.3)
    statuses = [
        m["params"]["state"] for m in client.received if m.get("method") == "codegemma/status"
    ]
    assert statuses.count("loading") == 1, statuses
    kinds = [p["value"]["kind"] for p in _progress(client)]
    assert kinds.count("begin") == 1 and kinds.count("end") == 1, kinds
    # A real change still reloads.
    client.notify(
        "workspace/didChangeConfiguration",
        {"settings": {"codegemma": {"model": {"nCtx": 2048}}}},
    )
    _pump(client, _status("ready"), configuration=settings)
    statuses = [
        m["params"]["state"] for m in client.received if m.get("method") == "codegemma/status"
    ]
    assert statuses.count("loading") == 2, statuses
    _stop(client)
