"""``codegemma-lsp prompt FILE --line L --character C``: the exact prompt the model gets.

It runs the server's pipeline up to the prompt (stages 1 to 3 of
:mod:`codegemma_lsp.completion`): the plan, the repository context of FILE's
workspace (from a :class:`~codegemma_lsp.context.index.ContextIndex`, given the
document's text and tree, as the server gives it), and
:func:`~codegemma_lsp.completion.build_completion_prompt` with the configured
model's tokenizer and ``n_ctx``. It prints those ids decoded, special tokens written
as their text (``<bos>``, ``<|file_separator|>``, ``<|fim_prefix|>``...), so stdout
is the prompt the model is given, n_ctx fit included; ``--ids`` prints the ids
themselves as one JSON list.

Only the model's vocabulary is loaded, not its weights. With no model configured
(or ``--backend fake``) the fake tokenizer stands in, one id per byte, and stderr
says so: the text is the same unless the n_ctx fit had to cut it.
Stdout holds only the prompt; anything else goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from codegemma_lsp.completion import (
    CompletionPrompt,
    CompletionQuery,
    build_completion_prompt,
    plan_completion,
)
from codegemma_lsp.config import FimMode, Settings, SettingsSources, env_layer
from codegemma_lsp.context.index import ContextIndex
from codegemma_lsp.context.packer import PackedContext
from codegemma_lsp.documents import Document
from codegemma_lsp.engine.base import EngineError, ModelLoadError, Tokenizer
from codegemma_lsp.engine.fake import FakeBackend
from codegemma_lsp.engine.host import make_backend
from codegemma_lsp.privacy import is_secret_path, secret_in
from codegemma_lsp.syntax.languages import default_registry


class PromptError(Exception):
    """No prompt for this file and position; the message says why."""


@dataclass(frozen=True)
class ModelVocabulary:
    """What building a prompt needs of a model: its tokenizer and context size."""

    tokenizer: Tokenizer
    n_ctx: int
    note: str | None = None
    """Set when a stand-in is used rather than the configured model's vocabulary."""


@dataclass(frozen=True)
class PromptReport:
    prompt: CompletionPrompt
    text: str
    """The ids decoded, special tokens as their text."""
    packed: PackedContext


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
    parser.add_argument("--model", metavar="PATH", help="CodeGemma GGUF file (its vocabulary)")
    parser.add_argument("--backend", metavar="KIND", help="llama (default) or fake")
    parser.add_argument("--n-ctx", type=int, help="context size in tokens")
    parser.add_argument("--ids", action="store_true", help="print the token ids as JSON")
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


def model_vocabulary(settings: Settings) -> ModelVocabulary:
    """The configured model's tokenizer and n_ctx, loading its vocabulary alone.

    No model configured: the fake tokenizer, with a note. A model that is configured
    but cannot be read raises ModelLoadError.
    """
    try:
        backend = make_backend(settings.model)
    except ModelLoadError as exc:
        fake = FakeBackend()
        return ModelVocabulary(fake.tokenizer, fake.n_ctx, f"{exc}; {_FAKE_NOTE}")
    from codegemma_lsp.engine.llama_backend import LlamaBackend, LlamaTokenizer

    if isinstance(backend, LlamaBackend):
        # The vocabulary alone: the weights are gigabytes, and the ids need none of them.
        return ModelVocabulary(LlamaTokenizer.from_file(backend.model_path), backend.n_ctx)
    backend.load()
    note = _FAKE_NOTE if isinstance(backend, FakeBackend) else None
    return ModelVocabulary(backend.tokenizer, backend.n_ctx, note)


_FAKE_NOTE = "token ids are the fake tokenizer's (one per byte)"


def build_prompt_report(
    file: Path,
    line: int,
    character: int,
    *,
    vocabulary: ModelVocabulary,
    workspace: Path | None = None,
    settings: Settings | None = None,
    index: ContextIndex | None = None,
    text: str | None = None,
) -> PromptReport:
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
    found = secret_in(text)
    if found is not None:
        raise PromptError(f"no completion in secret files ({file.name} holds {found})")
    root = Path(os.path.abspath(workspace or find_workspace(file)))
    if index is None:
        current_text = text
        index = ContextIndex(
            root,
            open_text=lambda path: current_text if path == file else None,
            settings=settings.context,
        )
    document = Document(file.as_uri(), text, language=default_registry().lookup(None, str(file)))
    snapshot = document.snapshot()
    try:
        rel: str = file.relative_to(index.root).as_posix()
    except ValueError:
        rel = file.name
    query = CompletionQuery(snapshot, document.offset_at(line, character), rel)
    # The server's stages 1 to 3, in its order.
    plan = plan_completion(query, settings)
    if plan.parts is None:
        raise PromptError(f"no completion here: {plan.reason}")
    packed = index.context_for(file, text=snapshot.text, tree=snapshot.tree)
    prompt = build_completion_prompt(plan, packed.files, vocabulary.tokenizer, vocabulary.n_ctx)
    return PromptReport(prompt, vocabulary.tokenizer.detokenize(prompt.ids), packed)


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
    """The prompt's text by the fake tokenizer (lossless), and the context packed into it."""
    fake = FakeBackend()
    report = build_prompt_report(
        file,
        line,
        character,
        vocabulary=ModelVocabulary(fake.tokenizer, fake.n_ctx),
        workspace=workspace,
        settings=settings,
        index=index,
        text=text,
    )
    return report.text, report.packed


def run_prompt(args: argparse.Namespace) -> int:
    layer: dict[str, Any] = {}
    if args.fim_mode:
        layer["fim"] = {"mode": args.fim_mode}
    model: dict[str, Any] = {}
    if args.model:
        model["path"] = str(Path(args.model).expanduser())
    if args.backend:
        model["backend"] = args.backend
    if args.n_ctx:
        model["nCtx"] = args.n_ctx
    if model:
        layer["model"] = model
    settings, problems = SettingsSources(environment=env_layer(), command_line=layer).resolve()
    for problem in problems:
        sys.stderr.write(f"codegemma-lsp: {problem}\n")
    try:
        vocabulary = model_vocabulary(settings)
        report = build_prompt_report(
            args.file,
            args.line,
            args.character,
            vocabulary=vocabulary,
            workspace=args.workspace,
            settings=settings,
        )
    except (PromptError, EngineError, ValueError) as exc:
        sys.stderr.write(f"codegemma-lsp: {exc}\n")
        return 1
    if vocabulary.note:
        sys.stderr.write(f"codegemma-lsp: {vocabulary.note}\n")
    if args.verbose:
        packed = report.packed
        sys.stderr.write(
            f"prompt: {len(report.prompt.ids)} tokens"
            f"; context: {len(packed.files)} files, ~{packed.tokens} tokens"
            f"; outlined: {', '.join(packed.outlined) or '-'}"
            f"; dropped: {', '.join(packed.dropped) or '-'}\n"
        )
    output = json.dumps(report.prompt.ids) + "\n" if args.ids else report.text
    sys.stdout.flush()
    sys.stdout.buffer.write(output.encode("utf-8", "surrogatepass"))
    sys.stdout.buffer.flush()
    return 0
