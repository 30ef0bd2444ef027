"""A job superseded by a newer one for its document finishes the prompt micro-batch under
way (the newer prompt shares it); any other cancel stops at once."""

from __future__ import annotations

import threading

from codegemma_lsp.engine.base import CancelToken
from codegemma_lsp.engine.worker import InferenceWorker


def test_supersede_finishes_the_batch_and_cancel_does_not() -> None:
    superseded = CancelToken()
    superseded.supersede()
    assert superseded.cancelled and superseded.finish_batch
    assert superseded.cancelled_at is not None
    superseded.cancel()  # a hard cancel after it wins
    assert not superseded.finish_batch

    cancelled = CancelToken()
    cancelled.cancel()
    cancelled.supersede()  # too late to soften
    assert cancelled.cancelled and not cancelled.finish_batch


def test_a_newer_job_for_the_key_supersedes_and_closing_cancels() -> None:
    worker = InferenceWorker()
    started, release = threading.Event(), threading.Event()

    def blocking(token: CancelToken) -> CancelToken:
        started.set()
        release.wait(5)
        return token

    try:
        first, first_token = worker.submit("doc", blocking)
        started.wait(5)
        _, second_token = worker.submit("doc", lambda token: token)
        assert first_token.cancelled and first_token.finish_batch
        _, background_token = worker.submit("warm:doc", lambda t: t, background=True)
        worker.submit("other", lambda token: token)  # a request supersedes background
        assert background_token.finish_batch
        worker.cancel("doc")  # the document closed: stop at once
        assert second_token.cancelled and not second_token.finish_batch
    finally:
        release.set()
        worker.shutdown()
    assert first.result(5) is first_token
