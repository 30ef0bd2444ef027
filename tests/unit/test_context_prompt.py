"""``codegemma-lsp prompt``: the scenarios of the repository-context issue, end to end.

For a scratch workspace where the file imports a helper and a test tests the file:
the helper's path and text come before the file's path, joined by
``<|file_separator|>``; the test sees the file as context; a ``.env`` beside them
never shows; and the context is byte-identical across a keystroke.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from codegemma_lsp.context.index import ContextIndex
from codegemma_lsp.prompt_cli import (
    PromptError,
    add_prompt_parser,
    build_prompt_text,
    find_workspace,
)
from tests.unit.context_workspaces import HAS_GIT, make_workspace

SEP = "<|file_separator|>"
SECRET = "TOKEN=hunter2-do-not-leak"


@dataclass(frozen=True)
class Scenario:
    files: dict[str, str]
    app: str
    helper: str
    test: str
    cursor: tuple[int, int]
    """A position inside a function body of ``app``."""
    keystroke: tuple[int, str]
    """(line, text) inserted into ``app`` between two calls."""


PYTHON = Scenario(
    files={
        "app.py": "from util import double\n\n\ndef run(x):\n    return double(x) + 1\n",
        "util.py": "def double(x):\n    return 2 * x\n",
        "tests/test_app.py": "from app import run\n\n\ndef test_run():\n    assert run(1) == 3\n",
    },
    app="app.py",
    helper="util.py",
    test="tests/test_app.py",
    cursor=(4, 4),
    keystroke=(4, "    y = x\n"),
)

TYPESCRIPT = Scenario(
    files={
        "src/app.ts": (
            'import { double } from "./util";\n\nexport function run(x: number): number {\n'
            "  return double(x) + 1;\n}\n"
        ),
        "src/util.ts": "export function double(x: number): number {\n  return 2 * x;\n}\n",
        "src/app.test.ts": (
            'import { run } from "./app";\n\ntest("run", () => {\n  expect(run(1)).toBe(3);\n});\n'
        ),
        "package.json": '{"name": "demo"}\n',
    },
    app="src/app.ts",
    helper="src/util.ts",
    test="src/app.test.ts",
    cursor=(3, 2),
    keystroke=(3, "  const y = x;\n"),
)

GO = Scenario(
    files={
        "go.mod": "module example.com/demo\n\ngo 1.22\n",
        "app.go": (
            'package demo\n\nimport "example.com/demo/util"\n\nfunc Run(x int) int {\n'
            "\treturn util.Double(x) + 1\n}\n"
        ),
        "util/util.go": "package util\n\nfunc Double(x int) int {\n\treturn 2 * x\n}\n",
        "app_test.go": (
            'package demo\n\nimport "testing"\n\nfunc TestRun(t *testing.T) {\n'
            "\tif Run(1) != 3 {\n\t\tt.Fail()\n\t}\n}\n"
        ),
    },
    app="app.go",
    helper="util/util.go",
    test="app_test.go",
    cursor=(5, 1),
    keystroke=(5, "\ty := x\n"),
)

SCENARIOS = [
    pytest.param(PYTHON, id="python"),
    pytest.param(TYPESCRIPT, id="typescript"),
    pytest.param(GO, id="go"),
]


@pytest.fixture(params=[True, False] if HAS_GIT else [False], ids=["git", "no-git"])
def git(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def workspace_of(tmp_path: Path, scenario: Scenario, git: bool) -> Path:
    files = dict(scenario.files)
    folder = str(Path(scenario.app).parent)
    prefix = "" if folder == "." else folder + "/"
    files[prefix + ".env"] = SECRET + "\n"
    return make_workspace(tmp_path / "ws", files, git=git)


def context_part(prompt: str, rel: str) -> str:
    """Everything before the current file's path line."""
    marker = f"{SEP}{rel}\n<|fim_prefix|>"
    assert marker in prompt
    return prompt[: prompt.index(marker) + len(SEP)]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_helper_comes_before_the_file(tmp_path: Path, scenario: Scenario, git: bool) -> None:
    root = workspace_of(tmp_path, scenario, git)
    prompt, _ = build_prompt_text(root / scenario.app, *scenario.cursor, workspace=root)
    helper_block = f"{scenario.helper}\n{scenario.files[scenario.helper]}{SEP}"
    assert prompt.startswith("<bos>")
    assert helper_block in prompt
    assert prompt.index(helper_block) < prompt.index(f"{SEP}{scenario.app}\n<|fim_prefix|>")
    assert SECRET not in prompt and ".env" not in prompt


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_test_sees_the_file(tmp_path: Path, scenario: Scenario, git: bool) -> None:
    root = workspace_of(tmp_path, scenario, git)
    prompt, packed = build_prompt_text(root / scenario.test, 0, 0, workspace=root)
    app_block = f"{scenario.app}\n{scenario.files[scenario.app]}{SEP}"
    assert app_block in prompt
    assert prompt.index(app_block) < prompt.index(f"{SEP}{scenario.test}\n<|fim_prefix|>")
    # The file under test comes after what it imports.
    assert [rel for rel, _ in packed.files] == [scenario.helper, scenario.app]
    assert SECRET not in prompt


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_context_is_byte_identical_across_a_keystroke(
    tmp_path: Path, scenario: Scenario, git: bool
) -> None:
    root = workspace_of(tmp_path, scenario, git)
    app = root / scenario.app
    before = app.read_text()
    line, typed = scenario.keystroke
    lines = before.splitlines(keepends=True)
    after = "".join([*lines[:line], typed, *lines[line:]])
    first, _ = build_prompt_text(app, *scenario.cursor, workspace=root)
    app.write_text(after)
    second, _ = build_prompt_text(app, line, len(typed) - 1, workspace=root)
    assert first != second
    assert context_part(first, scenario.app) == context_part(second, scenario.app)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_kept_index_returns_the_same_pack_across_a_keystroke(
    tmp_path: Path, scenario: Scenario
) -> None:
    root = workspace_of(tmp_path, scenario, False)
    app = root / scenario.app
    texts = {app: app.read_text()}
    index = ContextIndex(root, open_text=texts.get, use_git=False)
    first, packed = build_prompt_text(app, *scenario.cursor, index=index, text=texts[app])
    line, typed = scenario.keystroke
    lines = texts[app].splitlines(keepends=True)
    texts[app] = "".join([*lines[:line], typed, *lines[line:]])
    index.notify_changed(app)
    second, again = build_prompt_text(app, line, len(typed) - 1, index=index, text=texts[app])
    assert again is packed
    assert context_part(first, scenario.app) == context_part(second, scenario.app)


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="codegemma-lsp")
    add_prompt_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def test_the_command_prints_only_the_prompt(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    root = workspace_of(tmp_path, PYTHON, HAS_GIT)
    code = run_cli(
        ["prompt", str(root / "app.py"), "--line", "4", "--character", "4", "--fim-mode", "psm"]
    )
    out, _ = capfd.readouterr()
    assert code == 0
    assert out == (
        "<bos>util.py\ndef double(x):\n    return 2 * x\n<|file_separator|>"
        "tests/test_app.py\nfrom app import run\n\n\ndef test_run():\n    assert run(1) == 3\n"
        "<|file_separator|>app.py\n<|fim_prefix|>from util import double\n\n\ndef run(x):\n"
        "    <|fim_suffix|>return double(x) + 1\n<|fim_middle|>"
    )


def test_the_command_takes_a_fim_mode(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    root = workspace_of(tmp_path, PYTHON, False)
    argv = ["prompt", str(root / "app.py"), "--line", "4", "--character", "4"]
    assert run_cli([*argv, "--workspace", str(root), "--fim-mode", "spm", "-v"]) == 0
    out, err = capfd.readouterr()
    assert out.endswith(
        "<|fim_suffix|>return double(x) + 1\n<|fim_prefix|>"
        "from util import double\n\n\ndef run(x):\n    <|fim_middle|>"
    )
    assert "context: 2 files" in err


def test_the_command_refuses_secret_files(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    root = workspace_of(tmp_path, PYTHON, False)
    assert run_cli(["prompt", str(root / ".env"), "--line", "0", "--character", "0"]) == 1
    out, err = capfd.readouterr()
    assert out == ""
    assert "secret" in err
    with pytest.raises(PromptError):
        build_prompt_text(root / ".env", 0, 0)


def test_the_workspace_defaults_to_the_nearest_git_folder(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "repo", {"pkg/a.py": ""})
    (root / ".git").mkdir()
    assert find_workspace(root / "pkg" / "a.py") == root
    plain = make_workspace(tmp_path / "plain", {"b.py": ""})
    assert find_workspace(plain / "b.py") == plain


def test_the_installed_command_prints_the_same_prompt(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = workspace_of(tmp_path, GO, False)
    expected, _ = build_prompt_text(root / GO.app, *GO.cursor, workspace=root)
    line, character = GO.cursor
    argv = ["prompt", str(root / GO.app), "--line", str(line), "--character", str(character)]
    done = subprocess.run(
        [sys.executable, "-m", "codegemma_lsp", *argv, "--workspace", str(root)],
        capture_output=True,
        check=True,
    )
    assert done.stdout.decode("utf-8") == expected
