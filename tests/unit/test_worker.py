from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from codegemma_lsp.engine.base import CancelToken
from codegemma_lsp.engine.worker import InferenceWorker


def test_newer_job_for_same_key_cancels_older() -> None:
    worker = InferenceWorker()
    started = threading.Event()

    def slow(cancel: CancelToken) -> str:
        started.set()
        for _ in range(500):
            if cancel.cancelled:
                return "cancelled"
            time.sleep(0.01)
        return "finished"

    first, first_token = worker.submit("doc", slow)
    started.wait(2)
    second, _ = worker.submit("doc", lambda cancel: "second")
    assert first_token.cancelled
    assert first.result(2) == "cancelled"
    assert second.result(2) == "second"
    worker.shutdown()


def test_other_keys_are_not_cancelled() -> None:
    worker = InferenceWorker()
    _, token_a = worker.submit("a", lambda cancel: time.sleep(0.05))
    _, token_b = worker.submit("b", lambda cancel: None)
    assert not token_a.cancelled and not token_b.cancelled
    worker.shutdown()


def test_jobs_run_on_one_thread() -> None:
    worker = InferenceWorker()
    names = [
        worker.submit(str(i), lambda cancel: threading.current_thread().name)[0] for i in range(5)
    ]
    assert len({f.result(2) for f in names}) == 1
    worker.shutdown()


def test_background_jobs_give_way_to_foreground_jobs() -> None:
    latencies: list[float] = []
    worker = InferenceWorker(on_cancel_latency=latencies.append)
    started = threading.Event()

    def warm(cancel: CancelToken) -> str:
        started.set()
        while not cancel.cancelled:
            time.sleep(0.001)
        return "stopped"

    background, token = worker.submit("prewarm:a", warm, background=True)
    started.wait(2)
    foreground, _ = worker.submit("b", lambda cancel: "answer")
    assert token.cancelled
    assert background.result(2) == "stopped"
    assert foreground.result(2) == "answer"
    assert len(latencies) == 1 and latencies[0] < 100
    worker.shutdown()


def test_a_job_cancelled_while_queued_never_runs() -> None:
    latencies: list[float] = []
    worker = InferenceWorker(on_cancel_latency=latencies.append)
    release = threading.Event()
    ran: list[str] = []

    def blocker(cancel: CancelToken) -> str:
        release.wait(5)
        return "blocker"

    def job(name: str) -> Callable[[CancelToken], str]:
        def run(cancel: CancelToken) -> str:
            ran.append(name)
            return name

        return run

    first, _ = worker.submit("busy", blocker)
    superseded, superseded_token = worker.submit("doc", job("superseded"))
    dropped, _ = worker.submit("other", job("dropped"))
    newest, _ = worker.submit("doc", job("newest"))
    worker.cancel("other")
    assert superseded_token.cancelled
    release.set()
    assert newest.result(5) == "newest"
    assert first.result(5) == "blocker"
    assert superseded.cancelled() and dropped.cancelled()
    assert ran == ["newest"]
    assert latencies == []  # only work that ran has a cancel latency
    worker.run_exclusive(lambda: None).result(5)  # every job's bookkeeping is done
    counts = worker.counts
    assert (counts.submitted, counts.ran, counts.skipped) == (4, 2, 2)
    assert (counts.queued, counts.max_queued, counts.running, counts.max_running) == (0, 4, 0, 1)
    worker.shutdown()


def test_a_job_that_raises_hands_the_error_to_its_future() -> None:
    worker = InferenceWorker()

    def broken(cancel: CancelToken) -> None:
        raise RuntimeError("boom")

    future, _ = worker.submit("doc", broken)
    with pytest.raises(RuntimeError, match="boom"):
        future.result(5)
    worker.shutdown()


def test_shutdown_cancels_the_futures_of_queued_jobs() -> None:
    worker = InferenceWorker()
    release = threading.Event()
    worker.submit("busy", lambda cancel: release.wait(5))
    queued, _ = worker.submit("doc", lambda cancel: "never")
    worker.shutdown()
    release.set()
    assert queued.cancelled()
