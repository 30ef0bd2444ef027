"""An LRU of KV-cache snapshots per document, bounded in bytes.

Switching files would otherwise throw away the previous file's evaluated
prompt: the snapshot keeps it (Gemma 2B's multi-query cache is about 18 KB a
token), so coming back costs a copy instead of re-evaluating the prompt.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Snapshot:
    tokens: tuple[int, ...]
    """The token ids the saved cache holds, in order."""
    data: bytes
    """llama.cpp's sequence state (the KV cells of those tokens)."""

    @property
    def size(self) -> int:
        return len(self.data) + 8 * len(self.tokens)


class SnapshotStore:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._items: OrderedDict[str, Snapshot] = OrderedDict()
        self._bytes = 0

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def put(self, key: str, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` for ``key``, evicting the least recently used beyond the budget."""
        self.discard(key)
        if snapshot.size > self.budget_bytes:
            return
        self._items[key] = snapshot
        self._bytes += snapshot.size
        while self._bytes > self.budget_bytes:
            _, evicted = self._items.popitem(last=False)
            self._bytes -= evicted.size

    def take(self, key: str) -> Snapshot | None:
        """Remove and return the snapshot for ``key`` (the live context now holds it)."""
        snapshot = self._items.pop(key, None)
        if snapshot is not None:
            self._bytes -= snapshot.size
        return snapshot

    def discard(self, key: str) -> None:
        self.take(key)
