"""Prompt-lookup drafts for speculative decoding.

Code completions often repeat what is already in the prompt: a name, an
argument list, a line like the one above. The draft is what followed the
latest earlier occurrence of the last few tokens; the model then checks all of
it in one batch and keeps the part it agrees with, so greedy output is the same
as without drafts. This follows ``LlamaPromptLookupDecoding`` in
llama-cpp-python, except that it prefers the latest occurrence, which in code
is the nearest and most often the right one.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_NGRAM = 3
MIN_NGRAM = 2


def draft_tokens(
    history: Sequence[int],
    count: int,
    *,
    max_ngram: int = MAX_NGRAM,
    min_ngram: int = MIN_NGRAM,
) -> list[int]:
    """Up to ``count`` tokens that followed the latest earlier match of ``history``'s tail.

    The longest tail (from ``max_ngram`` down to ``min_ngram`` tokens) with an
    earlier occurrence wins; no match, or ``count <= 0``, gives no draft.
    """
    n_history = len(history)
    if count <= 0:
        return []
    for size in range(min(max_ngram, n_history - 1), min_ngram - 1, -1):
        tail = list(history[n_history - size :])
        # Latest first; a match must leave at least one token after it.
        for start in range(n_history - size - 1, -1, -1):
            if list(history[start : start + size]) == tail:
                end = start + size
                return list(history[end : min(end + count, n_history)])
    return []
