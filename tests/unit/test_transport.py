"""The message reader: tolerant framing, bounded memory, resynchronisation, the envelope."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codegemma_lsp.transport import (
    End,
    Event,
    Lost,
    Message,
    MessageReader,
    Unreadable,
    envelope_problem,
    start_reader_thread,
)

GOOD = {"jsonrpc": "2.0", "id": 7, "method": "codegemma/stats"}
BODY = json.dumps(GOOD).encode()


def framed(body: bytes = BODY, header: bytes = b"Content-Length: %d\r\n\r\n") -> bytes:
    return header.replace(b"%d", str(len(body)).encode()) + body


def kinds(events: list[Event]) -> list[str]:
    names = []
    for event in events:
        if isinstance(event, Message):
            names.append("message")
        elif isinstance(event, Unreadable):
            names.append("unreadable")
        elif isinstance(event, Lost):
            names.append("lost")
    return names


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(framed(), ["message"], id="plain"),
        pytest.param(framed(header=b"content-length: %d\r\n\r\n"), ["message"], id="lower-case"),
        pytest.param(framed(header=b"CONTENT-LENGTH: %d\r\n\r\n"), ["message"], id="upper-case"),
        pytest.param(framed(header=b"Content-Length: %d\n\n"), ["message"], id="lf-only"),
        pytest.param(framed(header=b"Content-Length:%d\r\n\r\n"), ["message"], id="no-space"),
        pytest.param(
            framed(header=b"Content-Length:\t%d  \r\n\r\n"), ["message"], id="tabs-and-spaces"
        ),
        pytest.param(
            framed(
                header=b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"
                b"Content-Length: %d\r\n\r\n"
            ),
            ["message"],
            id="content-type-first",
        ),
        pytest.param(
            framed(header=b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n"),
            ["message"],
            id="same-length-twice",
        ),
        pytest.param(b"\r\n\n" + framed(), ["message"], id="stray-blank-lines"),
        pytest.param(framed() + framed(), ["message", "message"], id="two-frames"),
        pytest.param(
            b"Content-Type: x\r\n\r\n" + BODY + framed(),
            ["unreadable", "message"],
            id="no-content-length",
        ),
        pytest.param(
            b"Content-Length: 10000000000\r\n\r\n" + BODY + framed(),
            ["unreadable", "message"],
            id="length-10e10",
        ),
        pytest.param(
            b"Content-Length: 1000000000000\r\n\r\n" + BODY + framed(),
            ["unreadable", "message"],
            id="length-10e12",
        ),
        pytest.param(
            b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n" + framed(),
            ["unreadable", "message"],
            id="length-5000-digits",
        ),
        pytest.param(
            b"Content-Length: abc\r\n\r\n" + BODY + framed(),
            ["unreadable", "message"],
            id="length-not-a-number",
        ),
        pytest.param(
            b"Content-Length: -5\r\n\r\n" + BODY + framed(),
            ["unreadable", "message"],
            id="length-negative",
        ),
        pytest.param(
            b"Content-Length: 3\r\nContent-Length: 4\r\n\r\n" + BODY + framed(),
            ["unreadable", "message"],
            id="conflicting-lengths",
        ),
        pytest.param(b"hello world\r\n" + framed(), ["unreadable", "message"], id="garbage-line"),
        pytest.param(BODY + framed(), ["unreadable", "message"], id="body-without-header"),
        pytest.param(
            framed(b"{not json") + framed(), ["unreadable", "message"], id="body-not-json"
        ),
        pytest.param(
            framed(b'{"a": "\xff"}') + framed(), ["unreadable", "message"], id="body-not-utf8"
        ),
        pytest.param(
            framed(b"[" * 200_000) + framed(), ["unreadable", "message"], id="deeply-nested"
        ),
        pytest.param(
            framed(b"", b"Content-Length: 0\r\n\r\n") + framed(),
            ["unreadable", "message"],
            id="empty-body",
        ),
        pytest.param(
            b"Content-Length: %d\r\n\r\n" % (len(BODY) + 30) + BODY + framed(),
            ["unreadable", "message"],
            id="length-too-long",
        ),
        pytest.param(
            b"Content-Length: %d\r\n\r\n" % (len(BODY) - 10) + BODY + framed(),
            ["unreadable", "unreadable", "message"],
            id="length-too-short",
        ),
        pytest.param(
            b"Content-Length: 20\r\n" + b"X-Junk: y\r\n" * 1000 + b"\r\n" + framed(),
            ["unreadable", "message"],
            id="header-over-8k",
        ),
        pytest.param(b"x" * 10_000 + framed(), ["unreadable", "message"], id="line-over-8k"),
    ],
)
def test_framing(data: bytes, expected: list[str]) -> None:
    reader = MessageReader()
    events = reader.feed(data)
    assert kinds(events) == expected
    assert isinstance(events[-1], Message) and events[-1].value == GOOD


@settings(max_examples=200, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 400), max_size=12),
    pieces=st.lists(
        st.sampled_from(
            [
                framed(),
                framed(header=b"content-length:%d\n\n"),
                b"Content-Type: x\r\n\r\n" + BODY,
                b"Content-Length: 1000000000000\r\n\r\n" + BODY,
                b"hello\r\n",
                framed(b"{broken"),
                framed(json.dumps({**GOOD, "params": {"text": "Content-Length: 5\r\n"}}).encode()),
            ]
        ),
        max_size=6,
    ),
)
def test_any_split_reads_the_same(cuts: list[int], pieces: list[bytes]) -> None:
    data = b"".join(pieces) + framed()
    whole = MessageReader().feed(data)
    reader = MessageReader()
    split: list[Event] = []
    start = 0
    for cut in sorted(c for c in cuts if c < len(data)):
        split += reader.feed(data[start:cut])
        start = cut
    split += reader.feed(data[start:])
    assert split == whole
    # Every valid frame is read: a frame never hides behind the bad ones before it.
    assert isinstance(whole[-1], Message) and whole[-1].value == GOOD


def test_an_over_limit_body_is_skipped_without_being_held() -> None:
    reader = MessageReader(max_message_bytes=1024)
    events = reader.feed(b"Content-Length: 10000000\r\n\r\n")
    assert kinds(events) == ["unreadable"]
    chunk = b"a" * 65536
    for _ in range(10_000_000 // len(chunk)):
        assert reader.feed(chunk) == []
        assert len(reader._buf) <= 65536
    rest = 10_000_000 % len(chunk)
    assert reader.feed(b"a" * rest + framed()) == [Message(GOOD)]


def test_an_honest_body_over_the_limit_is_skipped_exactly() -> None:
    # The body holds a JSON string that looks like a header but is not one on the wire.
    body = json.dumps({"jsonrpc": "2.0", "method": "x", "params": "Content-Length: 5\n" * 200})
    reader = MessageReader(max_message_bytes=1024)
    events = reader.feed(framed(body.encode()) + framed())
    assert kinds(events) == ["unreadable", "message"]


def test_input_that_never_holds_a_header_is_lost() -> None:
    reader = MessageReader(max_message_bytes=1024)
    events: list[Event] = []
    for _ in range(40):
        events += reader.feed(b"x" * 65536)
    assert kinds(events) == ["unreadable", "lost"]
    assert reader.feed(framed()) == []


def test_the_limit_can_change_between_messages() -> None:
    reader = MessageReader(max_message_bytes=1024)
    big = framed(json.dumps({**GOOD, "params": {"pad": "p" * 2000}}).encode())
    assert kinds(reader.feed(big)) == ["unreadable"]
    reader.max_message_bytes = 4096
    assert kinds(reader.feed(big)) == ["message"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(GOOD, None, id="request"),
        pytest.param({"jsonrpc": "2.0", "method": "initialized"}, None, id="notification"),
        pytest.param({"jsonrpc": "2.0", "id": "a", "result": None}, None, id="response"),
        pytest.param({"jsonrpc": "2.0", "id": 1, "error": {}}, None, id="error-response"),
        pytest.param([GOOD], (None, "batch messages are not supported"), id="batch"),
        pytest.param([], (None, "batch messages are not supported"), id="empty-batch"),
        pytest.param(42, (None, "a message must be a JSON object"), id="number"),
        pytest.param("x", (None, "a message must be a JSON object"), id="string"),
        pytest.param(
            {**GOOD, "id": {"a": 1}}, (None, "id must be a number or a string"), id="id-object"
        ),
        pytest.param({**GOOD, "id": [1]}, (None, "id must be a number or a string"), id="id-array"),
        pytest.param({**GOOD, "id": True}, (None, "id must be a number or a string"), id="id-bool"),
        pytest.param({**GOOD, "id": 1.5}, (None, "id must be a number or a string"), id="id-float"),
        pytest.param({**GOOD, "jsonrpc": "1.0"}, (7, 'jsonrpc must be "2.0"'), id="old-version"),
        pytest.param({**GOOD, "method": 3}, (7, "method must be a string"), id="method-number"),
        pytest.param(
            {"jsonrpc": "2.0", "id": 3},
            (3, "not a request, a notification or a response"),
            id="nothing",
        ),
    ],
)
def test_envelope(value: Any, expected: tuple[Any, str] | None) -> None:
    assert envelope_problem(value) == expected


def test_the_reader_thread_delivers_in_order_and_reports_the_end_at_once() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, framed() + b"hello\r\n" + framed())
    os.close(write_fd)
    loop = asyncio.new_event_loop()
    ended = threading.Event()
    handled: list[Event] = []
    try:
        with os.fdopen(read_fd, "rb") as stream:
            thread = start_reader_thread(
                stream, MessageReader(), loop, handled.append, on_end=lambda _: ended.set()
            )
            # The loop is not running: the end is known on the reading thread anyway.
            assert ended.wait(timeout=30)
            thread.join(timeout=30)
            loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    assert handled == [
        Message(GOOD),
        Unreadable("bytes that are not a header"),
        Message(GOOD),
        End(),
    ]
