"""The sandbox that executes generated programs."""

from __future__ import annotations

import time

import pytest

from codegemma_lsp.evals import execution
from codegemma_lsp.evals.execution import (
    ExecResult,
    Limits,
    build_program,
    run_many,
    run_program,
    syntax_error,
)

FAST = Limits(timeout_s=1.0)


@pytest.mark.parametrize(
    ("source", "status", "detail"),
    [
        pytest.param("def f():\n    return 1\nassert f() == 1\n", "passed", "", id="pass"),
        pytest.param(
            "assert 1 == 2, 'wrong'\n", "failed", "AssertionError: wrong (line 1)", id="assert"
        ),
        pytest.param("x = 1\nundefined_name\n", "failed", "NameError", id="name-error"),
        pytest.param("def f(:\n", "failed", "SyntaxError", id="syntax-error"),
        pytest.param("if True:\nx = 1\n", "failed", "IndentationError", id="indentation"),
        pytest.param("import sys\nsys.exit(0)\n", "failed", "exited early", id="sys-exit-0"),
        pytest.param("import os\nos._exit(0)\n", "failed", "exited before", id="os-exit-0"),
        pytest.param("while True:\n    pass\n", "timeout", "timed out", id="infinite-loop"),
        pytest.param("import ctypes\nctypes.string_at(0)\n", "error", "SIGSEGV", id="segfault"),
        pytest.param("x = bytearray(4 << 30)\n", "failed", "MemoryError", id="memory-hog"),
        pytest.param(
            "open('big', 'w').write('x' * (32 << 20))\n", "failed", "File too large", id="file-size"
        ),
        pytest.param(
            "import subprocess\nsubprocess.run(['true'])\n", "failed", "PermissionError", id="spawn"
        ),
        pytest.param(
            "import os\nos.kill(os.getppid(), 9)\n", "failed", "PermissionError", id="kill"
        ),
        pytest.param("print('x' * 100000)\n", "passed", "", id="stdout-discarded"),
    ],
)
def test_outcomes(source: str, status: str, detail: str) -> None:
    result = run_program(source, FAST)
    assert result.status == status, result
    assert result.passed is (status == "passed")
    assert detail in result.detail
    assert len(result.detail) <= 200


def test_timeout_is_enforced_promptly() -> None:
    start = time.perf_counter()
    result = run_program("while True:\n    pass\n", Limits(timeout_s=0.5))
    assert result.status == "timeout"
    assert time.perf_counter() - start < 3


def test_program_leads_its_own_process_group() -> None:
    # Killing the group on timeout then reaches every process the program started.
    source = "import os\nassert os.getpgid(0) == os.getpid()\n"
    assert run_program(source, FAST).passed


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(
            "import socket\nsocket.create_connection(('127.0.0.1', 9), 1)\n", id="connect"
        ),
        pytest.param("import socket\nsocket.getaddrinfo('localhost', 80)\n", id="resolve"),
        pytest.param(
            "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:9', timeout=1)\n",
            id="urllib",
        ),
    ],
)
@pytest.mark.parametrize("namespace", [True, False], ids=["namespace-if-any", "guard-only"])
def test_network_attempts_fail(
    source: str, namespace: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not namespace:  # the in-process guard alone, as where unshare does not work
        monkeypatch.setattr(execution, "_network_isolation", lambda: ())
    result = run_program(source, FAST)
    assert result.status == "failed"
    assert any(word in result.detail for word in ("network", "Permission", "unreachable"))


def test_environment_is_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_FOR_TEST", "leak")
    source = (
        "import os, sys\n"
        "assert set(os.environ) <= {'PATH', 'LC_CTYPE'}, sorted(os.environ)\n"
        "assert not any('site-packages' in p for p in sys.path), sys.path\n"
        "assert os.getcwd().rsplit('/', 1)[-1].startswith('codegemma-eval-')\n"
    )
    result = run_program(source, FAST)
    assert result.passed, result


def test_working_directory_is_fresh() -> None:
    write = "import os\nassert not os.path.exists('left.txt')\nopen('left.txt', 'w').write('x')\n"
    assert run_program(write, FAST).passed
    assert run_program(write, FAST).passed


def test_build_program_follows_the_benchmark() -> None:
    program = build_program(
        "def f():\n", "    return 1\n", "", "def check(c):\n    assert c() == 1", "f"
    )
    assert program == "def f():\n    return 1\n\ndef check(c):\n    assert c() == 1\ncheck(f)"
    assert run_program(program, FAST).passed


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("x = 1\n", None, id="valid"),
        pytest.param("x = '\\d'\n", None, id="invalid-escape-only-warns"),
        pytest.param("def f(:\n", "SyntaxError: invalid syntax (line 1)", id="invalid"),
        pytest.param(
            "x = 1\n  y = 2\n", "IndentationError: unexpected indent (line 2)", id="indent"
        ),
    ],
)
def test_syntax_error(source: str, expected: str | None) -> None:
    assert syntax_error(source) == expected


def test_run_many_keeps_order_and_survives_bad_programs() -> None:
    programs = ["pass\n", "raise SystemExit(1)\n", "def (:\n", "import os\nos.abort()\n", "pass\n"]
    seen: list[int] = []
    results = run_many(programs, jobs=2, limits=FAST, on_done=lambda i, _r: seen.append(i))
    assert [r.status for r in results] == ["passed", "failed", "failed", "error", "passed"]
    assert sorted(seen) == list(range(len(programs)))
    assert all(isinstance(r, ExecResult) for r in results)
