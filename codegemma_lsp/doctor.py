"""``codegemma-lsp doctor``: what a user needs to know when completions do not appear or lag.

Each check gives a finding: ``ok``, ``info``, ``warn`` (works, but not as well as it
could) or ``fail`` (the setup cannot work; the command exits non-zero). A finding says
what to do in plain words. Nothing here downloads: a missing model is reported with
the command that fetches it.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from codegemma_lsp import __version__
from codegemma_lsp.config import ModelSettings, Settings

Status = Literal["ok", "info", "warn", "fail"]

# What a single-line completion costs while typing: a few prompt tokens re-evaluated
# (the KV cache keeps the rest) and a short line generated.
TYPED_PROMPT_TOKENS = 8
LINE_TOKENS = 12
FRESH_PROMPT_TOKENS = 1024
"""A new file's first request evaluates its whole prompt (fim.prefixTokens)."""

GPU_CMAKE_ARGS = {
    "CUDA": "-DGGML_CUDA=on",
    "Metal": "-DGGML_METAL=on",
    "Vulkan": "-DGGML_VULKAN=on",
}


@dataclass
class Finding:
    section: str
    status: Status
    text: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def add(self, section: str, status: Status, text: str, **data: Any) -> Finding:
        finding = Finding(section, status, text, data)
        self.findings.append(finding)
        return finding

    @property
    def ok(self) -> bool:
        return not any(f.status == "fail" for f in self.findings)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "fail"]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "findings": [dataclasses.asdict(f) for f in self.findings],
        }

    def to_text(self) -> str:
        lines = [f"codegemma-lsp doctor ({__version__})"]
        for finding in self.findings:
            head = f"{finding.status:<5} {finding.section}: "
            body = finding.text.splitlines() or [""]
            lines.append(head + body[0])
            lines.extend(" " * len(head) + more for more in body[1:])
        if self.ok:
            warnings = sum(1 for f in self.findings if f.status == "warn")
            tail = f" ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else ""
            lines.append(f"verdict: this setup can work{tail}")
        else:
            names = "; ".join(f"{f.section}: {f.text.splitlines()[0]}" for f in self.problems)
            lines.append(f"verdict: this setup cannot work: {names}")
        return "\n".join(lines) + "\n"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def speed_verdict(prompt_tps: float, generate_tps: float) -> tuple[Status, str]:
    """What the measured speed means for someone typing, in words."""
    line_s = TYPED_PROMPT_TOKENS / prompt_tps + LINE_TOKENS / generate_tps
    fresh_s = FRESH_PROMPT_TOKENS / prompt_tps
    if line_s < 0.5:
        words, status = "fast: suggestions keep up with typing", "ok"
    elif line_s < 1.5:
        words, status = "usable: suggestions appear after a short pause", "ok"
    elif line_s < 4:
        words, status = "slow: suggestions lag behind typing", "warn"
    else:
        words, status = (
            "too slow for typing: use a GPU build, a smaller model or fewer apps",
            "warn",
        )
    per_line = f"about {line_s:.1f} s" if line_s >= 0.1 else "under 0.1 s"
    text = (
        f"expect {per_line} per single-line completion ({words}); "
        f"the first request in a new file about {fresh_s:.0f} s"
    )
    return status, text  # type: ignore[return-value]


# ----- the checks ---------------------------------------------------------------------


def check_versions(report: Report) -> Any:
    """Versions; returns the llama.cpp build report, or None when llama_cpp cannot load."""
    report.add(
        "versions",
        "info",
        f"codegemma-lsp {__version__}, Python {platform.python_version()}, "
        f"pygls {_version('pygls')}, tree-sitter {_version('tree-sitter')}, "
        f"huggingface_hub {_version('huggingface_hub')}",
        codegemma_lsp=__version__,
        python=platform.python_version(),
        pygls=_version("pygls"),
        tree_sitter=_version("tree-sitter"),
        huggingface_hub=_version("huggingface_hub"),
    )
    try:
        from codegemma_lsp.engine.diagnose import build_report

        build = build_report()
    except Exception as exc:
        report.add(
            "llama.cpp",
            "fail",
            f"llama-cpp-python cannot be loaded ({type(exc).__name__}: {exc}); "
            "reinstall it: pip install --force-reinstall --no-cache-dir llama-cpp-python",
        )
        return None
    report.add(
        "llama.cpp",
        "info",
        f"llama-cpp-python {build.package_version}, llama.cpp {build.llama_cpp_version}",
        llama_cpp_python=build.package_version,
        llama_cpp=build.llama_cpp_version,
    )
    return build


def check_build(report: Report, build: Any, model: ModelSettings) -> None:
    cpu = " ".join(f for f in build.cpu_features if f not in ("OPENMP", "REPACK", "LLAMAFILE"))
    extras = [b for b in build.backends if b not in build.gpu_backends]
    gpus = list(build.gpu_backends)
    text = f"CPU features: {cpu or 'none reported'}"
    if extras:
        text += f"; also {', '.join(extras)}"
    if gpus:
        text += f"\nGPU offload: {', '.join(gpus)} compiled in"
        status: Status = "ok"
    else:
        text += "\nGPU offload: none compiled in (CPU only)"
        status = "ok"
        hint = _gpu_hint()
        if hint:
            text += f"; {hint}"
        if isinstance(model.gpu_layers, int) and model.gpu_layers > 0:
            status = "warn"
            text += f"\nmodel.gpuLayers {model.gpu_layers} has no effect in this build"
    report.add(
        "build",
        status,
        text,
        cpu_features=list(build.cpu_features),
        backends=list(build.backends),
        gpu_offload=build.gpu_offload,
        system_info=build.system_info,
    )


def _gpu_hint() -> str:
    """Which CMAKE_ARGS would give this machine GPU offload, if it has a GPU we can see."""
    reinstall = 'CMAKE_ARGS="{}" pip install --force-reinstall --no-cache-dir llama-cpp-python'
    if shutil.which("nvidia-smi"):
        return "an NVIDIA GPU is present: " + reinstall.format(GPU_CMAKE_ARGS["CUDA"])
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "Apple silicon: " + reinstall.format(GPU_CMAKE_ARGS["Metal"])
    if shutil.which("vulkaninfo"):
        return "Vulkan is present: " + reinstall.format(GPU_CMAKE_ARGS["Vulkan"])
    return ""


def check_model_file(report: Report, model: ModelSettings) -> Path | None:
    """Where the model file is and whether it is the registry's; its path, or None."""
    from codegemma_lsp.engine.base import ModelLoadError
    from codegemma_lsp.engine.download import expected_sha256, sha256_of
    from codegemma_lsp.engine.memory import gib
    from codegemma_lsp.engine.registry import by_filename
    from codegemma_lsp.engine.resolve import ModelMissing, cached_path, registry_entry

    if model.backend != "llama":
        report.add("model", "info", f"backend {model.backend}: no model file is used")
        return None
    try:
        path = cached_path(model)
    except ModelMissing as missing:
        if model.download:
            report.add(
                "model",
                "warn",
                f"{missing.entry.filename} is not downloaded yet; the server fetches it on "
                f"first use, or fetch it now: {missing.entry.command}",
                command=missing.entry.command,
            )
        else:
            report.add("model", "fail", str(missing), command=missing.entry.command)
        return None
    except ModelLoadError as exc:
        report.add("model", "fail", str(exc))
        return None
    if not path.is_file():
        report.add(
            "model",
            "fail",
            f"model file not found: {path} (fix model.path, or unset it to use "
            f"model.id {model.id})",
            path=str(path),
        )
        return None
    size = path.stat().st_size
    source = "model.path" if model.path else f"the Hugging Face cache ({model.id} {model.quant})"
    report.add("model", "ok", f"{path} ({gib(size)}), from {source}", path=str(path), size=size)
    entry = by_filename(path.name) if model.path else registry_entry(model)
    started = time.perf_counter()
    actual = sha256_of(path)
    seconds = time.perf_counter() - started
    if entry is None:
        report.add(
            "checksum",
            "info",
            f"not a registry file, so not checked (SHA-256 {actual})",
            sha256=actual,
        )
        return path
    expected = expected_sha256(entry, path)
    if expected is None:
        report.add(
            "checksum", "info", f"no published checksum for {entry.filename} (SHA-256 {actual})"
        )
    elif expected == actual:
        report.add(
            "checksum",
            "ok",
            f"SHA-256 matches the registry's {entry.model} {entry.quant} "
            f"(hashed in {seconds:.1f} s)",
            sha256=actual,
        )
    else:
        report.add(
            "checksum",
            "fail",
            f"{path.name} does not match the registry's SHA-256 (it is damaged, or another "
            f"conversion with the same name): delete it and run `{entry.command}`",
            sha256=actual,
            expected=expected,
        )
    return path


def check_memory(
    report: Report,
    model: ModelSettings,
    weights: int,
    shape: Any,
    available: int | None,
    *,
    on_cpu: bool = True,
) -> Finding:
    from codegemma_lsp.engine.memory import estimate, gib

    need = estimate(
        shape,
        weights,
        model.n_ctx,
        kv_type=model.kv_type,
        flash_attention=model.flash_attention,
        on_cpu=on_cpu,
    )
    status: Status = "ok"
    text = f"needs {need.describe()}, computed for n_ctx {model.n_ctx}"
    if available is not None:
        text += f"; {gib(available)} available"
        if need.total > available:
            status = "fail"
            text += (
                ": not enough memory; lower model.nCtx, set model.kvType q8_0, "
                "or use a smaller quant"
            )
        elif need.total > 0.8 * available:
            status = "warn"
            text += ": tight; other programs may push it into swap"
    if shape.n_ctx_train and model.n_ctx > shape.n_ctx_train:
        status = "warn" if status == "ok" else status
        text += (
            f"\nmodel.nCtx {model.n_ctx} is more than the model was trained on "
            f"({shape.n_ctx_train})"
        )
    return report.add(
        "memory",
        status,
        text,
        total=need.total,
        weights=need.weights,
        kv_cache=need.kv_cache,
        buffers=need.buffers,
        available=available,
    )


def check_generate(report: Report, settings: Settings) -> None:
    """The instruction model of ``codegemma.generate``: its file and the memory it will
    take while loaded (it is loaded on first use, and unloaded after generate.idleUnloadS).
    Generation is optional, so nothing here fails the setup."""
    from codegemma_lsp.engine.base import ModelLoadError
    from codegemma_lsp.engine.instruction_backends import instruction_model_file, looks_like_path
    from codegemma_lsp.engine.memory import estimate, gib
    from codegemma_lsp.engine.registry import by_filename, shape_of

    generate = settings.generate
    if generate.backend != "llama":
        report.add("generate", "info", f"backend {generate.backend}: no model file is used")
        return
    try:
        path = instruction_model_file(generate.model, generate.quant)
    except ModelLoadError as exc:
        report.add("generate", "info", f"code generation is off: {exc}")
        return
    size = path.stat().st_size
    entry = by_filename(path.name)
    model_id = entry.model if entry is not None else None
    if model_id is None and not looks_like_path(generate.model):
        model_id = generate.model
    shape = shape_of(model_id) if model_id is not None else None
    text = f"{path} ({gib(size)}); loaded on first use, unloaded after {generate.idle_unload_s} s"
    data: dict[str, Any] = {"path": str(path), "size": size}
    if shape is not None:
        need = estimate(shape, size, generate.n_ctx)
        text += f"\nwhile loaded it needs {need.describe()}, computed for n_ctx {generate.n_ctx}"
        data["memory"] = need.total
    else:
        text += f"\nwhile loaded it needs at least {gib(size)} (its weights) and a KV cache"
        data["memory"] = size
    report.add("generate", "ok", text, **data)


def check_grammars(report: Report) -> None:
    import importlib
    import tomllib

    from codegemma_lsp.syntax.languages import grammars_dir

    installed, missing = [], []
    for folder in sorted(grammars_dir().iterdir()):
        spec = folder / "language.toml"
        if not spec.is_file():
            continue
        data = tomllib.loads(spec.read_text(encoding="utf-8"))
        try:
            importlib.import_module(data["module"])
        except ImportError:
            missing.append(f"{data['name']} (pip install {data['module'].replace('_', '-')})")
        else:
            installed.append(str(data["name"]))
    text = f"installed for {', '.join(installed) or 'no language'}"
    text += f"; missing for {', '.join(missing)}" if missing else ""
    text += "\nother languages get completions cut at line boundaries instead of syntax"
    report.add("grammars", "warn" if missing else "ok", text, installed=installed, missing=missing)


def check_editors(report: Report, home: Path, run: Callable[..., Any] = subprocess.run) -> None:
    found: dict[str, str] = {}
    nvim = shutil.which("nvim")
    if nvim is None:
        found["neovim"] = "nvim not found on PATH"
    else:
        lua = (
            "io.stdout:write(table.concat("
            "vim.api.nvim_get_runtime_file('lua/codegemma/init.lua', true), ' '))"
        )
        try:
            result = run(
                [nvim, "--headless", "-c", f"lua {lua}", "-c", "qa!"],
                capture_output=True,
                text=True,
                timeout=15,
                stdin=subprocess.DEVNULL,
            )
            paths = result.stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            paths = ""
            found["neovim"] = f"could not ask nvim ({type(exc).__name__})"
        if "neovim" not in found:
            found["neovim"] = (
                f"plugin on the runtime path: {paths}"
                if paths
                else "plugin not on the runtime path"
            )
    inits = [
        home / ".emacs",
        home / ".emacs.el",
        home / ".emacs.d" / "init.el",
        home / ".config" / "emacs" / "init.el",
    ]
    loaded = [p for p in inits if p.is_file() and "codegemma-lsp" in _read(p)]
    found["emacs"] = (
        f"codegemma-lsp.el loaded from {', '.join(map(str, loaded))}"
        if loaded
        else "codegemma-lsp.el not named in an init file"
    )
    extension_dirs = [
        home / ".vscode" / "extensions",
        home / ".vscode-server" / "extensions",
        home / ".vscode-oss" / "extensions",
        home / ".local" / "share" / "code-server" / "extensions",
    ]
    extensions = [str(p) for d in extension_dirs if d.is_dir() for p in d.glob("*codegemma*")]
    found["vscode"] = (
        f"extension installed: {', '.join(extensions)}" if extensions else "extension not installed"
    )
    text = "\n".join(f"{name}: {where}" for name, where in found.items())
    report.add("editors", "info", text, **found)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def diagnose(
    settings: Settings,
    *,
    measure_speed: bool = True,
    home: Path | None = None,
) -> Report:
    report = Report()
    model = settings.model
    build = check_versions(report)
    if build is not None:
        check_build(report, build, model)
    path = check_model_file(report, model) if build is not None else None
    check_generate(report, settings)
    check_grammars(report)
    check_editors(report, home or Path.home())
    if path is not None and build is not None:
        _check_loaded_model(report, settings, path, measure_speed)
    return report


def _check_loaded_model(report: Report, settings: Settings, path: Path, measure: bool) -> None:
    """Load the model and time it in a child process: a crash inside llama.cpp (it has
    happened, in its AMX kernels) must become a finding, not the end of the doctor."""
    from codegemma_lsp.engine.memory import available_bytes, gib
    from codegemma_lsp.engine.registry import ModelShape, shape_of

    model = dataclasses.replace(settings.model, path=str(path))
    available = available_bytes()
    outcome = run_probe(model, measure)
    shape = shape_of(model.id) if not settings.model.path else None
    if outcome.get("shape"):
        shape = ModelShape(**outcome["shape"])
    if "error" in outcome:
        report.add("load", "fail", str(outcome["error"]))
        if shape is not None:
            check_memory(report, model, path.stat().st_size, shape, available)
        return
    tokens: dict[str, int] = outcome["fim_tokens"]
    architecture = str(outcome["architecture"])
    arch_status: Status = "ok" if architecture == "gemma" else "warn"
    names = ", ".join(f"{k} {v}" for k, v in tokens.items())
    text = f"loaded in {outcome['load_s']:.1f} s; architecture {architecture}; FIM tokens {names}"
    if arch_status == "warn":
        text += "\nCodeGemma is a gemma model: this one may not know CodeGemma's FIM format"
    report.add(
        "load",
        arch_status,
        text,
        architecture=architecture,
        fim_tokens=tokens,
        seconds=outcome["load_s"],
    )
    layers = int(outcome["n_gpu_layers"])
    shown_layers = "all" if layers < 0 else str(layers)
    report.add(
        "settings",
        "info",
        f"n_ctx {model.n_ctx}, threads {outcome['threads']}, n_gpu_layers {shown_layers}"
        f" (model.gpuLayers {model.gpu_layers}), KV cache {model.kv_type}, "
        f"flash attention {'on' if model.flash_attention else 'off'}, batch {model.batch}",
        n_ctx=model.n_ctx,
        threads=outcome["threads"],
        n_gpu_layers=layers,
        kv_type=model.kv_type,
        flash_attention=model.flash_attention,
    )
    if shape is not None:
        finding = check_memory(
            report, model, path.stat().st_size, shape, available, on_cpu=layers == 0
        )
        peak = outcome.get("peak_rss")
        if isinstance(peak, int) and finding is not None:
            what = "loading and the speed test" if "speed" in outcome else "loading"
            finding.text += f"\nmeasured: {what} peaked at {gib(peak)} resident"
            finding.data["peak_rss"] = peak
    speed = outcome.get("speed")
    if isinstance(speed, dict):
        status, verdict = speed_verdict(speed["prompt_tps"], speed["generate_tps"])
        report.add(
            "speed",
            status,
            f"prompt evaluation {speed['prompt_tps']:.0f} tokens/s, generation "
            f"{speed['generate_tps']:.1f} tokens/s (measured on a short prompt)\n{verdict}",
            prompt_tokens_per_s=round(speed["prompt_tps"], 1),
            generated_tokens_per_s=round(speed["generate_tps"], 2),
        )
    elif "speed_crash" in outcome:
        report.add("speed", "fail", str(outcome["speed_crash"]))
    elif measure:
        report.add("speed", "warn", f"could not measure ({outcome.get('speed_error')})")


_PROBE_CODE = "from codegemma_lsp.doctor import probe_main; probe_main()"


def run_probe(model: ModelSettings, measure: bool, *, timeout_s: float = 600) -> dict[str, Any]:
    """What :func:`probe_main` reports for ``model``, run in a child process; on a crash,
    ``{"error": ...}`` naming the stage it crashed in."""
    import json
    import signal

    request = json.dumps({"model": dataclasses.asdict(model), "measure": measure})
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE_CODE],
            input=request,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"loading and timing the model took more than {timeout_s:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    stage = "starting"
    partial: dict[str, Any] | None = None
    for line in lines:
        message = json.loads(line)
        if "stage" in message:
            stage = message["stage"]
        elif "partial" in message:
            partial = message["partial"]
        elif "result" in message:
            result: dict[str, Any] = message["result"]
            return result
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        crash = (
            f"llama.cpp crashed ({name}) while {stage}: this llama-cpp-python build "
            "cannot run this model on this machine"
        )
        # A crash after the load still tells what the load found.
        return {**partial, "speed_crash": crash} if partial else {"error": crash}
    tail = " ".join(done.stderr.strip().splitlines()[-1:]) or f"exit code {done.returncode}"
    return {"error": f"the model check failed while {stage}: {tail}"}


def probe_main() -> None:
    """The child's side of :func:`run_probe`: settings as JSON on stdin; one JSON line per
    stage, then the result, on stdout (llama.cpp's own output goes to stderr)."""
    import json
    import os
    import resource

    from codegemma_lsp.engine.base import EngineError
    from codegemma_lsp.engine.diagnose import loaded_model_report
    from codegemma_lsp.engine.host import make_backend
    from codegemma_lsp.engine.llama_backend import LlamaBackend, resolve_gpu_layers
    from codegemma_lsp.prompt import FimTokens

    request = json.loads(sys.stdin.read())
    model = ModelSettings(**request["model"])
    private = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # llama.cpp writes to fd 1 while loading

    def say(**message: Any) -> None:
        private.write(json.dumps(message) + "\n")
        private.flush()

    say(stage="loading the model")
    try:
        backend = make_backend(model, snapshot_mb=0)
        started = time.perf_counter()
        backend.load()
        load_s = time.perf_counter() - started
    except EngineError as exc:
        say(result={"error": str(exc)})
        return
    assert isinstance(backend, LlamaBackend)
    say(stage="reading its vocabulary")
    fim = FimTokens.lookup(backend.tokenizer)
    tokens = {
        "<|fim_prefix|>": fim.fim_prefix,
        "<|fim_middle|>": fim.fim_middle,
        "<|fim_suffix|>": fim.fim_suffix,
        "<|file_separator|>": fim.file_separator,
    }
    facts = loaded_model_report(backend.llama, tokens)
    result: dict[str, Any] = {
        "load_s": load_s,
        "architecture": facts.architecture,
        "fim_tokens": tokens,
        "shape": dataclasses.asdict(facts.shape) if facts.shape else None,
        "threads": backend.n_threads,
        "n_gpu_layers": resolve_gpu_layers(model.gpu_layers),
    }
    if request["measure"]:
        from codegemma_lsp.engine.speed import probe_llama

        result["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        say(partial=result)
        say(stage="evaluating a prompt and generating (the speed test)")
        try:
            speed = probe_llama(backend.llama)
        except Exception as exc:
            result["speed_error"] = f"{type(exc).__name__}: {exc}"
        else:
            result["speed"] = {"prompt_tps": speed.prompt_tps, "generate_tps": speed.generate_tps}
    result["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    say(result=result)
    backend.close()
