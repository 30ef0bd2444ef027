"""``codegemma-lsp prompt FILE --line L --character C``: the exact prompt, as text.

It plans the completion the way the server does (``plan_completion``), adds the
repository context of FILE's workspace, and prints the prompt with the special
tokens written as their text (``<bos>``, ``<|file_separator|>``, ``<|fim_prefix|>``...).
Stdout holds only the prompt; anything else goes to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any, get_args

from codegemma_lsp.completion import CompletionQuery, plan_completion
from codegemma_lsp.config import Settings, SettingsSources, env_layer
from codegemma_lsp.context.index import ContextIndex
from codegemma_lsp.context.packer import PackedContext
from codegemma_lsp.context.settings import ContextSettings
from codegemma_lsp.documents import Document
from codegemma_lsp.privacy import is_secret_path
from codegemma_lsp.prompt import FimMode, prompt_segments, render_prompt
from codegemma_lsp.syntax.languages import default_registry


class PromptError(Exception):
    """No prompt for this file and position; the message says why."""


def add_prompt_parser(subparsers: Any) -> None:
    """Add the ``prompt`` subcommand to the CLI's subparsers."""
    parser = subparsers.add_parser("prompt", help="print the exact prompt the server would send")
    parser.add_argument("file", type=Path)
    parser.add_argument("--line", type=int, required=True, help="0-based line")
    parser.add_argument("--character", type=int, required=True, help="0-based UTF-16 column")
    parser.add_argument(
        "--workspace",
        type=Path,
        help="workspace folder (default: the nearest parent with .git, else the file's folder)",
    )
    parser.add_argument("--fim-mode", choices=get_args(FimMode), help="prompt layout")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="describe the packed context on stderr"
    )
    parser.set_defaults(func=run_prompt)


def find_workspace(file: Path) -> Path:
    """The nearest folder above ``file`` that holds ``.git``, else the file's own folder."""
    start = Path(os.path.abspath(file)).parent
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def context_settings(settings: Settings) -> ContextSettings:
    """The ``context`` section of ``settings``, or the defaults while config has none."""
    section = getattr(settings, "context", None)
    if isinstance(section, ContextSettings):
        return section
    names = [f.name for f in dataclasses.fields(ContextSettings)]
    return ContextSettings(**{n: getattr(section, n) for n in names if hasattr(section, n)})


def build_prompt_text(
    file: Path,
    line: int,
    character: int,
    *,
    workspace: Path | None = None,
    settings: Settings | None = None,
    index: ContextIndex | None = None,
    text: str | None = None,
) -> tuple[str, PackedContext]:
    """The prompt for ``file`` at (line, character), and the context packed into it.

    ``text`` stands for the editor's text of ``file`` (default: read from disk);
    ``index`` lets a caller keep one index across calls, as the server does.
    """
    file = Path(os.path.abspath(file))
    if is_secret_path(file):
        raise PromptError("no completion in secret files")
    if settings is None:
        settings, _ = SettingsSources(environment=env_layer()).resolve()
    if text is None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PromptError(f"cannot read {file}: {exc}") from exc
    root = Path(os.path.abspath(workspace or find_workspace(file)))
    if index is None:
        current_text = text
        index = ContextIndex(
            root,
            open_text=lambda path: current_text if path == file else None,
            settings=context_settings(settings),
        )
    document = Document(file.as_uri(), text, language=default_registry().lookup(None, str(file)))
    try:
        rel: str = file.relative_to(index.root).as_posix()
    except ValueError:
        rel = file.name
    query = CompletionQuery(
        document=document.snapshot(),
        cursor=document.offset_at(line, character),
        path=rel,
    )
    plan = plan_completion(query, settings)
    if plan.request is None:
        raise PromptError(f"no completion here: {plan.reason}")
    packed = index.context_for(file, tree=document.tree)
    request = dataclasses.replace(plan.request, context=packed.files)
    return render_prompt(prompt_segments(request.parts, request.mode)), packed


def run_prompt(args: argparse.Namespace) -> int:
    layer: dict[str, Any] = {"fim": {"mode": args.fim_mode}} if args.fim_mode else {}
    settings, problems = SettingsSources(environment=env_layer(), command_line=layer).resolve()
    for problem in problems:
        sys.stderr.write(f"codegemma-lsp: {problem}\n")
    try:
        prompt, packed = build_prompt_text(
            args.file, args.line, args.character, workspace=args.workspace, settings=settings
        )
    except PromptError as exc:
        sys.stderr.write(f"codegemma-lsp: {exc}\n")
        return 1
    if args.verbose:
        sys.stderr.write(
            f"context: {len(packed.files)} files, ~{packed.tokens} tokens"
            f"; outlined: {', '.join(packed.outlined) or '-'}"
            f"; dropped: {', '.join(packed.dropped) or '-'}\n"
        )
    sys.stdout.flush()
    sys.stdout.buffer.write(prompt.encode("utf-8", "surrogatepass"))
    sys.stdout.buffer.flush()
    return 0
