"""What an outside JSON-RPC client sees on stdio: framing, exit codes, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SERVER
from tests.lsp.raw_client import RawClient

SOURCE = "def add(a, b):\n    "
# Random weights make random words; in a comment any words are whole syntax.
COMMENT_SOURCE = "def add(a, b):\n    # add the two numbers and \n    return a + b\n"


def _inline(client: RawClient, uri: str, line: int = 1, character: int = 4) -> int:
    return client.request(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": uri},
            "position": {"line": line, "character": character},
            "context": {"triggerKind": 2},
        },
    )


def _open(client: RawClient, uri: str, text: str = SOURCE) -> None:
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
    )


def test_exit_after_shutdown_is_zero(tmp_path: Path) -> None:
    client = RawClient([*SERVER, "--backend", "fake"])
    client.initialize(tmp_path)
    client.response(client.request("shutdown"))
    client.notify("exit")
    assert client.close() == 0


def test_exit_without_shutdown_is_one(tmp_path: Path) -> None:
    client = RawClient([*SERVER, "--backend", "fake"])
    client.initialize(tmp_path)
    client.notify("exit")
    assert client.close() == 1


def test_request_before_initialize_is_refused(tmp_path: Path) -> None:
    client = RawClient([*SERVER, "--backend", "fake"])
    uri = (tmp_path / "demo.py").as_uri()
    reply = client.response(_inline(client, uri))
    assert reply["error"]["code"] == -32002
    client.initialize(tmp_path)
    # Params that do not fit the method's schema get an error response, not silence.
    reply = client.response(
        client.request("textDocument/inlineCompletion", {"position": "nowhere"})
    )
    assert reply["error"]["code"] == -32602
    client.response(client.request("shutdown"))
    client.notify("exit")
    assert client.close() == 0


def test_broken_json_is_answered_and_server_keeps_serving(tmp_path: Path) -> None:
    client = RawClient([*SERVER, "--backend", "fake"])
    client.initialize(tmp_path)
    client.send(b"{this is not json")
    error = client.wait_for(lambda m: "error" in m and m.get("id") is None)
    assert error["error"]["code"] == -32700
    uri = (tmp_path / "demo.py").as_uri()
    _open(client, uri)
    reply = client.response(_inline(client, uri))
    assert "result" in reply
    client.response(client.request("shutdown"))
    client.notify("exit")
    assert client.close() == 0


@pytest.mark.model
def test_stdout_is_only_protocol_while_the_model_loads(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    client = RawClient([*SERVER, "--model", str(tiny_model_path), "-v"])
    result = client.initialize(tmp_path)
    caps = result["capabilities"]
    assert caps["inlineCompletionProvider"] is not None
    assert caps["completionProvider"] is not None
    assert caps["textDocumentSync"]["change"] == 2
    assert caps["positionEncoding"] == "utf-16"
    uri = (tmp_path / "demo.py").as_uri()
    _open(client, uri, COMMENT_SOURCE)
    # Ask at once, while the model may still be loading: the answer is framed either way.
    first = client.response(_inline(client, uri, 1, 29))
    assert "result" in first
    client.wait_status("ready")
    reply = client.response(_inline(client, uri, 1, 29))
    items = reply["result"]["items"]
    assert items and items[0]["insertText"]
    client.response(client.request("shutdown"))
    client.notify("exit")
    assert client.close() == 0
    # llama.cpp's loader chatter went to stderr (or nowhere), never to stdout.
    assert "Content-Length" not in client.stderr
