"""No frame can kill the server or leave it deaf (a real server over stdio).

After each bad frame the server answers what it can (-32700 for a frame it cannot read,
-32600 for JSON that is not a JSON-RPC message) and then answers the next good request.
Only input in which no header can be found again ends it, with a non-zero exit code, so
that the editor restarts it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SERVER
from tests.lsp.raw_client import RawClient

PARSE_ERROR = -32700
INVALID_REQUEST = -32600


def body(msg_id: Any = "embedded", **extra: Any) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": msg_id, "method": "codegemma/stats", **extra}
    ).encode()


def framed(data: bytes, header: bytes = b"Content-Length: %d\r\n\r\n") -> bytes:
    return header.replace(b"%d", str(len(data)).encode()) + data


def read_until_answered(client: RawClient, msg_id: int) -> tuple[list[int], set[Any]]:
    """The error codes of id-less errors, and the ids answered, up to ``msg_id``'s answer."""
    codes: list[int] = []
    answered: set[Any] = set()
    while True:
        message = client.next_message(timeout=30)
        if message is None:
            raise AssertionError(f"server closed stdout; stderr:\n{client.stderr}")
        if "method" in message:
            continue
        if message.get("id") == msg_id:
            assert "result" in message, message
            return codes, answered
        if "error" in message and message.get("id") is None:
            codes.append(message["error"]["code"])
        else:
            answered.add(message.get("id"))


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RawClient]]:
    clients: list[RawClient] = []
    yield clients
    for client in clients:
        _kill(client)


@pytest.fixture
def client(shared: list[RawClient], tmp_path_factory: pytest.TempPathFactory) -> RawClient:
    """One server for every case, unless a case killed it (a failure of its own)."""
    if not shared or shared[-1].proc.poll() is not None:
        fresh = RawClient([*SERVER, "--backend", "fake"])
        shared.append(fresh)
        fresh.initialize(tmp_path_factory.mktemp("framing"))
    return shared[-1]


ACCEPTED = [
    pytest.param(framed(body(), b"content-length: %d\r\n\r\n"), id="lower-case-name"),
    pytest.param(framed(body(), b"CONTENT-LENGTH: %d\r\n\r\n"), id="upper-case-name"),
    pytest.param(framed(body(), b"Content-Length: %d\n\n"), id="lf-only"),
    pytest.param(framed(body(), b"Content-Length:%d\r\n\r\n"), id="no-space"),
    pytest.param(framed(body(), b"Content-Length: %d\r\n\n"), id="mixed-line-ends"),
    pytest.param(
        framed(
            body(),
            b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"
            b"Content-Length: %d\r\n\r\n",
        ),
        id="content-type-first",
    ),
    pytest.param(b"\r\n" + framed(body()), id="stray-line-break"),
]


@pytest.mark.parametrize("data", ACCEPTED)
def test_tolerated_frames_are_read(client: RawClient, data: bytes) -> None:
    client.send_raw(data)
    codes, answered = read_until_answered(client, client.request("codegemma/stats"))
    assert codes == []
    assert "embedded" in answered


UNREADABLE = [
    pytest.param(b"Content-Type: application/json\r\n\r\n" + body(), id="no-content-length"),
    pytest.param(b"Content-Length: 10000000000\r\n\r\n" + body(), id="length-10e10"),
    pytest.param(b"Content-Length: 1000000000000\r\n\r\n" + body(), id="length-10e12"),
    pytest.param(b"Content-Length: " + b"9" * 100 + b"\r\n\r\n" + body(), id="length-100-digits"),
    pytest.param(b"Content-Length: abc\r\n\r\n" + body(), id="length-not-a-number"),
    pytest.param(b"Content-Length: -1\r\n\r\n" + body(), id="length-negative"),
    pytest.param(b"hello\r\n", id="garbage-line"),
    pytest.param(body(), id="body-without-header"),
    pytest.param(framed(b"{this is not json"), id="not-json"),
    pytest.param(framed(b'{"jsonrpc": "2.0", "id": 1, "method": "\xff"}'), id="not-utf8"),
    pytest.param(framed(b"[" * 100_000), id="deeply-nested"),
    pytest.param(b"Content-Length: %d\r\n\r\n" % (len(body()) + 25) + body(), id="length-too-long"),
    pytest.param(b"Content-Length: %d\r\n\r\n" % (len(body()) - 8) + body(), id="length-too-short"),
    pytest.param(b"x" * 20_000, id="line-over-8k"),
]


@pytest.mark.parametrize("data", UNREADABLE)
def test_unreadable_frames_get_a_parse_error_and_the_server_reads_on(
    client: RawClient, data: bytes
) -> None:
    client.send_raw(data)
    codes, _ = read_until_answered(client, client.request("codegemma/stats"))
    assert codes and set(codes) == {PARSE_ERROR}


INVALID = [
    pytest.param(b"[" + body(1) + b"]", id="batch"),
    pytest.param(b"[]", id="empty-batch"),
    pytest.param(b"42", id="number"),
    pytest.param(b'"hello"', id="string"),
    pytest.param(body({"a": 1}), id="id-object"),
    pytest.param(body([1]), id="id-array"),
    pytest.param(body(True), id="id-bool"),
    pytest.param(body(1.5), id="id-float"),
]


@pytest.mark.parametrize("data", INVALID)
def test_json_that_is_not_a_message_gets_invalid_request(client: RawClient, data: bytes) -> None:
    client.send_raw(framed(data))
    codes, answered = read_until_answered(client, client.request("codegemma/stats"))
    assert codes == [INVALID_REQUEST]
    assert not answered


def test_a_request_with_a_wrong_version_is_answered_with_its_id(client: RawClient) -> None:
    client.send_raw(framed(body("old", jsonrpc="1.0")))
    reply = client.wait_for(lambda m: m.get("id") == "old")
    assert reply["error"]["code"] == INVALID_REQUEST


def _digest(client: RawClient, uri: str) -> Any:
    reply = client.response(
        client.request("codegemma/documentDigest", {"textDocument": {"uri": uri}})
    )
    return reply["result"]


def _did_open(uri: str, text: str) -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {
                "textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}
            },
        }
    ).encode()


@pytest.mark.parametrize(
    ("command", "env"),
    [
        pytest.param([*SERVER, "--backend", "fake", "--max-message-bytes", "4096"], {}, id="flag"),
        pytest.param(
            [*SERVER, "--backend", "fake"],
            {"CODEGEMMA_LSP_SERVER_MAX_MESSAGE_BYTES": "4096"},
            id="environment",
        ),
    ],
)
def test_a_message_over_the_limit_is_skipped_and_the_next_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = RawClient(command)
    try:
        client.initialize(tmp_path)
        small, big = (tmp_path / "small.py").as_uri(), (tmp_path / "big.py").as_uri()
        # The big message is honest: its body is skipped exactly, not searched.
        client.send_raw(framed(_did_open(big, "x = 'Content-Length: 5\\r\\n'\n" * 500)))
        client.send_raw(framed(_did_open(small, "x = 1\n" * 100)))
        codes, _ = read_until_answered(client, client.request("codegemma/stats"))
        assert codes == [PARSE_ERROR]
        assert _digest(client, big) is None
        assert _digest(client, small) is not None
        client.response(client.request("shutdown"))
        client.notify("exit")
        assert client.close() == 0
    finally:
        _kill(client)


def test_input_without_any_header_ends_the_server_non_zero(tmp_path: Path) -> None:
    client = RawClient([*SERVER, "--backend", "fake", "--max-message-bytes", "1024"])
    try:
        client.initialize(tmp_path)
        # The search for a header gives up after max(limit, 1 MiB) bytes; the server stops
        # reading then, so the rest of this write may meet a closed pipe.
        with contextlib.suppress(BrokenPipeError):
            client.send_raw(b"\x00garbage " * 150_000)
        error = client.wait_for(lambda m: m.get("id") is None and "error" in m)
        assert error["error"]["code"] == PARSE_ERROR
        assert client.close(timeout=30) == 1
    finally:
        _kill(client)


def _kill(client: RawClient) -> None:
    client.proc.kill()
    client.close()
