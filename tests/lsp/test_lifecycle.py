"""Nothing is left behind: the server exits when its client goes, whatever it is doing.

The exits go through a real server over stdio. Bounds on waiting are generous (the
server must exit rather than hang), never measures of speed; the fake backend that
"generates" sleeps for an hour per token, so a server that waited for it would fail.
The protocol's bookkeeping is checked in process, on its structures.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from codegemma_lsp.lifecycle import (
    ParentWatchdog,
    arm_exit_deadline,
    exit_when_threads_stop,
    process_alive,
)
from codegemma_lsp.server import CodeGemmaServer, create_server
from tests.conftest import SERVER
from tests.lsp.raw_client import RawClient

SOURCE = "def add(a, b):\n    "
EXIT_BOUND_S = 60


def _kill(client: RawClient) -> None:
    client.proc.kill()
    client.close()


def _wait_ready(client: RawClient) -> None:
    def ready(m: dict[str, Any]) -> bool:
        return m.get("method") == "codegemma/status" and m["params"]["state"] == "ready"

    if not any(ready(m) for m in client.received):
        client.wait_for(ready, timeout=30)


def _busy_server(tmp_path: Path) -> RawClient:
    """A server whose inference thread is busy for an hour (pre-warm, then a request)."""
    client = RawClient([*SERVER, "--backend", "fake:3600"])
    client.initialize(tmp_path)
    _wait_ready(client)
    uri = (tmp_path / "demo.py").as_uri()
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": SOURCE}},
    )
    client.request(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": uri},
            "position": {"line": 1, "character": 4},
            "context": {"triggerKind": 2},
        },
    )
    # Answered after the two above were handled: the work is on the inference thread.
    client.response(client.request("codegemma/stats"))
    return client


def _end_of_input(client: RawClient) -> None:
    assert client.proc.stdin is not None
    client.proc.stdin.close()


@pytest.mark.parametrize("how", ["exit", "end-of-input"])
def test_the_server_exits_at_once_while_the_model_is_busy(tmp_path: Path, how: str) -> None:
    client = _busy_server(tmp_path)
    try:
        if how == "exit":
            client.notify("exit")
        else:
            _end_of_input(client)
        assert client.close(timeout=EXIT_BOUND_S) == 1
    finally:
        _kill(client)


def test_shutdown_then_end_of_input_exits_zero(tmp_path: Path) -> None:
    client = RawClient([*SERVER, "--backend", "fake"])
    try:
        client.initialize(tmp_path)
        client.response(client.request("shutdown"))
        _end_of_input(client)
        assert client.close(timeout=EXIT_BOUND_S) == 0
    finally:
        _kill(client)


def test_end_of_input_without_shutdown_exits_one(tmp_path: Path) -> None:
    client = RawClient([*SERVER, "--backend", "fake"])
    try:
        client.initialize(tmp_path)
        _end_of_input(client)
        assert client.close(timeout=EXIT_BOUND_S) == 1
    finally:
        _kill(client)


def test_the_server_exits_when_the_clients_process_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEGEMMA_LSP_SERVER_PARENT_CHECK_MS", "50")
    editor = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    client = RawClient([*SERVER, "--backend", "fake"])
    try:
        client.initialize(tmp_path, processId=editor.pid)
        # Alive while the editor is: several checks pass and it still answers.
        for _ in range(3):
            client.response(client.request("codegemma/stats"))
        assert client.proc.poll() is None
        assert editor.stdin is not None
        editor.stdin.close()
        editor.wait()
        assert client.close(timeout=EXIT_BOUND_S) == 1
    finally:
        editor.kill()
        editor.wait()
        _kill(client)


def test_a_process_id_that_is_not_seen_here_is_not_watched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client in a container or on another host sends a pid from its own namespace.
    monkeypatch.setenv("CODEGEMMA_LSP_SERVER_PARENT_CHECK_MS", "50")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    client = RawClient([*SERVER, "--backend", "fake"])
    try:
        client.initialize(tmp_path, processId=gone.pid)
        deadline = time.monotonic() + EXIT_BOUND_S
        while "not watched" not in client.stderr:
            assert time.monotonic() < deadline, client.stderr
            time.sleep(0.01)
        client.response(client.request("codegemma/stats"))
        client.response(client.request("shutdown"))
        client.notify("exit")
        assert client.close(timeout=EXIT_BOUND_S) == 0
    finally:
        _kill(client)


# ----- the parts, in process --------------------------------------------------------------


def test_process_alive_tells_live_exited_and_zombie_processes_apart() -> None:
    assert process_alive(os.getpid())
    assert not process_alive(0)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    # Exited but not reaped: a zombie, which is gone for our purpose.
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    assert not process_alive(child.pid)
    child.wait()
    assert not process_alive(child.pid)


def test_the_watchdog_reports_once_when_the_process_is_gone() -> None:
    alive = {"value": True}
    checks = threading.Semaphore(0)
    gone = threading.Event()
    calls: list[int] = []

    def is_alive(pid: int) -> bool:
        checks.release()
        return alive["value"]

    def on_gone() -> None:
        calls.append(1)
        gone.set()

    watchdog = ParentWatchdog(1234, on_gone, interval=0.001, alive=is_alive).start()
    for _ in range(3):
        assert checks.acquire(timeout=30)
    assert not gone.is_set()
    alive["value"] = False
    assert gone.wait(timeout=30)
    watchdog.stop()
    assert calls == [1]


def test_a_stopped_watchdog_reports_nothing() -> None:
    gone = threading.Event()
    checked = threading.Event()

    def is_alive(pid: int) -> bool:
        checked.set()
        return False

    watchdog = ParentWatchdog(1234, gone.set, interval=3600, alive=is_alive).start()
    watchdog.stop()
    watchdog._thread.join(timeout=30)
    assert not watchdog._thread.is_alive()
    assert not checked.is_set() and not gone.is_set()


def test_the_exit_deadline_ends_the_process_with_the_code() -> None:
    exited: list[int] = []
    done = threading.Event()

    def exit_now(code: int) -> None:
        exited.append(code)
        done.set()

    arm_exit_deadline(3, 0.01, exit_now=exit_now)
    assert done.wait(timeout=30)
    assert exited == [3]


def test_threads_that_do_not_stop_end_the_process() -> None:
    release = threading.Event()
    stuck = threading.Thread(target=release.wait, daemon=False)
    stuck.start()
    exited: list[int] = []
    try:
        assert exit_when_threads_stop(1, 0.01, exit_now=exited.append) == 1
        assert exited == [1]
    finally:
        release.set()
        stuck.join()
    exited.clear()
    assert exit_when_threads_stop(0, 0.01, exit_now=exited.append) == 0
    assert exited == []


class _Collect:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        pass


def _message(method: str, params: Any, msg_id: int | None = None) -> dict[str, Any]:
    message = {"jsonrpc": "2.0", "method": method, "params": params}
    if msg_id is not None:
        message["id"] = msg_id
    return message


async def _settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def _initialized_server(tmp_path: Path) -> CodeGemmaServer:
    server = create_server({"model": {"backend": "fake"}})
    server.protocol.set_writer(_Collect())
    server.protocol.receive(
        _message(
            "initialize", {"processId": None, "rootUri": tmp_path.as_uri(), "capabilities": {}}, 1
        )
    )
    server.protocol.receive(_message("initialized", {}))
    await _settle()
    return server


async def test_notifications_leave_no_bookkeeping_behind(tmp_path: Path) -> None:
    server = await _initialized_server(tmp_path)
    try:
        uri = (tmp_path / "a.py").as_uri()
        server.protocol.receive(
            _message(
                "textDocument/didOpen",
                {"textDocument": {"uri": uri, "languageId": "python", "version": 0, "text": ""}},
            )
        )
        for version in range(1, 501):
            server.protocol.receive(
                _message(
                    "textDocument/didChange",
                    {
                        "textDocument": {"uri": uri, "version": version},
                        "contentChanges": [
                            {
                                "range": {
                                    "start": {"line": 0, "character": 0},
                                    "end": {"line": 0, "character": 0},
                                },
                                "text": "x",
                            }
                        ],
                    },
                )
            )
            # An async handler (a pull model client's empty notification).
            server.protocol.receive(
                _message("workspace/didChangeConfiguration", {"settings": None})
            )
            server.protocol.receive(_message("$/setTrace", {"value": "off"}))
        await _settle()
        document = server.documents.get(uri)
        assert document is not None and document.text == "x" * 500
        assert len(server.protocol._request_futures) <= 2
        assert len(server.protocol._result_types) <= 2
    finally:
        server.worker.shutdown()


async def test_pygls_keeps_no_copy_of_the_documents(tmp_path: Path) -> None:
    server = await _initialized_server(tmp_path)
    try:
        uri = (tmp_path / "a.py").as_uri()
        server.protocol.receive(
            _message(
                "textDocument/didOpen",
                {"textDocument": {"uri": uri, "languageId": "python", "version": 0, "text": "a"}},
            )
        )
        assert server.documents.get(uri) is not None
        assert server.workspace.text_documents == {}
    finally:
        server.worker.shutdown()
