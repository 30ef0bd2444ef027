"""The real daemon over stdio, its engine a real llama_cpp.server on 127.0.0.1
(``--backend openai --url ...``): a completion is served, and a dead server gives an
error status and an empty answer, not a hang."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SERVER
from tests.lsp.raw_client import RawClient
from tests.remote.conftest import EngineProcess

pytestmark = pytest.mark.model

# Random weights make random words; in a comment any words are whole syntax.
SOURCE = "def add(a, b):\n    # add the two numbers and \n    return a + b\n"


def _inline(client: RawClient, uri: str) -> int:
    return client.request(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": uri},
            "position": {"line": 1, "character": 29},
            "context": {"triggerKind": 2},
        },
    )


def _status(client: RawClient, state: str) -> dict[str, Any]:
    def match(message: dict[str, Any]) -> bool:
        params = message.get("params")
        return (
            message.get("method") == "codegemma/status"
            and isinstance(params, dict)
            and params.get("state") == state
        )

    for seen in client.received:
        if match(seen):
            return seen
    return client.wait_for(match, timeout=60)


def test_completions_through_an_openai_server_and_a_dead_one(
    own_llama_cpp_server: EngineProcess, tmp_path: Path
) -> None:
    engine = own_llama_cpp_server
    client = RawClient(
        [*SERVER, "--backend", "openai", "--url", engine.url, "--n-ctx", "2048", "-v"],
        cwd=tmp_path,
    )
    try:
        client.initialize(tmp_path)
        ready = _status(client, "ready")
        assert ready["params"]["model"] == f"openai {engine.url}"
        uri = (tmp_path / "demo.py").as_uri()
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": SOURCE}},
        )
        reply = client.response(_inline(client, uri), timeout=60)
        items = reply["result"]["items"]
        assert items and items[0]["insertText"]
        stats = client.response(client.request("codegemma/stats", {"records": True}))["result"]
        served = [r for r in stats["records"] if r["source"] == "model" and not r["cancelled"]]
        assert served and served[-1]["generated_tokens"] > 0
        assert served[-1]["network_ms"] > 0
        assert "remote_ms" in stats

        engine.stop()
        client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": 2},
                "contentChanges": [
                    {
                        "range": {
                            "start": {"line": 1, "character": 29},
                            "end": {"line": 1, "character": 29},
                        },
                        # Not what was suggested, so the suggestion cache cannot answer.
                        "text": "\u00a7",
                    }
                ],
            },
        )
        request = client.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": 1, "character": 30},
                "context": {"triggerKind": 2},
            },
        )
        reply = client.response(request, timeout=60)
        assert reply["result"]["items"] == []
        error = _status(client, "error")
        assert engine.url in error["params"]["message"]
        client.response(client.request("shutdown"))
        client.notify("exit")
        assert client.close() == 0
    finally:
        if client.proc.poll() is None:
            client.proc.kill()
        client.close()
