from __future__ import annotations

from codegemma_lsp.engine.snapshots import Snapshot, SnapshotStore


def snap(n: int) -> Snapshot:
    return Snapshot(tokens=(1,) * n, data=b"x" * (100 * n))


def test_lru_evicts_least_recently_used_beyond_budget() -> None:
    store = SnapshotStore(budget_bytes=snap(10).size * 2)
    store.put("a", snap(10))
    store.put("b", snap(10))
    store.put("c", snap(10))
    assert "a" not in store and "b" in store and "c" in store
    assert store.bytes_used == 2 * snap(10).size


def test_take_removes_and_put_replaces() -> None:
    store = SnapshotStore(budget_bytes=10_000)
    store.put("a", snap(1))
    store.put("a", snap(2))
    assert len(store) == 1 and store.bytes_used == snap(2).size
    taken = store.take("a")
    assert taken is not None and len(taken.tokens) == 2
    assert store.take("a") is None and store.bytes_used == 0


def test_snapshot_larger_than_budget_is_not_kept() -> None:
    store = SnapshotStore(budget_bytes=10)
    store.put("a", snap(5))
    assert len(store) == 0
