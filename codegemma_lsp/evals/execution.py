"""Runs a generated program with its tests in a throwaway, limited subprocess.

What each run gets, and how far it can be trusted:

- A fresh interpreter (``python -I -S``: no user site, no ``PYTHON*`` variables,
  no site-packages), a new temporary working directory, an environment holding
  only a minimal ``PATH``, stdin from ``/dev/null``, stdout discarded.
- Its own process group, killed as a whole on timeout or when it finishes, so
  stray children do not outlive the run.
- Limits set by a small preamble in the child before the program runs
  (``RLIMIT_CPU``, ``RLIMIT_AS``, ``RLIMIT_FSIZE``, ``RLIMIT_NPROC``, no core
  files). The preamble sets them rather than ``preexec_fn``, because
  ``preexec_fn`` may deadlock in a process that runs threads, as
  :func:`run_many` does. A process running as root may raise them again, and
  root ignores ``RLIMIT_NPROC``.
- No network: when ``unshare --net`` works here (root, or unprivileged user
  namespaces), the run gets an empty network namespace, which is a real
  guarantee. Otherwise the preamble replaces the socket type with one that
  refuses to be created, and disables process-spawning and file-deleting
  functions of ``os``, as OpenAI's reference harness does. That stops
  accidents, not a program that means harm (ctypes gets round it).
- The files the program can write are those its user can write; the sandbox is
  a guard against careless model output, not a security boundary.

A program passes only when it runs to its end: the preamble then writes a
token that the program does not know, so an early ``sys.exit(0)`` or
``os._exit(0)`` counts as a failure.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

Status = Literal["passed", "failed", "timeout", "error"]

_PROGRAM_NAME = "program.py"
_STDERR_NAME = "stderr.txt"
_TOKEN_VAR = "CODEGEMMA_LSP_SANDBOX_TOKEN"
_MINIMAL_PATH = "/usr/bin:/bin"
_DETAIL_CHARS = 200
_STDERR_TAIL_BYTES = 4096
# Exit statuses the preamble uses for the program's faults; others (1 for an
# interpreter that could not start the program) are the harness's.
_EXIT_EXCEPTION = 17
_EXIT_EARLY = 18


@dataclass(frozen=True)
class Limits:
    """Resource limits for one run."""

    timeout_s: float = 3.0
    memory_bytes: int = 1 << 30
    file_size_bytes: int = 16 << 20
    # The count is per user and includes the user's other processes, so any
    # small number forbids new processes and threads, as the reference harness
    # does by disabling os.fork.
    processes: int = 1


@dataclass(frozen=True)
class ExecResult:
    passed: bool
    status: Status
    seconds: float
    detail: str


def build_program(prompt: str, completion: str, suffix: str, test: str, entry_point: str) -> str:
    """The program HumanEval-Infilling executes for one completion."""
    return prompt + completion + suffix + "\n" + test + "\n" + f"check({entry_point})"


# Runs in the child before the program. It keeps private references to what it
# needs afterwards, because it disables parts of ``os`` for the program.
_PREAMBLE = """\
import os, sys, resource
_exit, _write = os._exit, os.write
_token = os.environ.pop({token_var!r}).encode()
_limits = (
    (resource.RLIMIT_CPU, {cpu}),
    (resource.RLIMIT_AS, {memory}),
    (resource.RLIMIT_FSIZE, {fsize}),
    (resource.RLIMIT_NPROC, {nproc}),
    (resource.RLIMIT_CORE, 0),
)
for _kind, _value in _limits:
    try:
        resource.setrlimit(_kind, (_value, _value))
    except (ValueError, OSError):
        pass
def _disabled(*args, **kwargs):
    raise PermissionError("disabled in the sandbox")
def _no_network(*args, **kwargs):
    raise PermissionError("network access is disabled in the sandbox")
import _socket
class _NoSocket(_socket.socket):
    __slots__ = ()
    __init__ = _no_network
_socket.socket = _socket.SocketType = _NoSocket
for _name in ("getaddrinfo", "getnameinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
    setattr(_socket, _name, _no_network)
import _posixsubprocess
_posixsubprocess.fork_exec = _disabled
for _name in (
    "kill", "killpg", "system", "popen", "fork", "forkpty", "execv", "execve", "execvp",
    "execvpe", "execl", "execle", "execlp", "execlpe", "spawnv", "spawnve", "spawnvp",
    "spawnvpe", "posix_spawn", "posix_spawnp", "putenv", "unsetenv", "remove", "unlink",
    "rmdir", "removedirs", "rename", "renames", "replace", "truncate", "chmod", "chown",
    "lchown", "fchmod", "fchown", "setuid", "setgid", "chroot",
):
    if hasattr(os, _name):
        setattr(os, _name, _disabled)
_path = {program!r}
with open(_path, encoding="utf-8") as _file:
    _source = _file.read()
def _where(tb):
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return "" if line is None else f" (line {{line}})"
try:
    exec(compile(_source, _path, "exec"), {{"__name__": "__main__"}})
except SystemExit as _exc:
    sys.stderr.write(f"exited early: SystemExit({{_exc.code!r}})\\n")
    sys.stderr.flush()
    _exit({early})
except BaseException as _exc:
    _message = type(_exc).__name__
    if str(_exc).strip():
        _message += ": " + str(_exc).strip().splitlines()[0][:150]
    sys.stderr.write(_message + _where(_exc.__traceback__) + "\\n")
    sys.stderr.flush()
    _exit({exception})
for _stream in (sys.stdout, sys.stderr):
    try:
        _stream.flush()
    except Exception:
        pass
_write(2, b"\\n" + _token)
_exit(0)
"""


def syntax_error(source: str) -> str | None:
    """A one-line description of the program's syntax error, or ``None``.

    Compiling runs none of the program, and gives what the child would report,
    so a run can skip starting a process. It changes the global warnings
    filter for its duration, so call it from one thread only.
    """
    with warnings.catch_warnings():
        # Invalid escapes warn; under an "error" filter they would become
        # syntax errors that the child, with default filters, does not raise.
        warnings.simplefilter("ignore")
        try:
            compile(source, _PROGRAM_NAME, "exec", dont_inherit=True)
        except SyntaxError as exc:  # IndentationError included
            return f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})"
        except (MemoryError, RecursionError, ValueError):
            return None  # let the child decide
    return None


def run_program(source: str, limits: Limits | None = None, *, precheck: bool = True) -> ExecResult:
    """Run ``source`` once in the sandbox. Never raises for the program's faults.

    ``precheck`` compiles in this process first (see :func:`syntax_error`);
    :func:`run_many` does that itself in the calling thread.
    """
    limits = limits or Limits()
    start = time.perf_counter()
    if precheck and (problem := syntax_error(source)) is not None:
        return ExecResult(False, "failed", time.perf_counter() - start, problem)
    try:
        with tempfile.TemporaryDirectory(
            prefix="codegemma-eval-", ignore_cleanup_errors=True
        ) as folder:
            return _run_in(Path(folder), source, limits, start)
    except OSError as exc:
        return ExecResult(False, "error", time.perf_counter() - start, _short(f"harness: {exc}"))


def _run_in(folder: Path, source: str, limits: Limits, start: float) -> ExecResult:
    program = folder / _PROGRAM_NAME
    program.write_text(source, encoding="utf-8")
    token = secrets.token_hex(16)
    preamble = _PREAMBLE.format(
        token_var=_TOKEN_VAR,
        cpu=math.ceil(limits.timeout_s) + 1,
        memory=limits.memory_bytes,
        fsize=limits.file_size_bytes,
        nproc=limits.processes,
        program=str(program),
        early=_EXIT_EARLY,
        exception=_EXIT_EXCEPTION,
    )
    command = [*_network_isolation(), sys.executable, "-I", "-S", "-c", preamble]
    with (folder / _STDERR_NAME).open("wb") as stderr:
        proc = subprocess.Popen(
            command,
            cwd=folder,
            env={"PATH": _MINIMAL_PATH, _TOKEN_VAR: token},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            process_group=0,
            close_fds=True,
        )
        timed_out = _wait_then_kill_group(proc, limits.timeout_s)
    seconds = time.perf_counter() - start
    tail = _tail(folder / _STDERR_NAME)
    result = _classify(proc.returncode, tail, token.encode(), seconds)
    if timed_out and not result.passed:
        return ExecResult(False, "timeout", seconds, f"timed out after {limits.timeout_s:g} s")
    return result


def _classify(returncode: int, tail: bytes, token: bytes, seconds: float) -> ExecResult:
    if returncode == 0 and tail.endswith(token):
        return ExecResult(True, "passed", seconds, "")
    if returncode == 0:
        return ExecResult(False, "failed", seconds, "exited before the tests finished")
    if returncode < 0:
        number = -returncode
        if number == signal.SIGXCPU:
            return ExecResult(False, "timeout", seconds, "CPU time limit")
        return ExecResult(False, "error", seconds, f"killed by {_signal_name(number)}")
    message = _last_line(tail)
    if returncode in (_EXIT_EXCEPTION, _EXIT_EARLY):
        return ExecResult(False, "failed", seconds, message)
    return ExecResult(False, "error", seconds, message or f"exit status {returncode}")


def _wait_then_kill_group(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait for the program, kill what is left of its process group; whether it timed out.

    The group is killed before the leader is reaped: until then its id cannot
    be reused, so the kill never reaches another run's group.
    """
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        _kill_group(proc.pid)

    timer = threading.Timer(timeout_s, expire)
    timer.start()
    try:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    finally:
        timer.cancel()
        timer.join()
        _kill_group(proc.pid)
        proc.wait()
    return expired.is_set()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _tail(path: Path) -> bytes:
    with path.open("rb") as file:
        file.seek(0, os.SEEK_END)
        file.seek(max(0, file.tell() - _STDERR_TAIL_BYTES))
        return file.read().rstrip(b"\n")


def _last_line(tail: bytes) -> str:
    lines = [line for line in tail.decode("utf-8", "replace").splitlines() if line.strip()]
    return _short(lines[-1]) if lines else ""


def _short(text: str) -> str:
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@cache
def _network_isolation() -> tuple[str, ...]:
    """The command prefix that gives a run an empty network namespace, if any works here."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    for prefix in (
        (unshare, "--net", "--"),
        (unshare, "--user", "--map-root-user", "--net", "--"),
    ):
        try:
            probe = subprocess.run(
                [*prefix, sys.executable, "-I", "-S", "-c", "pass"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return prefix
    return ()


def network_isolated() -> bool:
    """Whether runs get their own empty network namespace on this machine."""
    return bool(_network_isolation())


def run_many(
    programs: Sequence[str],
    jobs: int | None = None,
    *,
    limits: Limits | None = None,
    on_done: Callable[[int, ExecResult], None] | None = None,
) -> list[ExecResult]:
    """Run each program in its own sandbox, ``jobs`` at a time; results keep input order.

    ``on_done(index, result)`` is called from the calling thread as runs finish,
    for progress reports.
    """
    jobs = max(1, jobs or os.cpu_count() or 1)
    results: dict[int, ExecResult] = {}
    pending: list[int] = []
    for index, source in enumerate(programs):
        problem = syntax_error(source)
        if problem is None:
            pending.append(index)
            continue
        results[index] = ExecResult(False, "failed", 0.0, problem)
        if on_done is not None:
            on_done(index, results[index])
    _network_isolation()  # probe once, before the threads race to do it
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="sandbox") as pool:
        futures = {
            pool.submit(run_program, programs[index], limits, precheck=False): index
            for index in pending
        }
        for future in as_completed(futures):
            index = futures[future]
            result = future.result()
            results[index] = result
            if on_done is not None:
                on_done(index, result)
    return [results[index] for index in range(len(programs))]
