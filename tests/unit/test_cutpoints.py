"""Cut points per language: windows start and end at syntax boundaries, and stay put."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from codegemma_lsp.syntax.cutpoints import (
    LOST,
    Cut,
    Measure,
    Window,
    WindowBudget,
    choose_window,
    shift_window,
)
from codegemma_lsp.syntax.languages import LanguageSpec, default_registry
from codegemma_lsp.syntax.nodes import approx_tokens, is_line_end, is_line_start
from tests.unit.syntax_samples import LANGUAGES, SAMPLES, TYPED_STATEMENT, split_cursor

SYNTAX_KINDS = {"definition", "statement"}
# Lines no window may start on: continuations of an expression, closers, clauses.
NOT_A_START = ("b)", "b);", "}", ")", "else", "elif", "except", "finally", "catch")
# Lines no window may end after: the first lines of unfinished statements.
NOT_AN_END = ("(a,", "(props.a,", "{", ",")


def _spec(name: str) -> LanguageSpec:
    spec = default_registry().by_name(name)
    assert spec is not None
    return spec


def _line_at(source: bytes, offset: int) -> str:
    return source[offset:].split(b"\n", 1)[0].decode()


def _last_line(source: bytes, end: int) -> str:
    return source[:end].rstrip(b"\n").rsplit(b"\n", 1)[-1].decode()


def _offset_of_line(source: bytes, text: str, after: int = 0) -> int:
    """The start of the first line at or after ``after`` that reads exactly ``text``."""
    pos = after
    for line in source[after:].split(b"\n"):
        if line.decode() == text:
            return pos
        pos += len(line) + 1
    raise AssertionError(f"no line {text!r}")


# --- one table for all languages ----------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "comment_line", "if_line", "last_line"),
    [
        pytest.param("python", "# Adds two numbers.", "    if x > 0:", "    return len(s)"),
        pytest.param("javascript", "// Adds two numbers.", "  if (x > 0) {", "}"),
        pytest.param("typescript", "// Adds two numbers.", "  if (x > 0) {", "}"),
        pytest.param("tsx", "// Shows a counter.", "  if (x > 0) {", "}"),
        pytest.param("go", "// Total adds two numbers.", "\tif x > 0 {", "}"),
        pytest.param("java", "    // Adds two numbers.", "        if (x > 0) {", "    }"),
        pytest.param("c", "/* Adds two numbers. */", "    if (x > 0) {", "}"),
        pytest.param("cpp", "// Adds two numbers.", "    if (x > 0) {", "}"),
        pytest.param(
            "csharp", "        // Adds two numbers.", "            if (x > 0)", "        }"
        ),
        pytest.param("kotlin", "// Adds two numbers.", "    if (x > 0) {", "}"),
        pytest.param("rust", "/// Adds two numbers.", "    if x > 0 {", "}"),
    ],
    ids=lambda v: v if v in SAMPLES else "",
)
def test_window_cuts_at_the_definition_the_statement_and_the_definition_end(
    lang: str, comment_line: str, if_line: str, last_line: str
) -> None:
    spec = _spec(lang)
    source, cursor = split_cursor(SAMPLES[lang])
    comment = _offset_of_line(source, comment_line)
    if_start = _offset_of_line(source, if_line)
    body_end = _offset_of_line(source, last_line, after=cursor) + len(last_line) + 1
    # Budgets (in bytes) that just hold the commented definition, the `if`
    # statement and the rest of the function; the rest of the file does not fit.
    budget = WindowBudget(
        prefix_tokens=cursor - comment + 4,
        middle_tokens=cursor - if_start + 4,
        suffix_tokens=body_end - cursor + 4,
        jump_fill=1.0,
    )
    window = choose_window(
        spec.parser().parse(source), source, cursor, budget, language=spec, measure=len
    )
    assert (_line_at(source, window.prefix_start), window.prefix.kind) == (
        comment_line,
        "definition",
    )
    assert (_line_at(source, window.middle_start), window.middle.kind) == (if_line, "statement")
    assert (_last_line(source, window.suffix_end), window.suffix.kind) == (
        last_line,
        "definition",
    )


def test_default_budget_takes_small_files_whole() -> None:
    spec = _spec("python")
    source, cursor = split_cursor(SAMPLES["python"])
    window = choose_window(spec.parser().parse(source), source, cursor, language=spec)
    assert window.prefix == Cut(0, "file-start")
    assert window.suffix == Cut(len(source), "file-end")
    assert window.kind == "file-start"


# --- no cut inside an expression, anywhere -------------------------------------------


def _cursors(source: bytes) -> Iterator[int]:
    pos = 0
    for line in source.split(b"\n"):
        yield pos
        if line.strip():
            yield pos + len(line) // 2
            yield pos + len(line)
        pos += len(line) + 1


def _check_window(source: bytes, window: Window, budget: WindowBudget, measure: Measure) -> None:
    p, m, c, s = window.prefix_start, window.middle_start, window.cursor, window.suffix_end
    assert 0 <= p <= m <= c <= s <= len(source)
    assert measure(source[p:c]) <= budget.prefix_tokens
    assert measure(source[c:s]) <= budget.suffix_tokens
    if window.middle.kind != "cursor":
        assert is_line_start(source, m)
        assert measure(source[m:c]) <= budget.middle_tokens
    for cut in (window.prefix, window.middle):
        if cut.kind in SYNTAX_KINDS:
            assert not _line_at(source, cut.offset).strip().startswith(NOT_A_START)
    if window.prefix.kind not in ("byte-fallback", "cursor"):
        assert is_line_start(source, p)
    if window.suffix.kind not in ("byte-fallback", "cursor"):
        assert is_line_end(source, s)
    if window.suffix.kind in SYNTAX_KINDS:
        assert not _last_line(source, s).strip().endswith(NOT_AN_END)


@pytest.mark.parametrize("lang", [pytest.param(n, id=n) for n in LANGUAGES])
@pytest.mark.parametrize(
    "budget",
    [
        pytest.param(WindowBudget(30, 15, 10), id="tiny"),
        pytest.param(WindowBudget(60, 30, 20), id="small"),
        pytest.param(WindowBudget(120, 40, 40), id="medium"),
    ],
)
def test_no_window_starts_or_ends_inside_an_expression(lang: str, budget: WindowBudget) -> None:
    spec = _spec(lang)
    source, _ = split_cursor(SAMPLES[lang])
    tree = spec.parser().parse(source)
    for cursor in _cursors(source):
        window = choose_window(tree, source, cursor, budget, language=spec)
        assert window.cursor == cursor
        _check_window(source, window, budget, approx_tokens)


# --- hysteresis ---------------------------------------------------------------------


class Typist:
    """Types text at the cursor one character at a time, as an editor would."""

    def __init__(
        self,
        spec: LanguageSpec | None,
        text: str,
        budget: WindowBudget,
        measure: Measure = len,
    ) -> None:
        self.spec = spec
        self.source, self.cursor = split_cursor(text)
        self.budget = budget
        self.measure = measure
        self.window = self._choose(None)

    def _choose(self, previous: Window | None) -> Window:
        tree = self.spec.parser().parse(self.source) if self.spec else None
        return choose_window(
            tree,
            self.source,
            self.cursor,
            self.budget,
            language=self.spec,
            previous=previous,
            measure=self.measure,
        )

    def type(self, text: str) -> Iterator[Window]:
        """Yields the previous window, moved through the edit, after each new choice."""
        for char in text:
            data = char.encode()
            self.source = self.source[: self.cursor] + data + self.source[self.cursor :]
            shifted = shift_window(self.window, self.cursor, self.cursor, self.cursor + len(data))
            self.cursor += len(data)
            self.window = self._choose(shifted)
            yield shifted

    def suffix(self) -> bytes:
        return self.source[self.cursor : self.window.suffix_end]


# Budgets in bytes: the samples' prefixes do not fit whole, and typing one
# statement stays within what a fresh choice leaves free.
TYPING_BUDGET = WindowBudget(prefix_tokens=150, suffix_tokens=100, middle_tokens=80)


@pytest.mark.parametrize(
    "spec_name",
    [pytest.param(n, id=n) for n in LANGUAGES] + [pytest.param(None, id="unknown-language")],
)
def test_typing_inside_the_window_keeps_it_byte_identical(spec_name: str | None) -> None:
    lang = spec_name or "python"
    typist = Typist(_spec(spec_name) if spec_name else None, SAMPLES[lang], TYPING_BUDGET)
    first = typist.window
    assert first.prefix.kind != "file-start", "the test needs a window that could move"
    prompt_start = typist.source[first.prefix_start : first.middle_start]
    suffix = typist.suffix()
    for _ in typist.type(TYPED_STATEMENT[lang]):
        window = typist.window
        assert (window.prefix_start, window.middle_start) == (
            first.prefix_start,
            first.middle_start,
        )
        assert window.prefix.kept and window.middle.kept and window.suffix.kept
        assert typist.source[window.prefix_start : window.middle_start] == prompt_start
        assert typist.suffix() == suffix


@pytest.mark.parametrize(
    "spec_name",
    [pytest.param(n, id=n) for n in LANGUAGES] + [pytest.param(None, id="unknown-language")],
)
def test_a_full_budget_makes_the_start_jump_to_a_boundary(spec_name: str | None) -> None:
    lang = spec_name or "python"
    budget = TYPING_BUDGET
    typist = Typist(_spec(spec_name) if spec_name else None, SAMPLES[lang], budget)
    typed = TYPED_STATEMENT[lang] * 30
    jumps = {"prefix": 0, "middle": 0}
    for previous in typist.type(typed):
        window = typist.window
        _check_window(typist.source, window, budget, len)
        for name, limit in (("prefix", budget.prefix_tokens), ("middle", budget.middle_tokens)):
            old: Cut = getattr(previous, name)
            new: Cut = getattr(window, name)
            if new.offset == old.offset:
                continue
            jumps[name] += 1
            # It moved only because it had to, forward, to a boundary well inside the budget.
            assert len(typist.source[old.offset : typist.cursor]) > limit
            assert new.offset > old.offset
            assert not new.kept
            assert len(typist.source[new.offset : typist.cursor]) <= limit * budget.jump_fill
            if spec_name is not None:
                assert new.kind in SYNTAX_KINDS
    # Each jump frees at least (1 - jump_fill) of the budget.
    for name, limit in (("prefix", budget.prefix_tokens), ("middle", budget.middle_tokens)):
        most = len(typed.encode()) / (limit * (1 - budget.jump_fill)) + 1
        assert 1 <= jumps[name] <= most, (name, jumps)


def test_a_stale_previous_window_is_chosen_afresh() -> None:
    spec = _spec("python")
    source, cursor = split_cursor(SAMPLES["python"])
    tree = spec.parser().parse(source)
    fresh = choose_window(tree, source, cursor, TYPING_BUDGET, language=spec, measure=len)
    # Offsets from another text: mid-line, or past the cursor.
    stale = Window(
        prefix=Cut(fresh.prefix_start + 3, "definition"),
        middle=Cut(cursor + 5, "statement"),
        suffix=Cut(fresh.suffix_end - 2, "definition"),
        cursor=cursor,
    )
    again = choose_window(
        tree, source, cursor, TYPING_BUDGET, language=spec, previous=stale, measure=len
    )
    assert again == fresh


def test_moving_the_cursor_back_above_the_window_starts_afresh() -> None:
    spec = _spec("python")
    source, cursor = split_cursor(SAMPLES["python"])
    tree = spec.parser().parse(source)
    window = choose_window(tree, source, cursor, TYPING_BUDGET, language=spec, measure=len)
    earlier = window.prefix_start - 1
    again = choose_window(
        tree, source, earlier, TYPING_BUDGET, language=spec, previous=window, measure=len
    )
    assert again.prefix_start <= again.middle_start <= earlier
    assert not again.middle.kept


RELOCATION_SOURCE = b"""def a():
    x = 1
    y = 2
    z = 3
    w = 4
    v = 5
    return x
"""


@pytest.mark.parametrize(
    ("moved_to_line", "kept"),
    [
        # The old middle (line 2) still fits jump_fill of the budget: kept.
        (3, True),
        # It fits the budget but not jump_fill of it: chosen afresh, further down.
        (6, False),
    ],
)
def test_after_a_relocation_the_middle_is_kept_only_within_jump_fill(
    moved_to_line: int, kept: bool
) -> None:
    source = RELOCATION_SOURCE
    lines = source.splitlines(keepends=True)
    line_starts = [sum(len(x) for x in lines[:i]) for i in range(len(lines))]
    budget = WindowBudget(prefix_tokens=1000, suffix_tokens=1000, middle_tokens=60, jump_fill=0.5)
    first = line_starts[1] + 4  # typing at the start of "x = 1"
    window = choose_window(None, source, first, budget, measure=len)
    assert window.middle_start == line_starts[1]
    moved = line_starts[moved_to_line] + 4
    # Typed on: the same previous window is kept up to the full budget.
    assert len(source[line_starts[1] : moved]) <= budget.middle_tokens
    typed_on = replace(window, cursor=moved)
    assert choose_window(None, source, moved, budget, previous=typed_on, measure=len).middle.kept
    again = choose_window(None, source, moved, budget, previous=window, measure=len)
    assert again.middle.kept is kept
    assert (again.middle_start == line_starts[1]) is kept


@pytest.mark.parametrize(
    ("middle_fill", "kept"),
    [
        pytest.param(None, True, id="jump_fill: 24 of 30 fits"),
        pytest.param(0.25, False, id="middle_fill: 24 of 15 does not"),
    ],
)
def test_middle_fill_sizes_the_live_region_a_relocation_keeps(
    middle_fill: float | None, kept: bool
) -> None:
    source = RELOCATION_SOURCE
    lines = source.splitlines(keepends=True)
    line_starts = [sum(len(x) for x in lines[:i]) for i in range(len(lines))]
    budget = WindowBudget(
        prefix_tokens=1000,
        suffix_tokens=1000,
        middle_tokens=60,
        jump_fill=0.5,
        middle_fill=middle_fill,
    )
    window = choose_window(None, source, line_starts[1] + 4, budget, measure=len)
    moved = line_starts[3] + 4
    again = choose_window(None, source, moved, budget, previous=window, measure=len)
    assert again.middle.kept is kept
    limit = budget.middle_tokens * (middle_fill or budget.jump_fill)
    assert len(source[again.middle_start : moved]) <= limit


def test_middle_fill_must_be_a_share() -> None:
    with pytest.raises(ValueError, match="middle_fill"):
        WindowBudget(middle_fill=0.0)


# --- edits ----------------------------------------------------------------------------


WINDOW = Window(Cut(10, "definition"), Cut(20, "statement"), Cut(40, "definition"), cursor=30)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param((30, 30, 31), (10, 20, 31, 41), id="insert-at-cursor"),
        pytest.param((20, 20, 25), (10, 20, 35, 45), id="insert-at-middle-start"),
        pytest.param((0, 0, 4), (14, 24, 34, 44), id="insert-above"),
        pytest.param((50, 52, 50), (10, 20, 30, 40), id="delete-below"),
        pytest.param((29, 30, 29), (10, 20, 29, 39), id="backspace"),
        pytest.param((5, 15, 5), (LOST, 10, 20, 30), id="delete-over-prefix-start"),
        pytest.param((35, 45, 36), (10, 20, 30, LOST), id="replace-over-suffix-end"),
    ],
)
def test_shift_window(edit: tuple[int, int, int], expected: tuple[int, int, int, int]) -> None:
    moved = shift_window(WINDOW, *edit)
    assert (moved.prefix_start, moved.middle_start, moved.cursor, moved.suffix_end) == expected
    assert moved.prefix.kind == "definition"


# --- budgets and fallbacks ------------------------------------------------------------


def test_zero_middle_budget_puts_the_middle_at_the_cursor() -> None:
    spec = _spec("go")
    source, cursor = split_cursor(SAMPLES["go"])
    budget = WindowBudget(prefix_tokens=40, suffix_tokens=20, middle_tokens=0)
    window = choose_window(spec.parser().parse(source), source, cursor, budget, language=spec)
    assert window.middle == Cut(cursor, "cursor")
    assert window.prefix.kind in SYNTAX_KINDS


def test_zero_suffix_budget_gives_an_empty_suffix() -> None:
    source, cursor = split_cursor("a = 1\nb = █2\nc = 3\n")
    window = choose_window(None, source, cursor, WindowBudget(100, 0, 10))
    assert window.suffix == Cut(cursor, "cursor")


def test_a_line_longer_than_the_budget_is_cut_between_characters() -> None:
    # A minified line: no line boundary fits, so the cut falls inside the line.
    line = "const é = [" + ", ".join(f"'ü{i}'" for i in range(300)) + "];"
    text = line[:1500] + "█" + line[1500:] + "\n"
    spec = _spec("javascript")
    source, cursor = split_cursor(text)
    budget = WindowBudget(prefix_tokens=40, suffix_tokens=30, middle_tokens=20)
    window = choose_window(spec.parser().parse(source), source, cursor, budget, language=spec)
    assert window.prefix.kind == "byte-fallback"
    assert window.middle.kind == "cursor"
    assert window.suffix.kind == "byte-fallback"
    source[window.prefix_start : window.suffix_end].decode()  # no split character
    assert approx_tokens(source[window.prefix_start : cursor]) <= budget.prefix_tokens
    assert approx_tokens(source[cursor : window.suffix_end]) <= budget.suffix_tokens


def test_a_custom_measure_sets_the_budget_unit() -> None:
    spec = _spec("rust")
    source, cursor = split_cursor(SAMPLES["rust"])

    def lines(text: bytes) -> int:
        return text.count(b"\n")

    budget = WindowBudget(prefix_tokens=6, suffix_tokens=3, middle_tokens=3, jump_fill=1.0)
    window = choose_window(
        spec.parser().parse(source), source, cursor, budget, language=spec, measure=lines
    )
    assert lines(source[window.prefix_start : cursor]) <= 6
    assert lines(source[cursor : window.suffix_end]) <= 3
    assert window.prefix.kind in SYNTAX_KINDS


@pytest.mark.parametrize(
    ("text", "prefix", "suffix"),
    [
        pytest.param("█", Cut(0, "file-start"), Cut(0, "file-end"), id="empty"),
        pytest.param("x = 1█", Cut(0, "file-start"), Cut(5, "file-end"), id="end-of-text"),
        pytest.param("█x = 1\n", Cut(0, "file-start"), Cut(6, "file-end"), id="start-of-text"),
    ],
)
def test_edges_of_the_text(text: str, prefix: Cut, suffix: Cut) -> None:
    spec = _spec("python")
    source, cursor = split_cursor(text)
    window = choose_window(spec.parser().parse(source), source, cursor, language=spec)
    assert (window.prefix, window.suffix) == (prefix, suffix)


def test_cursor_beyond_the_text_is_clamped() -> None:
    window = choose_window(None, b"x = 1\n", 99)
    assert window.cursor == 6


def test_unknown_language_cuts_at_lines_preferring_unindented_ones() -> None:
    text = "".join(f"block{i} {{\n    step{i}()\n}}\n" for i in range(20)) + "█\n"
    source, cursor = split_cursor(text)
    budget = WindowBudget(prefix_tokens=60, suffix_tokens=10, middle_tokens=20)
    window = choose_window(None, source, cursor, budget, measure=len)
    assert window.prefix.kind == "line-fallback"
    assert _line_at(source, window.prefix_start).startswith("block")
    assert is_line_start(source, window.middle_start)


def test_typing_a_new_function_into_a_long_file_never_moves_the_prompt_start() -> None:
    # The case the engine's KV reuse rests on: default budgets, a file longer
    # than the prefix budget, a whole function typed at its end.
    body = split_cursor(SAMPLES["python"])[0].decode()
    text = "".join(body.replace("total", f"total{i}") for i in range(12)) + "\n█\n"
    typist = Typist(_spec("python"), text, WindowBudget(), measure=approx_tokens)
    first = typist.window
    assert first.prefix.kind != "file-start"
    function = (
        "def scale(points, factor):\n"
        '    """Scales every point."""\n'
        "    result = []\n"
        "    for p in points:\n"
        "        result.append(Point(p.x * factor,\n"
        "                            p.y * factor))\n"
        "    return result\n"
    )
    for _ in typist.type(function):
        assert typist.window.prefix_start == first.prefix_start
        assert typist.window.middle_start == first.middle_start


def test_crlf_lines_are_cut_after_their_line_feed() -> None:
    spec = _spec("csharp")
    text = SAMPLES["csharp"].replace("\n", "\r\n")
    source, cursor = split_cursor(text)
    budget = WindowBudget(prefix_tokens=60, suffix_tokens=30, middle_tokens=30)
    window = choose_window(spec.parser().parse(source), source, cursor, budget, language=spec)
    _check_window(source, window, budget, approx_tokens)
    assert window.prefix.kind in SYNTAX_KINDS
    assert source[window.suffix_end - 2 : window.suffix_end] == b"\r\n"


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"jump_fill": 0.0}, id="no-fill"),
        pytest.param({"jump_fill": 1.5}, id="overfill"),
        pytest.param({"prefix_tokens": -1}, id="negative"),
    ],
)
def test_budget_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        WindowBudget(**kwargs)  # type: ignore[arg-type]
