"""Giving freed memory back: a full collection and a heap trim, now and then."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import pytest

from codegemma_lsp.engine import heap


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def fresh_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_last", float("-inf"))


def test_a_release_collects_cycles_and_waits_its_interval() -> None:
    clock = Clock()
    freed: list[str] = []

    class Holder:
        def __init__(self) -> None:
            self.me = self
            self.payload = bytes(1 << 20)

        def __del__(self) -> None:
            freed.append("holder")

    gc.disable()
    try:
        Holder()
        assert heap.release_free_memory(clock=clock)
        assert freed == ["holder"]
        Holder()
        clock.now += heap.MIN_INTERVAL_S / 2
        assert not heap.release_free_memory(clock=clock)  # too soon: nothing done
        assert freed == ["holder"]
        clock.now += heap.MIN_INTERVAL_S
        assert heap.release_free_memory(clock=clock)
        assert freed == ["holder", "holder"]
    finally:
        gc.enable()


def test_a_release_asked_too_soon_happens_later(monkeypatch: pytest.MonkeyPatch) -> None:
    done: list[bool] = []
    timers: list[FakeTimer] = []

    class FakeTimer:
        def __init__(self, wait: float, function: Callable[[], None]) -> None:
            self.wait, self.function, self.daemon = wait, function, False
            timers.append(self)

        def start(self) -> None:
            pass

    def release() -> bool:
        done.append(True)
        return True

    if heap._pending is not None:  # a real timer left by work in an earlier test
        heap._pending.cancel()
    monkeypatch.setattr(heap, "release_free_memory", release)
    monkeypatch.setattr(heap, "_timer", FakeTimer)
    monkeypatch.setattr(heap, "_pending", None)
    monkeypatch.setattr(heap, "_last", time.monotonic())
    heap.release_free_memory_soon()
    heap.release_free_memory_soon()  # one release waits, not two
    assert len(timers) == 1 and done == []
    assert 0 < timers[0].wait <= heap.MIN_INTERVAL_S
    timers[0].function()  # the interval has passed
    assert done == [True] and heap._pending is None
