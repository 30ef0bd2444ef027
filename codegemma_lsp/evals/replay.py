"""Replaying recorded typing sessions against the real server, as Neovim 0.12 would.

The server runs as a subprocess over stdio (``python -m codegemma_lsp serve``).
For each session the replay opens the file, plays its keystrokes in real time
(each pause as recorded, times ``time_scale``) and sends what Neovim sends:
batched incremental ``didChange`` and, 200 ms after the cursor stops,
``textDocument/inlineCompletion``, without cancelling its own earlier requests
(see :mod:`codegemma_lsp.evals.replay_editor`).

The simulated user also reacts to what is shown. A suggestion is *fresh* when
it answers a request made at the current cursor of the current text.

- When a fresh suggestion is exactly what the session types next, the user
  accepts it (one edit, then the item's command) and skips those keystrokes.
  A real model does this now and then; a random-weight one never.
- Otherwise, now and then (``follow_probability``), the user follows it: types
  its first few characters, accepts what is shown then, reads it, and undoes
  it all in one edit. This exercises the typed-ahead cache and the accept path
  whatever the weights say, and the session's own text stays as recorded.

The baseline (``closed_loop``) plays the same keystrokes in virtual time and,
at a sample of the points where the timer would fire, sends a request and
waits for its answer before going on: with no reuse every request costs the
same, so a sample gives its latency without waiting through the pauses.

With ``oracle``, just before each request and each ``didChange`` the replay tells
the server what the typist is about to type at the cursor
(``codegemma/benchOracle``, which only a server started with ``serve
--bench-oracle`` accepts), so generation stops where a real model's would: the
random weights then cost what real ones would.

The log keeps the typist's pauses: each recorded wait of at least
``PAUSE_MIN_MS``, from the step taken before it to the step that ends it (a
keystroke, a move, or the simulated user acting on what is shown).
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from codegemma_lsp.evals.replay_client import Incoming, LspProcess, ProtocolError
from codegemma_lsp.evals.replay_editor import (
    CHANGE_DEBOUNCE_MS,
    REQUEST_DEBOUNCE_MS,
    ChangeBatcher,
    RequestTimer,
    position_at,
    replace_change,
    request_points,
)
from codegemma_lsp.evals.replay_session import Event, Session

Outcome = Literal["items", "empty", "cancelled", "error", "unanswered"]
StepKind = Literal["type", "backspace", "move", "accept", "undo"]

REQUEST_CANCELLED = -32800
ORACLE_NOTIFICATION = "codegemma/benchOracle"
ORACLE_MAX_CHARS = 4000
"""More than any block: the server cuts the text at the scope's end anyway."""
PAUSE_MIN_MS = 600.0
"""The shortest recorded wait the log keeps as a pause (the figures use 600 ms and 1 s)."""


@dataclass(frozen=True, kw_only=True)
class ReplayOptions:
    time_scale: float = 1.0
    """Multiplies every pause and both editor timers (tests run faster than life)."""
    closed_loop: bool = False
    """Wait for each answer before typing on, in virtual time (the baseline)."""
    sample_requests: int | None = None
    """Closed loop only: send this many requests per session, spread evenly."""
    follow_probability: float = 0.3
    follow_chars: tuple[int, int] = (3, 10)
    follow_gap_chars: int = 20
    """Recorded characters typed after a follow before the user follows again."""
    accept_min_chars: int = 3
    seed: int = 0
    answer_timeout_s: float = 180.0
    """How long to wait, after the last keystroke, for requests still unanswered."""
    oracle: bool = False
    """Tell the server what the typist types next, before each request (see above)."""


@dataclass
class RequestLog:
    """One ``textDocument/inlineCompletion`` request, seen from the client."""

    id: int
    index: int
    """The request's number within its session."""
    sent_at: float
    typed_text: str
    """Text inserted since the previous request of the session (typed, accepted)."""
    deleted_text: str
    """Text deleted since the previous request (backspace, undo)."""
    offset: int = 0
    """The cursor, as a code-point index, when the request was made."""
    moved: bool = False
    """The cursor was moved (not typed) somewhere since the previous request."""
    text_before: str = field(default="", repr=False)
    """The document's text before the cursor when the request was made."""
    answered_at: float | None = None
    outcome: Outcome = "unanswered"
    text: str = ""
    """The first item's insert text."""
    command: dict[str, Any] | None = None
    fresh: bool = False
    """The answer arrived while the cursor and text were still those of the request."""
    superseded_at: float | None = None
    """When a newer request for the document (or a cancel) made this one stale."""

    @property
    def latency_ms(self) -> float | None:
        if self.answered_at is None:
            return None
        return (self.answered_at - self.sent_at) * 1000


@dataclass(frozen=True)
class Pause:
    """A recorded wait of the typist, as played."""

    start: float
    """``time.perf_counter()`` (virtual time in a closed loop) of the step before it."""
    end: float
    """When the step after it was taken."""
    wait_ms: float
    """The wait as recorded, in the session's milliseconds (before ``time_scale``)."""


@dataclass
class SessionLog:
    name: str
    uri: str
    requests: list[RequestLog] = field(default_factory=list)
    accepted: int = 0
    followed: int = 0
    typed_chars: int = 0
    duration_s: float = 0.0
    reached_final_text: bool = False
    """Whether the document ended as the session's final text (it should)."""
    pauses: list[Pause] = field(default_factory=list)
    inserted: list[str] = field(default_factory=list)
    """Every text the session inserted (typed or accepted), in order."""
    deleted: list[str] = field(default_factory=list)
    """Every text it deleted (backspace, undo)."""


@dataclass
class _Step:
    kind: StepKind
    wait_s: float
    text: str = ""
    count: int = 0
    offset: int = 0
    recorded_ms: float | None = None
    """The wait as the session recorded it; None for the simulated user's own steps."""


def _steps(events: tuple[Event, ...], scale: float) -> deque[_Step]:
    steps: deque[_Step] = deque()
    for event in events:
        wait = event.wait_ms * scale / 1000
        recorded = float(event.wait_ms)
        if event.move is not None:
            steps.append(_Step("move", wait, offset=event.move, recorded_ms=recorded))
        elif event.type is not None:
            steps.append(_Step("type", wait, text=event.type, recorded_ms=recorded))
        else:
            steps.append(_Step("backspace", wait, count=event.backspace, recorded_ms=recorded))
    return steps


def upcoming_insert(steps: Iterable[_Step], limit: int = ORACLE_MAX_CHARS) -> str:
    """What the coming steps leave typed at the cursor before they move it elsewhere.

    Typing appends and a backspace takes back what was typed since, so a typo and
    its fix leave the fixed text; a backspace into older text, a move, an accept or
    an undo ends it.
    """
    typed = ""
    for step in steps:
        if len(typed) >= limit:
            break
        if step.kind == "type":
            typed += step.text
        elif step.kind == "backspace" and step.count <= len(typed):
            typed = typed[: len(typed) - step.count]
        else:
            break
    return typed[:limit]


def sample_points(count: int, wanted: int | None) -> set[int]:
    """``wanted`` request indices out of ``count``, evenly spread (all when None)."""
    if wanted is None or wanted >= count:
        return set(range(count))
    return {min(count - 1, int((i + 0.5) * count / wanted)) for i in range(wanted)}


def item_of(result: Any) -> dict[str, Any] | None:
    """The first item of an inline-completion result (a list or ``{"items": [...]}``)."""
    items = result.get("items") if isinstance(result, dict) else result
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return items[0]
    return None


def insert_text_of(item: dict[str, Any]) -> str:
    text = item.get("insertText", "")
    if isinstance(text, dict):  # a snippet: {"kind": "snippet", "value": ...}
        text = text.get("value", "")
    return text if isinstance(text, str) else ""


class SessionReplay:
    """Plays one session against a running server (open, type, close)."""

    def __init__(
        self, server: LspProcess, session: Session, uri: str, options: ReplayOptions
    ) -> None:
        self.server = server
        self.session = session
        self.uri = uri
        self.options = options
        self.rng = random.Random(f"{options.seed}:{session.name}")
        self.text = session.initial_text
        self.cursor = 0
        self.version = 0
        scale = options.time_scale / 1000
        self.batcher = ChangeBatcher(CHANGE_DEBOUNCE_MS * scale)
        self.timer = RequestTimer(REQUEST_DEBOUNCE_MS * scale)
        self.steps = _steps(session.events, options.time_scale)
        self.log = SessionLog(session.name, uri)
        self.by_id: dict[int, RequestLog] = {}
        self.shown: RequestLog | None = None
        """The request whose first item is on screen."""
        self.follow_start: int | None = None
        self.since_follow = options.follow_gap_chars
        self.replanned = False
        """The user changed what they do next: the next step's wait starts now."""
        self._typed: list[str] = []
        self._deleted: list[str] = []
        self._moved = False
        self._virtual_now = 0.0
        self._last_step_at: float | None = None
        self._interrupted_ms: float | None = None
        """The recorded wait the simulated user cut short by acting on a suggestion."""
        self._fires = 0
        self._sampled: set[int] | None = None
        if options.closed_loop:
            waits = [event.wait_ms for event in session.events]
            points = len(request_points(waits, REQUEST_DEBOUNCE_MS))
            self._sampled = sample_points(points, options.sample_requests)

    # ----- time -------------------------------------------------------------------------

    def now(self) -> float:
        return self._virtual_now if self.options.closed_loop else time.perf_counter()

    def wait_until(self, deadline: float) -> None:
        """Handle messages until ``deadline`` or a change of plan (real time), or jump there."""
        if self.options.closed_loop:
            while (item := self.server.receive(0)) is not None:
                self.handle(item)
            self._virtual_now = max(self._virtual_now, deadline)
            return
        while not self.replanned:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            item = self.server.receive(remaining)
            if item is not None:
                self.handle(item)

    # ----- the session ------------------------------------------------------------------

    def run(self) -> SessionLog:
        started = time.perf_counter()
        self.server.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": self.uri,
                    "languageId": self.session.language_id,
                    "version": self.version,
                    "text": self.text,
                }
            },
        )
        next_at = self.now() + (self.steps[0].wait_s if self.steps else 0.0)
        while self.steps or self.timer.fire_at is not None or self.batcher.pending:
            deadlines = [t for t in (self.batcher.flush_at, self.timer.fire_at) if t is not None]
            if self.steps:
                deadlines.append(next_at)
            self.wait_until(min(deadlines))
            now = self.now()
            if self.replanned:
                self.replanned = False
                next_at = now + (self.steps[0].wait_s if self.steps else 0.0)
            if self.batcher.due(now):
                self.flush(now)
            fire_at = self.timer.fire_at
            if fire_at is not None and fire_at <= now and (not self.steps or fire_at < next_at):
                self.timer.stop()
                self.fire(now)
                if self.options.closed_loop and self.steps:
                    next_at = max(next_at, self.now())
            elif self.steps and now >= next_at:
                self.take_step(self.steps.popleft(), now)
                if self.steps:
                    next_at = now + self.steps[0].wait_s
        self.drain()
        self.log.reached_final_text = self.text == self.session.final_text
        self.server.notify("textDocument/didClose", {"textDocument": {"uri": self.uri}})
        self.log.duration_s = time.perf_counter() - started
        return self.log

    def drain(self) -> None:
        """Wait for the answers still due (the user stopped typing)."""
        deadline = time.perf_counter() + self.options.answer_timeout_s
        while any(r.outcome == "unanswered" for r in self.log.requests):
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            item = self.server.receive(remaining)
            if item is not None:
                self.handle(item)

    # ----- keystrokes -------------------------------------------------------------------

    def take_step(self, step: _Step, now: float) -> None:
        wait_ms = step.recorded_ms if step.recorded_ms is not None else self._interrupted_ms
        self._interrupted_ms = None
        if self._last_step_at is not None and wait_ms is not None and wait_ms >= PAUSE_MIN_MS:
            self.log.pauses.append(Pause(self._last_step_at, now, wait_ms))
        self._last_step_at = now
        if step.kind == "move":
            self.leave_insert_mode()
            self._moved = self._moved or step.offset != self.cursor
            self.cursor = step.offset
        elif step.kind == "type":
            self.edit(self.cursor, self.cursor, step.text, now)
            if self.follow_start is None:
                self.log.typed_chars += len(step.text)
                self.since_follow += len(step.text)
        elif step.kind == "backspace":
            self.edit(max(0, self.cursor - step.count), self.cursor, "", now)
        elif step.kind == "accept":
            self.accept_shown(now)
        elif self.follow_start is not None:  # undo
            self.edit(self.follow_start, self.cursor, "", now)
            self.follow_start = None
        self.timer.restart(now)  # CursorMovedI, or InsertEnter after a move

    def edit(self, start: int, end: int, new_text: str, now: float) -> None:
        if end > start:
            self._deleted.append(self.text[start:end])
            self.log.deleted.append(self.text[start:end])
        if new_text:
            self._typed.append(new_text)
            self.log.inserted.append(new_text)
        self.text, change = replace_change(self.text, start, end, new_text)
        self.cursor = start + len(new_text)
        self.version += 1
        if self.batcher.add(change, now):
            self.flush(now)

    def flush(self, now: float) -> None:
        changes = self.batcher.take(now)
        if changes:
            if self.options.oracle:
                # Before the change: an eager start (engine.eagerStart) begins on it.
                self.tell_oracle()
            self.server.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": self.uri, "version": self.version},
                    "contentChanges": changes,
                },
            )

    def tell_oracle(self) -> None:
        """What the typist types next at the cursor, for the current version."""
        self.server.notify(
            ORACLE_NOTIFICATION,
            {
                "textDocument": {"uri": self.uri, "version": self.version},
                "position": position_at(self.text, self.cursor),
                "text": upcoming_insert(self.steps),
            },
        )

    def leave_insert_mode(self) -> None:
        """Neovim's InsertLeave: cancel the requests still pending, hide the suggestion."""
        self.timer.stop()
        now = time.perf_counter()
        for request in self.log.requests:
            if request.outcome == "unanswered":
                request.superseded_at = request.superseded_at or now
                self.server.notify("$/cancelRequest", {"id": request.id})
        self.shown = None

    # ----- requests and answers -------------------------------------------------------

    def fire(self, now: float) -> None:
        index = self._fires
        self._fires += 1
        if self._sampled is not None and index not in self._sampled:
            return
        self.flush(now)
        position = position_at(self.text, self.cursor)
        if self.options.oracle:
            self.tell_oracle()
        msg_id, sent_at = self.server.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": self.uri},
                "position": position,
                "context": {"triggerKind": 2},
            },
        )
        for earlier in self.log.requests:
            if earlier.superseded_at is None and earlier.outcome == "unanswered":
                earlier.superseded_at = sent_at
        request = RequestLog(
            id=msg_id,
            index=len(self.log.requests),
            sent_at=sent_at,
            typed_text="".join(self._typed),
            deleted_text="".join(self._deleted),
            offset=self.cursor,
            moved=self._moved,
            text_before=self.text[: self.cursor],
        )
        self._typed.clear()
        self._deleted.clear()
        self._moved = False
        self.log.requests.append(request)
        self.by_id[msg_id] = request
        if self.options.closed_loop:
            deadline = time.perf_counter() + self.options.answer_timeout_s
            while request.outcome == "unanswered":
                item = self.server.receive(deadline - time.perf_counter())
                if item is None:
                    raise ProtocolError(f"no answer to request {msg_id} within the timeout")
                self.handle(item)

    def handle(self, item: Incoming) -> None:
        message = item.message
        if "method" in message:
            return
        request = self.by_id.get(message.get("id", -1))
        if request is None:
            return
        request.answered_at = item.at
        if "error" in message:
            code = message["error"].get("code")
            request.outcome = "cancelled" if code == REQUEST_CANCELLED else "error"
            return
        found = item_of(message.get("result"))
        if found is None:
            request.outcome = "empty"
            request.fresh = self.is_fresh(request)
            self.shown = None  # Neovim hides what was shown when an answer has no items
            return
        request.outcome = "items"
        request.text = insert_text_of(found)
        command = found.get("command")
        request.command = command if isinstance(command, dict) else None
        self.shown = request
        request.fresh = self.is_fresh(request)
        if request.fresh and not self.options.closed_loop:
            self.react(request)

    def is_fresh(self, shown: RequestLog) -> bool:
        return shown.offset == self.cursor and self.text[: self.cursor] == shown.text_before

    # ----- the user -------------------------------------------------------------------

    def _reaction_s(self) -> float:
        return self.rng.uniform(0.25, 0.5) * self.options.time_scale

    def upcoming_text(self, limit: int) -> str:
        """What the recorded keystrokes type next (at least ``limit`` characters if they do)."""
        joined = ""
        for step in self.steps:
            if step.kind != "type" or len(joined) >= limit:
                break
            joined += step.text
        return joined

    def react(self, shown: RequestLog) -> None:
        """A fresh suggestion has just appeared: accept it, follow it, or ignore it."""
        text = shown.text
        if self.follow_start is not None or not text.strip() or not self.steps:
            return
        if len(text) >= self.options.accept_min_chars and self.upcoming_text(len(text)) == text:
            self._interrupt()
            self.steps.appendleft(_Step("accept", self._reaction_s()))
            self.replanned = True
            return
        first_line = text.split("\n", 1)[0]
        if self.steps[0].kind != "type" or len(first_line.strip()) < 2:
            return
        if self.since_follow < self.options.follow_gap_chars:
            return
        if self.rng.random() < self.options.follow_probability:
            self.follow(first_line)

    def _interrupt(self) -> None:
        """The user acts on a suggestion now: the pause they were in ends with that act."""
        if self.steps and self.steps[0].recorded_ms is not None:
            self._interrupted_ms = self.steps[0].recorded_ms

    def follow(self, line: str) -> None:
        low, high = self.options.follow_chars
        scale = self.options.time_scale
        typed = line[: min(len(line), self.rng.randint(low, high))]
        steps = [_Step("type", self.rng.uniform(0.06, 0.25) * scale, text=c) for c in typed]
        steps[0].wait_s = self._reaction_s()
        steps.append(_Step("accept", self.rng.uniform(0.3, 0.6) * scale))
        steps.append(_Step("undo", self.rng.uniform(0.8, 1.5) * scale))
        self._interrupt()
        self.steps.extendleft(reversed(steps))
        self.follow_start = self.cursor
        self.since_follow = 0
        self.replanned = True
        self.log.followed += 1

    def accept_shown(self, now: float) -> None:
        """Accept what is on screen: one edit, then the item's command (as Neovim does).

        Outside a follow, the recorded keystrokes that type the same text are dropped.
        """
        shown = self.shown
        if shown is None or shown.offset > self.cursor:
            return
        if not self.text[: self.cursor].startswith(shown.text_before):
            return
        typed = self.text[shown.offset : self.cursor]
        if not shown.text.startswith(typed):
            return
        remaining = shown.text[len(typed) :]
        if self.follow_start is None:
            if self.upcoming_text(len(remaining)) != remaining:
                return
            skipped = 0
            while skipped < len(remaining):
                skipped += len(self.steps.popleft().text)
        if remaining:
            self.edit(self.cursor, self.cursor, remaining, now)
        self.flush(now)
        if shown.command is not None:
            self.server.request(
                "workspace/executeCommand",
                {
                    "command": shown.command.get("command"),
                    "arguments": shown.command.get("arguments", []),
                },
            )
        self.log.accepted += 1
        self.shown = None
