"""The VS Code extension in a real, headless VS Code (code-server) driven by Chromium.

The tools are big and come from registries, so they are installed once by
``tests/editors/vscode/setup.sh`` under ``$CODEGEMMA_VSCODE_TOOLS`` (default
``~/.cache/codegemma-lsp-test/vscode``); without them these tests skip and say
so. The tests themselves touch no network: the .vsix is built from the working
tree with the dependencies that setup installed, and the server runs with the
scripted backend, so no model is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTENSION_DIR = ROOT / "editor-configs" / "vscode"
DRIVER = Path(__file__).resolve().parent / "vscode" / "drive.js"
SETUP = "tests/editors/vscode/setup.sh"
CHROMIUM = Path("/usr/bin/chromium")
EXTENSION_ID = "codegemma.codegemma-lsp"
LOG_TAIL_CHARS = 6000

pytestmark = pytest.mark.editor


@dataclass(frozen=True)
class Tools:
    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def node(self) -> Path:
        return self.bin / "node"

    @property
    def code_server(self) -> Path:
        return (
            self.root / "code-server" / "node_modules" / "code-server" / "out" / "node" / "entry.js"
        )

    @property
    def playwright(self) -> Path:
        return self.root / "code-server" / "node_modules" / "playwright-core"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        # The extension host passes this on to the server, which then imports
        # this checkout's package even when it is not installed.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        return env

    def missing(self) -> list[str]:
        wanted = {
            "Node 24": self.node,
            "code-server": self.code_server,
            "playwright-core": self.playwright / "package.json",
            "Chromium": CHROMIUM,
            "the extension's npm dependencies": EXTENSION_DIR
            / "node_modules"
            / "vscode-languageclient",
        }
        return [name for name, path in wanted.items() if not path.exists()]


def tools_root() -> Path:
    configured = os.environ.get("CODEGEMMA_VSCODE_TOOLS")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "codegemma-lsp-test" / "vscode"


@pytest.fixture(scope="module")
def tools() -> Tools:
    found = Tools(tools_root())
    missing = found.missing()
    if missing:
        pytest.skip(f"VS Code test tools missing ({', '.join(missing)}): run bash {SETUP}")
    return found


def run(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}:\n{output[-LOG_TAIL_CHARS:]}")
    return output


@pytest.fixture(scope="module")
def vsix(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The extension packaged from the working tree (tsc, then vsce with its runtime deps)."""
    out = tmp_path_factory.mktemp("vsix") / "codegemma-lsp.vsix"
    npm = str(tools.bin / "npm")
    run(
        [npm, "run", "package", "--", "--out", str(out)],
        cwd=EXTENSION_DIR,
        env=tools.env(),
        timeout=120,
    )
    return out


def test_extension_unit_tests(tools: Tools, vsix: Path) -> None:
    """The extension's own node:test suite (pure settings and status logic)."""
    output = run([str(tools.bin / "npm"), "test"], cwd=EXTENSION_DIR, env=tools.env(), timeout=60)
    assert "# fail 0" in output or "ℹ fail 0" in output, output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class CodeServer:
    url: str
    workdir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    user_data: Path

    def logs(self) -> str:
        """code-server's own output, the server's log, and the extension host's logs, tails only."""
        parts = []
        files = [self.log_path, self.workdir / "server.log"]
        files += sorted((self.user_data / "logs").rglob("*.log"))
        for path in files:
            if path.is_file() and path.stat().st_size:
                text = path.read_text(encoding="utf-8", errors="replace")
                parts.append(f"--- {path.relative_to(self.workdir)} ---\n{text[-LOG_TAIL_CHARS:]}")
        return "\n".join(parts)


def wait_until_serving(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"code-server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"code-server did not answer on {url} within {timeout} s")


SAMPLE = "def add(a, b):\n"
TYPED = "    return "
SCRIPTED_OUTPUT = "a + b"


@pytest.fixture
def code_server(tools: Tools, vsix: Path, tmp_path: Path) -> Iterator[CodeServer]:
    user_data = tmp_path / "user-data"
    extensions = tmp_path / "extensions"
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "sample.py").write_text(SAMPLE, encoding="utf-8")
    scripted = tmp_path / "scripted.txt"
    scripted.write_text(SCRIPTED_OUTPUT, encoding="utf-8")
    server_command = [
        sys.executable, "-m", "codegemma_lsp", "serve",
        "--backend", f"scripted:{scripted}",
        "--log-file", str(tmp_path / "server.log"), "-v",
    ]  # fmt: skip
    settings = {
        "security.workspace.trust.enabled": False,
        "codegemma.server.command": server_command,
        "editor.inlineSuggest.enabled": True,
        # Keep the suggest widget away: Tab must go to the inline suggestion.
        "editor.quickSuggestions": {"other": "off", "comments": "off", "strings": "off"},
        "editor.suggestOnTriggerCharacters": False,
        "editor.wordBasedSuggestions": "off",
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": False,
        "telemetry.telemetryLevel": "off",
        "update.mode": "none",
        "extensions.autoCheckUpdates": False,
        "extensions.autoUpdate": False,
        "chat.disableAIFeatures": True,
        "files.autoSave": "off",
    }
    # code-server's window is a remote one: VS Code reads machine-scoped settings
    # (codegemma.server.*, codegemma.model.path) from the remote machine's
    # settings, Machine/settings.json, and may ignore their values in User/.
    for scope in ("User", "Machine"):
        (user_data / scope).mkdir(parents=True)
        (user_data / scope / "settings.json").write_text(json.dumps(settings, indent=1), encoding="utf-8")

    entry = [str(tools.node), str(tools.code_server)]
    # --config keeps code-server from writing ~/.config/code-server/config.yaml.
    dirs = [
        "--config", str(tmp_path / "code-server.yaml"),
        "--user-data-dir", str(user_data),
        "--extensions-dir", str(extensions),
    ]  # fmt: skip
    installed = run(
        [*entry, *dirs, "--install-extension", str(vsix)],
        cwd=tmp_path,
        env=tools.env(),
        timeout=120,
    )
    assert any(extensions.glob(f"{EXTENSION_ID}-*")), installed

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "code-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *entry,
                "--auth",
                "none",
                "--bind-addr",
                f"127.0.0.1:{port}",
                "--disable-telemetry",
                "--disable-update-check",
                *dirs,
                str(folder),
            ],  # fmt: skip
            cwd=tmp_path,
            env=tools.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = CodeServer(url, tmp_path, process, log_path, user_data)
    try:
        wait_until_serving(url, process, timeout=60)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def drive(tools: Tools, server: CodeServer, **scenario: Any) -> dict[str, Any]:
    params = {
        "url": f"{server.url}/?folder={server.workdir / 'project'}",
        "playwright": str(tools.playwright),
        "chromium": str(CHROMIUM),
        "workdir": str(server.workdir),
        "timeoutMs": 20000,
        **scenario,
    }
    params_path = server.workdir / "params.json"
    params_path.write_text(json.dumps(params), encoding="utf-8")
    done = subprocess.run(
        [str(tools.node), str(DRIVER), str(params_path)],
        env=tools.env(),
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    outcome_path = server.workdir / "outcome.json"
    outcome: dict[str, Any] = (
        json.loads(outcome_path.read_text(encoding="utf-8")) if outcome_path.is_file() else {}
    )
    outcome["driver_output"] = (done.stdout + done.stderr)[-LOG_TAIL_CHARS:]
    return outcome


def failure_report(outcome: dict[str, Any], server: CodeServer) -> str:
    screenshots = sorted(str(p) for p in server.workdir.glob("*.png"))
    return "\n".join(
        [
            f"failed at step: {outcome.get('step')}",
            f"error: {outcome.get('error')}",
            "values: " + json.dumps(outcome.get("values"), indent=1, ensure_ascii=False),
            f"screenshots: {screenshots}",
            f"driver output:\n{outcome.get('driver_output')}",
            server.logs(),
        ]
    )


def test_ghost_text_is_shown_and_accepted(tools: Tools, code_server: CodeServer) -> None:
    outcome = drive(
        tools,
        code_server,
        fileName="sample.py",
        typed=TYPED,
        expectedGhost=SCRIPTED_OUTPUT,
        savedPath=str(code_server.workdir / "project" / "sample.py"),
    )
    assert outcome.get("ok"), failure_report(outcome, code_server)
    values = outcome["values"]
    assert values["ghost_text"].strip() == SCRIPTED_OUTPUT, failure_report(outcome, code_server)
    assert values["saved_text"].rstrip("\n") == SAMPLE + TYPED + SCRIPTED_OUTPUT, failure_report(
        outcome, code_server
    )
    server_log = (code_server.workdir / "server.log").read_text(encoding="utf-8")
    assert "completion scope=" in server_log
