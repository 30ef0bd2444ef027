"""Which files are secret: no completion inside them, and never used as context.

A file is secret when its name says so (``.env``, ``id_rsa``, ``.pgpass``, shell
histories, ...) or when its text holds something that only secrets look like: a
private-key or other armored block, a cloud or forge access token, a service
account's key, a ``.pgpass`` line or a bare ``password=`` line. The text check
reads a bounded head (and tail) of the text, so it costs the same on any file size.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
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
    "*.ppk",
    "*.kdbx",
    "*.keytab",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "credentials*",
    "application_default_credentials.json",
    "*service?account*.json",
    ".netrc",
    "_netrc",
    ".npmrc",
    ".pypirc",
    ".pgpass",
    ".my.cnf",
    ".htpasswd",
    ".git-credentials",
    ".vault-token",
    ".s3cfg",
    ".boto",
    ".dockercfg",
    "kubeconfig*",
    "*.kubeconfig",
    "*.tfvars",
    "*.tfstate",
    "*.tfstate.*",
    "secrets.*",
    "*secret*.json",
    "*secret*.yaml",
    "*secret*.yml",
    # Shell and REPL histories: .bash_history, .zsh_history, .python_history, .psql_history...
    ".*history",
    "fish_history",
    ".histfile",
)
_SECRET_DIRS = (".aws", ".ssh", ".gnupg", ".docker", ".kube", ".password-store")

SCAN_HEAD = 128 * 1024
"""Characters of a text's head that :func:`is_secret_text` reads..."""
SCAN_TAIL = 16 * 1024
"""...and of its tail, so that a key appended to a big file is still seen."""


@dataclass(frozen=True)
class _Rule:
    kind: str
    """What was found, for a log line (never the secret itself)."""
    needles: tuple[str, ...]
    """Plain substrings, one of which every match holds: the pattern runs only where one
    occurs, so that a file without any costs a few fast substring scans."""
    pattern: re.Pattern[str]
    lowered: bool = False
    """Look for the needles in the lower-cased text."""


def _rule(kind: str, needles: tuple[str, ...], pattern: str, *, lowered: bool = False) -> _Rule:
    return _Rule(kind, needles, re.compile(pattern, re.MULTILINE), lowered)


_RULES = (
    # PEM and OpenSSH private keys, PGP private key blocks, even inside a string literal;
    # and any other armored block (PGP message or signature, SSH2 key...) with its body.
    _rule(
        "a private key or armored block",
        ("-----BEGIN ",),
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"|-----BEGIN [A-Z0-9 ]{3,40}-----[ \t]*\r?\n(?:[\w-]+:[^\n]*\n)*\s*[A-Za-z0-9+/=]{40,}",
    ),
    _rule("a PuTTY key", ("PuTTY-User-Key-File-",), r"PuTTY-User-Key-File-\d+:"),
    _rule(
        "an AWS access key id",
        ("AKIA", "ASIA", "ABIA", "ACCA"),
        r"A(?:KIA|SIA|BIA|CCA)[0-9A-Z]{16}\b",
    ),
    _rule(
        "an AWS secret key",
        ("aws_secret_access_key",),
        r"(?i:aws_secret_access_key)[\"']?\s*[=:]\s*[\"']?[A-Za-z0-9/+]{40}\b",
        lowered=True,
    ),
    _rule(
        "a GitHub token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        r"gh[pousr]_[A-Za-z0-9]{36}\b|github_pat_[A-Za-z0-9_]{60,}",
    ),
    _rule("a GitLab token", ("glpat-",), r"glpat-[A-Za-z0-9_-]{20,}"),
    _rule("a Slack token", ("xox",), r"xox[abposr]-[A-Za-z0-9-]{10,}"),
    _rule("a Google API key", ("AIza",), r"AIza[0-9A-Za-z_-]{35}\b"),
    _rule("a Stripe key", ("k_live_",), r"[sr]k_live_[0-9A-Za-z]{16,}"),
    _rule("an API key", ("sk-",), r"sk-(?:proj|ant|svcacct)-[A-Za-z0-9_-]{20,}"),
    _rule(
        "a service account key",
        ("service_account",),
        r"\"type\"\s*:\s*\"service_account\"",
    ),
    # .pgpass lines: host:port:database:user:password.
    _rule(
        "a .pgpass line",
        (":",),
        r"^[^:\s#]+:(?:\d+|\*):[^:\s]*[A-Za-z_*][^:\s]*:[^:\s]*[A-Za-z_*][^:\s]*:"
        r"(?:\\:|[^:\s])+[ \t]*\r?$",
    ),
    # A bare password assignment as config files write it (``password=hunter2``, no
    # spaces): code's ``password = x`` and ``password=password,`` arguments do not match.
    _rule(
        "a password",
        ("password=", "passwd="),
        r"^[ \t]*(?:export[ \t]+)?[\w.-]*(?i:password|passwd)=[^\s,()]+[ \t]*\r?$",
        lowered=True,
    ),
)


def is_secret_path(path: str | PurePath) -> bool:
    """Whether ``path`` names a file that may hold secrets (keys, credentials, dotenv)."""
    pure = PurePath(path)
    name = pure.name.lower()
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in _SECRET_NAMES):
        return True
    return any(part.lower() in _SECRET_DIRS for part in pure.parts[:-1])


def is_secret_text(text: str) -> bool:
    """Whether ``text`` holds a secret (see the module's docstring); reads a bounded part."""
    return secret_in(text) is not None


def secret_in(text: str) -> str | None:
    """The kind of secret found in ``text`` (for a log line, never the secret), or None."""
    if len(text) > SCAN_HEAD + SCAN_TAIL:
        # The tail starts at a line break, so that no line-anchored pattern sees half a line.
        tail_start = text.find("\n", len(text) - SCAN_TAIL)
        text = text[:SCAN_HEAD] + "\n" + (text[tail_start + 1 :] if tail_start >= 0 else "")
    lowered: str | None = None
    for rule in _RULES:
        haystack = text
        if rule.lowered:
            lowered = text.lower() if lowered is None else lowered
            haystack = lowered
        if any(needle in haystack for needle in rule.needles) and rule.pattern.search(text):
            return rule.kind
    return None


def is_secret(path: str | PurePath, text: str) -> bool:
    """Whether a file is secret by its name or by its text."""
    return is_secret_path(path) or is_secret_text(text)
