"""A GGUF whose chat template does not compile still loads: we never render one."""

from __future__ import annotations

from pathlib import Path

import pytest

from codegemma_lsp import modelgen

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def broken_template_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return modelgen.write_tiny_codegemma_broken_chat_template(
        tmp_path_factory.mktemp("models") / "broken-template.gguf"
    )


def test_llama_cpp_alone_refuses_the_file(broken_template_path: Path) -> None:
    """The reason for the workaround: without it, the load fails in Jinja."""
    import jinja2
    import llama_cpp

    with pytest.raises(jinja2.TemplateSyntaxError):
        llama_cpp.Llama(model_path=str(broken_template_path), n_ctx=256, verbose=False)


def test_the_backend_loads_a_model_whose_chat_template_is_broken(
    broken_template_path: Path,
) -> None:
    import llama_cpp.llama_chat_format as chat_format

    from codegemma_lsp.engine.llama_backend import LlamaBackend, LlamaTokenizer

    original = chat_format.Jinja2ChatFormatter
    backend = LlamaBackend(model_path=broken_template_path, n_ctx=256, n_threads=1)
    try:
        backend.load()
        assert backend.ready
        assert LlamaTokenizer.from_file(broken_template_path).tokenize("def f():")
    finally:
        backend.close()
    assert chat_format.Jinja2ChatFormatter is original, "the loader's formatter is restored"


def test_chat_templates_are_not_compiled_even_when_valid(tmp_path: Path) -> None:
    from codegemma_lsp.engine.llama_backend import LlamaBackend

    path = modelgen.write_gemma(
        tmp_path / "valid-template.gguf",
        shape=modelgen.TINY_SHAPE,
        vocabulary=modelgen.codegemma_like_vocabulary(),
        chat_template="{% for m in messages %}{{ m['content'] }}{% endfor %}",
    )
    backend = LlamaBackend(model_path=path, n_ctx=256, n_threads=1)
    try:
        backend.load()
        handler = backend.llama._chat_handlers["chat_template.default"]
        with pytest.raises(NotImplementedError, match="does not render chat templates"):
            handler(llama=backend.llama, messages=[{"role": "user", "content": "hi"}])
    finally:
        backend.close()
