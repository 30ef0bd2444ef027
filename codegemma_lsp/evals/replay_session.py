"""Recorded typing sessions: the format, and how they were recorded.

A session is a real source file with some regions removed (``initial_text``)
and the keystrokes that type them back in (``events``), each after a human
pause. Events act at the cursor, as keystrokes do:

- ``{"wait": ms, "type": text}`` inserts ``text`` (one character, or a newline
  with the indentation the editor adds after Enter);
- ``{"wait": ms, "backspace": n}`` deletes ``n`` characters before the cursor;
- ``{"wait": ms, "move": offset}`` leaves insert mode, puts the cursor at
  ``offset`` (a code-point index into the current text) and enters insert mode.

The sessions in ``sessions/`` were made by :func:`record_session` from a seeded
model of a typist (:class:`TypingModel`), so they can be checked against it and
made again; playing all events turns ``initial_text`` into ``final_text``.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Event:
    wait_ms: int
    type: str | None = None
    backspace: int = 0
    move: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"wait": self.wait_ms}
        if self.type is not None:
            data["type"] = self.type
        if self.backspace:
            data["backspace"] = self.backspace
        if self.move is not None:
            data["move"] = self.move
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        event = cls(
            wait_ms=int(data["wait"]),
            type=data.get("type"),
            backspace=int(data.get("backspace", 0)),
            move=data.get("move"),
        )
        kinds = (event.type is not None) + (event.backspace > 0) + (event.move is not None)
        if kinds != 1:
            raise ValueError(f"an event does exactly one of type, backspace, move: {data}")
        return event


@dataclass(frozen=True)
class Session:
    name: str
    language_id: str
    path: str
    """Workspace-relative path of the file, which the replay opens under a temporary root."""
    initial_text: str
    final_text: str
    events: tuple[Event, ...]
    regions: tuple[tuple[int, int], ...] = ()
    """1-based inclusive line ranges of ``final_text`` that the events type."""
    seed: int = 0
    source: str = ""

    @property
    def typed_chars(self) -> int:
        return sum(len(event.type) for event in self.events if event.type is not None)

    def shortened(self, fraction: float) -> Session:
        """The session up to the event where ``fraction`` of its characters have been typed."""
        goal = self.typed_chars * fraction
        typed, kept = 0, []
        for event in self.events:
            if typed >= goal:
                break
            kept.append(event)
            typed += len(event.type or "")
        return Session(
            self.name,
            self.language_id,
            self.path,
            self.initial_text,
            play(self.initial_text, kept)[0],
            tuple(kept),
            self.regions,
            self.seed,
            self.source,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "name": self.name,
            "language_id": self.language_id,
            "path": self.path,
            "source": self.source,
            "seed": self.seed,
            "regions": [list(region) for region in self.regions],
            "initial_text": self.initial_text,
            "final_text": self.final_text,
            "events": [event.to_json() for event in self.events],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Session:
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"unknown session format {data.get('format')!r}")
        return cls(
            name=data["name"],
            language_id=data["language_id"],
            path=data["path"],
            initial_text=data["initial_text"],
            final_text=data["final_text"],
            events=tuple(Event.from_json(event) for event in data["events"]),
            regions=tuple((int(a), int(b)) for a, b in data.get("regions", ())),
            seed=int(data.get("seed", 0)),
            source=data.get("source", ""),
        )


def play(text: str, events: Iterable[Event], cursor: int = 0) -> tuple[str, int]:
    """The text and cursor after ``events``."""
    for event in events:
        if event.move is not None:
            cursor = event.move
        elif event.type is not None:
            text = text[:cursor] + event.type + text[cursor:]
            cursor += len(event.type)
        else:
            start = max(0, cursor - event.backspace)
            text = text[:start] + text[cursor:]
            cursor = start
    return text, cursor


# ----- the recorded sessions -------------------------------------------------------


def sessions_dir() -> Path:
    return Path(str(resources.files("codegemma_lsp.evals").joinpath("sessions")))


def load_session(path: Path) -> Session:
    return Session.from_json(json.loads(path.read_text(encoding="utf-8")))


def save_session(session: Session, path: Path) -> None:
    text = json.dumps(session.to_json(), indent=1, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def recorded_sessions(names: Sequence[str] | None = None) -> list[Session]:
    """The sessions shipped with the package, by file name order; ``names`` picks some."""
    sessions = [load_session(path) for path in sorted(sessions_dir().glob("*.json"))]
    if names:
        unknown = set(names) - {session.name for session in sessions}
        if unknown:
            raise ValueError(f"no recorded session named {', '.join(sorted(unknown))}")
        sessions = [session for session in sessions if session.name in names]
    return sessions


# ----- recording --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TypingModel:
    """How the simulated typist types: pauses in milliseconds, probabilities per key."""

    key_median_ms: float = 110.0
    key_sigma: float = 0.4
    key_min_ms: int = 40
    key_max_ms: int = 600
    word_pause_p: float = 0.3
    word_pause_ms: tuple[int, int] = (200, 800)
    line_end_pause_p: float = 0.5
    line_end_pause_ms: tuple[int, int] = (300, 1500)
    line_start_pause_p: float = 0.7
    line_start_pause_ms: tuple[int, int] = (300, 1200)
    typo_p: float = 0.03
    typo_notice_ms: tuple[int, int] = (150, 450)
    first_move_ms: tuple[int, int] = (2500, 4000)
    """Reading the file after opening it, before going to the first region."""
    later_move_ms: tuple[int, int] = (1500, 3000)
    after_move_ms: tuple[int, int] = (500, 1200)


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


@dataclass
class _Recorder:
    rng: random.Random
    model: TypingModel
    events: list[Event] = field(default_factory=list)

    def uniform(self, bounds: tuple[int, int]) -> int:
        return self.rng.randint(*bounds)

    def key_delay(self) -> int:
        model = self.model
        delay = self.rng.lognormvariate(0.0, model.key_sigma) * model.key_median_ms
        return int(min(model.key_max_ms, max(model.key_min_ms, delay)))

    def add(self, wait: int, **kind: Any) -> None:
        self.events.append(Event(wait_ms=wait, **kind))

    def type_line(self, content: str, first_wait: int) -> None:
        previous = ""
        for index, char in enumerate(content):
            wait = first_wait if index == 0 else self.key_delay()
            word_start = index > 0 and _is_word(char) and not _is_word(previous)
            if word_start and self.rng.random() < self.model.word_pause_p:
                wait += self.uniform(self.model.word_pause_ms)
            if char.isalpha() and self.rng.random() < self.model.typo_p:
                self.add(wait, type=self.rng.choice("asdfghjklqwertyuiopzxcvbnm"))
                self.add(self.uniform(self.model.typo_notice_ms), backspace=1)
                wait = self.key_delay()
            self.add(wait, type=char)
            previous = char

    def type_region(self, lines: list[str], first_wait: int) -> None:
        """Type ``lines``: the first from its first non-blank character, the rest after Enter."""
        model = self.model
        self.type_line(lines[0].lstrip(), first_wait)
        for line in lines[1:]:
            content = line.lstrip()
            indent = line[: len(line) - len(content)]
            wait = self.key_delay()
            if self.rng.random() < model.line_end_pause_p:
                wait += self.uniform(model.line_end_pause_ms)
            self.add(wait, type="\n" + indent)
            if content:
                wait = self.key_delay()
                if self.rng.random() < model.line_start_pause_p:
                    wait += self.uniform(model.line_start_pause_ms)
                self.type_line(content, wait)


def record_session(
    *,
    name: str,
    language_id: str,
    path: str,
    final_text: str,
    regions: Sequence[tuple[int, int]],
    seed: int,
    source: str = "",
    model: TypingModel | None = None,
) -> Session:
    """Remove ``regions`` (1-based inclusive line ranges, in order) and record typing them back.

    A region starts at the first non-blank character of its first line (the
    indentation stays, as on a line just opened) and ends at the end of its
    last line.
    """
    model = model or TypingModel()
    lines = final_text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    spans = []
    for first, last in regions:
        if not 1 <= first <= last <= len(lines):
            raise ValueError(f"region {first}-{last} is outside the file's {len(lines)} lines")
        start = starts[first - 1] + len(lines[first - 1]) - len(lines[first - 1].lstrip())
        spans.append((start, starts[last] - 1))
    if any(a[1] >= b[0] for a, b in itertools.pairwise(spans)):
        raise ValueError("regions must be in order and must not overlap")
    initial = final_text
    for start, end in reversed(spans):
        initial = initial[:start] + initial[end:]
    recorder = _Recorder(random.Random(seed), model)
    for index, ((first, last), (start, _)) in enumerate(zip(regions, spans, strict=True)):
        # Earlier regions are typed by now and later ones come after this one, so
        # the region starts at the same offset as in the final text.
        move_wait = recorder.uniform(model.first_move_ms if index == 0 else model.later_move_ms)
        recorder.add(move_wait, move=start)
        region_lines = lines[first - 1 : last]
        recorder.type_region(region_lines, recorder.uniform(model.after_move_ms))
    session = Session(
        name=name,
        language_id=language_id,
        path=path,
        initial_text=initial,
        final_text=final_text,
        events=tuple(recorder.events),
        regions=tuple(regions),
        seed=seed,
        source=source,
    )
    played, _ = play(initial, session.events)
    if played != final_text:
        raise AssertionError(f"session {name}: replaying the events does not give the file")
    return session
