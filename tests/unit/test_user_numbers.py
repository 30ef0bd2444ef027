"""The server's side of the user's numbers: accepts found where they were shown, followed
through edits, judged on an injected clock, flushed to the daily file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from codegemma_lsp.documents import Document, TextChange
from codegemma_lsp.stats import RequestRecord, Stats
from codegemma_lsp.usage import load_day
from codegemma_lsp.user_numbers import UserNumbers

URI = "file:///w/a.py"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def setup(text: str, tmp_path: Path) -> tuple[Document, UserNumbers, Clock]:
    document = Document(URI, text)
    clock = Clock()
    numbers = UserNumbers(
        Stats(), lambda uri: document if uri == URI else None, clock=clock, directory=tmp_path
    )
    return document, numbers, clock


def edit(document: Document, numbers: UserNumbers, start: int, end: int, text: str) -> None:
    revision = document.revision
    document.apply_changes(
        [TextChange(document.position_at(start), document.position_at(end), text)]
    )
    numbers.edited(URI, document.edits_since(revision) or [])


def test_an_accept_is_followed_from_where_it_was_shown(tmp_path: Path) -> None:
    document, numbers, clock = setup("x = \n", tmp_path)
    numbers.shown(URI, 4, [("foo(1)", 7), ("bar(2)", 8)])
    edit(document, numbers, 4, 4, "bar(2)")  # the user cycled to the second and took it
    numbers.accepted(URI, 8)
    edit(document, numbers, 0, 0, "# é\n")  # a line above, with a multibyte character
    edit(document, numbers, 12, 13, "")  # "bar(2)" loses its "2"
    clock.now = 29
    assert numbers.tick() == 0
    clock.now = 31
    assert numbers.tick() == len("bar()")
    user = numbers.stats.user_numbers()
    assert (user["shown"], user["accepted"], user["accepted_chars"], user["retained_chars"]) == (
        1,
        1,
        6,
        5,
    )


def test_partial_accepts_follow_each_part(tmp_path: Path) -> None:
    document, numbers, clock = setup("x = \n", tmp_path)
    numbers.shown(URI, 4, [("foo(bar)", 3)])
    edit(document, numbers, 4, 4, "foo")
    numbers.accepted(URI, 3, chars=3)
    edit(document, numbers, 7, 7, "(bar)")  # then the rest, whole
    numbers.accepted(URI, 3)
    clock.now = 100
    numbers.tick()
    stats = numbers.stats
    assert (stats.accepted_partially, stats.accepted) == (1, 1)
    assert (stats.retention.accepted_chars, stats.retention.retained_chars) == (8, 8)


def test_an_accept_not_found_is_counted_but_not_followed(tmp_path: Path) -> None:
    _, numbers, _ = setup("x = \n", tmp_path)
    numbers.shown(URI, 4, [("foo()", 1)])
    numbers.accepted(URI, 1)  # the editor inserted nothing we can see
    numbers.accepted(URI, 99)  # an id never shown
    assert numbers.stats.accepted == 2 and numbers.stats.retention.pending == 0


def test_closing_and_finishing_judge_at_once(tmp_path: Path) -> None:
    document, numbers, _ = setup("x = \n", tmp_path)
    numbers.shown(URI, 4, [("foo()", 1)])
    edit(document, numbers, 4, 4, "foo()")
    numbers.accepted(URI, 1)
    numbers.stats.record(RequestRecord.from_generation(URI, "model", 120.0, None))
    numbers.finish()  # at exit: judged as it stands, then flushed
    day = load_day(date.today().isoformat(), tmp_path)
    assert (day.shown, day.accepted, day.retained_chars, day.requests) == (1, 1, 5, 1)
    assert day.latencies_ms == [120.0]
    numbers.flush()  # nothing new: nothing added
    assert load_day(day.day, tmp_path).shown == 1
