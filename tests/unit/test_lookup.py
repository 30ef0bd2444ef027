"""Prompt-lookup drafts: what follows the latest earlier match of the tail."""

from __future__ import annotations

import pytest

from codegemma_lsp.engine.lookup import draft_tokens


@pytest.mark.parametrize(
    ("history", "count", "expected"),
    [
        # The tail (2, 3) occurred before, followed by 4 5 6.
        ([1, 2, 3, 4, 5, 6, 9, 2, 3], 3, [4, 5, 6]),
        # The latest earlier match wins over an older one.
        ([2, 3, 7, 8, 2, 3, 4, 4, 2, 3], 2, [4, 4]),
        # The longest tail wins: (1, 2, 3) is found, not just (2, 3).
        ([2, 3, 9, 1, 2, 3, 5, 1, 2, 3], 1, [5]),
        # A draft stops at the end of the history.
        ([5, 6, 7, 5, 6], 10, [7, 5, 6]),
        # No earlier match, a single-token tail, or no room: no draft.
        ([1, 2, 3, 4], 4, []),
        ([1, 2, 1], 4, []),
        ([1, 2, 3, 1, 2], 0, []),
        ([], 4, []),
    ],
)
def test_draft_tokens(history: list[int], count: int, expected: list[int]) -> None:
    assert draft_tokens(history, count) == expected
