"""The remote backends' HTTP plumbing: URLs, response heads, body framing, server-sent events."""

from __future__ import annotations

import socket
import threading

import pytest

from codegemma_lsp.engine.base import CancelToken
from codegemma_lsp.engine.http_stream import (
    BodyDecoder,
    HttpStream,
    RemoteError,
    ResponseHead,
    SseParser,
    StreamCancelled,
    error_summary,
    parse_head,
    parse_url,
    request_json,
)


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "base"),
    [
        pytest.param("http://127.0.0.1:8080", "http", "127.0.0.1", 8080, "", id="ip-port"),
        pytest.param("http://gpu-box:8080/", "http", "gpu-box", 8080, "", id="trailing-slash"),
        pytest.param("https://llm.example.org", "https", "llm.example.org", 443, "", id="https"),
        pytest.param("http://h/llama/", "http", "h", 80, "/llama", id="prefix"),
        pytest.param("http://[::1]:9000", "http", "::1", 9000, "", id="ipv6"),
    ],
)
def test_parse_url(url: str, scheme: str, host: str, port: int, base: str) -> None:
    endpoint = parse_url(url)
    assert (endpoint.scheme, endpoint.host, endpoint.port, endpoint.base) == (
        scheme,
        host,
        port,
        base,
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        pytest.param("gpu-box:8080", "not an http", id="no-scheme"),
        pytest.param("ftp://h", "not an http", id="ftp"),
        pytest.param("http://", "no host", id="no-host"),
        pytest.param("http://user:secret@h", "model.apiKey", id="credentials"),
        pytest.param("http://h:99999", "bad port", id="bad-port"),
        pytest.param("http://h/v1?x=1", "query", id="query"),
    ],
)
def test_parse_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_url(url)


def test_parse_url_never_echoes_a_password() -> None:
    with pytest.raises(ValueError) as caught:
        parse_url("http://user:hunter2@h")
    assert "hunter2" not in str(caught.value)


def test_loopback() -> None:
    assert parse_url("http://127.0.0.1:1").loopback
    assert parse_url("http://localhost:1").loopback
    assert not parse_url("http://10.0.0.2:1").loopback


def test_parse_head() -> None:
    head = parse_head(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nX-A: b")
    assert head == ResponseHead(503, "Service Unavailable", {"content-length": "5", "x-a": "b"})


def test_parse_head_refuses_what_is_not_http() -> None:
    with pytest.raises(ValueError, match="status line"):
        parse_head(b"SSH-2.0-OpenSSH_9.6")


def _decode(headers: dict[str, str], pieces: list[bytes]) -> tuple[bytes, bool]:
    decoder = BodyDecoder(ResponseHead(200, "OK", headers))
    out = b"".join(decoder.feed(piece) for piece in pieces)
    return out, decoder.done


CHUNKED = b"4\r\nWiki\r\n7;ext=1\r\npedia i\r\nB\r\nn \r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n"


@pytest.mark.parametrize(
    ("headers", "pieces", "body", "done"),
    [
        pytest.param({"content-length": "5"}, [b"hello world"], b"hello", True, id="length"),
        pytest.param({"content-length": "5"}, [b"he", b"l"], b"hel", False, id="length-partial"),
        pytest.param({}, [b"until ", b"close"], b"until close", False, id="until-close"),
        pytest.param(
            {"transfer-encoding": "chunked"},
            [CHUNKED],
            b"Wikipedia in \r\nchunks.",
            True,
            id="chunked",
        ),
        pytest.param(
            {"transfer-encoding": "chunked"},
            [CHUNKED[i : i + 1] for i in range(len(CHUNKED))],
            b"Wikipedia in \r\nchunks.",
            True,
            id="chunked-byte-by-byte",
        ),
        pytest.param(
            {"transfer-encoding": "chunked"}, [b"5\r\nhel"], b"hel", False, id="chunked-partial"
        ),
    ],
)
def test_body_decoder(
    headers: dict[str, str], pieces: list[bytes], body: bytes, done: bool
) -> None:
    assert _decode(headers, pieces) == (body, done)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"zz\r\n", id="bad-size"),
        pytest.param(b"2\r\nabXY", id="no-crlf-after-data"),
    ],
)
def test_body_decoder_refuses_a_malformed_chunk(data: bytes) -> None:
    decoder = BodyDecoder(ResponseHead(200, "OK", {"transfer-encoding": "chunked"}))
    with pytest.raises(ValueError):
        decoder.feed(data)


SSE = b'data: {"a": 1}\n\n: a comment\nevent: x\ndata: {"b":\ndata: 2}\n\ndata: [DONE]\n\n'


@pytest.mark.parametrize(
    ("pieces", "events"),
    [
        pytest.param([SSE], ['{"a": 1}', '{"b":\n2}', "[DONE]"], id="whole"),
        pytest.param(
            [SSE[i : i + 3] for i in range(0, len(SSE), 3)],
            ['{"a": 1}', '{"b":\n2}', "[DONE]"],
            id="split",
        ),
        pytest.param([b"data: x\r\n\r\ndata:y\r\r"], ["x", "y"], id="crlf-and-cr"),
        pytest.param([b"data: x\r", b"\n\r\n"], ["x"], id="crlf-split-at-cr"),
        pytest.param([b"retry: 5\n\n"], [], id="no-data"),
    ],
)
def test_sse_parser(pieces: list[bytes], events: list[str]) -> None:
    parser = SseParser()
    seen = [event for piece in pieces for event in parser.feed(piece)]
    assert seen + parser.finish() == events


def test_sse_parser_finishes_an_unterminated_event() -> None:
    parser = SseParser()
    assert parser.feed(b"data: last") == []
    assert parser.finish() == ["last"]


@pytest.mark.parametrize(
    ("body", "summary"),
    [
        pytest.param(
            b'{"error": {"code": 400, "message": "the request exceeds the context size"}}',
            "the request exceeds the context size",
            id="llama-server",
        ),
        pytest.param(b'{"detail": "Invalid API key"}', "Invalid API key", id="fastapi"),
        pytest.param(
            b'{"error": {"message": "6 validation errors:\\n  {prompt: [1, 2]}"}}',
            "6 validation errors:",
            id="first-line-only",
        ),
        pytest.param(b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>", id="html"),
        pytest.param(b"x" * 500, "x" * 160 + "…", id="bounded"),
        pytest.param(b"", "", id="empty"),
    ],
)
def test_error_summary(body: bytes, summary: str) -> None:
    assert error_summary(body) == summary


# ----- on a real socket ----------------------------------------------------------------


class _OneShotServer:
    """A named fake: accepts one connection on loopback, reads the request, and replies
    with ``reply`` (or holds the connection open, sending nothing, when it is None)."""

    def __init__(self, reply: bytes | None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.reply = reply
        self.request = b""
        self.closed_by_client = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while b"\r\n\r\n" not in self.request:
                data = conn.recv(4096)
                if not data:
                    self.closed_by_client.set()
                    return
                self.request += data
            if self.reply is not None:
                conn.sendall(self.reply)
            while conn.recv(4096):  # until the client closes
                pass
            self.closed_by_client.set()

    def close(self) -> None:
        self.listener.close()


def test_request_json_over_loopback() -> None:
    server = _OneShotServer(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n3\r\n 1}\r\n0\r\n\r\n'
    )
    try:
        answer = request_json(
            parse_url(f"http://127.0.0.1:{server.port}/base"),
            "POST",
            "/x",
            {"q": 1},
            headers={"Authorization": "Bearer k"},
            deadline=float("inf"),
        )
    finally:
        server.close()
    assert answer == {"a": 1}
    assert server.request.startswith(b"POST /base/x HTTP/1.1\r\n")
    assert b"Authorization: Bearer k\r\n" in server.request


def test_an_error_status_names_the_server_and_the_reason() -> None:
    body = b'{"error": {"message": "boom"}}'
    server = _OneShotServer(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    try:
        with pytest.raises(RemoteError) as caught:
            request_json(parse_url(f"http://127.0.0.1:{server.port}"), "GET", "/x", deadline=1e12)
    finally:
        server.close()
    assert caught.value.status == 500
    assert not caught.value.retryable
    assert (
        str(caught.value)
        == f"http://127.0.0.1:{server.port}/x answered 500 Internal Server Error: boom"
    )


def test_a_refused_connection_is_a_retryable_connect_error() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(RemoteError) as caught:
        request_json(parse_url(f"http://127.0.0.1:{port}"), "GET", "/", deadline=1e12)
    assert caught.value.kind == "connect"
    assert caught.value.retryable
    assert "connection refused" in str(caught.value)


class _StepClock:
    """A clock that moves one second each time it is read: deadlines pass by counting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_a_silent_server_times_out_at_the_deadline() -> None:
    server = _OneShotServer(None)
    stream = HttpStream(
        parse_url(f"http://127.0.0.1:{server.port}"),
        "GET",
        "/",
        deadline=10.0,
        clock=_StepClock(),
    )
    try:
        with pytest.raises(RemoteError) as caught:
            stream.open()
        assert caught.value.kind == "timeout"
        assert server.closed_by_client.wait(10)
    finally:
        server.close()


def test_a_cancel_closes_the_connection() -> None:
    server = _OneShotServer(None)
    cancel = CancelToken()
    cancel.cancel()
    stream = HttpStream(
        parse_url(f"http://127.0.0.1:{server.port}"), "GET", "/", deadline=1e12, cancel=cancel
    )
    try:
        with pytest.raises(StreamCancelled):
            stream.open()
        assert server.closed_by_client.wait(10)
    finally:
        server.close()
