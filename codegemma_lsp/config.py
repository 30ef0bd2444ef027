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

CommentScope = Literal["off", "line", "block"]
AutoSwitch = Literal["auto", "on", "off"]
"""A switch the pacing rule may set (``auto``), or that the user pins."""
MultiLine = AutoSwitch
FimMode = Literal["psm", "psm-line", "spm", "spm2"]
"""Prompt layouts (:mod:`codegemma_lsp.prompt` builds them); defined here, below every layer,
so that config imports nothing of the pipeline."""
KvType = Literal["f16", "q8_0", "q4_0"]
PromptFormat = Literal["auto", "ids", "text"]

ENV_PREFIX = "CODEGEMMA_LSP_"


@dataclass(frozen=True, kw_only=True)
class ModelSettings:
    path: str | None = None
    """The GGUF file. ``None``: the registry's file for ``id`` and ``quant``, from the HF cache."""
    id: str = "codegemma-2b"
    """A registry model: codegemma-2b, codegemma-7b or codegemma-7b-it (used when no path)."""
    quant: str = "Q4_K_M"
    """The quantisation of ``id``'s file, e.g. Q4_K_M or Q8_0."""
    download: bool = True
    """Fetch the registry's file when it is not in the cache (off: say which command does)."""
    backend: str = "llama"
    """``llama`` (in-process llama.cpp), ``llama-server`` or ``openai`` (a remote engine at
    ``url``), ``fake`` or ``scripted:PATH`` (checks without a model)."""
    url: str | None = None
    """A remote engine's base URL, e.g. ``http://gpu-box:8080`` (``llama-server``, ``openai``)."""
    api_key: str | None = field(default=None, repr=False)
    """The remote engine's bearer token (else ``OPENAI_API_KEY``); never logged."""
    timeout_ms: int = 15_000
    """A remote engine: the longest one request may take, queueing and prompt included."""
    slots: int = 0
    """``llama-server``: the slots to spread documents over (0: the server's count, ``-np``)."""
    prompt_format: PromptFormat = "auto"
    """``openai``: the prompt as token ids, as text with special tokens written out (for
    ``llama_cpp.server``), or ``auto``: ids, then text if the server refuses them."""
    n_ctx: int = 4096
    threads: int = 0
    """0 picks the number of physical cores."""
    batch: int = 256
    mmap: bool = False
    """Map the file instead of reading it. Off: llama.cpp repacks the weights for the CPU,
    and with a mapped file both copies count, about 1 GB more peak memory for 2B."""
    gpu_layers: int | str = "auto"
    """Layers offloaded to the GPU: ``auto`` (all of them when llama.cpp was built with a GPU
    backend, else none), 0, or a count."""
    kv_type: KvType = "f16"
    """The KV cache's element type; q8_0 and q4_0 need flash attention."""
    flash_attention: bool = True


@dataclass(frozen=True, kw_only=True)
class FimSettings:
    mode: FimMode = "psm-line"
    """psm-line measured best in ``codegemma-lsp bench replay``: typing within a statement
    changes only the prompt's tail."""
    prefix_tokens: int = 0
    suffix_tokens: int = 0
    middle_tokens: int = 0
    """psm-line only: the budget of the live region placed after ``<|fim_middle|>``.
    Each budget: 0 (or ``auto``) lets :mod:`codegemma_lsp.pacing` set it from the
    machine's speed (1024, 256 and 256 tokens on a fast machine); a number pins it."""
    path_line: bool = True
    """Put the workspace-relative path on the prompt's first line, as CodeGemma was trained."""


@dataclass(frozen=True, kw_only=True)
class CompletionSettings:
    max_new_tokens: int = 64
    max_file_bytes: int = 2_000_000
    """Larger documents get no completion (and no parse)."""
    comments: CommentScope = "line"
    """What to offer inside comments and strings: nothing, a single line, or a block."""
    multi_line: MultiLine = "auto"
    """Complete whole blocks where the syntax allows one (``on``), only their first line
    (``off``), or as :mod:`codegemma_lsp.pacing` decides from the machine's speed."""
    candidates: int = 0
    """Suggestions per request, for the editor to cycle through (1 to 4). 0 (or ``auto``):
    3 when the model runs on a GPU or a remote engine, 1 on a CPU, where each extra
    candidate slows every generated token."""
    min_confidence: float = 0.0
    """Show no candidate whose mean token probability is below this (0 to 1; 0: off).
    ``codegemma-lsp eval humaneval`` prints what each threshold would keep."""
    slow_ms: int = 2000
    """Say once, in the status, when the median latency of the last 20 requests passes
    this (0: never)."""


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    kv_reuse: bool = True
    """Evaluate only the prompt tokens after the first that changed (off: the baseline)."""
    cache: bool = True
    """Answer from the last suggestion when the user types what it predicted."""
    time_budget_ms: int = 0
    """Stop generating after this long and show what is whole by then. 0 (or ``auto``):
    twice the user's median pause, from 750 to 3000 ms (:mod:`codegemma_lsp.pacing`)."""
    snapshot_mb: int = 256
    """Memory for KV snapshots of recently used documents, so switching files is cheap."""
    prewarm: bool = True
    """Evaluate a document's prompt when it is opened and after an accept, while idle."""
    eager_start: AutoSwitch = "auto"
    """Start the completion the editor is about to ask for as soon as an edit arrives, at
    the cursor the edit left, so the editor's debounce is spent generating (``on``), or
    wait for the request (``off``). ``auto``: on where generation is slow (a CPU), as
    :mod:`codegemma_lsp.pacing` decides from the machine's speed."""
    prompt_lookup: int = 0
    """Draft this many tokens from the prompt per step and let the model check them in
    one batch (speculative decoding; same text). Off: on a CPU each drafted token costs
    most of a step, more than drafts save (``codegemma-lsp bench lookup``)."""


CONTEXT_RANGES: dict[str, tuple[int, int]] = {
    "max_tokens": (0, 32768),
    "max_depth": (0, 8),
    "max_file_bytes": (1024, 1 << 26),
    "max_files": (0, 256),
    "recheck_seconds": (0, 3600),
}
"""Valid ranges of the ``context`` section's whole-number keys."""


@dataclass(frozen=True, kw_only=True)
class ContextSettings:
    """How much repository context goes before the file (:mod:`codegemma_lsp.context`)."""

    enabled: bool = True
    max_tokens: int = 1024
    """Budget of the packed files. Each context token costs about 14 ms the first time on a
    2-core CPU, and nothing afterwards while the pack stays the same (KV reuse)."""
    max_depth: int = 2
    """How many import hops are followed from the current file."""
    max_file_bytes: int = 262_144
    """Larger files are never read as context (nor parsed whole, the current file's head
    aside)."""
    max_files: int = 16
    """At most this many files are considered for one pack, nearest first."""
    tests: bool = True
    """Pair a test with its implementation, and an implementation with its tests."""
    recheck_seconds: int = 5
    """``context_for`` stats the files of a pack at most this often to notice outside edits;
    0 leaves it to explicit ``check_mtimes`` calls."""


@dataclass(frozen=True, kw_only=True)
class LogSettings:
    code: bool = False
    """Log prompts and completions. Off by default: logs never hold code unless asked."""


@dataclass(frozen=True, kw_only=True)
class GenerateSettings:
    """Code generation from an instruction (``codegemma.generate``), by its own model."""

    model: str = "codegemma-7b-it"
    """The instruction model: a registry id (``codegemma-7b-it``) or a GGUF file's path.
    Generation is offered only when it names a file that is there (a registry id once
    downloaded)."""
    quant: str = "Q4_K_M"
    """The quantisation of a registry id's file."""
    backend: str = "llama"
    """``llama`` (in-process, beside the completion model), ``llama-server`` or ``openai``
    (a remote engine at ``url``), or ``fake[:SECONDS]`` / ``scripted:PATH`` for checks
    without a model (accepted from the environment only)."""
    url: str | None = None
    """A remote engine's base URL for generation (``llama-server``, ``openai``); its token is
    ``model.apiKey``'s."""
    max_tokens: int = 512
    """The most tokens one answer may generate."""
    idle_unload_s: int = 300
    """Unload the instruction model after this many seconds unused (0: keep it loaded)."""
    n_ctx: int = 4096
    """The instruction model's context: prompt (the code around the cursor) and answer."""


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    max_message_bytes: int = 64 * 1024 * 1024
    """A message longer than this is discarded unread and answered with -32700. It applies
    from the first byte, so only the environment and the command line can set it before
    ``initialize``; client settings change it for later messages."""
    parent_check_ms: int = 3000
    """How often to check that the client's ``processId`` is still alive (0: never)."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    model: ModelSettings = field(default_factory=ModelSettings)
    fim: FimSettings = field(default_factory=FimSettings)
    completion: CompletionSettings = field(default_factory=CompletionSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    context: ContextSettings = field(default_factory=ContextSettings)
    log: LogSettings = field(default_factory=LogSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    generate: GenerateSettings = field(default_factory=GenerateSettings)


_SECTIONS: dict[str, type[Any]] = {
    "model": ModelSettings,
    "fim": FimSettings,
    "completion": CompletionSettings,
    "engine": EngineSettings,
    "context": ContextSettings,
    "log": LogSettings,
    "server": ServerSettings,
    "generate": GenerateSettings,
}

_RANGES: dict[tuple[str, str], tuple[int, int]] = {
    ("model", "n_ctx"): (256, 131072),
    ("model", "threads"): (0, 512),
    ("model", "batch"): (8, 8192),
    ("model", "timeout_ms"): (100, 600_000),
    ("model", "slots"): (0, 4096),
    ("fim", "prefix_tokens"): (0, 32768),
    ("fim", "suffix_tokens"): (0, 32768),
    ("fim", "middle_tokens"): (0, 32768),
    ("completion", "max_new_tokens"): (1, 4096),
    ("completion", "max_file_bytes"): (1024, 1 << 31),
    ("completion", "candidates"): (0, 4),
    ("completion", "slow_ms"): (0, 600_000),
    ("engine", "time_budget_ms"): (0, 600_000),
    ("engine", "prompt_lookup"): (0, 32),
    ("engine", "snapshot_mb"): (0, 1 << 16),
    ("server", "max_message_bytes"): (1024, 1 << 40),
    ("server", "parent_check_ms"): (0, 3_600_000),
    ("generate", "max_tokens"): (1, 16384),
    ("generate", "idle_unload_s"): (0, 7 * 24 * 3600),
    ("generate", "n_ctx"): (256, 131072),
    **{("context", key): bounds for key, bounds in CONTEXT_RANGES.items()},
}

_FLOAT_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("completion", "min_confidence"): (0.0, 1.0),
}

AUTO_ZERO = frozenset(
    {
        ("fim", "prefix_tokens"),
        ("fim", "suffix_tokens"),
        ("fim", "middle_tokens"),
        ("engine", "time_budget_ms"),
        ("completion", "candidates"),
    }
)
"""Settings whose 0 means "auto" (the pacing rule sets them); ``"auto"`` is read as 0."""

_LITERALS: dict[tuple[str, str], tuple[str, ...]] = {
    ("fim", "mode"): get_args(FimMode),
    ("completion", "comments"): get_args(CommentScope),
    ("completion", "multi_line"): get_args(MultiLine),
    ("engine", "eager_start"): get_args(AutoSwitch),
    ("model", "kv_type"): get_args(KvType),
    ("model", "prompt_format"): get_args(PromptFormat),
}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class BackendChoice:
    """``model.backend`` parsed: which backend, and its argument."""

    kind: Literal["llama", "llama-server", "openai", "fake", "scripted"]
    delay_s: float = 0.0
    """``fake:SECONDS``: the delay spread over the fake's tokens."""
    path: str = ""
    """``scripted:PATH``: the file whose text is the output."""


TEST_BACKENDS = ("fake", "scripted")
"""Backends that are not a model: accepted only from the command line (and environment)."""
MAX_FAKE_DELAY_S = 3600.0


def parse_backend(value: str) -> BackendChoice:
    """``llama``, ``llama-server``, ``openai``, ``fake``, ``fake:SECONDS`` or ``scripted:PATH``;
    ValueError says why not."""
    kind, colon, argument = value.strip().partition(":")
    kind = kind.strip().lower()
    if kind == "llama" and not colon:
        return BackendChoice("llama")
    if kind == "llama-server" and not colon:
        return BackendChoice("llama-server")
    if kind == "openai" and not colon:
        return BackendChoice("openai")
    if kind == "fake":
        if not colon:
            return BackendChoice("fake")
        try:
            delay = float(argument)
        except ValueError:
            raise ValueError("must be fake:SECONDS with SECONDS a number") from None
        # float() takes nan, inf and -1: each would fail on every request instead.
        if not 0 <= delay <= MAX_FAKE_DELAY_S:  # also False for nan
            raise ValueError(f"must be fake:SECONDS with SECONDS from 0 to {MAX_FAKE_DELAY_S:g}")
        return BackendChoice("fake", delay_s=delay)
    if kind == "scripted":
        if not argument.strip():
            raise ValueError("must be scripted:PATH with the path of a file")
        return BackendChoice("scripted", path=argument)
    raise ValueError("must be llama, llama-server, openai, fake, fake:SECONDS or scripted:PATH")


def is_test_backend(value: Any) -> bool:
    return isinstance(value, str) and value.strip().partition(":")[0].strip().lower() in (
        TEST_BACKENDS
    )


def _coerce(section: str, key: str, kind: Any, value: Any) -> Any:
    """Turn a raw value into the field's type, or raise ValueError with a plain reason."""
    if (section, key) in (("model", "backend"), ("generate", "backend")):
        if not isinstance(value, str):
            raise ValueError("must be a string")
        parse_backend(value)
        return value.strip()
    if (section, key) in _LITERALS:
        allowed = _LITERALS[(section, key)]
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value
    if (section, key) in AUTO_ZERO and isinstance(value, str) and value.strip() == "auto":
        return 0
    if kind == "int | str":  # model.gpuLayers: "auto" or a count
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("must be auto or a number of layers")
        try:
            layers = int(value)
        except ValueError:
            raise ValueError("must be auto or a number of layers") from None
        if not 0 <= layers <= 1024:
            raise ValueError("must be auto or a number of layers from 0 to 1024")
        return layers
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
    if kind in (float, "float"):
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError("must be a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number")
        low_f, high_f = _FLOAT_RANGES.get((section, key), (float("-inf"), float("inf")))
        if not low_f <= value <= high_f:  # also False for nan
            raise ValueError(f"must be between {low_f:g} and {high_f:g}")
        return float(value)
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
        initialization, refused_init = _without_test_backend(
            self.initialization, "initializationOptions"
        )
        workspace, refused_workspace = _without_test_backend(self.workspace, "workspace settings")
        settings, problems = parse_settings(
            [self.environment, initialization, workspace, self.command_line]
        )
        return settings, [*refused_init, *refused_workspace, *problems]


def _without_test_backend(layer: dict[str, Any], source: str) -> tuple[dict[str, Any], list[str]]:
    """``layer`` less a test backend (``fake``, ``scripted:PATH``) in ``model.backend``
    or ``generate.backend``.

    A client, or a workspace's settings file, must not swap the model for a backend that
    reads any file back as a "completion": those are for checks, started on purpose.
    """
    refused: list[str] = []
    for section, where in (
        ("model", "on the command line (--backend)"),
        ("generate", "from the server's environment (CODEGEMMA_LSP_GENERATE_BACKEND)"),
    ):
        raw = layer.get(section)
        if not isinstance(raw, Mapping):
            continue
        value = raw.get("backend")
        if not is_test_backend(value):
            continue
        layer = {**layer, section: {key: item for key, item in raw.items() if key != "backend"}}
        refused.append(
            f"setting {section}.backend = {value!r} from the {source} is ignored: test "
            f"backends (fake, scripted:PATH) are accepted only {where}"
        )
    return layer, refused
