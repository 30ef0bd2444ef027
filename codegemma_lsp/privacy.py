"""Which files are secret: no completion inside them, and never used as context."""

from __future__ import annotations

import fnmatch
from pathlib import PurePath

_SECRET_NAMES = (
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "credentials*",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    "*.tfvars",
    "secrets.*",
    "*secret*.json",
    "*secret*.yaml",
    "*secret*.yml",
)
_SECRET_DIRS = (".aws", ".ssh", ".gnupg", ".docker", ".kube")


def is_secret_path(path: str | PurePath) -> bool:
    """Whether ``path`` names a file that may hold secrets (keys, credentials, dotenv)."""
    pure = PurePath(path)
    name = pure.name.lower()
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in _SECRET_NAMES):
        return True
    return any(part.lower() in _SECRET_DIRS for part in pure.parts[:-1])
