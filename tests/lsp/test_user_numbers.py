"""The user's own numbers over real stdio: accepted text followed through edits and judged
(the server's clock moved on by ``codegemma/debugAdvanceClock``, never waited for), the
daily file written at exit and read back by ``codegemma-lsp stats``, several candidates
as several items, and the slow-server warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.conftest import SERVER
from tests.lsp.test_protocol import (
    COMMENT_CURSOR,
    COMMENT_SOURCE,
    CURSOR,
    _inline,
    _insert,
    _open,
    _server,
    _start,
    _wait_ready,
)

FAKE_TEXT = "pass  # codegemma-fake"


def _delete(client: LanguageClient, uri: str, version: int, start: types.Position, n: int) -> None:
    end = types.Position(line=start.line, character=start.character + n)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=start, end=end), text=""
                )
            ],
        )
    )


async def _user(client: LanguageClient) -> Any:
    stats = await client.protocol.send_request_async("codegemma/stats", {})
    return stats.user


def _env(state: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("CODEGEMMA_LSP_")},
        "CODEGEMMA_LSP_STATE_DIR": str(state),
    }


async def test_accepted_text_is_followed_through_edits_and_judged(tmp_path: Path) -> None:
    state = tmp_path / "state"
    command = [*SERVER, "--backend", "fake", "--debug-clock"]
    async with _server(*command, env=_env(state)) as client:
        await _start(client, tmp_path)
        uri = _open(client, tmp_path)
        await _wait_ready(client)
        result = await _inline(client, uri)
        assert result is not None and result.items[0].insert_text == FAKE_TEXT
        item = result.items[0]
        # The editor inserts the suggestion, then runs its accept command.
        _insert(client, uri, 2, CURSOR, FAKE_TEXT)
        assert item.command is not None
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command=item.command.command, arguments=item.command.arguments
            )
        )
        # Later edits: a comment before the line moves the text; "# codegemma-fake"
        # (16 characters) is deleted from inside it; a word typed after it is not counted.
        _insert(client, uri, 3, types.Position(line=CURSOR.line, character=0), "# ")
        moved = types.Position(line=CURSOR.line, character=CURSOR.character + 2)
        _delete(client, uri, 4, types.Position(line=moved.line, character=moved.character + 6), 16)
        _insert(client, uri, 5, types.Position(line=moved.line, character=moved.character + 6), "x")
        before = await _user(client)
        assert (before.accepted_chars, before.retained_chars, before.pending_accepts) == (22, 0, 1)
        early = await client.protocol.send_request_async(
            "codegemma/debugAdvanceClock", {"seconds": 10}
        )
        assert early.judged_accepts == 0  # not 30 s yet
        judged = await client.protocol.send_request_async(
            "codegemma/debugAdvanceClock", {"seconds": 21}
        )
        assert (judged.judged_accepts, judged.retained_chars) == (1, len("pass  "))
        assert judged.retention == round(6 / 22, 3)
        stats = await client.protocol.send_request_async("codegemma/stats", {})
        assert (stats.shown, stats.accepted) == (1, 1)
    # At exit the numbers went to today's file; `codegemma-lsp stats` reads them back.
    day = json.loads((state / "usage" / f"{date.today().isoformat()}.json").read_text())
    assert (day["shown"], day["accepted"], day["accepted_chars"], day["retained_chars"]) == (
        1,
        1,
        22,
        6,
    )
    assert len(day["latencies_ms"]) == 1
    printed = subprocess.run(
        [sys.executable, "-m", "codegemma_lsp", "stats", "--json"],
        env=_env(state),
        capture_output=True,
        text=True,
        check=True,
    )
    total = json.loads(printed.stdout)["total"]
    assert (total["shown"], total["retained_chars"], total["retention"]) == (1, 6, 0.273)


async def test_a_partial_accept_counts_its_characters(tmp_path: Path) -> None:
    command = [*SERVER, "--backend", "fake", "--debug-clock"]
    async with _server(*command, env=_env(tmp_path / "state")) as client:
        await _start(client, tmp_path)
        uri = _open(client, tmp_path)
        await _wait_ready(client)
        result = await _inline(client, uri)
        assert result is not None
        arguments = result.items[0].command.arguments  # type: ignore[union-attr]
        _insert(client, uri, 2, CURSOR, "pass")
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="codegemma.acceptPartial",
                arguments=[{**arguments[0], "kind": "word", "chars": 4}],
            )
        )
        judged = await client.protocol.send_request_async(
            "codegemma/debugAdvanceClock", {"seconds": 31}
        )
        assert (judged.accepted_partially, judged.accepted_chars, judged.retained_chars) == (
            1,
            4,
            4,
        )


async def test_slow_answers_are_said_once_with_advice(tmp_path: Path) -> None:
    # The fake takes at least 10 ms per answer, over a limit of 1 ms: slow, on any machine.
    options = {"completion": {"slowMs": 1}, "engine": {"cache": False}}
    async with _server(*SERVER, "--backend", "fake:0.01", env=_env(tmp_path / "s")) as client:
        await _start(client, tmp_path, options=options)
        uri = _open(client, tmp_path)
        await _wait_ready(client)
        for _ in range(21):
            assert await _inline(client, uri) is not None
        warnings = [m.message for m in client.messages if "slow" in m.message]
        assert len(warnings) == 1, warnings
        assert "codegemma-lsp doctor" in warnings[0]
        status = client.codegemma_status  # type: ignore[attr-defined]
        assert status.slow is True and "slow" in status.message


@pytest.mark.model
async def test_several_candidates_are_several_items(tiny_model_path: Path, tmp_path: Path) -> None:
    options = {"completion": {"candidates": 3}}
    async with _server(*SERVER, "--model", str(tiny_model_path), env=_env(tmp_path)) as client:
        await _start(client, tmp_path, options=options)
        uri = _open(client, tmp_path, text=COMMENT_SOURCE)
        await _wait_ready(client)
        result = await _inline(client, uri, COMMENT_CURSOR)
        assert result is not None and len(result.items) >= 2
        texts = [item.insert_text for item in result.items]
        assert len(set(texts)) == len(texts)  # no repeats
        ids = [item.command.arguments[0]["id"] for item in result.items]  # type: ignore[union-attr]
        assert len(set(ids)) == len(ids)  # each accept names its own candidate
        completion = await client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=COMMENT_CURSOR
            )
        )
        assert isinstance(completion, types.CompletionList)
        assert [item.sort_text for item in completion.items] == [
            str(i) for i in range(len(completion.items))
        ]
        records = await client.protocol.send_request_async("codegemma/stats", {"records": True})
        model = [r for r in records.records if r.source == "model"]
        assert model[0].candidates == 3 and model[0].evaluated_tokens == model[0].prompt_tokens
