"""A tiny file to try `codegemma-lsp complete` on."""


def fibonacci(n: int) -> int:
    
