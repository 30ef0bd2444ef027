"""The VS Code extension in a real, headless VS Code (code-server) driven by Chromium.

The tools are big and come from registries, so ``tests/editors/vscode/setup.sh``
installs them once under ``$CODEGEMMA_VSCODE_TOOLS`` (default
``~/.cache/codegemma-lsp-test/vscode``); without them these tests skip and say
so. The tests themselves touch no network: the .vsix is built from the working
tree with the dependencies that setup installed, and the server runs with the
scripted backend, so no model is needed.

Each scenario runs tests/editors/vscode/drive.js, which writes its outcome and
screenshots next to code-server's logs; a failure report carries all of them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
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
    """What setup.sh installed: Node 24 (bin/), code-server and playwright-core."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def node(self) -> Path:
        return self.bin / "node"

    @property
    def npm(self) -> Path:
        return self.bin / "npm"

    @property
    def code_server(self) -> Path:
        return self.root / "code-server/node_modules/code-server/out/node/entry.js"

    @property
    def playwright(self) -> Path:
        return self.root / "code-server/node_modules/playwright-core"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        # The extension host passes this on to the server, which then imports
        # this checkout's package even where it is not installed.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        return env

    def missing(self) -> list[str]:
        wanted = {
            "Node 24": self.node,
            "code-server": self.code_server,
            "playwright-core": self.playwright / "package.json",
            "Chromium": CHROMIUM,
            "the extension's npm packages": EXTENSION_DIR / "node_modules/vscode-languageclient",
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
    """The extension packaged from the working tree: tsc, then vsce with its runtime deps."""
    out = tmp_path_factory.mktemp("vsix") / "codegemma-lsp.vsix"
    command = [str(tools.npm), "run", "package", "--", "--out", str(out)]
    run(command, cwd=EXTENSION_DIR, env=tools.env(), timeout=120)
    return out


def test_extension_unit_tests(tools: Tools, vsix: Path) -> None:
    """The extension's node:test suite: pure settings/status logic and its wiring against fakes."""
    output = run([str(tools.npm), "test"], cwd=EXTENSION_DIR, env=tools.env(), timeout=60)
    assert "# fail 0" in output or "ℹ fail 0" in output, output


# ----- a real VS Code -------------------------------------------------------------

# Settings beside the extension's own that keep the scenario deterministic.
WORKBENCH_SETTINGS: dict[str, Any] = {
    "security.workspace.trust.enabled": False,
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


@dataclass
class CodeServer:
    url: str
    workdir: Path
    project: Path

    def logs(self) -> str:
        """code-server's output, the language server's log and the extension host's logs (tails)."""
        parts = []
        files = [self.workdir / "code-server.log", self.workdir / "server.log"]
        files += sorted((self.workdir / "user-data" / "logs").rglob("*.log"))
        for path in files:
            if path.is_file() and path.stat().st_size:
                text = path.read_text(encoding="utf-8", errors="replace")
                parts.append(f"--- {path.relative_to(self.workdir)} ---\n{text[-LOG_TAIL_CHARS:]}")
        return "\n".join(parts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


def write_settings(user_data: Path, settings: dict[str, Any]) -> None:
    # code-server's window counts as a remote one, where VS Code takes
    # machine-scoped settings (codegemma.server.*, codegemma.model.path) from the
    # remote machine's Machine/settings.json; write both so either reading works.
    for scope in ("User", "Machine"):
        (user_data / scope).mkdir(parents=True)
        text = json.dumps(settings, indent=1)
        (user_data / scope / "settings.json").write_text(text, encoding="utf-8")


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """code-server, its extension host and the language server: started as one group."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def code_server(
    tools: Tools,
    vsix: Path,
    workdir: Path,
    files: dict[str, str],
    server_args: list[str],
    settings: dict[str, Any] | None = None,
) -> Iterator[CodeServer]:
    """A code-server with the extension installed, serving ``files`` as its folder."""
    project = workdir / "project"
    project.mkdir()
    for name, text in files.items():
        (project / name).write_text(text, encoding="utf-8")
    user_data = workdir / "user-data"
    server_command = [sys.executable, "-m", "codegemma_lsp", "serve", *server_args]
    server_command += ["--log-file", str(workdir / "server.log"), "-v"]
    write_settings(
        user_data,
        {**WORKBENCH_SETTINGS, "codegemma.server.command": server_command, **(settings or {})},
    )

    entry = [str(tools.node), str(tools.code_server)]
    dirs = ["--user-data-dir", str(user_data), "--extensions-dir", str(workdir / "extensions")]
    # --config keeps code-server from writing ~/.config/code-server/config.yaml.
    dirs += ["--config", str(workdir / "code-server.yaml")]
    install = [*entry, *dirs, "--install-extension", str(vsix)]
    installed = run(install, cwd=workdir, env=tools.env(), timeout=120)
    assert any((workdir / "extensions").glob(f"{EXTENSION_ID}-*")), installed

    port = free_port()
    serve = [*entry, *dirs, "--auth", "none", "--bind-addr", f"127.0.0.1:{port}"]
    serve += ["--disable-telemetry", "--disable-update-check", str(project)]
    # VS Code leaves its IPC sockets in the temp folder; keep them in one of our
    # own, short enough for a socket path (pytest's tmp_path is not).
    scratch = Path(tempfile.mkdtemp(prefix="cg-vscode-"))
    env = {**tools.env(), "TMPDIR": str(scratch)}
    with (workdir / "code-server.log").open("wb") as log:
        process = subprocess.Popen(
            serve,
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, process, timeout=60)
        yield CodeServer(url=url, workdir=workdir, project=project)
    finally:
        stop_process_group(process)
        shutil.rmtree(scratch, ignore_errors=True)


def drive(tools: Tools, server: CodeServer, scenario: str, **params: Any) -> dict[str, Any]:
    """Run one drive.js scenario in Chromium; its outcome, with the driver's own output."""
    params_path = server.workdir / "params.json"
    params = {
        "scenario": scenario,
        "url": f"{server.url}/?folder={server.project}",
        "playwright": str(tools.playwright),
        "chromium": str(CHROMIUM),
        "workdir": str(server.workdir),
        "timeoutMs": 20000,
        **params,
    }
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
    outcome: dict[str, Any] = {}
    if outcome_path.is_file():
        outcome = json.loads(outcome_path.read_text(encoding="utf-8"))
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


SAMPLE = "def add(a, b):\n"
TYPED = "    return "
SCRIPTED_OUTPUT = "a + b"


def test_ghost_text_accepted_then_toggled_off(tools: Tools, vsix: Path, tmp_path: Path) -> None:
    scripted = tmp_path / "scripted.txt"
    scripted.write_text(SCRIPTED_OUTPUT, encoding="utf-8")
    files = {"sample.py": SAMPLE}
    with code_server(tools, vsix, tmp_path, files, ["--backend", f"scripted:{scripted}"]) as server:
        outcome = drive(
            tools,
            server,
            "accept",
            fileName="sample.py",
            typed=TYPED,
            expectedText=SCRIPTED_OUTPUT,
            savedPath=str(server.project / "sample.py"),
        )
        report = failure_report(outcome, server)
    assert outcome.get("ok"), report
    values = outcome["values"]
    assert values["ghost_text"] == SCRIPTED_OUTPUT, report
    assert values["saved_text"] == SAMPLE + TYPED + SCRIPTED_OUTPUT, report
    server_log = (tmp_path / "server.log").read_text(encoding="utf-8")
    # The request's one log line: "completion id=N scope=...".
    assert re.search(r"\bcompletion id=\S+ scope=", server_log), report
    # The extension sends the server only the sections it knows: no warnings about settings.
    warnings = [line for line in server_log.splitlines() if " WARNING " in line]
    assert [line for line in warnings if "setting" in line] == [], report


@pytest.mark.model
def test_vs_code_cycles_through_the_servers_candidates(
    tools: Tools, vsix: Path, tmp_path: Path, tiny_model_path: Path
) -> None:
    # Random weights make random words; in a comment any words are whole syntax, so
    # truncation keeps them and the three candidates differ.
    files = {"sample.py": "def add(a, b):\n"}
    server_args = ["--model", str(tiny_model_path)]
    settings = {"codegemma.completion.candidates": 3}
    with code_server(tools, vsix, tmp_path, files, server_args, settings) as server:
        outcome = drive(tools, server, "cycle", fileName="sample.py", typed="    # sum of a and ")
        report = failure_report(outcome, server)
    assert outcome.get("ok"), report
    values = outcome["values"]
    assert values["first"].strip() and values["second"] != values["first"], report
    assert values["back"] == values["first"], report


def test_model_error_is_shown_in_the_status_bar(tools: Tools, vsix: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-output.txt"
    files = {"sample.py": SAMPLE}
    with code_server(tools, vsix, tmp_path, files, ["--backend", f"scripted:{missing}"]) as server:
        outcome = drive(tools, server, "error", fileName="sample.py", expectedText=missing.name)
        report = failure_report(outcome, server)
    assert outcome.get("ok"), report
    assert missing.name in outcome["values"]["error_tooltip"], report


GENERATE_SAMPLE = "import os\n\n\ndef main():\n    # list the files here\n    pass\n"
GENERATE_COMMENT = "    # list the files here\n"


@pytest.mark.model
def test_generate_code_inserts_below_the_comment(
    tools: Tools, vsix: Path, tmp_path: Path, tiny_model_path: Path
) -> None:
    """The command "CodeGemma: Generate Code" with the tiny model: the server's edit lands
    below the comment, indented as it is (the model's words are random)."""
    pytest.importorskip("llama_cpp")
    files = {"main.py": GENERATE_SAMPLE}
    settings = {
        "codegemma.generate.model": str(tiny_model_path),
        "codegemma.generate.maxTokens": 16,
        "codegemma.generate.nCtx": 1024,
    }
    with code_server(tools, vsix, tmp_path, files, ["--backend", "fake"], settings) as server:
        outcome = drive(
            tools,
            server,
            "generate",
            fileName="main.py",
            line=GENERATE_SAMPLE.splitlines().index(GENERATE_COMMENT.rstrip("\n")) + 1,
            originalText=GENERATE_SAMPLE,
            savedPath=str(server.project / "main.py"),
        )
        report = failure_report(outcome, server)
    assert outcome.get("ok"), report
    saved = outcome["values"]["saved_text"]
    head, tail = GENERATE_SAMPLE.split(GENERATE_COMMENT)
    assert saved.startswith(head + GENERATE_COMMENT) and saved.endswith(tail), report
    inserted = saved[len(head + GENERATE_COMMENT) : len(saved) - len(tail)]
    assert inserted.strip() and inserted.endswith("\n"), report
    assert all(line.startswith("    ") for line in inserted.splitlines() if line), report
    server_log = (tmp_path / "server.log").read_text(encoding="utf-8")
    assert "generate from=comment" in server_log, report
