"""HTTP/1.1 for the remote backends: one connection per request, read as it arrives.

Why not ``http.client``: a read on its buffered response cannot be interrupted, and a
socket timeout leaves the response unusable. The daemon must notice a cancel within
milliseconds and close the connection, because closing it is how llama-server and
llama-cpp-python's server learn to stop generating. So this module reads the socket
itself, waiting at most :data:`POLL_S` at a time and checking the cancel flag and the
deadline between waits. No wait outlasts the deadline, so no request hangs.

A connection is never reused: a cancelled stream has to be closed anyway, and on
loopback or a LAN a new TCP connection costs one round trip.

Errors::

    EngineError
     └── RemoteError        kind: connect | timeout | status | protocol | closed
    StreamCancelled         the cancel flag was set (not an error: the caller stops)

Bodies are decoded (``Content-Length``, chunked, or until close) and server-sent events
parsed by small pure classes, :class:`BodyDecoder` and :class:`SseParser`.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from codegemma_lsp.engine.base import CancelToken, EngineError

POLL_S = 0.02
"""The longest wait between checks of the cancel flag: a cancel closes the stream within it."""
MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
USER_AGENT = "codegemma-lsp"

Clock = Callable[[], float]
ErrorKind = Literal["connect", "timeout", "status", "protocol", "closed"]


class RemoteError(EngineError):
    """A remote engine could not be used; the message says which server and why.

    ``retryable`` marks failures that another attempt may get past (the server was
    not listening yet, restarted, or said it is busy). ``started`` is set when
    generated text had already arrived, so a retry would not give the same answer.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        status: int | None = None,
        retryable: bool = False,
        body: str = "",
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retryable = retryable
        self.body = body
        """The start of an error answer's body, for a caller that recognises a refusal."""


class StreamCancelled(Exception):
    """The cancel flag was set: the connection is closed and the caller stops."""


@dataclass(frozen=True)
class Endpoint:
    """Where a server listens: ``model.url`` split once."""

    scheme: Literal["http", "https"]
    host: str
    port: int
    base: str
    """The path prefix, without a trailing slash ("" or e.g. "/llama")."""

    def url(self, path: str = "") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.base}{path}"

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_url(url: str) -> Endpoint:
    """``http[s]://host[:port][/prefix]`` as an :class:`Endpoint`; ValueError says why not."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    if parts.username or parts.password:
        raise ValueError("put the API key in model.apiKey, not in the URL")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r} has a query or fragment; give the server's base URL")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r} has a bad port") from None
    scheme: Literal["http", "https"] = "https" if parts.scheme == "https" else "http"
    return Endpoint(
        scheme=scheme,
        host=parts.hostname,
        port=port or (443 if scheme == "https" else 80),
        base=parts.path.rstrip("/"),
    )


# ----- pure parsing -------------------------------------------------------------


@dataclass(frozen=True)
class ResponseHead:
    status: int
    reason: str
    headers: dict[str, str]
    """Lower-cased names; a repeated header keeps its last value."""


def parse_head(data: bytes) -> ResponseHead:
    """The status line and headers of a response (``data`` ends before the blank line)."""
    lines = data.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or not code.isdigit() or len(code) != 3:
        raise ValueError(f"not an HTTP status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return ResponseHead(int(code), reason.strip(), headers)


class BodyDecoder:
    """A response body's bytes from what the socket delivers, by its framing.

    ``Content-Length``: that many bytes; ``Transfer-Encoding: chunked``: the chunks'
    data; neither: everything until the server closes. ``done`` is set at the end.
    """

    def __init__(self, head: ResponseHead, *, method: str = "GET") -> None:
        encoding = head.headers.get("transfer-encoding", "").lower()
        length = head.headers.get("content-length")
        self.chunked = "chunked" in encoding
        self.remaining: int | None = None
        self.done = False
        if method == "HEAD" or head.status in (204, 304) or 100 <= head.status < 200:
            self.done = True
        elif not self.chunked and length is not None:
            if not length.strip().isdigit():
                raise ValueError(f"bad Content-Length {length!r}")
            self.remaining = int(length)
            self.done = self.remaining == 0
        self._buffer = b""
        self._chunk_left = 0
        self._state: Literal["size", "data", "data_end", "trailer"] = "size"

    @property
    def until_close(self) -> bool:
        return not self.chunked and self.remaining is None

    def feed(self, data: bytes) -> bytes:
        """The body bytes in ``data``; ValueError for a malformed chunked body."""
        if self.done:
            return b""
        if not self.chunked:
            if self.remaining is None:
                return data
            body = data[: self.remaining]
            self.remaining -= len(body)
            self.done = self.remaining == 0
            return body
        self._buffer += data
        out = bytearray()
        while not self.done:
            if self._state == "size":
                line, found, rest = self._buffer.partition(b"\r\n")
                if not found:
                    if len(self._buffer) > 1024:
                        raise ValueError("chunk size line too long")
                    break
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ValueError(f"bad chunk size {size_text[:20]!r}") from None
                self._buffer = rest
                self._chunk_left = size
                self._state = "data" if size else "trailer"
            elif self._state == "data":
                take = self._buffer[: self._chunk_left]
                out += take
                self._buffer = self._buffer[len(take) :]
                self._chunk_left -= len(take)
                if self._chunk_left:
                    break
                self._state = "data_end"
            elif self._state == "data_end":
                if len(self._buffer) < 2:
                    break
                if self._buffer[:2] != b"\r\n":
                    raise ValueError("chunk data not followed by CRLF")
                self._buffer = self._buffer[2:]
                self._state = "size"
            else:  # trailer: header lines until a blank one
                line, found, rest = self._buffer.partition(b"\r\n")
                if not found:
                    break
                self._buffer = rest
                if not line:
                    self.done = True
        return bytes(out)


class SseParser:
    """Server-sent events: the ``data`` of each event, as events complete.

    Lines end with LF, CRLF or CR; a blank line ends an event; ``data:`` lines
    join with LF; comments (``:``) and other fields are ignored.
    """

    def __init__(self) -> None:
        self._pending = b""
        self._data: list[str] = []

    def feed(self, data: bytes) -> list[str]:
        self._pending += data
        events: list[str] = []
        while True:
            cut = _line_end(self._pending)
            if cut is None:
                break
            end, after = cut
            line = self._pending[:end].decode("utf-8", errors="replace")
            self._pending = self._pending[after:]
            if not line:
                if self._data:
                    events.append("\n".join(self._data))
                    self._data = []
                continue
            field, _, value = line.partition(":")
            if field == "data":
                self._data.append(value[1:] if value.startswith(" ") else value)
        return events

    def finish(self) -> list[str]:
        """An event the stream ended without a blank line after (some servers do)."""
        events = self.feed(b"\n\n") if self._pending or self._data else []
        self._pending, self._data = b"", []
        return events


def _line_end(data: bytes) -> tuple[int, int] | None:
    """Where the first line of ``data`` ends and the next begins, if a line is complete."""
    lf, cr = data.find(b"\n"), data.find(b"\r")
    if cr == -1 and lf == -1:
        return None
    if cr == -1 or (lf != -1 and lf < cr):
        return lf, lf + 1
    if cr + 1 < len(data):
        return cr, cr + (2 if data[cr + 1 : cr + 2] == b"\n" else 1)
    return None  # a CR at the very end: wait to see whether LF follows


def error_summary(body: bytes) -> str:
    """A short reason from an error answer: JSON ``error.message`` (or ``detail``), first line.

    Bounded, because a server may echo the request (and so code) in its error.
    """
    text = body[:4096].decode("utf-8", errors="replace").strip()
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed.get("detail", parsed.get("message")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error is not None:
            text = str(error)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:160] + ("…" if len(first) > 160 else "")


# ----- the socket ---------------------------------------------------------------


class HttpStream:
    """One request on its own connection, and its response read as it arrives.

    :meth:`open` connects, sends and reads the status and headers; then
    :meth:`chunks`, :meth:`events` or :meth:`read_body` read the body. Every wait
    checks ``cancel`` (raising :class:`StreamCancelled`) and ``deadline`` (a
    ``clock()`` time; :class:`RemoteError` ``timeout``). The deadline may be moved
    earlier while reading, e.g. once generation has a budget of its own.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float,
        cancel: CancelToken | None = None,
        clock: Clock = time.monotonic,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.endpoint = endpoint
        self.method = method
        self.path = path
        self.body = body
        self.headers = dict(headers or {})
        self.deadline = deadline
        self.cancel = cancel
        self.clock = clock
        self.connect_timeout_s = connect_timeout_s
        self.head: ResponseHead | None = None
        self._sock: socket.socket | None = None
        self._decoder: BodyDecoder | None = None
        self._early = b""
        """Body bytes that arrived with the head."""
        self.connected_at: float | None = None
        self.sent_at: float | None = None
        self.first_byte_at: float | None = None

    @property
    def where(self) -> str:
        return self.endpoint.url(self.path)

    # ----- waiting ------------------------------------------------------------

    def _check(self, deadline: float, what: str) -> float:
        if self.cancel is not None and self.cancel.cancelled:
            self.close()
            raise StreamCancelled
        left = deadline - self.clock()
        if left <= 0:
            self.close()
            raise RemoteError(f"{self.endpoint.url()} {what}", kind="timeout", retryable=True)
        return left

    def _wait(self, sock: socket.socket, *, write: bool, deadline: float, what: str) -> None:
        while True:
            left = self._check(deadline, what)
            if not write and isinstance(sock, ssl.SSLSocket) and sock.pending():
                return
            readable, writable, _ = select.select(
                [] if write else [sock], [sock] if write else [], [], min(POLL_S, left)
            )
            if readable or writable:
                return

    # ----- connecting and sending --------------------------------------------------

    def open(self) -> ResponseHead:
        """Connect, send the request, and read the response's status and headers."""
        started = self.clock()
        connect_by = min(self.deadline, started + self.connect_timeout_s)
        sock = self._connect(connect_by)
        self._sock = sock
        self.connected_at = self.clock()
        self._send(sock, self._request_bytes())
        self.sent_at = self.clock()
        head_bytes, rest = self._read_head(sock)
        try:
            self.head = parse_head(head_bytes)
            self._decoder = BodyDecoder(self.head, method=self.method)
        except ValueError as exc:
            self.close()
            raise RemoteError(
                f"{self.where} did not answer in HTTP: {exc}", kind="protocol"
            ) from None
        self._early = rest
        return self.head

    def _connect(self, deadline: float) -> socket.socket:
        endpoint = self.endpoint
        what = f"did not accept a connection within {self.connect_timeout_s:g} s"
        try:
            infos = socket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise RemoteError(
                f"cannot reach {endpoint.url()}: unknown host ({exc.strerror})",
                kind="connect",
                retryable=True,
            ) from None
        last: OSError | None = None
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                code = sock.connect_ex(address)
                if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                    raise OSError(code, _strerror(code))
                if code:
                    self._sock = sock  # so that a cancel or timeout closes it
                    self._wait(sock, write=True, deadline=deadline, what=what)
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        raise OSError(code, _strerror(code))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if endpoint.scheme == "https":
                    return self._handshake(sock, deadline)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
        reason = last.strerror if last is not None and last.strerror else str(last)
        raise RemoteError(
            f"cannot reach {endpoint.url()}: {reason.lower()}", kind="connect", retryable=True
        )

    def _handshake(self, sock: socket.socket, deadline: float) -> socket.socket:
        context = ssl.create_default_context()
        wrapped = context.wrap_socket(
            sock, server_hostname=self.endpoint.host, do_handshake_on_connect=False
        )
        self._sock = wrapped
        while True:
            try:
                wrapped.do_handshake()
                return wrapped
            except ssl.SSLWantReadError:
                self._wait(wrapped, write=False, deadline=deadline, what="TLS handshake timed out")
            except ssl.SSLWantWriteError:
                self._wait(wrapped, write=True, deadline=deadline, what="TLS handshake timed out")
            except ssl.SSLError as exc:
                wrapped.close()
                raise RemoteError(
                    f"cannot reach {self.endpoint.url()}: TLS failed ({exc.reason or exc})",
                    kind="connect",
                ) from None

    def _request_bytes(self) -> bytes:
        endpoint = self.endpoint
        host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
        default_port = 443 if endpoint.scheme == "https" else 80
        headers = {
            "Host": host if endpoint.port == default_port else f"{host}:{endpoint.port}",
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            "Connection": "close",
            **self.headers,
        }
        if self.body is not None:
            headers.setdefault("Content-Type", "application/json")
            headers["Content-Length"] = str(len(self.body))
        lines = [f"{self.method} {endpoint.base}{self.path} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (self.body or b"")

    def _send(self, sock: socket.socket, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = sock.send(view)
            except (BlockingIOError, ssl.SSLWantWriteError):
                self._wait(
                    sock, write=True, deadline=self.deadline, what="did not take the request"
                )
                continue
            except ssl.SSLWantReadError:
                self._wait(
                    sock, write=False, deadline=self.deadline, what="did not take the request"
                )
                continue
            except OSError as exc:
                self.close()
                raise RemoteError(
                    f"the connection to {self.endpoint.url()} failed while sending: "
                    f"{exc.strerror or exc}",
                    kind="closed",
                    retryable=True,
                ) from None
            view = view[sent:]

    # ----- receiving -------------------------------------------------------------

    def _recv(self, sock: socket.socket, what: str) -> bytes:
        """The next bytes from the socket (b"" when the server closed)."""
        while True:
            self._wait(sock, write=False, deadline=self.deadline, what=what)
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                continue
            except ssl.SSLWantWriteError:
                self._wait(sock, write=True, deadline=self.deadline, what=what)
                continue
            except OSError as exc:
                self.close()
                raise RemoteError(
                    f"the connection to {self.endpoint.url()} broke: {exc.strerror or exc}",
                    kind="closed",
                    retryable=self.first_byte_at is None,
                ) from None
            if self.first_byte_at is None:
                self.first_byte_at = self.clock()
            return data

    def _read_head(self, sock: socket.socket) -> tuple[bytes, bytes]:
        buffer = b""
        while True:
            data = self._recv(sock, "did not answer in time")
            if not data:
                self.close()
                raise RemoteError(
                    f"{self.where} closed the connection without an answer",
                    kind="closed",
                    retryable=True,
                )
            buffer += data
            head, found, rest = buffer.partition(b"\r\n\r\n")
            if found:
                return head, rest
            if len(buffer) > MAX_HEAD_BYTES:
                self.close()
                raise RemoteError(f"{self.where} sent an over-long header", kind="protocol")

    def chunks(self) -> Iterator[bytes]:
        """The body's bytes as they arrive; the connection is closed at the end."""
        sock, decoder = self._sock, self._decoder
        if sock is None or decoder is None:
            raise RuntimeError("open() first")
        try:
            pending, self._early = self._early, b""
            while True:
                if pending:
                    try:
                        out = decoder.feed(pending)
                    except ValueError as exc:
                        raise RemoteError(
                            f"{self.where} sent a malformed body: {exc}", kind="protocol"
                        ) from None
                    if out:
                        yield out
                if decoder.done:
                    return
                pending = self._recv(sock, "stopped sending in time")
                if not pending:
                    if decoder.until_close:
                        return
                    raise RemoteError(
                        f"the connection to {self.endpoint.url()} closed mid-answer",
                        kind="closed",
                    )
        finally:
            self.close()

    def read_body(self, limit: int = MAX_BODY_BYTES) -> bytes:
        body = bytearray()
        for chunk in self.chunks():
            body += chunk
            if len(body) > limit:
                self.close()
                raise RemoteError(f"{self.where} sent more than {limit} bytes", kind="protocol")
        return bytes(body)

    def events(self) -> Iterator[str]:
        """The ``data`` of each server-sent event, as each arrives."""
        parser = SseParser()
        for chunk in self.chunks():
            yield from parser.feed(chunk)
        yield from parser.finish()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            # Not shutdown(): on a TLS socket it would try to send close_notify and block.
            sock.close()

    def __enter__(self) -> HttpStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _strerror(code: int) -> str:
    try:
        return os.strerror(code)
    except ValueError:
        return f"error {code}"


def status_error(stream: HttpStream, body: bytes) -> RemoteError:
    """The error for a 4xx or 5xx answer; 502, 503, 504 and 429 are worth retrying."""
    head = stream.head
    assert head is not None
    summary = error_summary(body)
    hint = ""
    if head.status == 404:
        hint = " (is model.url the server's base URL, and model.backend its kind?)"
    elif head.status in (401, 403):
        hint = " (check model.apiKey)"
    reason = f"{head.status} {head.reason}".strip()
    return RemoteError(
        f"{stream.where} answered {reason}{': ' + summary if summary else ''}{hint}",
        kind="status",
        status=head.status,
        retryable=head.status in (429, 502, 503, 504),
        body=body[:4096].decode("utf-8", errors="replace"),
    )


def request_json(
    endpoint: Endpoint,
    method: str,
    path: str,
    payload: Any = None,
    *,
    headers: Mapping[str, str] | None = None,
    deadline: float,
    cancel: CancelToken | None = None,
    clock: Clock = time.monotonic,
) -> Any:
    """A whole JSON request and answer; RemoteError for a failure or a non-2xx status."""
    body = None if payload is None else json.dumps(payload).encode("utf-8")
    with HttpStream(
        endpoint,
        method,
        path,
        body=body,
        headers=headers,
        deadline=deadline,
        cancel=cancel,
        clock=clock,
    ) as stream:
        head = stream.open()
        data = stream.read_body()
        if not 200 <= head.status < 300:
            raise status_error(stream, data)
    try:
        return json.loads(data)
    except ValueError:
        raise RemoteError(f"{stream.where} did not answer JSON", kind="protocol") from None
