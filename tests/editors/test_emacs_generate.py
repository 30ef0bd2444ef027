"""Emacs generating code with codegemma-lsp.el, eglot and the tiny model.

One ``emacs -Q --batch`` run (tests/editors/emacs/generate.el) generates three times
against a real server whose ``generate.model`` is the tiny random model: with
``codegemma-lsp-generate`` below a comment, with eglot's code action, and with
``codegemma-lsp-generate`` on a region. What the model writes is nonsense; the test
checks where Emacs put it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.editors.processes import run_in_own_group
from tests.editors.test_emacs import ERT_DIR, LOG_TAIL_CHARS, PACKAGE, emacs_command

pytestmark = [pytest.mark.editor, pytest.mark.model]

SOURCE = "import os\n\n\ndef main():\n    # list the files here\n    pass\n"
COMMENT = "    # list the files here\n"


def test_generate_command_code_action_and_region(tmp_path: Path, tiny_model_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.py").write_text(SOURCE, encoding="utf-8")
    server_log = tmp_path / "server.log"
    events = tmp_path / "eglot-events.log"
    result = tmp_path / "result.json"
    server = [
        sys.executable, "-m", "codegemma_lsp", "serve",
        "--backend", "fake", "--log-file", str(server_log), "-v",
    ]  # fmt: skip
    command, env = emacs_command(
        tmp_path,
        CODEGEMMA_TEST_SERVER=json.dumps(server),
        CODEGEMMA_TEST_DIR=str(project),
        CODEGEMMA_TEST_MODEL=str(tiny_model_path),
        CODEGEMMA_TEST_EVENTS=str(events),
        CODEGEMMA_TEST_RESULT=str(result),
    )
    command += ["-l", str(PACKAGE), "-l", str(ERT_DIR / "generate.el")]
    output, returncode = run_in_own_group(command, cwd=tmp_path, env=env, timeout_s=90)
    values = json.loads(result.read_text(encoding="utf-8")) if result.exists() else {}
    report = "\n".join(
        [
            f"emacs exit code: {returncode}",
            "values: " + json.dumps(values, indent=1),
            f"--- emacs output ---\n{output[-LOG_TAIL_CHARS:]}",
            *(
                f"--- {p.name} ---\n{p.read_text(errors='replace')[-LOG_TAIL_CHARS:]}"
                for p in (events, server_log)
                if p.exists()
            ),
        ]
    )
    assert returncode == 0 and values.get("ok"), report
    assert values["before"] == SOURCE, report
    head, tail = SOURCE.split(COMMENT)
    for key in ("after_command", "after_action"):
        text = values[key]
        assert text.startswith(head + COMMENT) and text.endswith(tail), (key, report)
        inserted = text[len(head + COMMENT) : len(text) - len(tail)]
        assert inserted.strip() and inserted.endswith("\n"), (key, report)
        assert all(line.startswith("    ") for line in inserted.splitlines() if line), report
    assert values["command_answer"]["applied"] is True, report
    assert "Generate code from this comment" in values["action_titles"], report
    region = values["after_region"]
    assert region.startswith(head + "    # "), report
    assert "list the files here" not in region and region.endswith(tail), report
