"""Repository context: related workspace files packed before the current one.

CodeGemma was trained on whole repositories, files in dependency order joined by
``<|file_separator|>`` (reference/FACTS.md). :class:`ContextIndex` finds the files
the current one imports (``imports.py``, ``resolve.py``), the implementation a test
tests and the tests of an implementation (``tests_link.py``), reads them safely
(``workspace.py``, ``gitignore.py``), and packs them within a token budget, as
outlines when whole files do not fit (``packer.py``, ``outline.py``).
"""

from codegemma_lsp.config import ContextSettings
from codegemma_lsp.context.index import ContextIndex, IndexStats
from codegemma_lsp.context.packer import PackedContext

__all__ = ["ContextIndex", "ContextSettings", "IndexStats", "PackedContext"]
