"""Black-box post-processing: a scripted raw output through the real server comes back cut."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.conftest import SERVER

CURSOR = "█"

# (id, file name, language id, document with a cursor mark, raw model output, expected text)
CASES = [
    (
        "python-run-on",
        "a.py",
        "python",
        "def add(a, b):\n    █\n",
        "return a + b\n\n\ndef unrelated():\n    pass\n",
        "return a + b",
    ),
    (
        "python-repeats-suffix-line",
        "b.py",
        "python",
        "def f(x):\n    y = x * 2\n    █\n    return y\n",
        "y += 1\n    return y\n",
        "y += 1",
    ),
    (
        "javascript-run-on",
        "a.js",
        "javascript",
        "function add(a, b) {\n  █\n}\n",
        "return a + b;\n}\n\nfunction other() {\n  return 1;\n}\n",
        "return a + b;",
    ),
    (
        "javascript-repeats-closer",
        "b.js",
        "javascript",
        "const xs = [1, 2].map((x) => {\n  █\n});\n",
        "return x * 2;\n});\n",
        "return x * 2;",
    ),
    (
        "go-run-on",
        "a.go",
        "go",
        "package main\n\nfunc add(a, b int) int {\n\t█\n}\n",
        "return a + b\n}\n\nfunc other() int {\n\treturn 1\n}\n",
        "return a + b",
    ),
    (
        "go-repeats-closer",
        "b.go",
        "go",
        "package main\n\nfunc f(x int) int {\n\tif x > 0 {\n\t\t█\n\t}\n\treturn x\n}\n",
        "x--\n\t}\n\treturn x\n}\n",
        "x--",
    ),
    (
        "java-run-on",
        "A.java",
        "java",
        "class A {\n    int add(int a, int b) {\n        █\n    }\n}\n",
        "return a + b;\n    }\n\n    int other() {\n        return 1;\n    }\n}\n",
        "return a + b;",
    ),
    (
        "java-repeats-closer",
        "B.java",
        "java",
        "class B {\n    void f(int x) {\n        if (x > 0) {\n"
        "            █\n        }\n    }\n}\n",
        "x--;\n        }\n    }\n}\n",
        "x--;",
    ),
    (
        "rust-run-on",
        "a.rs",
        "rust",
        "fn add(a: i32, b: i32) -> i32 {\n    █\n}\n",
        "a + b\n}\n\nfn other() -> i32 {\n    1\n}\n",
        "a + b",
    ),
    (
        "rust-repeats-closer-in-call",
        "b.rs",
        "rust",
        'fn main() {\n    println!("{}", █);\n}\n',
        "add(1, 2));\n}\n",
        "add(1, 2)",
    ),
]


def _position(document: str) -> tuple[str, types.Position]:
    before, _, after = document.partition(CURSOR)
    lines = before.split("\n")
    # Test documents are ASCII before the cursor, so UTF-16 columns are str columns.
    return before + after, types.Position(line=len(lines) - 1, character=len(lines[-1]))


async def _wait_ready(client: LanguageClient, model: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = getattr(client, "codegemma_status", None)
        if status is not None and status.state == "ready" and status.model.endswith(model):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"server never became ready with {model}")


async def test_scripted_output_is_truncated_per_language(tmp_path: Path) -> None:
    client = pytest_lsp.make_test_lsp_client()

    @client.feature("codegemma/status")
    def status(ls: LanguageClient, params: Any) -> None:
        ls.codegemma_status = params  # type: ignore[attr-defined]

    script = tmp_path / "raw.txt"
    script.write_text("")
    # Test backends come from the command line only; this one rereads its file per request.
    await client.start_io(*SERVER, "--backend", f"scripted:{script}")
    failures = []
    try:
        await client.initialize_session(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(), root_uri=tmp_path.as_uri()
            )
        )
        await _wait_ready(client, script.name)
        for case_id, name, language_id, marked, raw, expected in CASES:
            script.write_text(raw)
            text, position = _position(marked)
            uri = (tmp_path / name).as_uri()
            client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    text_document=types.TextDocumentItem(
                        uri=uri, language_id=language_id, version=1, text=text
                    )
                )
            )
            result = await client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=position,
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Automatic
                    ),
                )
            )
            items = list(result.items) if isinstance(result, types.InlineCompletionList) else []
            got = items[0].insert_text if items else None
            if got != expected:
                failures.append(f"{case_id}: expected {expected!r}, got {got!r}")
    finally:
        await client.shutdown_session()
        await client.stop()
    assert not failures, "\n".join(failures)


def test_cases_cover_the_five_languages_the_issue_names() -> None:
    assert {c[2] for c in CASES} >= {"python", "javascript", "go", "java", "rust"}
