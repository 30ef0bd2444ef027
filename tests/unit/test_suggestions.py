from __future__ import annotations

import pytest

from codegemma_lsp.suggestions import Suggestion, SuggestionStore

BEFORE = "def add(a, b):\n    "
AFTER = "\n\nprint(add(1, 2))\n"


def make(text: str = "return a + b") -> tuple[SuggestionStore, Suggestion]:
    store = SuggestionStore()
    return store, store.add("u", BEFORE + AFTER, len(BEFORE), text)


@pytest.mark.parametrize(
    ("document", "cursor", "rest"),
    [
        pytest.param(BEFORE + AFTER, len(BEFORE), "return a + b", id="nothing-typed"),
        pytest.param(BEFORE + "ret" + AFTER, len(BEFORE) + 3, "urn a + b", id="typed-start"),
        pytest.param(BEFORE + "rex" + AFTER, len(BEFORE) + 3, None, id="typed-other"),
        pytest.param(BEFORE + "return a + b" + AFTER, len(BEFORE) + 12, None, id="typed-all"),
        pytest.param("x" + BEFORE + "ret" + AFTER, len(BEFORE) + 4, None, id="edited-before"),
        pytest.param(
            BEFORE + "ret" + AFTER + "#", len(BEFORE) + 3, "urn a + b", id="edit-far-away"
        ),
        pytest.param(BEFORE + "ret" + "x" + AFTER, len(BEFORE) + 3, None, id="edited-after"),
        pytest.param(BEFORE + AFTER, len(BEFORE) - 1, None, id="cursor-before-anchor"),
    ],
)
def test_lookup(document: str, cursor: int, rest: str | None) -> None:
    store, _ = make()
    hit = store.lookup("u", document, cursor)
    assert (hit[1] if hit else None) == rest


def test_rest_that_is_only_whitespace_is_no_answer() -> None:
    store, _ = make("ab  ")
    assert store.lookup("u", BEFORE + "ab" + AFTER, len(BEFORE) + 2) is None


def test_accepted_end() -> None:
    _, item = make()
    assert item.accepted_end(BEFORE + "return a + b" + AFTER) == len(BEFORE) + 12
    assert item.accepted_end(BEFORE + "return a" + AFTER) is None


def test_newest_first_and_bounded() -> None:
    store = SuggestionStore()
    for i in range(10):
        store.add("u", "x" * 20, i, f"s{i}")
    assert store.get("u", 1) is None
    hit = store.lookup("u", "x" * 20, 9)
    assert hit is not None and hit[1] == "s9"


@pytest.mark.parametrize(
    ("typed", "document", "cursor", "silent"),
    [
        pytest.param("", BEFORE + AFTER, len(BEFORE), True, id="the-place"),
        pytest.param("", BEFORE + "r" + AFTER, len(BEFORE) + 1, False, id="typed-on"),
        pytest.param("", BEFORE + AFTER, len(BEFORE) - 1, False, id="elsewhere"),
        pytest.param("", "x" + BEFORE + AFTER, len(BEFORE) + 1, False, id="edited-before"),
        pytest.param("", BEFORE + "x" + AFTER, len(BEFORE), False, id="edited-after"),
        pytest.param("\n    ", BEFORE + "\n    " + AFTER, len(BEFORE) + 5, True, id="after-enter"),
        pytest.param("\n    ", BEFORE + "\n  " + AFTER, len(BEFORE) + 3, False, id="other-indent"),
    ],
)
def test_a_silent_place_is_only_that_place(
    typed: str, document: str, cursor: int, silent: bool
) -> None:
    store = SuggestionStore()
    store.add_silence("u", BEFORE + AFTER, len(BEFORE), typed)
    assert store.silent_at("u", document, cursor) is silent


def test_a_suggestion_for_the_place_ends_its_silence() -> None:
    store = SuggestionStore()
    store.add_silence("u", BEFORE + AFTER, len(BEFORE))
    store.add("u", BEFORE + AFTER, len(BEFORE), "return a + b")
    assert not store.silent_at("u", BEFORE + AFTER, len(BEFORE))
    store.add_silence("u", BEFORE + AFTER, len(BEFORE))
    store.forget("u")
    assert not store.silent_at("u", BEFORE + AFTER, len(BEFORE))
