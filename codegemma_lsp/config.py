"""Typed, defaulted settings and the one order in which their sources apply.

Precedence, lowest first (a later source overrides an earlier one, key by key):

1. built-in defaults (the dataclasses below);
2. ``CODEGEMMA_LSP_*`` environment variables, e.g. ``CODEGEMMA_LSP_MODEL_PATH`` or
   ``CODEGEMMA_LSP_FIM_PREFIX_TOKENS`` (section and key in upper snake case);
3. the client's ``initializationOptions``;
4. the client's workspace settings (``workspace/didChangeConfiguration``, or the
   ``codegemma`` section pulled with ``workspace/configuration``); the newest wins;
5. command-line flags, because a flag typed on the command line is the most explicit.

Keys are camelCase on the wire (``fim.prefixTokens``); snake_case is accepted too.
A value that does not validate is reported in plain words and replaced by its
default: a bad setting never fails ``initialize`` nor stops the server.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from codegemma_lsp.context.settings import CONTEXT_RANGES, ContextSettings
from codegemma_lsp.prompt import FimMode

CommentScope = Literal["off", "line", "block"]

ENV_PREFIX = "CODEGEMMA_LSP_"


@dataclass(frozen=True, kw_only=True)
class ModelSettings:
    path: str | None = None
    """The GGUF file; ``None`` means no model is configured yet."""
    backend: str = "llama"
    """``llama`` (in-process llama.cpp), ``fake`` or ``scripted:PATH`` (checks without a model)."""
    n_ctx: int = 4096
    threads: int = 0
    """0 picks the number of physical cores."""
    batch: int = 256
    mmap: bool = False
    """Map the file instead of reading it. Off: llama.cpp repacks the weights for the CPU,
    and with a mapped file both copies count, about 1 GB more peak memory for 2B."""


@dataclass(frozen=True, kw_only=True)
class FimSettings:
    mode: FimMode = "psm-line"
    """psm-line measured best in ``codegemma-lsp bench replay``: typing within a statement
    changes only the prompt's tail."""
    prefix_tokens: int = 1024
    suffix_tokens: int = 256
    middle_tokens: int = 256
    """psm-line only: the budget of the live region placed after ``<|fim_middle|>``."""
    path_line: bool = True
    """Put the workspace-relative path on the prompt's first line, as CodeGemma was trained."""


@dataclass(frozen=True, kw_only=True)
class CompletionSettings:
    max_new_tokens: int = 64
    max_file_bytes: int = 2_000_000
    """Larger documents get no completion (and no parse)."""
    comments: CommentScope = "line"
    """What to offer inside comments and strings: nothing, a single line, or a block."""


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    kv_reuse: bool = True
    """Evaluate only the prompt tokens after the first that changed (off: the baseline)."""
    cache: bool = True
    """Answer from the last suggestion when the user types what it predicted."""
    time_budget_ms: int = 1500
    """Stop generating after this long and show what is whole by then."""
    snapshot_mb: int = 256
    """Memory for KV snapshots of recently used documents, so switching files is cheap."""
    prewarm: bool = True
    """Evaluate a document's prompt when it is opened and after an accept, while idle."""
    prompt_lookup: int = 0
    """Draft this many tokens from the prompt per step and let the model check them in
    one batch (speculative decoding; same text). Off: on a CPU each drafted token costs
    most of a step, more than drafts save (``codegemma-lsp bench lookup``)."""


@dataclass(frozen=True, kw_only=True)
class LogSettings:
    code: bool = False
    """Log prompts and completions. Off by default: logs never hold code unless asked."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    model: ModelSettings = field(default_factory=ModelSettings)
    fim: FimSettings = field(default_factory=FimSettings)
    completion: CompletionSettings = field(default_factory=CompletionSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    context: ContextSettings = field(default_factory=ContextSettings)
    log: LogSettings = field(default_factory=LogSettings)


_SECTIONS: dict[str, type[Any]] = {
    "model": ModelSettings,
    "fim": FimSettings,
    "completion": CompletionSettings,
    "engine": EngineSettings,
    "context": ContextSettings,
    "log": LogSettings,
}

_RANGES: dict[tuple[str, str], tuple[int, int]] = {
    ("model", "n_ctx"): (256, 131072),
    ("model", "threads"): (0, 512),
    ("model", "batch"): (8, 8192),
    ("fim", "prefix_tokens"): (0, 32768),
    ("fim", "suffix_tokens"): (0, 32768),
    ("fim", "middle_tokens"): (0, 32768),
    ("completion", "max_new_tokens"): (1, 4096),
    ("completion", "max_file_bytes"): (1024, 1 << 31),
    ("engine", "time_budget_ms"): (50, 600_000),
    ("engine", "prompt_lookup"): (0, 32),
    ("engine", "snapshot_mb"): (0, 1 << 16),
    **{("context", key): bounds for key, bounds in CONTEXT_RANGES.items()},
}

_LITERALS: dict[tuple[str, str], tuple[str, ...]] = {
    ("fim", "mode"): get_args(FimMode),
    ("completion", "comments"): get_args(CommentScope),
}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _coerce(section: str, key: str, kind: Any, value: Any) -> Any:
    """Turn a raw value into the field's type, or raise ValueError with a plain reason."""
    if (section, key) in _LITERALS:
        allowed = _LITERALS[(section, key)]
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value
    if kind in (bool, "bool"):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return value.lower() in ("1", "true", "yes", "on")
        raise ValueError("must be true or false")
    if kind in (int, "int"):
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ValueError("must be a whole number") from None
        if not isinstance(value, int):
            raise ValueError("must be a whole number")
        low, high = _RANGES.get((section, key), (-(1 << 62), 1 << 62))
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value
    if kind in ("str | None",):
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return os.path.expanduser(value)
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _lookup(raw: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    for name in (camel(key), key):
        if name in raw:
            return True, raw[name]
    return False, None


def parse_settings(layers: list[Mapping[str, Any]]) -> tuple[Settings, list[str]]:
    """Merge raw layers (lowest precedence first) into Settings, with one message per bad value."""
    problems: list[str] = []
    sections: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        values: dict[str, Any] = {}
        for f in fields(cls):
            for layer in layers:
                raw_section = layer.get(section)
                if not isinstance(raw_section, Mapping):
                    continue
                present, value = _lookup(raw_section, f.name)
                if not present:
                    continue
                try:
                    values[f.name] = _coerce(section, f.name, f.type, value)
                except ValueError as exc:
                    problems.append(
                        f"setting {section}.{camel(f.name)} = {value!r} {exc}; "
                        f"using {values.get(f.name, getattr(cls(), f.name))!r}"
                    )
        sections[section] = cls(**values)
    # Unknown sections and keys are ignored without a message: an editor's settings
    # section also holds keys meant for the editor's own plugin.
    return Settings(**sections), problems


def env_layer(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings found in ``CODEGEMMA_LSP_<SECTION>_<KEY>`` variables."""
    environ = os.environ if environ is None else environ
    layer: dict[str, dict[str, Any]] = {}
    for section, cls in _SECTIONS.items():
        for f in fields(cls):
            name = f"{ENV_PREFIX}{section}_{f.name}".upper()
            if name in environ:
                layer.setdefault(section, {})[f.name] = environ[name]
    return layer


def client_layer(value: Any) -> tuple[dict[str, Any], list[str]]:
    """Settings sent by a client: either ``{"codegemma": {...}}`` or the section itself."""
    # Neovim encodes an empty Lua table as [], so an empty list means "nothing".
    if value is None or value == []:
        return {}, []
    if not isinstance(value, Mapping):
        return {}, [f"settings must be an object, got {type(value).__name__}; ignored"]
    inner = value.get("codegemma", value)
    if not isinstance(inner, Mapping):
        return {}, ["settings.codegemma must be an object; ignored"]
    return dict(inner), []


@dataclass
class SettingsSources:
    """The raw layers, kept so that one source can change and the rest still apply."""

    environment: dict[str, Any] = field(default_factory=dict)
    initialization: dict[str, Any] = field(default_factory=dict)
    workspace: dict[str, Any] = field(default_factory=dict)
    command_line: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> tuple[Settings, list[str]]:
        return parse_settings(
            [self.environment, self.initialization, self.workspace, self.command_line]
        )
