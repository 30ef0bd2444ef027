"""Context never reads a file that holds a secret, nor one with hard links."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from codegemma_lsp.context.index import ContextIndex
from codegemma_lsp.context.workspace import Workspace
from tests.unit.context_workspaces import make_workspace

PRIVATE_KEY = "-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
PROMPT = [sys.executable, "-m", "codegemma_lsp", "prompt"]
GITHUB_TOKEN = "ghp" + "_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param("keys.py", f'KEY = """{PRIVATE_KEY}"""\n', id="private-key-in-code"),
        pytest.param("deploy.py", f'TOKEN = "{GITHUB_TOKEN}"\n', id="github-token"),
        pytest.param("settings.ini", "[db]\npassword=hunter2\n", id="password-line"),
        pytest.param("pg.txt", "localhost:5432:app:alice:s3cret\n", id="pgpass-line"),
        pytest.param(
            "sa.json", '{"type": "service_account", "project_id": "p"}\n', id="service-account"
        ),
    ],
)
def test_a_file_whose_text_holds_a_secret_is_not_context(
    tmp_path: Path, name: str, text: str
) -> None:
    root = make_workspace(tmp_path, {name: text, "plain.py": "X = 1\n"})
    workspace = Workspace(root, use_git=False)
    assert workspace.read(root / name) is None
    assert workspace.read(root / "plain.py") is not None


def test_an_open_documents_secret_text_is_not_context(tmp_path: Path) -> None:
    root = make_workspace(tmp_path, {"util.py": "X = 1\n"})
    typed = f'TOKEN = "{GITHUB_TOKEN}"\n'
    workspace = Workspace(root, open_text=lambda p: typed, use_git=False)
    assert workspace.read(root / "util.py") is None


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("outside", id="link-to-a-file-outside"),
        pytest.param("inside", id="two-names-inside"),
    ],
)
def test_a_hard_linked_file_is_not_context(tmp_path: Path, where: str) -> None:
    outside = make_workspace(tmp_path / "home", {"notes.py": "PRIVATE = 'outside'\n"})
    root = make_workspace(tmp_path / "ws", {"app.py": "import notes\n", "other.py": "Y = 2\n"})
    target = outside / "notes.py" if where == "outside" else root / "other.py"
    os.link(target, root / "notes.py")
    workspace = Workspace(root, use_git=False)
    assert workspace.read(root / "notes.py") is None
    assert workspace.read(root / "app.py") is not None


def test_the_index_leaves_hard_links_and_secrets_out_of_the_pack(tmp_path: Path) -> None:
    outside = make_workspace(tmp_path / "home", {"notes.py": "def outside_secret(): ...\n"})
    root = make_workspace(
        tmp_path / "ws",
        {
            "app.py": "import notes\nimport keys\nimport util\n\nutil.",
            "keys.py": f'KEY = """{PRIVATE_KEY}"""\n',
            "util.py": "def helper(): ...\n",
        },
    )
    os.link(outside / "notes.py", root / "notes.py")
    index = ContextIndex(root, open_text=lambda path: None)
    files = dict(index.context_for(root / "app.py").files)
    assert "util.py" in files
    assert "notes.py" not in files
    assert "keys.py" not in files
    assert "outside_secret" not in "".join(files.values())


def test_prompt_command_leaves_a_hard_link_out(tmp_path: Path) -> None:
    """End to end through the ``prompt`` command, which packs context as the server does."""
    outside = make_workspace(tmp_path / "home", {"notes.py": "def outside_secret(): ...\n"})
    root = make_workspace(
        tmp_path / "ws",
        {"app.py": "import notes\nimport util\n\nutil.", "util.py": "def helper(): ...\n"},
    )
    os.link(outside / "notes.py", root / "notes.py")
    done = subprocess.run(
        [
            *PROMPT,
            str(root / "app.py"),
            "--line",
            "3",
            "--character",
            "5",
            "--workspace",
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "def helper" in done.stdout
    assert "outside_secret" not in done.stdout


def test_prompt_command_refuses_a_file_whose_text_is_secret(tmp_path: Path) -> None:
    root = make_workspace(tmp_path, {"deploy.py": f'TOKEN = "{GITHUB_TOKEN}"\n'})
    done = subprocess.run(
        [*PROMPT, str(root / "deploy.py"), "--line", "0", "--character", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == (
        "codegemma-lsp: no completion in secret files (deploy.py holds a GitHub token)"
    )
