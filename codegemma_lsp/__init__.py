"""codegemma-lsp: local fill-in-the-middle code completion with CodeGemma over LSP."""

__version__ = "0.1.0"
