"""Only the editor that started the server drives it, and bad values fail loud and small.

Every test runs the real server as a subprocess and talks to it as an outside client:
over TCP with a plain socket, or over stdio with :class:`RawClient`.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SERVER
from tests.lsp.raw_client import RawClient, read_message

TOKEN = "test-token-b4Zq9wXv"
FAKE_TEXT = "pass  # codegemma-fake"
GITHUB_TOKEN = "ghp" + "_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
SOURCE = "def add(a, b):\n    "


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CODEGEMMA_LSP_")}


# ----- a plain TCP client ------------------------------------------------------------------


class TcpClient:
    """JSON-RPC over one loopback connection; ``closed`` once the server hangs up."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.received: list[dict[str, Any]] = []
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with contextlib.closing(self.sock.makefile("rb")) as stream:
            try:
                while (message := read_message(stream)) is not None:
                    self.messages.put(message)
            except OSError:
                pass
            self.messages.put(None)

    def send(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def request(self, method: str, params: Any = None) -> int:
        self._next_id += 1
        self.send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        return self._next_id

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def wait_for(self, predicate: Any, timeout: float = 10) -> dict[str, Any]:
        """The first message from now on that satisfies ``predicate``."""
        while True:
            message = self.messages.get(timeout=timeout)
            if message is None:
                raise AssertionError("connection closed while waiting")
            self.received.append(message)
            if predicate(message):
                return message

    def response(self, msg_id: int, timeout: float = 10) -> dict[str, Any]:
        return self.wait_for(lambda m: m.get("id") == msg_id and "method" not in m, timeout)

    def closed(self, timeout: float = 10) -> bool:
        """Whether the server closes the connection (after anything it sends first)."""
        while True:
            try:
                message = self.messages.get(timeout=timeout)
            except queue.Empty:
                return False
            if message is None:
                return True

    def initialize(self, root: Path, options: Any) -> dict[str, Any]:
        params = {
            "processId": None,
            "rootUri": root.as_uri(),
            "capabilities": {},
            "initializationOptions": options,
        }
        return self.response(self.request("initialize", params))

    def close(self) -> None:
        # shutdown first: the reader's file object keeps the socket open past close().
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class TcpServer:
    def __init__(self, *flags: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [*SERVER, "--tcp", "--port", "0", "--backend", "fake", *flags],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env or _clean_env(),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self.clients: list[TcpClient] = []
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        self.port = int(self.wait_line("listening on 127.0.0.1:").rsplit(":", 1)[1])

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr.append(line)
            self.lines.put(line)

    def wait_line(self, needle: str, timeout: float = 30) -> str:
        for line in list(self.stderr):
            if needle in line:
                return line
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                shown = "\n".join(self.stderr)
                raise AssertionError(f"no {needle!r} on stderr:\n{shown}") from None
            if needle in line:
                return line

    def connect(self) -> TcpClient:
        client = TcpClient(self.port)
        self.clients.append(client)
        return client

    def stop(self) -> int:
        try:
            return self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for client in self.clients:
                client.close()
            self._drainer.join(timeout=5)
            assert self.proc.stderr is not None
            self.proc.stderr.close()


@pytest.fixture
def tcp_server() -> Iterator[TcpServer]:
    server = TcpServer("--tcp-token", TOKEN)
    yield server
    server.stop()


def _inline_params(uri: str) -> dict[str, Any]:
    return {
        "textDocument": {"uri": uri},
        "position": {"line": 1, "character": 4},
        "context": {"triggerKind": 2},
    }


def _open_params(uri: str, text: str = SOURCE) -> dict[str, Any]:
    return {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}


def _is_ready(message: dict[str, Any]) -> bool:
    params = message.get("params")
    return (
        message.get("method") == "codegemma/status"
        and isinstance(params, dict)
        and params.get("state") == "ready"
    )


def _complete_over_tcp(client: TcpClient, uri: str) -> list[dict[str, Any]]:
    reply = client.response(client.request("textDocument/inlineCompletion", _inline_params(uri)))
    items: list[dict[str, Any]] = reply["result"]["items"]
    return items


def test_tcp_serves_only_the_client_with_the_token(tcp_server: TcpServer, tmp_path: Path) -> None:
    # Strangers who connect first, while the editor has not yet, change nothing.
    wrong = tcp_server.connect()
    refused = wrong.initialize(tmp_path, {"tcpToken": "guess"})
    assert refused["error"]["code"] == -32803
    assert "tcpToken" in refused["error"]["message"]
    assert wrong.closed()
    missing = tcp_server.connect()
    assert missing.initialize(tmp_path, {"codegemma": {}})["error"]["code"] == -32803
    assert missing.closed()
    uninitialized = tcp_server.connect()
    reply = uninitialized.response(uninitialized.request("shutdown"))
    assert reply["error"]["code"] == -32002
    assert uninitialized.closed()
    # A stranger who stays connected without a word does not block the editor.
    idle = tcp_server.connect()

    editor = tcp_server.connect()
    result = editor.initialize(tmp_path, {"tcpToken": TOKEN})
    assert "capabilities" in result["result"]
    editor.notify("initialized", {})
    assert idle.closed(), "the other connections are closed once the editor is in"

    # Later connections are closed at once, whatever they send, even the right token.
    late = tcp_server.connect()
    assert late.messages.get(timeout=10) is None, "closed without a word"
    thief = tcp_server.connect()
    with contextlib.suppress(OSError):
        thief.request(
            "initialize",
            {"processId": None, "capabilities": {}, "initializationOptions": {"tcpToken": TOKEN}},
        )
    assert thief.messages.get(timeout=10) is None, "closed without a word"

    uri = (tmp_path / "demo.py").as_uri()
    editor.notify("textDocument/didOpen", _open_params(uri))
    if not any(_is_ready(m) for m in editor.received):
        editor.wait_for(_is_ready)
    items = _complete_over_tcp(editor, uri)
    assert items and items[0]["insertText"] == FAKE_TEXT
    editor.response(editor.request("shutdown"))
    editor.notify("exit")
    assert tcp_server.stop() == 0
    assert TOKEN not in "\n".join(tcp_server.stderr), "the token is never logged"


def test_tcp_ends_when_its_client_disconnects(tcp_server: TcpServer, tmp_path: Path) -> None:
    editor = tcp_server.connect()
    assert "result" in editor.initialize(tmp_path, {"tcpToken": TOKEN})
    editor.close()
    assert tcp_server.stop() == 1, "no shutdown came first"


def test_a_bare_tcp_token_flag_makes_one_and_prints_it(tmp_path: Path) -> None:
    server = TcpServer("--tcp-token")
    try:
        token = server.wait_line("tcp token: ").rsplit(": ", 1)[1]
        assert len(token) >= 32
        stranger = server.connect()
        assert stranger.initialize(tmp_path, None)["error"]["code"] == -32803
        editor = server.connect()
        assert "result" in editor.initialize(tmp_path, {"tcpToken": token})
        editor.response(editor.request("shutdown"))
        editor.notify("exit")
    finally:
        assert server.stop() == 0


def test_tcp_without_a_token_serves_the_first_connection_only(tmp_path: Path) -> None:
    server = TcpServer()
    try:
        server.wait_line("the first local connection becomes the client")
        first = server.connect()
        assert "result" in first.initialize(tmp_path, None)
        first.notify("initialized", {})
        second = server.connect()
        with contextlib.suppress(OSError):
            second.request("shutdown")
        assert second.messages.get(timeout=10) is None, "closed without a word"
        uri = (tmp_path / "demo.py").as_uri()
        first.notify("textDocument/didOpen", _open_params(uri))
        assert "result" in first.response(
            first.request("textDocument/inlineCompletion", _inline_params(uri))
        )
        first.response(first.request("shutdown"))
        first.notify("exit")
    finally:
        assert server.stop() == 0


def test_tcp_takes_the_token_from_the_environment(tmp_path: Path) -> None:
    server = TcpServer(env={**_clean_env(), "CODEGEMMA_LSP_TCP_TOKEN": TOKEN})
    try:
        assert not any("tcp token" in line for line in server.stderr)
        editor = server.connect()
        assert "result" in editor.initialize(tmp_path, {"tcpToken": TOKEN})
        editor.response(editor.request("shutdown"))
        editor.notify("exit")
    finally:
        assert server.stop() == 0


# ----- stdio: settings, secrets, bad values ------------------------------------------------------


def _inline(client: RawClient, uri: str) -> dict[str, Any]:
    return client.response(client.request("textDocument/inlineCompletion", _inline_params(uri)))


def _messages(client: RawClient) -> list[str]:
    return [
        m["params"]["message"] for m in client.received if m.get("method") == "window/showMessage"
    ]


def _wait_message(client: RawClient, needle: str) -> str:
    for message in _messages(client):
        if needle in message:
            return message
    found = client.wait_for(
        lambda m: m.get("method") == "window/showMessage" and needle in m["params"]["message"]
    )
    text: str = found["params"]["message"]
    return text


def _finish(client: RawClient) -> None:
    client.response(client.request("shutdown"))
    client.notify("exit")
    assert client.close() == 0


def test_client_settings_cannot_choose_a_test_backend(tmp_path: Path) -> None:
    private = tmp_path / "private.txt"
    private.write_text("the contents of a private file\n", encoding="utf-8")
    client = RawClient([*SERVER, "--backend", "fake"], cwd=tmp_path)
    client.initialize(tmp_path, initializationOptions={"model": {"backend": f"scripted:{private}"}})
    warning = _wait_message(client, "accepted only on the command line")
    assert "initializationOptions" in warning
    client.wait_status("ready")
    uri = (tmp_path / "demo.py").as_uri()
    client.notify("textDocument/didOpen", _open_params(uri))
    assert _inline(client, uri)["result"]["items"][0]["insertText"] == FAKE_TEXT

    client.notify(
        "workspace/didChangeConfiguration",
        {"settings": {"codegemma": {"model": {"backend": "scripted:/dev/stdin"}}}},
    )
    assert "workspace settings" in _wait_message(client, "from the workspace settings")
    assert _inline(client, uri)["result"]["items"][0]["insertText"] == FAKE_TEXT
    statuses = [m["params"] for m in client.received if m.get("method") == "codegemma/status"]
    assert all("scripted" not in status["model"] for status in statuses)
    _finish(client)


@pytest.mark.parametrize("backend", ["fake:nan", "fake:-1", "fake:inf", "scripted:"])
def test_a_bad_backend_fails_once_at_settings_time(tmp_path: Path, backend: str) -> None:
    missing_model = tmp_path / "no-model.gguf"
    client = RawClient([*SERVER, "--backend", backend, "--model", str(missing_model)])
    client.initialize(tmp_path)
    warning = _wait_message(client, "model.backend")
    assert repr(backend) in warning and "using 'llama'" in warning
    status = client.wait_status("error")
    assert str(missing_model) in status["params"]["message"]
    uri = (tmp_path / "demo.py").as_uri()
    client.notify("textDocument/didOpen", _open_params(uri))
    reply = _inline(client, uri)
    assert reply.get("result") == {"items": []}, reply
    _finish(client)


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/dev/stdin", id="own-input"),
        pytest.param("fifo", id="fifo"),
        pytest.param(".", id="directory"),
    ],
)
def test_the_scripted_backend_reads_only_a_regular_file(tmp_path: Path, target: str) -> None:
    if target == "fifo":
        target = str(tmp_path / "fifo")
        os.mkfifo(target)
    elif target == ".":
        target = str(tmp_path)
    client = RawClient([*SERVER, "--backend", f"scripted:{target}"])
    client.initialize(tmp_path)
    status = client.wait_status("error")
    assert "not a regular file" in status["params"]["message"]
    uri = (tmp_path / "demo.py").as_uri()
    client.notify("textDocument/didOpen", _open_params(uri))
    assert _inline(client, uri)["result"] == {"items": []}
    _finish(client)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param("deploy.py", f'TOKEN = "{GITHUB_TOKEN}"\n\n', id="token-in-code"),
        pytest.param("notes.py", "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIE\n", id="key"),
        pytest.param("db.cfg", "[client]\npassword=hunter2\n", id="password-line"),
        pytest.param(".pgpass", "localhost:5432:*:me:pw\n", id="pgpass"),
        pytest.param(".bash_history", "ls\n", id="history"),
        pytest.param("prod.tfstate", "{}\n", id="tfstate"),
    ],
)
def test_a_secret_document_gets_no_completion(tmp_path: Path, name: str, text: str) -> None:
    client = RawClient([*SERVER, "--backend", "fake"])
    client.initialize(tmp_path)
    client.wait_status("ready")
    secret = (tmp_path / name).as_uri()
    plain = (tmp_path / "plain.py").as_uri()
    client.notify("textDocument/didOpen", _open_params(secret, text))
    client.notify("textDocument/didOpen", _open_params(plain))
    assert _inline(client, secret)["result"]["items"] == []
    assert _inline(client, plain)["result"]["items"][0]["insertText"] == FAKE_TEXT
    _finish(client)


def test_a_workspace_root_with_a_nul_byte_still_completes(tmp_path: Path) -> None:
    client = RawClient([*SERVER, "--backend", "fake"])
    weird_root = tmp_path.as_uri() + "/a%00b"
    reply = client.response(
        client.request(
            "initialize",
            {
                "processId": None,
                "rootUri": weird_root,
                "workspaceFolders": [{"uri": weird_root, "name": "weird"}],
                "capabilities": {},
            },
        )
    )
    assert "result" in reply
    client.notify("initialized", {})
    client.wait_status("ready")
    for uri in (weird_root + "/demo.py", (tmp_path / "demo.py").as_uri()):
        client.notify("textDocument/didOpen", _open_params(uri))
        items = _inline(client, uri)["result"]["items"]
        assert items and items[0]["insertText"] == FAKE_TEXT, uri
        client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
        client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    _finish(client)


@pytest.mark.model
def test_a_model_with_a_broken_chat_template_loads(tmp_path: Path) -> None:
    from codegemma_lsp.modelgen import write_tiny_codegemma_broken_chat_template

    model = write_tiny_codegemma_broken_chat_template(tmp_path / "broken-template.gguf")
    client = RawClient([*SERVER, "--model", str(model)])
    client.initialize(tmp_path)
    client.wait_status("ready")
    uri = (tmp_path / "demo.py").as_uri()
    client.notify("textDocument/didOpen", _open_params(uri))
    assert "result" in _inline(client, uri)
    _finish(client)


# ----- the complete command ----------------------------------------------------------------


def _run_complete(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codegemma_lsp", "complete", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=_clean_env(),
    )


def _write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("setup", "position", "backend", "code", "reason"),
    [
        pytest.param(
            lambda d: _write(d / ".pgpass", "x:1:db:u:pw\n"),
            (0, 0),
            "fake",
            2,
            "no completion in secret files",
            id="secret-by-name",
        ),
        pytest.param(
            lambda d: _write(d / "deploy.py", f'TOKEN = "{GITHUB_TOKEN}"\n'),
            (0, 0),
            "fake",
            2,
            "deploy.py holds a GitHub token",
            id="secret-by-content",
        ),
        pytest.param(
            lambda d: d / "missing.py", (0, 0), "fake", 2, "No such file", id="missing-file"
        ),
        pytest.param(lambda d: d, (0, 0), "fake", 2, "Is a directory", id="directory"),
        pytest.param(
            lambda d: _write(d / "latin1.py", b"x = 'caf\xe9'\n"),
            (0, 0),
            "fake",
            2,
            "not UTF-8",
            id="not-utf8",
        ),
        pytest.param(
            lambda d: _write(d / "blob.py", "a\x00b"), (0, 0), "fake", 2, "binary", id="binary"
        ),
        pytest.param(
            lambda d: _write(d / "a.py", SOURCE),
            (-1, 0),
            "fake",
            2,
            "bad position -1:0",
            id="negative-line",
        ),
        pytest.param(
            lambda d: _write(d / "a.py", SOURCE),
            (7, 0),
            "fake",
            2,
            "has 2 line(s)",
            id="line-past-the-end",
        ),
        pytest.param(
            lambda d: _write(d / "a.py", SOURCE),
            (1, 4),
            "scripted:/dev/stdin",
            1,
            "not a regular file",
            id="model-error",
        ),
        pytest.param(
            lambda d: _write(d / "a.py", SOURCE),
            (1, 4),
            "llama",
            1,
            "no-model.gguf",
            id="missing-model",
        ),
    ],
)
def test_complete_fails_with_one_line(
    tmp_path: Path,
    setup: Any,
    position: tuple[int, int],
    backend: str,
    code: int,
    reason: str,
) -> None:
    file = setup(tmp_path)
    args = [str(file), "--line", str(position[0]), "--character", str(position[1])]
    args += ["--backend", backend, "--model", str(tmp_path / "no-model.gguf")]
    done = _run_complete(*args, cwd=tmp_path)
    assert done.returncode == code, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("codegemma-lsp: ") and reason in lines[0], lines[0]


def test_complete_reports_an_unexpected_error_in_one_line(tmp_path: Path) -> None:
    file = _write(tmp_path / "a.py", SOURCE)
    command = [sys.executable, "-c"]
    code = (
        "import sys\n"
        "import codegemma_lsp.engine.host as host\n"
        "def broken(*args, **kwargs):\n"
        "    raise RuntimeError('boom\\nsecond line')\n"
        "host.make_backend = broken\n"
        "from codegemma_lsp.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [
            *command,
            code,
            "complete",
            str(file),
            "--backend",
            "fake",
            "--line",
            "1",
            "--character",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=_clean_env(),
    )
    assert done.returncode == 1
    assert done.stderr == "codegemma-lsp: internal error: RuntimeError: boom second line\n"


def test_complete_answers_with_the_fake(tmp_path: Path) -> None:
    file = _write(tmp_path / "a.py", SOURCE)
    done = _run_complete(
        str(file), "--line", "1", "--character", "99", "--backend", "fake", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == FAKE_TEXT
