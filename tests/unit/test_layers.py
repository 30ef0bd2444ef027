"""The layers hold: ``lint-imports`` checks the contracts in pyproject.toml.

A failure names the import that crosses a layer; the fix is to move the code to the
layer that owns it, not to add an exception (see DESIGN.md, "The way a keystroke travels").
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

REQUIRED = {"layers", "engine", "lsp", "llama", "evals", "cli", "acyclic"}
"""The contracts the project promises (issue 12); none may go missing quietly."""


def test_the_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_promised_contract_is_declared() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    assert {contract["id"] for contract in contracts} >= REQUIRED
