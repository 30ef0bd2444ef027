from __future__ import annotations

import threading
import time

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
