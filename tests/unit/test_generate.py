"""Generate code from an instruction: the target, the answer's edit, the run, the model's life."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from codegemma_lsp.documents import Document, DocumentSnapshot
from codegemma_lsp.engine.base import CancelToken, ModelLoadError
from codegemma_lsp.engine.instruction_backends import (
    FakeInstructionBackend,
    instruction_model_file,
    make_instruction_backend,
)
from codegemma_lsp.engine.instruction_model import InstructionModel
from codegemma_lsp.generate import (
    NO_INSTRUCTION,
    GenerateTarget,
    find_target,
    finish_generation,
    reindent,
    run_generate,
)
from codegemma_lsp.generate_service import carry_range
from codegemma_lsp.instruction_prompt import (
    INSERT_MARK,
    answer_code,
    answer_finished,
    render_instruction_prompt,
)
from codegemma_lsp.syntax.languages import default_registry
from tests.unit.syntax_samples import CURSOR


def _snapshot(language: str, text: str) -> DocumentSnapshot:
    return Document("file:///w/f", text, language=default_registry().by_name(language)).snapshot()


def _at(language: str, marked: str) -> tuple[DocumentSnapshot, int, int]:
    """The snapshot of ``marked`` without its markers: one █ is a cursor, two a selection."""
    first = marked.index(CURSOR)
    second = marked.find(CURSOR, first + 1)
    text = marked.replace(CURSOR, "")
    end = first if second < 0 else second - 1
    return _snapshot(language, text), first, end


def _apply(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + new + text[end:]


# ----- the target and the edit ----------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "marked", "instruction", "answer", "expected"),
    [
        pytest.param(
            "python",
            "import os\n\n# add two numbers\n█\ndef main():\n    pass\n",
            None,
            "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\nIt adds.",
            "import os\n\n# add two numbers\ndef add(a, b):\n    return a + b\n\ndef main():\n"
            "    pass\n",
            id="python-below-a-top-level-comment",
        ),
        pytest.param(
            "python",
            "def f(xs):\n    # sort the list█\n    return xs\n",
            None,
            "```python\nys = sorted(xs)\nreturn ys\n```",
            "def f(xs):\n    # sort the list\n    ys = sorted(xs)\n    return ys\n    return xs\n",
            id="python-indented-to-the-comment",
        ),
        pytest.param(
            "python",
            "def f(xs):\n    █sort the list█\n    return xs\n",
            None,
            "```python\nys = sorted(xs)\nreturn ys\n```",
            "def f(xs):\n    ys = sorted(xs)\n    return ys\n    return xs\n",
            id="python-selection-replaced",
        ),
        pytest.param(
            "python",
            "def f(xs):\n█    sort the list\n█    return xs\n",
            None,
            "ys = sorted(xs)\n",
            "def f(xs):\n    ys = sorted(xs)\n    return xs\n",
            id="python-whole-lines-selected-no-fence",
        ),
        pytest.param(
            "python",
            "def f(xs):\n\n    return xs█\n",
            "log the list",
            "```\nprint(xs)\n```",
            "def f(xs):\n\n    return xs\n    print(xs)\n",
            id="python-argument-below-the-cursor-line",
        ),
        pytest.param(
            "python",
            "def f(xs):\n█\n    return xs\n",
            "log the list",
            "```\nprint(xs)\n```",
            "def f(xs):\n    print(xs)\n\n    return xs\n",
            id="python-argument-on-a-blank-line-takes-the-block-below",
        ),
        pytest.param(
            "go",
            "package main\n\nfunc main() {\n\t// print the sum█\n}\n",
            None,
            "```go\nx := 1\ny := 2\nfmt.Println(x + y)\n}\n\nfunc other() {\n```",
            "package main\n\nfunc main() {\n\t// print the sum\n\tx := 1\n\ty := 2\n"
            "\tfmt.Println(x + y)\n}\n",
            id="go-tabs-and-the-block-end-trimmed",
        ),
        pytest.param(
            "go",
            "package main\n\n// add adds█",
            None,
            "```go\nfunc add(a, b int) int {\n\treturn a + b\n}\n```",
            "package main\n\n// add adds\nfunc add(a, b int) int {\n\treturn a + b\n}\n",
            id="go-comment-on-the-last-line-without-newline",
        ),
        pytest.param(
            "javascript",
            "// add and subtract\n█\n",
            None,
            "```js\nfunction add(a, b) {\n  return a + b;\n}\n\nfunction sub(a, b) {\n"
            "  return a - b;\n}\n```",
            "// add and subtract\nfunction add(a, b) {\n  return a + b;\n}\n\n"
            "function sub(a, b) {\n  return a - b;\n}\n\n",
            id="javascript-two-functions-both-kept",
        ),
        pytest.param(
            "rust",
            "fn main() {\n    // print hello█\n    let x = 1;\n    let y = 2;\n}\n",
            None,
            '```rust\nprintln!("hello");\nlet x = 1;\nlet y = 2;\n```',
            'fn main() {\n    // print hello\n    println!("hello");\n    let x = 1;\n'
            "    let y = 2;\n}\n",
            id="rust-repeat-of-the-suffix-dropped",
        ),
        pytest.param(
            "c",
            "int main(void) {\r\n  /* return zero */█\r\n}\r\n",
            None,
            "```c\nreturn 0;\n```",
            "int main(void) {\r\n  /* return zero */\r\n  return 0;\r\n}\r\n",
            id="c-crlf-kept",
        ),
    ],
)
def test_edit_for_an_answer(
    language: str, marked: str, instruction: str | None, answer: str, expected: str
) -> None:
    snapshot, start, end = _at(language, marked)
    target = find_target(snapshot, start, end, instruction)
    assert isinstance(target, GenerateTarget), target
    edit = finish_generation(snapshot, target, answer)
    assert edit is not None
    assert edit.whole
    assert _apply(snapshot.text, edit.start, edit.end, edit.text) == expected


def test_code_that_is_never_whole_is_inserted_as_written() -> None:
    snapshot, start, end = _at("python", "def f():\n    # do it█\n    pass\n")
    target = find_target(snapshot, start, end)
    assert isinstance(target, GenerateTarget)
    edit = finish_generation(snapshot, target, "value items self ( x")
    assert edit is not None
    assert not edit.whole
    assert _apply(snapshot.text, edit.start, edit.end, edit.text) == (
        "def f():\n    # do it\n    value items self ( x\n    pass\n"
    )


def test_an_answer_without_code_makes_no_edit() -> None:
    snapshot, start, end = _at("python", "# do it\n█")
    target = find_target(snapshot, start, end)
    assert isinstance(target, GenerateTarget)
    assert finish_generation(snapshot, target, "```python\n\n```") is None


@pytest.mark.parametrize(
    ("marked", "instruction", "expected"),
    [
        pytest.param("x = 1\n█\n", None, NO_INSTRUCTION, id="no-comment"),
        pytest.param("x = 1  # trailing█\n", None, NO_INSTRUCTION, id="trailing-comment"),
        pytest.param("x = 1\n█   \n█", None, "the selection holds no", id="blank-selection"),
        pytest.param("x = 1\n█\n", "  ", NO_INSTRUCTION, id="blank-instruction"),
    ],
)
def test_no_target(marked: str, instruction: str | None, expected: str) -> None:
    snapshot, start, end = _at("python", marked)
    found = find_target(snapshot, start, end, instruction)
    assert isinstance(found, str)
    assert found.startswith(expected)


def test_the_instruction_comes_from_the_argument_then_selection_then_comment() -> None:
    snapshot, start, end = _at("python", "# from the comment\n█from the selection█\n")
    selected = find_target(snapshot, start, end)
    assert isinstance(selected, GenerateTarget)
    assert (selected.source, selected.instruction) == ("selection", "from the selection")
    given = find_target(snapshot, start, end, "from the argument")
    assert isinstance(given, GenerateTarget)
    assert (given.source, given.instruction) == ("selection", "from the argument")
    below = find_target(snapshot, start - 1, start - 1)
    assert isinstance(below, GenerateTarget)
    assert (below.source, below.instruction) == ("comment", "from the comment")


def test_reindent_keeps_relative_indentation_and_empties_blank_lines() -> None:
    code = "  def f():\n      return 1\n  \n  x = 2"
    assert reindent(code, "\t", "") == "def f():\n\t    return 1\n\n\tx = 2"


# ----- the answer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "code", "finished"),
    [
        pytest.param("```python\nx = 1\n```\nThis sets x.", "x = 1", True, id="fenced"),
        pytest.param("Sure:\n\n```\nx = 1\n\ny = 2\n", "x = 1\n\ny = 2", False, id="unclosed"),
        pytest.param("x = 1\n", "x = 1", False, id="bare"),
        pytest.param("```py\nx = 1\n```", "x = 1", False, id="closing-line-not-ended"),
        pytest.param("  ```\n  x = 1\n  ```\n", "  x = 1", True, id="indented-fence"),
    ],
)
def test_answer_code(answer: str, code: str, finished: bool) -> None:
    assert answer_code(answer) == code
    assert answer_finished(answer) is finished


def test_the_prompt_text_names_the_instruction_language_path_and_place() -> None:
    snapshot, start, end = _at("python", "import os\n# list the files\n█\nprint()\n")
    target = find_target(snapshot, start, end)
    assert isinstance(target, GenerateTarget)
    from codegemma_lsp.generate import instruction_parts

    text = render_instruction_prompt(instruction_parts(snapshot, target, "src/files.py"))
    assert text == (
        "<bos><start_of_turn>user\n"
        "list the files\n\n"
        "Write it in python for the file src/files.py. Reply with only the code that "
        f"replaces {INSERT_MARK}, in one Markdown code block.\n\n"
        "```python\nimport os\n# list the files\n"
        f"{INSERT_MARK}\n\nprint()\n```<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


# ----- a run, with a named fake ---------------------------------------------------------------


def test_run_reports_lines_and_stops_once_the_code_block_closes() -> None:
    answer = "```python\na = 1\nb = 2\nc = 3\n```\nExplaining at length.\nMore.\n"
    backend = FakeInstructionBackend(answer)
    backend.load()
    snapshot, start, end = _at("python", "# three names\n█")
    target = find_target(snapshot, start, end)
    assert isinstance(target, GenerateTarget)
    progress: list[int] = []
    outcome = run_generate(
        backend,
        snapshot,
        target,
        "f.py",
        max_new_tokens=100,
        cancel=CancelToken(),
        on_progress=progress.append,
    )
    assert outcome.edit is not None
    assert outcome.edit.text == "a = 1\nb = 2\nc = 3\n"
    assert progress == [1, 2, 3]
    assert outcome.generation is not None
    assert outcome.generation.stop_reason == "syntax"  # not "Explaining at length"
    call = backend.calls[-1]
    assert call.policy.end_ids == {backend.tokenizer.special_id("<end_of_turn>"), 1}
    prompt = backend.tokenizer.detokenize(call.prompt)
    assert prompt.startswith("<bos><start_of_turn>user\nthree names\n")
    assert prompt.endswith("<end_of_turn>\n<start_of_turn>model\n")


def test_a_cancelled_run_makes_no_edit() -> None:
    backend = FakeInstructionBackend("```\nx = 1\n```\n")
    backend.load()
    snapshot, start, end = _at("python", "# one name\n█")
    target = find_target(snapshot, start, end)
    assert isinstance(target, GenerateTarget)
    cancel = CancelToken()
    cancel.cancel()
    outcome = run_generate(backend, snapshot, target, None, max_new_tokens=10, cancel=cancel)
    assert outcome.cancelled
    assert outcome.edit is None


def test_a_backend_without_turn_tokens_is_named_as_the_problem() -> None:
    backend = FakeInstructionBackend()
    backend._tokenizer._ids.pop("<start_of_turn>")
    backend.load()
    snapshot, start, end = _at("python", "# one name\n█")
    target = find_target(snapshot, start, end)
    assert isinstance(target, GenerateTarget)
    outcome = run_generate(backend, snapshot, target, None, max_new_tokens=10, cancel=CancelToken())
    assert outcome.edit is None
    assert outcome.message is not None
    assert "<start_of_turn>" in outcome.message and "generate.model" in outcome.message


def test_a_long_file_is_cut_to_whole_lines_that_fit_the_context() -> None:
    backend = FakeInstructionBackend(n_ctx=2048)
    backend.load()
    above = "".join(f"x{i} = {i}\n" for i in range(2000))
    below = "".join(f"y{i} = {i}\n" for i in range(2000))
    snapshot, start, end = _at("python", f"{above}# the sum\n█\n{below}")
    target = find_target(snapshot, start, end)
    assert isinstance(target, GenerateTarget)
    run_generate(backend, snapshot, target, None, max_new_tokens=512, cancel=CancelToken())
    prompt = backend.calls[-1].prompt
    assert len(prompt) <= 2048 - 512
    text = backend.tokenizer.detokenize(prompt)
    code = text.split("```python\n", 1)[1]
    assert code.startswith("x") and "\nx1999 = 1999\n# the sum\n" in code
    assert f"{INSERT_MARK}\n\ny0 = 0\n" in code
    kept_above = code.count("\nx") + 1
    kept_below = code.count("\ny") + 1
    assert kept_above > kept_below  # the code above gets the larger share


# ----- the model's file and its life --------------------------------------------------------


def test_the_model_file_must_exist(tmp_path: Path) -> None:
    model = tmp_path / "it.gguf"
    with pytest.raises(ModelLoadError, match=r"generate\.model: there is no file"):
        instruction_model_file(str(model), "Q4_K_M")
    model.write_bytes(b"GGUF")
    assert instruction_model_file(str(model), "Q4_K_M") == model


def test_a_registry_id_not_downloaded_names_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(ModelLoadError) as raised:
        instruction_model_file("codegemma-7b-it", "Q4_K_M")
    assert "generate.model codegemma-7b-it is not downloaded" in str(raised.value)
    assert "codegemma-lsp download codegemma-7b-it" in str(raised.value)
    with pytest.raises(ModelLoadError, match=r"generate\.model: unknown model"):
        instruction_model_file("no-such-model", "Q4_K_M")


def test_backend_choices_are_checked() -> None:
    from codegemma_lsp.config import GenerateSettings, ModelSettings

    def make(**generate: object) -> object:
        settings = GenerateSettings(**generate)  # type: ignore[arg-type]
        return make_instruction_backend(settings, ModelSettings(), None)

    with pytest.raises(ModelLoadError, match=r"generate\.backend 'remote'"):
        make(backend="remote")
    with pytest.raises(ModelLoadError, match=r"generate\.backend llama-server needs generate\.url"):
        make(backend="llama-server")
    with pytest.raises(ModelLoadError, match=r"set generate\.model"):
        make(backend="llama")
    fake = make(backend="fake:2")
    assert isinstance(fake, FakeInstructionBackend) and fake.delay_s == 2


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_loaded_on_first_use_and_unloaded_after_the_idle_time() -> None:
    clock = _Clock()
    made: list[FakeInstructionBackend] = []

    def factory() -> FakeInstructionBackend:
        made.append(FakeInstructionBackend())
        return made[-1]

    model = InstructionModel(factory, name="fake", idle_unload_s=300, clock=clock)
    assert not model.loaded and not made
    with model.use() as backend:
        assert backend.ready
    assert model.loaded and model.loads == 1
    clock.now += 299
    assert not model.unload_if_idle()
    assert model.seconds_until_idle() == pytest.approx(1)
    with model.use():  # a use restarts the idle time
        pass
    clock.now += 299
    assert not model.unload_if_idle()
    clock.now += 1
    assert model.unload_if_idle()
    assert not model.loaded and not made[0].ready
    assert model.seconds_until_idle() is None
    with model.use():
        pass
    assert model.loads == 2


def test_a_model_in_use_is_never_idle_and_zero_keeps_it() -> None:
    clock = _Clock()
    model = InstructionModel(FakeInstructionBackend, name="fake", idle_unload_s=10, clock=clock)
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with model.use():
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=hold)
    worker.start()
    assert inside.wait(5)
    clock.now += 3600
    assert not model.unload_if_idle()
    release.set()
    worker.join()
    model.idle_unload_s = 0
    assert not model.unload_if_idle()
    assert model.loaded


def test_a_failed_load_leaves_nothing_loaded() -> None:
    def factory() -> FakeInstructionBackend:
        raise ModelLoadError("no such file")

    model = InstructionModel(factory, name="broken")
    with pytest.raises(ModelLoadError), model.use():
        pass
    assert not model.loaded
    assert model.status().memory_bytes is None


def test_status_reports_the_file_size_until_loaded(tmp_path: Path) -> None:
    path = tmp_path / "it.gguf"
    path.write_bytes(b"x" * 1234)
    model = InstructionModel(FakeInstructionBackend, name="it.gguf", path=path)
    status = model.status()
    assert (status.loaded, status.memory_bytes, status.idle_s) == (False, 1234, None)


# ----- the edit's place after the user typed on ------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "edits", "expected"),
    [
        pytest.param(10, 10, [], (10, 10), id="no-edits"),
        pytest.param(10, 10, [(0, 2, 5)], (13, 13), id="before-shifts"),
        pytest.param(10, 12, [(12, 13, 13)], (10, 12), id="after-stays"),
        pytest.param(10, 12, [(11, 11, 12)], None, id="inside-refuses"),
        pytest.param(10, 10, [(10, 10, 11)], None, id="at-an-insertion-point-refuses"),
        pytest.param(10, 14, [(2, 4, 3), (20, 21, 22)], (9, 13), id="several"),
    ],
)
def test_carry_range(
    start: int, end: int, edits: list[tuple[int, int, int]], expected: tuple[int, int] | None
) -> None:
    from codegemma_lsp.documents import TreeEdit

    tree_edits = [TreeEdit(a, b, c, (0, a), (0, b), (0, c)) for a, b, c in edits]
    assert carry_range(start, end, tree_edits) == expected


def test_doctor_reports_the_instruction_model_and_its_memory(tmp_path: Path) -> None:
    from codegemma_lsp.config import GenerateSettings, Settings
    from codegemma_lsp.doctor import Report, check_generate

    model = tmp_path / "my-it.gguf"
    model.write_bytes(b"x" * 4096)
    report = Report()
    check_generate(report, Settings(generate=GenerateSettings(model=str(model))))
    (finding,) = report.findings
    assert (finding.section, finding.status) == ("generate", "ok")
    assert finding.data["memory"] == 4096 and str(model) in finding.text
    assert "unloaded after 300 s" in finding.text

    report = Report()
    check_generate(report, Settings(generate=GenerateSettings(model=str(tmp_path / "none.gguf"))))
    (finding,) = report.findings
    assert finding.status == "info"  # generation is optional: never a failed setup
    assert finding.text.startswith("code generation is off: generate.model: there is no file")


@pytest.mark.model
def test_generation_stops_at_end_of_turn_with_llama_cpp(tmp_path: Path) -> None:
    """A tiny model whose <end_of_turn> row is loud (greedy picks it within a few steps):
    generation ends there, and without it among the end ids it would run to the limit."""
    pytest.importorskip("llama_cpp")
    from codegemma_lsp.engine.base import GenerationPolicy
    from codegemma_lsp.engine.llama_backend import LlamaBackend
    from codegemma_lsp.modelgen import TINY_SHAPE, codegemma_like_vocabulary, write_gemma_streamed

    vocabulary = codegemma_like_vocabulary()
    end_of_turn = vocabulary.id_of("<end_of_turn>")
    path = write_gemma_streamed(
        tmp_path / "eot.gguf",
        shape=TINY_SHAPE,
        vocabulary=vocabulary,
        row_scales={end_of_turn: 20.0},
        dtype="f32",
    )
    backend = LlamaBackend(model_path=path, n_ctx=1024, snapshot_bytes=0)
    backend.load()
    try:
        snapshot, start, end = _at("python", "def f():\n    # sort it█\n    pass\n")
        target = find_target(snapshot, start, end)
        assert isinstance(target, GenerateTarget)
        outcome = run_generate(
            backend, snapshot, target, "f.py", max_new_tokens=64, cancel=CancelToken()
        )
        assert outcome.generation is not None
        assert outcome.generation.stop_reason == "eos"
        stopped_after = outcome.generation.generated_tokens
        assert stopped_after < 64
        # The same prompt with no end ids runs on past that point.
        from codegemma_lsp.generate import instruction_parts, turn_tokens
        from codegemma_lsp.instruction_prompt import build_instruction_prompt

        turns = turn_tokens(backend)
        assert not isinstance(turns, str)
        ids = build_instruction_prompt(
            backend.tokenizer.tokenize, turns, instruction_parts(snapshot, target, "f.py")
        )
        endless = backend.generate(
            ids, GenerationPolicy(max_new_tokens=stopped_after + 4), CancelToken()
        )
        assert endless.generated_tokens == stopped_after + 4
    finally:
        backend.close()
