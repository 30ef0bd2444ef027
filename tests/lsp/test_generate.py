"""``codegemma.generate`` end to end, through a real server subprocess over stdio.

The client here is tests/lsp/raw_client.py: it answers the server's own requests
(``workspace/applyEdit``, ``window/workDoneProgress/create``) as an editor would, and
applies the edit to its copy of the text, so each test sees where the code lands.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SERVER
from tests.lsp.raw_client import RawClient

GENERATE = "codegemma.generate"
CAPABILITIES: dict[str, Any] = {
    "window": {"workDoneProgress": True},
    "workspace": {"workspaceEdit": {"documentChanges": True}, "applyEdit": True},
}


def _server(tmp_path: Path, **env: str) -> RawClient:
    """The server with a clean environment: no HF cache but an empty one, ``env`` added."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CODEGEMMA_LSP_")}
    clean.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", **env)
    variables = [f"{key}={value}" for key, value in clean.items()]
    return RawClient(["env", "-i", *variables, *SERVER, "--backend", "fake", "-v"], cwd=tmp_path)


@pytest.fixture
def closing() -> Iterator[list[RawClient]]:
    clients: list[RawClient] = []
    yield clients
    for client in clients:
        if client.proc.poll() is None:
            client.response(client.request("shutdown"))
            client.notify("exit")
        client.close()


def _start(
    closing: list[RawClient], tmp_path: Path, options: dict[str, Any] | None = None, **env: str
) -> RawClient:
    client = _server(tmp_path, **env)
    closing.append(client)
    client.initialize(
        tmp_path,
        capabilities=CAPABILITIES,
        initializationOptions={"codegemma": options or {}},
    )
    # Settings apply once ``initialized`` is handled; the completion model's status says so.
    client.wait_for(
        lambda m: m.get("method") == "codegemma/status" and m["params"]["state"] == "ready"
    )
    return client


def _open(client: RawClient, path: Path, text: str, language: str) -> str:
    uri = path.as_uri()
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": text}},
    )
    return uri


def _position(text: str, marker: str, *, after: bool = False) -> dict[str, int]:
    """The LSP position of ``marker`` in ``text`` (ASCII text: columns are characters)."""
    index = text.index(marker) + (len(marker) if after else 0)
    line = text.count("\n", 0, index)
    return {"line": line, "character": index - (text.rfind("\n", 0, index) + 1)}


def _apply(text: str, edit: dict[str, Any]) -> str:
    lines = text.split("\n")

    def offset(position: dict[str, int]) -> int:
        return sum(len(line) + 1 for line in lines[: position["line"]]) + position["character"]

    start, end = offset(edit["range"]["start"]), offset(edit["range"]["end"])
    return text[:start] + str(edit["newText"]) + text[end:]


def _seen(client: RawClient, predicate: Any, timeout: float = 10) -> dict[str, Any]:
    """The first message, already read or still to come, that satisfies ``predicate``."""
    for message in client.received:
        if predicate(message):
            return message
    return client.wait_for(predicate, timeout)


def _answer(client: RawClient, message: dict[str, Any], result: Any) -> None:
    client.send({"jsonrpc": "2.0", "id": message["id"], "result": result})


def _generate(
    client: RawClient,
    uri: str,
    start: dict[str, int],
    end: dict[str, int] | None = None,
    **extra: Any,
) -> int:
    argument = {"uri": uri, "range": {"start": start, "end": end or start}, **extra}
    return client.request(
        "workspace/executeCommand", {"command": GENERATE, "arguments": [argument]}
    )


def _run_to_edit(
    client: RawClient, request: int, timeout: float = 60
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """Answer the server until the command's response: (its result, the one text edit, the
    $/progress values seen)."""
    edits: list[dict[str, Any]] = []
    progress: list[dict[str, Any]] = []
    while True:
        message = client.wait_for(lambda m: True, timeout)
        method = message.get("method")
        if method == "window/workDoneProgress/create":
            _answer(client, message, None)
        elif method == "$/progress":
            progress.append(message["params"]["value"])
        elif method == "workspace/applyEdit":
            changes = message["params"]["edit"]["documentChanges"]
            assert len(changes) == 1
            edits += changes[0]["edits"]
            _answer(client, message, {"applied": True})
        elif message.get("id") == request and method is None:
            assert "result" in message, message
            assert len(edits) == 1, edits
            return message["result"], edits[0], progress


def _code_actions(client: RawClient, uri: str, position: dict[str, int]) -> list[dict[str, Any]]:
    reply = client.response(
        client.request(
            "textDocument/codeAction",
            {
                "textDocument": {"uri": uri},
                "range": {"start": position, "end": position},
                "context": {"diagnostics": []},
            },
        )
    )
    return list(reply["result"] or [])


# ----- with the tiny model ------------------------------------------------------------------

PYTHON = "import os\n\n\ndef main():\n    # list the files here\n    pass\n"
GO = "package main\n\nfunc main() {\n\t// print the sum of two numbers\n\tx := 1\n}\n"


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "language", "text", "comment", "indent"),
    [
        pytest.param(
            "files.py", "python", PYTHON, "    # list the files here\n", "    ", id="python"
        ),
        pytest.param("main.go", "go", GO, "\t// print the sum of two numbers\n", "\t", id="go"),
    ],
)
def test_generate_inserts_below_the_comment_with_the_tiny_model(
    closing: list[RawClient],
    tmp_path: Path,
    tiny_model_path: Path,
    name: str,
    language: str,
    text: str,
    comment: str,
    indent: str,
) -> None:
    pytest.importorskip("llama_cpp")
    options = {"generate": {"model": str(tiny_model_path), "maxTokens": 24, "nCtx": 1024}}
    client = _start(closing, tmp_path, options)
    uri = _open(client, tmp_path / name, text, language)
    cursor = _position(text, comment.rstrip("\n"), after=True)

    actions = _code_actions(client, uri, cursor)
    assert [a["title"] for a in actions] == ["Generate code from this comment"]
    command = actions[0]["command"]
    assert command["command"] == GENERATE

    request = client.request(
        "workspace/executeCommand",
        {"command": GENERATE, "arguments": command["arguments"]},
    )
    result, edit, progress = _run_to_edit(client, request)
    assert result["applied"] is True, client.stderr
    below = _position(text, comment, after=True)
    assert edit["range"] == {"start": below, "end": below}
    inserted = edit["newText"]
    assert inserted.strip() and inserted.endswith("\n")
    assert all(line.startswith(indent) for line in inserted.splitlines() if line)
    after = _apply(text, edit)
    head = text[: text.index(comment) + len(comment)]
    assert after == head + inserted + text[len(head) :]
    assert progress[0]["kind"] == "begin" and progress[0]["cancellable"] is True
    assert progress[-1]["kind"] == "end"
    log = client.stderr
    assert "generate from=comment" in log
    assert "list the files" not in log and "print the sum" not in log  # no code in logs


# ----- with named fakes -----------------------------------------------------------------------


def test_selection_is_replaced_by_the_scripted_answer(
    closing: list[RawClient], tmp_path: Path
) -> None:
    answer = tmp_path / "answer.txt"
    answer.write_text("Here:\n```python\nys = sorted(xs)\nreturn ys\n```\nDone.\n")
    client = _start(closing, tmp_path, CODEGEMMA_LSP_GENERATE_BACKEND=f"scripted:{answer}")
    text = "def f(xs):\n    sort the list\n    return xs\n"
    uri = _open(client, tmp_path / "f.py", text, "python")
    start = _position(text, "sort the list")
    end = _position(text, "sort the list", after=True)
    actions = client.response(
        client.request(
            "textDocument/codeAction",
            {
                "textDocument": {"uri": uri},
                "range": {"start": start, "end": end},
                "context": {"diagnostics": [], "only": ["refactor"]},
            },
        )
    )["result"]
    assert [a["title"] for a in actions] == ["Generate code from the selection"]
    result, edit, progress = _run_to_edit(client, _generate(client, uri, start, end))
    assert result == {"applied": True, "lines": 2, "whole": True}
    assert _apply(text, edit) == "def f(xs):\n    ys = sorted(xs)\n    return ys\n    return xs\n"
    reports = [p["message"] for p in progress if p["kind"] == "report"]
    assert reports == ["1 line written", "2 lines written"]
    # Only refactor kinds are asked for by an editor that filters: quick fixes get nothing.
    quickfix = client.response(
        client.request(
            "textDocument/codeAction",
            {
                "textDocument": {"uri": uri},
                "range": {"start": start, "end": end},
                "context": {"diagnostics": [], "only": ["quickfix"]},
            },
        )
    )["result"]
    assert not quickfix


def test_an_instruction_argument_needs_no_comment(closing: list[RawClient], tmp_path: Path) -> None:
    answer = tmp_path / "answer.txt"
    answer.write_text("```js\nconsole.log(total);\n```\n")
    client = _start(closing, tmp_path, CODEGEMMA_LSP_GENERATE_BACKEND=f"scripted:{answer}")
    text = "function f(total) {\n  return total;\n}\n"
    uri = _open(client, tmp_path / "f.js", text, "javascript")
    at = _position(text, "return total;", after=True)
    result, edit, _ = _run_to_edit(client, _generate(client, uri, at, instruction="log it"))
    assert result["applied"] is True
    assert _apply(text, edit) == "function f(total) {\n  return total;\n  console.log(total);\n}\n"


def test_without_an_instruction_model_there_is_no_action_and_the_command_says_why(
    closing: list[RawClient], tmp_path: Path
) -> None:
    client = _start(closing, tmp_path)  # generate.model is codegemma-7b-it, not downloaded
    text = "# sort the list\n\n"
    uri = _open(client, tmp_path / "s.py", text, "python")
    at = _position(text, "# sort the list", after=True)
    assert _code_actions(client, uri, at) == []
    request = _generate(client, uri, at)
    reply = client.response(request)
    shown = _seen(
        client, lambda m: m.get("method") == "window/showMessage" and "generate" in str(m)
    )
    assert reply["result"]["applied"] is False
    message = reply["result"]["message"]
    assert "generate.model" in message and "codegemma-7b-it" in message
    assert "codegemma-lsp download codegemma-7b-it" in message
    assert message in shown["params"]["message"]
    # The server keeps serving.
    assert "result" in client.response(client.request("codegemma/stats", {}))


def test_a_comment_with_no_instruction_model_file_names_the_path(
    closing: list[RawClient], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-it.gguf"
    client = _start(closing, tmp_path, {"generate": {"model": str(missing)}})
    text = "# sort the list\n"
    uri = _open(client, tmp_path / "s.py", text, "python")
    reply = client.response(_generate(client, uri, _position(text, "list", after=True)))
    assert reply["result"]["applied"] is False
    assert f"generate.model: there is no file {missing}" in reply["result"]["message"]


@pytest.mark.parametrize("how", ["cancelRequest", "progressCancel"])
def test_cancel_stops_generation_and_inserts_nothing(
    closing: list[RawClient], tmp_path: Path, how: str
) -> None:
    # A named fake that takes a minute over its three lines unless cancelled.
    client = _start(closing, tmp_path, CODEGEMMA_LSP_GENERATE_BACKEND="fake:60")
    text = "# sort the list\n"
    uri = _open(client, tmp_path / "s.py", text, "python")
    request = _generate(client, uri, _position(text, "list", after=True))
    create = client.wait_for(lambda m: m.get("method") == "window/workDoneProgress/create")
    _answer(client, create, None)
    token = create["params"]["token"]
    client.wait_for(
        lambda m: m.get("method") == "$/progress" and m["params"]["value"]["kind"] == "begin"
    )
    if how == "cancelRequest":
        client.notify("$/cancelRequest", {"id": request})
    else:
        client.notify("window/workDoneProgress/cancel", {"token": token})
    reply = client.response(request, timeout=20)
    if how == "cancelRequest":
        assert reply.get("error", {}).get("code") == -32800, reply
    else:
        assert reply.get("result") == {"applied": False, "message": "cancelled"}, reply
    end = _seen(
        client, lambda m: m.get("method") == "$/progress" and m["params"]["value"]["kind"] == "end"
    )
    assert end["params"]["value"]["message"] == "cancelled"
    assert not [m for m in client.received if m.get("method") == "workspace/applyEdit"]
    # The next request runs: the generation thread is free again.
    stats = client.response(client.request("codegemma/stats", {}))
    assert "result" in stats


def test_test_backends_are_refused_from_client_settings(
    closing: list[RawClient], tmp_path: Path
) -> None:
    client = _start(closing, tmp_path, {"generate": {"backend": "fake"}})
    warning = _seen(
        client, lambda m: m.get("method") == "window/showMessage" and "generate.backend" in str(m)
    )
    assert "CODEGEMMA_LSP_GENERATE_BACKEND" in warning["params"]["message"]


if sys.platform == "win32":  # the server is started through env(1)
    pytestmark = pytest.mark.skip("needs env(1)")
