"""End to end over real stdio with pytest-lsp: capabilities, completions, cancel, load failures."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import SERVER

SOURCE = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    "
CURSOR = types.Position(line=5, character=4)


async def _start(
    client: LanguageClient, tmp: Path, *, encodings: list[str] | None = None, options: Any = None
) -> types.InitializeResult:
    capabilities = types.ClientCapabilities(
        general=types.GeneralClientCapabilities(position_encodings=encodings)
        if encodings
        else None,
        window=types.WindowClientCapabilities(work_done_progress=True),
    )
    return await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities,
            root_uri=tmp.as_uri(),
            initialization_options=options,
        )
    )


def _open(client: LanguageClient, tmp: Path, text: str = SOURCE, name: str = "demo.py") -> str:
    uri = (tmp / name).as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=text
            )
        )
    )
    return uri


async def _wait_ready(client: LanguageClient) -> None:
    """Wait until the server reports its model ready (or failed)."""
    for _ in range(400):
        status = getattr(client, "codegemma_status", None)
        if status is not None and status.state in ("ready", "error"):
            return
        await asyncio.sleep(0.025)


def _ready(client: LanguageClient) -> bool:
    status = getattr(client, "codegemma_status", None)
    return status is not None and status.state == "ready"


def _make_client() -> LanguageClient:
    client = pytest_lsp.make_test_lsp_client()

    @client.feature("codegemma/status")
    def status(ls: LanguageClient, params: Any) -> None:
        ls.codegemma_status = params  # type: ignore[attr-defined]

    return client


@asynccontextmanager
async def _server(
    *command: str,
    configuration: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[LanguageClient]:
    """A client connected to a fresh server; shut down and stopped on the way out."""
    client = _make_client()
    if configuration is not None:
        client.set_configuration(configuration)
    await client.start_io(*command, env=env)
    try:
        yield client
    finally:
        await client.shutdown_session()
        await client.stop()


async def _inline(
    client: LanguageClient, uri: str, position: types.Position = CURSOR
) -> types.InlineCompletionList | None:
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position,
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
    )
    return (
        result
        if isinstance(result, types.InlineCompletionList) or result is None
        else types.InlineCompletionList(items=list(result))
    )


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[*SERVER, "--backend", "fake"], client_factory=_make_client
    )
)
async def fake_client(lsp_client: LanguageClient, tmp_path: Path):  # type: ignore[no-untyped-def]
    lsp_client.init_result = await _start(lsp_client, tmp_path)  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_capabilities_advertised(fake_client: LanguageClient) -> None:
    caps = fake_client.init_result.capabilities  # type: ignore[attr-defined]
    assert (
        caps.inline_completion_provider is not None and caps.inline_completion_provider is not False
    )
    assert caps.completion_provider is not None
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    assert caps.position_encoding == types.PositionEncodingKind.Utf16
    assert "codegemma.accept" in caps.execute_command_provider.commands


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        pytest.param(["utf-8", "utf-16"], "utf-8", id="utf-8-preferred"),
        pytest.param(["utf-32"], "utf-32", id="utf-32"),
        pytest.param(None, "utf-16", id="default"),
    ],
)
async def test_position_encoding_negotiated(
    tmp_path: Path, offered: list[str] | None, chosen: str
) -> None:
    async with _server(*SERVER, "--backend", "fake") as client:
        result = await _start(client, tmp_path, encodings=offered)
        assert result.capabilities.position_encoding == chosen


async def test_inline_completion_with_fake_backend(
    fake_client: LanguageClient, tmp_path: Path
) -> None:
    uri = _open(fake_client, tmp_path)
    await _wait_ready(fake_client)
    result = await _inline(fake_client, uri)
    assert result is not None and len(result.items) == 1
    item = result.items[0]
    assert item.insert_text == "pass  # codegemma-fake"
    assert item.range is not None and item.range.start == CURSOR
    assert item.command is not None and item.command.command == "codegemma.accept"
    await fake_client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=item.command.command, arguments=item.command.arguments)
    )
    stats = await fake_client.protocol.send_request_async("codegemma/stats", {})
    assert stats.accepted == 1 and stats.shown == 1


async def test_completion_returns_the_same_text(
    fake_client: LanguageClient, tmp_path: Path
) -> None:
    uri = _open(fake_client, tmp_path, text="def mul(a, b):\n    ret")
    await _wait_ready(fake_client)
    result = await fake_client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=1, character=7),
        )
    )
    assert isinstance(result, types.CompletionList) and len(result.items) == 1
    item = result.items[0]
    assert item.text_edit is not None
    assert item.text_edit.new_text == "ret" + "pass  # codegemma-fake"
    assert item.text_edit.range.start == types.Position(line=1, character=4)


async def test_incremental_edits_then_completion(
    fake_client: LanguageClient, tmp_path: Path
) -> None:
    uri = _open(fake_client, tmp_path, text="x = 1\n")
    fake_client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=1, character=0),
                        end=types.Position(line=1, character=0),
                    ),
                    text="y = 😀\nz = ",
                )
            ],
        )
    )
    await _wait_ready(fake_client)
    result = await _inline(fake_client, uri, types.Position(line=2, character=4))
    assert result is not None and result.items


async def test_secret_file_gets_nothing(fake_client: LanguageClient, tmp_path: Path) -> None:
    uri = _open(fake_client, tmp_path, text="API_KEY=", name=".env")
    await _wait_ready(fake_client)
    result = await _inline(fake_client, uri, types.Position(line=0, character=8))
    assert result is not None and not result.items


async def test_position_past_the_end_is_clamped(
    fake_client: LanguageClient, tmp_path: Path
) -> None:
    uri = _open(fake_client, tmp_path)
    await _wait_ready(fake_client)
    result = await _inline(fake_client, uri, types.Position(line=999, character=999))
    assert result is not None


async def test_newer_request_cancels_older(tmp_path: Path) -> None:
    # On the wire: the older request is answered -32800 and the newer one gets items.
    # That its job stops at its cancel flag, not after its run, tests/unit/test_service.py
    # checks in-process, with no clock.
    async with _server(*SERVER, "--backend", "fake:1") as client:
        await _start(client, tmp_path)
        uri = _open(client, tmp_path)
        await _wait_ready(client)
        first = asyncio.ensure_future(_inline(client, uri))
        await asyncio.sleep(0.3)
        second = asyncio.ensure_future(_inline(client, uri))
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(first, 10)
        assert getattr(info.value, "code", None) == -32800, info.value
        result = await asyncio.wait_for(second, 10)
        assert result is not None and result.items


async def test_environment_variables_set_the_servers_settings(tmp_path: Path) -> None:
    scripted = tmp_path / "model-output.txt"
    scripted.write_text("from_the_environment()", encoding="utf-8")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CODEGEMMA_LSP_")},
        "CODEGEMMA_LSP_MODEL_BACKEND": f"scripted:{scripted}",
    }
    async with _server(*SERVER, env=env) as client:
        await _start(client, tmp_path)
        uri = _open(client, tmp_path)
        await _wait_ready(client)
        result = await _inline(client, uri)
        assert result is not None and result.items
        assert result.items[0].insert_text == "from_the_environment()"


async def test_bad_settings_fall_back_with_a_message(tmp_path: Path) -> None:
    async with _server(*SERVER, "--backend", "fake") as client:
        await _start(
            client,
            tmp_path,
            options={"completion": {"maxNewTokens": "lots"}, "fim": {"mode": "xyz"}},
        )
        uri = _open(client, tmp_path)
        await _wait_ready(client)
        texts = [m.message for m in client.messages]
        assert any("completion.maxNewTokens" in t for t in texts), texts
        assert any("fim.mode" in t for t in texts), texts
        result = await _inline(client, uri)
        assert result is not None and result.items


# Random weights make random words; in a comment any words are whole syntax, so
# truncation keeps them and the tests can see llama.cpp's output come through.
COMMENT_SOURCE = "def add(a, b):\n    # add the two numbers and \n    return a + b\n"
COMMENT_CURSOR = types.Position(line=1, character=29)


@pytest.mark.model
async def test_inline_completion_with_tiny_model(tiny_model_path: Path, tmp_path: Path) -> None:
    async with _server(*SERVER, "--model", str(tiny_model_path)) as client:
        await _start(client, tmp_path)
        uri = _open(client, tmp_path, text=COMMENT_SOURCE)
        await _wait_ready(client)
        assert _ready(client), client.messages
        result = await _inline(client, uri, COMMENT_CURSOR)
        assert result is not None and len(result.items) == 1
        assert result.items[0].insert_text
        completion = await client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=COMMENT_CURSOR
            )
        )
        assert isinstance(completion, types.CompletionList) and completion.items


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        pytest.param(None, "not found", id="missing"),
        pytest.param("not_gguf_path", "not-a-model.gguf", id="not-gguf"),
        pytest.param("wrong_arch_path", "wrong-arch.gguf", id="wrong-arch"),
    ],
)
async def test_load_failure_is_shown_and_server_keeps_serving(
    request: pytest.FixtureRequest, tmp_path: Path, fixture: str | None, expected: str
) -> None:
    model = tmp_path / "missing.gguf" if fixture is None else request.getfixturevalue(fixture)
    async with _server(*SERVER, "--model", str(model)) as client:
        await _start(client, tmp_path)
        uri = _open(client, tmp_path)
        for _ in range(200):
            if any(m.type == types.MessageType.Error for m in client.messages):
                break
            await asyncio.sleep(0.05)
        errors = [m.message for m in client.messages if m.type == types.MessageType.Error]
        assert errors and expected in errors[0], errors
        assert str(model.name) in errors[0]
        result = await _inline(client, uri)
        assert result is not None and not result.items


async def test_settings_pulled_and_pushed_reload_the_model(tmp_path: Path) -> None:
    # Clients choose the model file, not a test backend (those are command-line only), so
    # each load is seen by the file it names: neither exists, and the error says which.
    pulled, pushed = tmp_path / "pulled.gguf", tmp_path / "pushed.gguf"
    async with _server(
        *SERVER, configuration={"codegemma": {"model": {"path": str(pulled)}}}
    ) as client:
        capabilities = types.ClientCapabilities(
            workspace=types.WorkspaceClientCapabilities(configuration=True),
        )
        await client.initialize_session(
            types.InitializeParams(capabilities=capabilities, root_uri=tmp_path.as_uri())
        )
        await _wait_ready(client)
        status = client.codegemma_status  # type: ignore[attr-defined]
        assert status.state == "error" and str(pulled) in status.message, status
        client.codegemma_status = None  # type: ignore[attr-defined]
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(
                settings={"codegemma": {"model": {"path": str(pushed)}}}
            )
        )
        await _wait_ready(client)
        status = client.codegemma_status  # type: ignore[attr-defined]
        assert status.state == "error" and str(pushed) in status.message, status


def _insert(client: LanguageClient, uri: str, version: int, at: types.Position, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=at, end=at), text=text
                )
            ],
        )
    )


async def _records(client: LanguageClient) -> list[Any]:
    stats = await client.protocol.send_request_async("codegemma/stats", {"records": True})
    return list(stats.records)


async def test_typing_the_suggestion_is_answered_from_the_cache(
    fake_client: LanguageClient, tmp_path: Path
) -> None:
    uri = _open(fake_client, tmp_path)
    await _wait_ready(fake_client)
    first = await _inline(fake_client, uri)
    assert first is not None and first.items[0].insert_text == "pass  # codegemma-fake"
    _insert(fake_client, uri, 2, CURSOR, "pa")
    moved = types.Position(line=CURSOR.line, character=CURSOR.character + 2)
    second = await _inline(fake_client, uri, moved)
    assert second is not None and second.items[0].insert_text == "ss  # codegemma-fake"
    sources = [r.source for r in await _records(fake_client)]
    assert sources == ["model", "cache"]


async def test_accept_precomputes_the_next_suggestion(
    fake_client: LanguageClient, tmp_path: Path
) -> None:
    uri = _open(fake_client, tmp_path)
    await _wait_ready(fake_client)
    first = await _inline(fake_client, uri)
    assert first is not None
    item = first.items[0]
    _insert(fake_client, uri, 2, CURSOR, item.insert_text + "\n    ")
    assert item.command is not None
    await fake_client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=item.command.command, arguments=item.command.arguments)
    )
    after = types.Position(line=CURSOR.line, character=CURSOR.character + len(item.insert_text))
    await asyncio.sleep(0.3)  # the fake precompute runs in the background in a few ms
    result = await _inline(fake_client, uri, after)
    assert result is not None and result.items
    records = await _records(fake_client)
    assert records[-1].source == "cache", records


async def test_an_edit_starts_the_completion_before_the_editor_asks(tmp_path: Path) -> None:
    # engine.eagerStart: the didChange starts the work at the cursor it left (its "eager"
    # record), and the request that follows there is answered from what it made.
    async with _server(*SERVER, "--backend", "fake") as client:
        await _start(client, tmp_path, options={"engine": {"eagerStart": "on"}})
        uri = _open(client, tmp_path)
        await _wait_ready(client)
        _insert(client, uri, 2, CURSOR, "pa")
        for _ in range(400):  # the fake answers in milliseconds; no timing is asserted
            if any(r.source == "eager" for r in await _records(client)):
                break
            await asyncio.sleep(0.025)
        moved = types.Position(line=CURSOR.line, character=CURSOR.character + 2)
        result = await _inline(client, uri, moved)
        assert result is not None and result.items
        sources = [r.source for r in await _records(client)]
        assert sources == ["eager", "cache"], sources


async def test_stats_keep_per_request_records_and_cancel_latencies(tmp_path: Path) -> None:
    async with _server(*SERVER, "--backend", "fake:1") as client:
        await _start(client, tmp_path)
        uri = _open(client, tmp_path)
        await _wait_ready(client)
        first = asyncio.ensure_future(_inline(client, uri))
        await asyncio.sleep(0.3)
        await _inline(client, uri, types.Position(line=0, character=3))
        with pytest.raises(Exception):  # noqa: B017 - the cancelled request's error
            await first
        stats = await client.protocol.send_request_async("codegemma/stats", {"records": True})
        requests = [r for r in stats.records if r.source == "model"]
        assert [r.cancelled for r in requests] == [True, False]
        # Each carries its JSON-RPC id, and the cancelled one the work done before its
        # cancel: written when its job stopped, not when its request was cancelled.
        ids = {r.request_id for r in requests}
        assert None not in ids and len(ids) == 2, requests
        assert requests[0].generated_tokens > 0, requests[0]
        assert stats.cancel_latency_ms.count == 1
