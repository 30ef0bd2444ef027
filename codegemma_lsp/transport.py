"""The LSP base protocol on a byte stream: frames in, JSON values out, never stuck.

A frame is header lines, an empty line, and a body of ``Content-Length`` bytes.
:class:`MessageReader` takes what editors really send: header names in any case, lines
that end in ``\\n`` as well as ``\\r\\n``, and ``Content-Length:N`` without a space.
What it cannot read never leaves the server deaf:

- A frame without a usable length, or a body that is not JSON, becomes
  :class:`Unreadable` (the server answers -32700), and the reader resynchronises at the
  next ``Content-Length: N`` line.
- A body longer than ``max_message_bytes`` is never held in memory. It is discarded as
  it streams past; a header found inside it ends the discard early (the length lied).
- A search that finds no header within ``max_message_bytes`` (at least 1 MiB) of input
  ends the stream with :class:`Lost`: the input is not LSP, and the server exits
  non-zero so that the editor restarts it.

Resynchronising on ``Content-Length: N`` followed by a line break is safe because no
valid JSON text contains it: a raw line break is illegal inside a JSON string, and
outside strings those words are not JSON. A scan through a valid body never stops early.

The JSON-RPC envelope (:func:`envelope_problem`) is checked here too, without pygls:
batches and ids that are neither numbers nor strings get -32600 instead of silence.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 8 * 1024
"""A header section longer than this is not a header."""
MIN_SEARCH_BYTES = 1 << 20
CHUNK_BYTES = 64 * 1024

# The longest match is 15 + 16 + 20 + 16 + 2 = 69 bytes; keeping 96 bytes of skipped
# input finds a header that straddles two chunks.
_HEADER_LINE = re.compile(rb"(?i)content-length:[ \t]{0,16}\d{1,20}[ \t]{0,16}\r?\n")
_OVERLAP = 96
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass(frozen=True)
class Message:
    """A frame whose body is JSON (any JSON value; the envelope is checked later)."""

    value: Any


@dataclass(frozen=True)
class Unreadable:
    """A frame that could not be read; the reader has already moved on."""

    reason: str


@dataclass(frozen=True)
class Lost:
    """No frame could be found again; nothing after this is read."""

    reason: str


@dataclass(frozen=True)
class End:
    """The input ended."""


Event = Message | Unreadable | Lost | End


class MessageReader:
    """Incremental, tolerant framing: :meth:`feed` bytes in any pieces, get events out."""

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.max_message_bytes = max_message_bytes
        self._buf = bytearray()
        self._state = self._read_header
        self._lengths: list[bytes] = []
        self._fields = 0
        self._header_bytes = 0
        self._length = 0
        self._skip_left: int | None = None
        """While skipping: bytes of the declared body still to skip; None: until a header."""
        self._kept = 0
        """While skipping: bytes at the front of the buffer already skipped, kept so that a
        header split across two chunks is still found."""
        self._searched = 0
        self._lost = False

    def feed(self, data: bytes) -> list[Event]:
        if self._lost:
            return []
        self._buf += data
        events: list[Event] = []
        while self._state(events):
            pass
        return events

    # ----- states: each returns True when it made progress ---------------------------------

    def _read_header(self, events: list[Event]) -> bool:
        buf = self._buf
        newline = buf.find(b"\n", 0, MAX_HEADER_BYTES + 1)
        if newline < 0:
            if len(buf) + self._header_bytes > MAX_HEADER_BYTES:
                return self._bad(events, "a header line longer than 8 KiB")
            return False
        consumed = newline + 1
        if self._header_bytes + consumed > MAX_HEADER_BYTES:
            return self._bad(events, "a header longer than 8 KiB")
        line = bytes(buf[:newline])
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line.strip(b" \t"):
            del buf[:consumed]
            # Stray line breaks between frames are harmless; after fields they end the header.
            return self._end_header(events) if self._fields else True
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            return self._bad(events, "bytes that are not a header")
        del buf[:consumed]
        self._header_bytes += consumed
        self._fields += 1
        if name.lower() == b"content-length":
            self._lengths.append(value.strip(b" \t"))
        return True

    def _end_header(self, events: list[Event]) -> bool:
        lengths, self._lengths = self._lengths, []
        self._fields = self._header_bytes = 0
        if not lengths:
            return self._bad(events, "a header without Content-Length", skip_first=False)
        if len(set(lengths)) > 1:
            return self._bad(events, "conflicting Content-Length headers", skip_first=False)
        text = lengths[0]
        if not (text.isdigit() and text.isascii()):
            shown = text[:20].decode("ascii", "replace")
            return self._bad(events, f"Content-Length {shown!r} is not a number", skip_first=False)
        length = int(text) if len(text) <= 30 else 10**30
        if length > self.max_message_bytes:
            events.append(
                Unreadable(
                    f"a message of {length} bytes is over the limit of "
                    f"{self.max_message_bytes} (server.maxMessageBytes)"
                )
            )
            self._skip(length)
            return True
        self._length = length
        self._state = self._read_body
        return True

    def _read_body(self, events: list[Event]) -> bool:
        buf, length = self._buf, self._length
        if len(buf) < length:
            return False
        body = buf[:length]
        del buf[:length]
        self._state = self._read_header
        events.append(self._decode(body))
        return True

    def _skip_input(self, events: list[Event]) -> bool:
        buf = self._buf
        fresh = len(buf) - self._kept
        if self._skip_left is not None:
            fresh = min(fresh, self._skip_left)
        if fresh <= 0:
            return False
        end = self._kept + fresh
        found = _HEADER_LINE.search(buf, 0, end)
        if found is not None:
            del buf[: found.start()]
            self._kept = 0
            self._state = self._read_header
            return True
        if self._skip_left is not None:
            self._skip_left -= fresh
            if self._skip_left == 0:
                del buf[:end]
                self._kept = 0
                self._state = self._read_header
                return True
        else:
            self._searched += fresh
            if self._searched > max(self.max_message_bytes, MIN_SEARCH_BYTES):
                events.append(Lost(f"no message header in {self._searched} bytes of input"))
                self._lost = True
                buf.clear()
                return False
        keep = min(_OVERLAP, end)
        del buf[: end - keep]
        self._kept = keep
        return False

    # ----- transitions ---------------------------------------------------------------------

    def _bad(self, events: list[Event], reason: str, *, skip_first: bool = True) -> bool:
        """Report a frame that cannot be read and search for the next header. The search
        starts one byte in when the bad bytes are at the front, so that it cannot find the
        same header again."""
        events.append(Unreadable(reason))
        self._lengths, self._fields, self._header_bytes = [], 0, 0
        if skip_first:
            del self._buf[:1]
        self._skip(None)
        return True

    def _skip(self, length: int | None) -> None:
        self._skip_left = length
        self._kept = 0
        self._searched = 0
        self._state = self._skip_input

    def _decode(self, body: bytearray) -> Event:
        try:
            return Message(json.loads(body))
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            # A length longer than its message swallows the start of the next frame.
            found = _HEADER_LINE.search(body)
            if found is not None:
                self._buf[:0] = body[found.start() :]
            return Unreadable(f"the body is not JSON ({_short(exc)})")


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:120]


# ----- the JSON-RPC envelope ------------------------------------------------------------------


def envelope_problem(value: Any) -> tuple[Any, str] | None:
    """Why ``value`` is not a JSON-RPC 2.0 message LSP can take, with the id to answer
    with; None when it is one. The answer is -32600 (Invalid Request)."""
    if isinstance(value, list):
        return None, "batch messages are not supported"
    if not isinstance(value, dict):
        return None, "a message must be a JSON object"
    msg_id = value.get("id")
    if "id" in value and not (msg_id is None or isinstance(msg_id, str) or type(msg_id) is int):
        return None, "id must be a number or a string"
    if value.get("jsonrpc") != "2.0":
        return msg_id, 'jsonrpc must be "2.0"'
    if "method" in value:
        if not isinstance(value["method"], str):
            return msg_id, "method must be a string"
    elif "id" not in value or ("result" not in value and "error" not in value):
        return msg_id, "not a request, a notification or a response"
    return None


# ----- pumps: a stream's events onto the event loop ---------------------------------------------


def start_reader_thread(
    stream: BinaryIO,
    reader: MessageReader,
    loop: asyncio.AbstractEventLoop,
    handle: Callable[[Event], None],
    *,
    window: int = 32,
    on_end: Callable[[Event], None] | None = None,
) -> threading.Thread:
    """Read ``stream`` on a thread of its own; ``handle`` gets each event on ``loop``, in
    order, ending with :class:`End` or :class:`Lost`. ``on_end`` gets that last event at
    once, on the reading thread, even while the loop is busy.

    Framing and JSON decoding happen on the thread, so a big message does not hold the
    loop. At most ``window`` events wait for the loop, so a flood cannot fill memory.
    The file descriptor is read directly: a thread blocked in a buffered read holds the
    buffer's lock, and interpreter shutdown then aborts trying to take it.
    """
    slots = threading.Semaphore(window)

    def deliver(event: Event) -> None:
        try:
            handle(event)
        finally:
            slots.release()

    def post(event: Event) -> bool:
        slots.acquire()
        try:
            loop.call_soon_threadsafe(deliver, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            return False
        return True

    def run() -> None:
        read = _raw_read(stream)
        while True:
            try:
                chunk = read(CHUNK_BYTES)
            except (OSError, ValueError):
                chunk = b""
            events = reader.feed(chunk) if chunk else [End()]
            for event in events:
                last = isinstance(event, End | Lost)
                if last and on_end is not None:
                    on_end(event)
                if not post(event) or last:
                    return

    thread = threading.Thread(target=run, name="codegemma-input", daemon=True)
    thread.start()
    return thread


def _raw_read(stream: BinaryIO) -> Callable[[int], bytes]:
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        read1 = getattr(stream, "read1", None)
        return read1 if callable(read1) else stream.read
    return lambda size: os.read(fd, size)


async def pump_stream(
    stream: asyncio.StreamReader, reader: MessageReader, handle: Callable[[Event], None]
) -> None:
    """Read an asyncio stream (a TCP connection) until it ends, handling each event."""
    while True:
        chunk = await stream.read(CHUNK_BYTES)
        if not chunk:
            handle(End())
            return
        for event in reader.feed(chunk):
            handle(event)
            if isinstance(event, Lost):
                return
