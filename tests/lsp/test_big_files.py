"""Big files, session restores and request storms, through the real server over stdio.

The server runs the fake backend, so every request costs what the server's own work
costs. Nothing here is timed: the checks are on what the server says it did.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codegemma_lsp.documents import MAX_LINE_CHARS
from codegemma_lsp.evals.replay_client import LspProcess, child_env, server_command
from codegemma_lsp.evals.server_process import start_server
from codegemma_lsp.evals.storm_bench import StormOptions, run_storm

SMALL = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    "


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LspProcess]:
    process = LspProcess(server_command(model=None, backend="fake"), cwd=tmp_path, env=child_env())
    try:
        start_server(process, tmp_path, {})
        yield process
    finally:
        process.close()


def open_document(server: LspProcess, path: Path, text: str) -> str:
    uri = path.as_uri()
    item = {"uri": uri, "languageId": "python", "version": 1, "text": text}
    server.notify("textDocument/didOpen", {"textDocument": item})
    return uri


def inline(server: LspProcess, uri: str, line: int, character: int) -> list[Any]:
    params = {
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 1},
    }
    result = server.call("textDocument/inlineCompletion", params)
    items = result.get("items") if isinstance(result, dict) else result
    return list(items or [])


def idle_stats(server: LspProcess, until: Any = None) -> dict[str, Any]:
    """The server's stats once its worker has nothing queued (and ``until`` holds)."""
    deadline = time.monotonic() + 60
    while True:
        stats: dict[str, Any] = server.call("codegemma/stats", {"records": True})
        if stats["worker"]["queued"] == 0 and (until is None or until(stats)):
            return stats
        assert time.monotonic() < deadline, "the server did not go idle"
        time.sleep(0.05)


def test_a_session_restore_prewarms_only_the_newest_document(
    server: LspProcess, tmp_path: Path
) -> None:
    uris = [open_document(server, tmp_path / f"m{i}.py", SMALL) for i in range(100)]

    def prewarmed(stats: dict[str, Any]) -> bool:
        return any(r["source"] == "prewarm" for r in stats["records"])

    stats = idle_stats(server, until=prewarmed)
    prewarms = [r for r in stats["records"] if r["source"] == "prewarm"]
    # One burst of opens pre-warms its newest document; only a pause of the opener
    # longer than the server's wait between them could add another.
    assert 1 <= len(prewarms) < 10
    assert prewarms[-1]["uri"] == uris[-1]
    assert stats["worker"]["submitted"] == len(prewarms)


def test_a_file_over_the_size_limit_keeps_its_text_and_gets_no_completion(
    server: LspProcess, tmp_path: Path
) -> None:
    line = "value = compute(alpha, beta)  # padding\n"
    text = line * (2_100_000 // len(line))  # over completion.maxFileBytes (2 MB)
    uri = open_document(server, tmp_path / "huge.py", text)
    lines = text.split("\n")
    for i in range(40):
        row = (i * 7919) % (len(lines) - 1)
        change = {"range": _range(row, 5, row, 6), "text": "V"}
        server.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": i + 2}, "contentChanges": [change]},
        )
        lines[row] = lines[row][:5] + "V" + lines[row][6:]
    expected = "\n".join(lines).encode()
    digest = server.call("codegemma/documentDigest", {"textDocument": {"uri": uri}})
    assert digest["sha256"] == hashlib.sha256(expected).hexdigest()
    assert digest["version"] == 41
    assert inline(server, uri, 3, 4) == []


def test_a_cursor_on_a_long_line_gets_no_completion(server: LspProcess, tmp_path: Path) -> None:
    blob = "DATA = '" + "x" * (MAX_LINE_CHARS + 10) + "'\n"
    uri = open_document(server, tmp_path / "blob.py", blob + SMALL)
    assert inline(server, uri, 0, 5) == []
    assert inline(server, uri, 0, MAX_LINE_CHARS + 5) == []
    assert inline(server, uri, 6, 4) != []  # the rest of the file still gets completions
    stats = idle_stats(server)
    assert stats["worker"]["submitted"] >= 1


def test_a_storm_answers_every_request_once_one_generation_at_a_time(
    server: LspProcess, tmp_path: Path
) -> None:
    path = tmp_path / "storm.py"
    path.write_text(SMALL, encoding="utf-8")
    options = StormOptions(seconds=2.0, rate=50.0, probe_rate=10.0, settle_s=0.2)
    result = run_storm(server, path, SMALL, options)
    assert result["requests"] == 100
    assert result["answered"] == result["requests"]
    assert result["duplicate_answers"] == 0 and result["stray_messages"] == 0
    assert result["max_concurrent_generations"] == 1
    assert result["loop_answered"] == result["loop_probes"] > 0
    assert result["rss_growth_mb"] is not None


def _range(line: int, character: int, end_line: int, end_character: int) -> dict[str, Any]:
    return {
        "start": {"line": line, "character": character},
        "end": {"line": end_line, "character": end_character},
    }
