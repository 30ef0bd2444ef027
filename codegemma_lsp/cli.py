"""Command line: ``serve`` (the default), ``complete``, ``eval``.

Stdout belongs to the protocol (``serve``) or to the one answer (``complete``).
Before anything else runs, the real stdout is duplicated for that use and fd 1
is pointed at stderr, so a library that writes to fd 1 (llama.cpp does while
loading) can never corrupt the output.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codegemma_lsp import __version__
from codegemma_lsp.console import protect_stdout as protect_stdout
from codegemma_lsp.console import setup_logging as setup_logging

if TYPE_CHECKING:
    from codegemma_lsp.config import ModelSettings, Settings

log = logging.getLogger("codegemma_lsp")

TTY_HINT = (
    "codegemma-lsp speaks the Language Server Protocol on stdin/stdout, for an editor to start. "
    "To try it by hand: codegemma-lsp complete FILE --line L --character C; "
    "to check the setup: codegemma-lsp doctor. Ctrl-C quits."
)


def _model_layer(args: argparse.Namespace) -> dict[str, Any]:
    model: dict[str, Any] = {}
    if getattr(args, "model", None):
        if _is_model_id(args.model):
            model["id"] = args.model
        else:
            model["path"] = str(Path(args.model).expanduser())
    if getattr(args, "quant", None):
        model["quant"] = args.quant
    if getattr(args, "backend", None):
        model["backend"] = args.backend
    if getattr(args, "url", None):
        model["url"] = args.url
    if getattr(args, "n_ctx", None):
        model["nCtx"] = args.n_ctx
    if getattr(args, "threads", None):
        model["threads"] = args.threads
    return {"model": model} if model else {}


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="PATH|ID",
        help="a CodeGemma GGUF file, or a model to fetch: codegemma-2b (the default), "
        "codegemma-7b, codegemma-7b-it",
    )
    parser.add_argument(
        "--quant", metavar="Q", help="quantisation of the model id (default Q4_K_M)"
    )
    parser.add_argument(
        "--backend",
        metavar="KIND",
        help="llama (default); llama-server or openai: a remote engine at --url; "
        "fake, or scripted:PATH to return PATH's text as the model output",
    )
    parser.add_argument(
        "--url",
        metavar="URL",
        help="the remote engine's base URL, e.g. http://gpu-box:8080 (the API key goes in "
        "CODEGEMMA_LSP_MODEL_API_KEY or OPENAI_API_KEY, not on the command line)",
    )
    parser.add_argument("--n-ctx", type=int, help="context size in tokens")
    parser.add_argument(
        "--threads", type=int, help="CPU threads for llama.cpp (default: physical cores)"
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="debug logs (-vv: protocol too)"
    )
    parser.add_argument("--log-file", metavar="FILE", help="write logs here instead of stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codegemma-lsp",
        description="Local AI code completion over LSP with CodeGemma 2B and llama.cpp.",
    )
    parser.add_argument("--version", action="version", version=f"codegemma-lsp {__version__}")
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run the language server (stdio unless --tcp)")
    _add_model_flags(serve)
    serve.add_argument("--tcp", action="store_true", help="listen on 127.0.0.1 instead of stdio")
    serve.add_argument(
        "--port", type=int, default=2087, help="TCP port (with --tcp; 0 picks a free one)"
    )
    serve.add_argument(
        "--tcp-token",
        nargs="?",
        const="",
        metavar="TOKEN",
        help="with --tcp: the secret the client must send as initializationOptions.tcpToken; "
        "without TOKEN, $CODEGEMMA_LSP_TCP_TOKEN or else a random one printed on stderr",
    )
    serve.add_argument(
        "--max-message-bytes",
        type=int,
        metavar="N",
        help="longest message read (default 64 MiB); longer ones are discarded unread",
    )
    # Generic clients (vscode-languageclient's stdio transport) add --stdio; it is the default.
    serve.add_argument("--stdio", action="store_true", help=argparse.SUPPRESS)
    # `bench replay` only: accept what its typist types next (codegemma_lsp/oracle.py).
    serve.add_argument("--bench-oracle", action="store_true", help=argparse.SUPPRESS)
    # Tests only: accept codegemma/debugAdvanceClock, to judge retained text without waiting.
    serve.add_argument("--debug-clock", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=run_serve)

    complete = sub.add_parser("complete", help="print the completion the server would show")
    complete.add_argument("file", type=Path)
    complete.add_argument("--line", type=int, required=True, help="0-based line")
    complete.add_argument("--character", type=int, required=True, help="0-based UTF-16 column")
    _add_model_flags(complete)
    complete.set_defaults(func=run_complete)

    download = sub.add_parser(
        "download",
        help="fetch a model into the Hugging Face cache and verify it",
        description="Fetch a CodeGemma GGUF into the Hugging Face cache (shared with other "
        "tools), resuming when the connection drops, and check its SHA-256. Prints the "
        "file's path. Honours HF_ENDPOINT, HF_HOME, HF_TOKEN and HF_HUB_OFFLINE.",
    )
    download.add_argument(
        "model_id",
        nargs="?",
        default="codegemma-2b",
        metavar="MODEL",
        help="codegemma-2b (default), codegemma-7b or codegemma-7b-it",
    )
    download.add_argument("--quant", default="Q4_K_M", help="Q4_K_M (default), Q8_0, Q3_K_M, Q2_K")
    download.add_argument(
        "--revision", help="a commit or branch of the repository (default: the registry's pin)"
    )
    download.set_defaults(func=run_download)

    doctor = sub.add_parser(
        "doctor",
        help="check the setup: versions, GPU support, model, memory, speed, editors",
        description="Check everything completions depend on and say what to fix; exits "
        "non-zero when the setup cannot work. Loads the model and measures its speed.",
    )
    _add_model_flags(doctor)
    doctor.add_argument("--json", action="store_true", help="one JSON object instead of text")
    doctor.add_argument(
        "--no-speed", action="store_true", help="skip the speed measurement (a few seconds)"
    )
    doctor.set_defaults(func=run_doctor)

    stats = sub.add_parser(
        "stats",
        help="print your own numbers per day: shown, accepted, kept, latency (local only)",
        description="Your suggestions per day, from the small files the server keeps in "
        "your state directory (never sent anywhere): shown, accepted and partially accepted, "
        "characters accepted and still there 30 s later, p50/p95 latency, and the share "
        "answered from the cache or by joining a generation already running.",
    )
    stats.add_argument("--json", action="store_true", help="one JSON object instead of text")
    stats.add_argument(
        "--days", type=int, default=7, metavar="N", help="the last N days with numbers (default 7)"
    )
    stats.set_defaults(func=run_stats)

    from codegemma_lsp.prompt_cli import add_prompt_parser

    add_prompt_parser(sub)
    try:
        from codegemma_lsp.evals.bench_cli import add_bench_parser
    except ImportError:  # the bench extra is optional
        pass
    else:
        add_bench_parser(sub)
    try:
        from codegemma_lsp.evals.cli import add_eval_parser
    except ImportError:  # the eval extra is optional
        pass
    else:
        add_eval_parser(sub)
    return parser


def run_serve(args: argparse.Namespace) -> int:
    from codegemma_lsp.config import env_layer
    from codegemma_lsp.lifecycle import exit_when_threads_stop
    from codegemma_lsp.server import create_server

    setup_logging(args.verbose, args.log_file)
    command_line = _model_layer(args)
    if args.max_message_bytes is not None:
        command_line["server"] = {"maxMessageBytes": args.max_message_bytes}
    server = create_server(
        command_line, env_layer(), bench_oracle=args.bench_oracle, debug_clock=args.debug_clock
    )
    # Once the server decides to stop, the process is gone within a second, even while
    # llama.cpp is generating or a thread is stuck.
    server.exit_deadline_s = 0.9
    if args.tcp:
        code = server.serve_tcp(
            "127.0.0.1", args.port, token=_tcp_token(args), on_listening=_say_listening
        )
    else:
        if sys.stdin.isatty():
            # Someone typed the bare command in a terminal: say what it is for, once.
            sys.stderr.write(TTY_HINT + "\n")
        protocol_out = protect_stdout()
        log.info("codegemma-lsp %s on stdio", __version__)
        code = server.serve_stdio(sys.stdin.buffer, protocol_out)
    return exit_when_threads_stop(code, 0.5)


def _tcp_token(args: argparse.Namespace) -> str | None:
    """``--tcp-token TOKEN``, else ``$CODEGEMMA_LSP_TCP_TOKEN``, else with a bare
    ``--tcp-token`` a new random one (printed); else None: the first connection wins."""
    from codegemma_lsp.tcp_auth import ENV_TOKEN, new_token

    token: str = args.tcp_token or os.environ.get(ENV_TOKEN) or ""
    if not token and args.tcp_token is not None:
        token = new_token()
        sys.stderr.write(f"codegemma-lsp: tcp token: {token}\n")
    elif not token:
        sys.stderr.write(
            "codegemma-lsp: no --tcp-token: the first local connection becomes the client\n"
        )
    sys.stderr.flush()
    return token or None


def _say_listening(port: int) -> None:
    # On stderr, not only in the log: whoever started the server needs the port (--port 0).
    sys.stderr.write(f"codegemma-lsp: listening on 127.0.0.1:{port}\n")
    sys.stderr.flush()


class CompleteFailed(Exception):
    """``complete`` cannot answer; the message is the one line it prints."""

    def __init__(self, reason: str, code: int) -> None:
        super().__init__(reason)
        self.code = code


def run_complete(args: argparse.Namespace) -> int:
    """Print the completion; on any failure, one line on stderr and a non-zero exit:
    2 when the file or position cannot be completed (as the server refuses it), 1 when
    the model fails or something unexpected happens."""
    from codegemma_lsp.config import SettingsSources, env_layer

    setup_logging(args.verbose, args.log_file)
    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
    out = protect_stdout()
    try:
        settings, problems = SettingsSources(
            environment=env_layer(), command_line=_model_layer(args)
        ).resolve()
        for problem in problems:
            log.warning("%s", problem)
        text = _complete(args, settings)
    except CompleteFailed as exc:
        sys.stderr.write(f"codegemma-lsp: {_one_line(str(exc))}\n")
        return exc.code
    except Exception as exc:  # a traceback helps nobody who ran one command
        log.debug("complete failed", exc_info=True)
        sys.stderr.write(f"codegemma-lsp: internal error: {_one_line(_describe(exc))}\n")
        return 1
    out.write(text.encode("utf-8"))
    if os.isatty(out.fileno()):
        out.write(b"\n")
    return 0


def _complete(args: argparse.Namespace, settings: Settings) -> str:
    from codegemma_lsp.completion import CompletionQuery, run_completion
    from codegemma_lsp.documents import Document
    from codegemma_lsp.engine.base import CancelToken, EngineError
    from codegemma_lsp.engine.host import make_backend
    from codegemma_lsp.privacy import is_secret_path, secret_in
    from codegemma_lsp.syntax.languages import default_registry

    file: Path = args.file
    text = _read_source(file)
    # The same refusals as the server's (CodeGemmaServer.completion_refusal).
    if is_secret_path(os.path.abspath(file)) or is_secret_path(os.path.realpath(file)):
        raise CompleteFailed(f"no completion in secret files ({file})", 2)
    limit = settings.completion.max_file_bytes
    if len(text) > limit:
        raise CompleteFailed(f"{file} is larger than completion.maxFileBytes ({limit})", 2)
    if "\x00" in text:
        raise CompleteFailed(f"{file} is a binary file", 2)
    found = secret_in(text)
    if found is not None:
        raise CompleteFailed(f"no completion in secret files ({file} holds {found})", 2)
    _check_position(file, text, args.line, args.character)

    try:
        backend = make_backend(fetch_model(settings.model))
        backend.load()
    except EngineError as exc:
        raise CompleteFailed(str(exc), 1) from exc
    try:
        language = default_registry().lookup(None, str(file))
        document = Document(file.resolve().as_uri(), text, language=language)
        query = CompletionQuery(
            document=document.snapshot(),
            cursor=document.offset_at(args.line, args.character),
            path=file.name,
        )
        outcome = run_completion(query, backend, settings, CancelToken())
    except EngineError as exc:
        raise CompleteFailed(f"the model failed: {exc}", 1) from exc
    finally:
        backend.close()
    text_out: str = outcome.text
    if not text_out:
        # Stdout stays the completion alone; say on stderr why it is empty.
        sys.stderr.write(f"codegemma-lsp: {empty_reason(outcome)}\n")
    return text_out


def empty_reason(outcome: Any) -> str:
    """One line on why a completion came out empty."""
    plan, generation = outcome.plan, outcome.generation
    if getattr(plan, "parts", None) is None:  # the scope said no completion here
        return f"no suggestion here ({plan.reason})" if plan.reason else "no suggestion here"
    if generation is None or not generation.text.strip():
        stop = getattr(generation, "stop_reason", None)
        return f"no suggestion: the model generated nothing (stopped on {stop})"
    return (
        f"no suggestion: the model's {len(generation.text)} characters were truncated to "
        "nothing (no whole line or block of syntax)"
    )


def fetch_model(model: ModelSettings) -> ModelSettings:
    """The settings with the registry's file downloaded first when it is missing and
    model.download is on (a progress bar on stderr); unchanged otherwise."""
    from codegemma_lsp.engine.download import download
    from codegemma_lsp.engine.resolve import needs_download, with_path

    entry = needs_download(model)
    if entry is None:
        return model
    size = f" ({entry.size / (1 << 30):.1f} GiB)" if entry.size else ""
    sys.stderr.write(
        f"codegemma-lsp: downloading {entry.filename}{size} from {entry.repo} "
        "into the Hugging Face cache (once)\n"
    )
    return with_path(model, download(entry, show_bar=True))


def _read_source(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CompleteFailed(f"cannot read {file}: not UTF-8 text", 2) from None
    except OSError as exc:
        raise CompleteFailed(f"cannot read {file}: {exc.strerror or exc}", 2) from None


def _check_position(file: Path, text: str, line: int, character: int) -> None:
    """A line past the end is an error here; a character past its line's end is clamped,
    as LSP says and the server does."""
    if line < 0 or character < 0:
        raise CompleteFailed(f"bad position {line}:{character}: both must be 0 or more", 2)
    lines = text.count("\n") + 1
    if line >= lines:
        raise CompleteFailed(
            f"bad position {line}:{character}: {file} has {lines} line(s), numbered from 0", 2
        )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _is_model_id(value: str) -> bool:
    """Whether ``--model`` names a registry model rather than a file."""
    if os.sep in value or "/" in value or value.endswith(".gguf") or os.path.exists(value):
        return False
    from codegemma_lsp.engine.registry import model_ids

    try:
        return value in model_ids()
    except ValueError:  # a broken CODEGEMMA_LSP_REGISTRY: let the path fail plainly
        return False


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []


def run_download(args: argparse.Namespace) -> int:
    """Fetch and verify a registry model; print its path on stdout."""
    from codegemma_lsp.engine.base import EngineError
    from codegemma_lsp.engine.download import download
    from codegemma_lsp.engine.registry import UnknownModel, lookup

    setup_logging(0, None)
    logging.getLogger().setLevel(logging.WARNING)
    try:
        entry = lookup(args.model_id, args.quant)
    except UnknownModel as exc:
        sys.stderr.write(f"codegemma-lsp: {exc}\n")
        return 2
    size = f" ({entry.size / (1 << 30):.1f} GiB)" if entry.size else ""
    sys.stderr.write(f"codegemma-lsp: {entry.repo}: {entry.filename}{size}\n")
    try:
        path = download(entry, revision=args.revision, show_bar=True)
    except EngineError as exc:
        sys.stderr.write(f"codegemma-lsp: {exc}\n")
        return 1
    sys.stderr.write(f"codegemma-lsp: verified {entry.filename} (SHA-256 checked)\n")
    print(path)
    return 0


def run_doctor(args: argparse.Namespace) -> int:
    import json

    from codegemma_lsp.config import SettingsSources, env_layer
    from codegemma_lsp.doctor import diagnose

    setup_logging(args.verbose, args.log_file)
    if not args.verbose:
        logging.getLogger().setLevel(logging.ERROR)
    out = protect_stdout()
    settings, problems = SettingsSources(
        environment=env_layer(), command_line=_model_layer(args)
    ).resolve()
    for problem in problems:
        sys.stderr.write(f"codegemma-lsp: {problem}\n")
    report = diagnose(settings, measure_speed=not args.no_speed)
    if args.json:
        out.write((json.dumps(report.to_json(), indent=2) + "\n").encode("utf-8"))
    else:
        out.write(report.to_text().encode("utf-8"))
    return 0 if report.ok else 1


def run_stats(args: argparse.Namespace) -> int:
    import json

    from codegemma_lsp.usage import COUNTERS, DayUsage, all_days, usage_dir

    directory = usage_dir()
    days = all_days(directory)[-max(1, args.days) :]
    total = DayUsage("total")
    for day in days:
        total.add({name: getattr(day, name) for name in COUNTERS}, day.latencies_ms)
    if args.json:
        print(
            json.dumps(
                {
                    "directory": str(directory),
                    "days": [day.summary() for day in days],
                    "total": total.summary(),
                }
            )
        )
        return 0
    print(f"codegemma-lsp: your numbers, kept on this machine only ({directory})")
    if not days:
        print("no numbers yet: they are written while the server runs (every minute)")
        return 0
    print(_STATS_HEADER)
    for row in [*days, total] if len(days) > 1 else days:
        print(_stats_row(row.summary()))
    return 0


_STATS_HEADER = (
    f"{'day':<10} {'shown':>6} {'accepted':>8} {'partial':>7} {'chars':>7} {'kept 30s':>8} "
    f"{'p50 ms':>7} {'p95 ms':>7} {'cache+join':>10} {'silenced':>8}"
)


def _stats_row(day: dict[str, Any]) -> str:
    kept = f"{day['retention']:.0%}" if day["accepted_chars"] else "-"
    return (
        f"{day['day']:<10} {day['shown']:>6} {day['accepted']:>8} "
        f"{day['accepted_partially']:>7} {day['accepted_chars']:>7} {kept:>8} "
        f"{day['latency_ms']['p50']:>7.0f} {day['latency_ms']['p95']:>7.0f} "
        f"{day['cache_or_join_share']:>10.0%} {day['suppressed']:>8}"
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = _commands(parser)
    # No command, or only flags (``--stdio``, ``--model F``): serve, as editors start it.
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "serve")
    elif not argv[0].startswith("-") and argv[0] not in commands:
        sys.stderr.write(
            f"codegemma-lsp: unknown command {argv[0]!r}; the commands are: "
            f"{', '.join(commands)} (codegemma-lsp COMMAND --help for each)\n"
        )
        return 2
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        # Ctrl-C: leave at once. A normal interpreter exit could die in
        # "_enter_buffered_busy" while a reader thread holds stdin's lock.
        sys.stderr.write("\n")
        sys.stderr.flush()
        os._exit(130)
    return result
