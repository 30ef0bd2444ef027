"""Emacs, with eglot and editor-configs/emacs/codegemma-lsp.el, showing and accepting ghost text.

One ``emacs -Q --batch`` run loads the ERT tests in emacs/*.el and runs them all
against one real server (``--backend scripted:``); each ERT test then becomes one
pytest test here. A failure prints the ERT output, eglot's events buffer and the
server's log.

Needs ``emacs`` on PATH and eglot: built into Emacs 29+, and for Emacs 28 Debian's
``elpa-eglot`` (found under /usr/share/emacs/site-lisp/elpa/eglot-*), or a folder
named by ``CODEGEMMA_EGLOT_DIR``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.editors.processes import path_with_our_scripts, run_in_own_group
from tests.hub import TINY_FILE, default_model_env, serve_hub

pytestmark = pytest.mark.editor

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "editor-configs" / "emacs" / "codegemma-lsp.el"
ERT_DIR = Path(__file__).resolve().parent / "emacs"
ERT_FILES = sorted(ERT_DIR.glob("*-test.el"))
ELPA_DIRS = [Path("/usr/share/emacs/site-lisp/elpa"), Path.home() / ".emacs.d" / "elpa"]
SCRIPTED_OUTPUT = "add(1, 2)"  # the ERT tests expect this completion
TIMEOUT_S = 90
LOG_TAIL_CHARS = 6000

_RESULT_LINE = re.compile(r"^\s*(passed|FAILED|skipped)\s+\d+/\d+\s+(\S+)", re.MULTILINE)


def ert_test_names() -> list[str]:
    names: list[str] = []
    for file in ERT_FILES:
        names += re.findall(r"^\(ert-deftest\s+(\S+)", file.read_text(encoding="utf-8"), re.M)
    return names


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name))


def find_eglot_dir(emacs: str) -> Path | None:
    """A folder to put on ``load-path`` for eglot; None when Emacs has it built in.

    Raises LookupError when there is no eglot at all.
    """
    override = os.environ.get("CODEGEMMA_EGLOT_DIR")
    if override:
        return Path(override)
    probe = subprocess.run(
        [emacs, "-Q", "--batch", "--eval", '(princ (if (locate-library "eglot") "yes" "no"))'],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    if probe.stdout.strip() == "yes":
        return None
    candidates = [
        d for elpa in ELPA_DIRS for d in elpa.glob("eglot-*") if (d / "eglot.el").is_file()
    ]
    if not candidates:
        raise LookupError("no eglot: install Debian's elpa-eglot or set CODEGEMMA_EGLOT_DIR")
    return max(candidates, key=_version_key)


@dataclass(frozen=True)
class ErtRun:
    results: dict[str, str]
    returncode: int | None
    output: str
    events: Path
    server_log: Path

    def report(self) -> str:
        parts = [
            f"emacs exit code: {self.returncode}",
            f"--- emacs output (tail) ---\n{self.output[-LOG_TAIL_CHARS * 2 :]}",
        ]
        for path in (self.events, self.server_log):
            text = path.read_text(errors="replace") if path.exists() else "(missing)"
            parts.append(f"--- {path.name} (tail) ---\n{text[-LOG_TAIL_CHARS:]}")
        return "\n".join(parts)


def emacs_command(home: Path, **env_vars: str) -> tuple[list[str], dict[str, str]]:
    """``emacs -Q --batch`` with eglot on its load path, and its environment; skips without."""
    emacs = shutil.which("emacs")
    if emacs is None:
        pytest.skip("emacs is not installed (apt-get install emacs-nox elpa-eglot)")
    try:
        eglot_dir = find_eglot_dir(emacs)
    except LookupError as exc:
        pytest.skip(str(exc))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEGEMMA_LSP_", "EMACS"))}
    env.update(
        HOME=str(home),  # keep eglot and project.el away from the user's ~/.emacs.d
        PATH=path_with_our_scripts(env.get("PATH")),
        # The server runs as `python -m codegemma_lsp` from a source checkout.
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **env_vars,
    )
    command = [emacs, "-Q", "--batch"]
    if eglot_dir is not None:
        command += ["-L", str(eglot_dir)]
    return command, env


@pytest.fixture(scope="module")
def ert_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ErtRun]:
    work = tmp_path_factory.mktemp("emacs")
    project = work / "project"
    project.mkdir()
    scripted = work / "model-output.txt"
    scripted.write_text(SCRIPTED_OUTPUT, encoding="utf-8")
    events = work / "eglot-events.log"
    server_log = work / "server.log"
    server = [
        sys.executable, "-m", "codegemma_lsp", "serve",
        "--backend", f"scripted:{scripted}", "--log-file", str(server_log), "-v",
    ]  # fmt: skip
    command, env = emacs_command(
        work,
        CODEGEMMA_TEST_SERVER=json.dumps(server),
        CODEGEMMA_TEST_DIR=str(project),
        CODEGEMMA_TEST_EVENTS=str(events),
    )
    command += ["-l", "ert", "-l", str(PACKAGE)]
    for file in ERT_FILES:
        command += ["-l", str(file)]
    command += ["-f", "ert-run-tests-batch-and-exit"]
    text, returncode = run_in_own_group(command, cwd=work, env=env, timeout_s=TIMEOUT_S)
    results = {name: status for status, name in _RESULT_LINE.findall(text)}
    yield ErtRun(results, returncode, text, events, server_log)


def test_every_ert_test_ran(ert_run: ErtRun) -> None:
    assert set(ert_run.results) == set(ert_test_names()), ert_run.report()
    assert ert_run.returncode == 0, ert_run.report()


@pytest.mark.parametrize("name", ert_test_names())
def test_ert(ert_run: ErtRun, name: str) -> None:
    assert ert_run.results.get(name) == "passed", f"ERT test {name}\n{ert_run.report()}"


def test_the_readme_setup_runs_as_written(tmp_path: Path, tiny_model_path: Path) -> None:
    """No model path: the server fetches the default model on first use (here the tiny
    model, from a stand-in hub on 127.0.0.1) and eglot sees it ready."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    snippet = readme.split("### Emacs", 1)[1].split("```elisp\n", 1)[1].split("```", 1)[0]
    assert "model" not in snippet, "the README's set-up needs no model path"
    assert "~/src/codegemma-lsp" in snippet
    snippet = snippet.replace("~/src/codegemma-lsp", str(ROOT))
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.py").write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    with serve_hub() as hub:
        command, env = emacs_command(
            tmp_path,
            CODEGEMMA_README_SNIPPET=snippet,
            CODEGEMMA_TEST_DIR=str(project),
            **default_model_env(hub, tmp_path, tiny_model_path.read_bytes()),
        )
        command += ["-l", str(ERT_DIR / "readme-snippet.el")]
        text, returncode = run_in_own_group(command, cwd=tmp_path, env=env, timeout_s=60)
    assert returncode == 0, text[-LOG_TAIL_CHARS:]
    assert f"codegemma-readme: ready {TINY_FILE}" in text, text[-LOG_TAIL_CHARS:]
    assert list((tmp_path / "hf" / "hub").rglob(TINY_FILE)), "downloaded into the HF cache"
