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
from typing import Any, BinaryIO

from codegemma_lsp import __version__

log = logging.getLogger("codegemma_lsp")

SUBCOMMANDS = ("serve", "complete", "prompt", "eval", "bench")


def protect_stdout() -> BinaryIO:
    """A private binary stream on the real stdout; fd 1 (and sys.stdout) now go to stderr."""
    sys.stdout.flush()
    private_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(private_fd, "wb", buffering=0)


def setup_logging(verbose: int, log_file: str | None) -> None:
    handler: logging.Handler = (
        logging.FileHandler(log_file, encoding="utf-8")
        if log_file
        else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # pygls logs whole message bodies (document text) at INFO, and routine events such as
    # a cancel for a finished request at WARNING: keep both out unless asked with -vv.
    logging.getLogger("pygls").setLevel(logging.DEBUG if verbose >= 2 else logging.ERROR)


def _model_layer(args: argparse.Namespace) -> dict[str, Any]:
    model: dict[str, Any] = {}
    if getattr(args, "model", None):
        model["path"] = str(Path(args.model).expanduser())
    if getattr(args, "backend", None):
        model["backend"] = args.backend
    if getattr(args, "n_ctx", None):
        model["nCtx"] = args.n_ctx
    if getattr(args, "threads", None):
        model["threads"] = args.threads
    return {"model": model} if model else {}


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH", help="CodeGemma GGUF file")
    parser.add_argument(
        "--backend",
        metavar="KIND",
        help="llama (default), fake, or scripted:PATH to return PATH's text as the model output",
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
    serve.add_argument("--port", type=int, default=2087, help="TCP port (with --tcp)")
    # Generic clients (vscode-languageclient's stdio transport) add --stdio; it is the default.
    serve.add_argument("--stdio", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=run_serve)

    complete = sub.add_parser("complete", help="print the completion the server would show")
    complete.add_argument("file", type=Path)
    complete.add_argument("--line", type=int, required=True, help="0-based line")
    complete.add_argument("--character", type=int, required=True, help="0-based UTF-16 column")
    _add_model_flags(complete)
    complete.set_defaults(func=run_complete)

    from codegemma_lsp.context.prompt_cli import add_prompt_parser

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
    from codegemma_lsp.server import create_server

    setup_logging(args.verbose, args.log_file)
    server = create_server(_model_layer(args), env_layer())
    if args.tcp:
        log.info("listening on 127.0.0.1:%d", args.port)
        server.start_tcp("127.0.0.1", args.port)
        return 0 if server.protocol._shutdown else 1
    protocol_out = protect_stdout()
    log.info("codegemma-lsp %s on stdio", __version__)
    server.start_io(sys.stdin.buffer, protocol_out)
    # pygls swallows the SystemExit it raises on ``exit``; the LSP rule is 0 only after shutdown.
    return 0 if server.protocol._shutdown else 1


def run_complete(args: argparse.Namespace) -> int:
    from codegemma_lsp.completion import CompletionQuery, run_completion
    from codegemma_lsp.config import SettingsSources, env_layer
    from codegemma_lsp.documents import Document
    from codegemma_lsp.engine.base import CancelToken, EngineError
    from codegemma_lsp.engine.host import make_backend
    from codegemma_lsp.syntax.languages import default_registry

    setup_logging(args.verbose, args.log_file)
    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
    out = protect_stdout()
    settings, problems = SettingsSources(
        environment=env_layer(), command_line=_model_layer(args)
    ).resolve()
    for problem in problems:
        log.warning("%s", problem)
    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        sys.stderr.write(f"codegemma-lsp: cannot read {args.file}: {exc}\n")
        return 2
    try:
        backend = make_backend(settings.model)
        backend.load()
    except EngineError as exc:
        sys.stderr.write(f"codegemma-lsp: {exc}\n")
        return 1
    language = default_registry().lookup(None, str(args.file))
    document = Document(args.file.resolve().as_uri(), text, language=language)
    query = CompletionQuery(
        document=document.snapshot(),
        cursor=document.offset_at(args.line, args.character),
        path=args.file.name,
    )
    outcome = run_completion(backend, query, settings, CancelToken())
    backend.close()
    out.write(outcome.text.encode("utf-8"))
    if os.isatty(out.fileno()):
        out.write(b"\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "serve")
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
