"""Fetching a registry model into the standard Hugging Face cache, and checking it.

``huggingface_hub.hf_hub_download`` does the transfer: it honours ``HF_ENDPOINT``,
``HF_HOME``, ``HF_TOKEN`` and ``HF_HUB_OFFLINE``, shares the cache with every other
tool that uses the hub, and resumes with an HTTP range request when the connection
drops mid-file. (A download that is killed starts again: huggingface_hub keeps no
partial file across processes.)

After the transfer the file's SHA-256 is compared with the registry's, or, for an
entry without one, with the SHA-256 the hub published for it. A file that does not
match is deleted from the cache, and the error says so.

Errors::

    ModelLoadError (engine.base)
     └── DownloadError        the file could not be fetched; the message says what to do
          ├── GatedModel      the repository needs an accepted licence and a token
          ├── HubUnreachable  no network, or offline mode (one line naming the file)
          └── ChecksumMismatch  the file was fetched but is not the registry's; deleted
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codegemma_lsp.engine.base import ModelLoadError
from codegemma_lsp.engine.registry import ModelFile

ProgressFn = Callable[[int, int | None], None]
"""Called with the bytes fetched so far and the total (None while unknown)."""

_SHA256 = re.compile(r"[0-9a-f]{64}")


class DownloadError(ModelLoadError):
    """The model file could not be fetched."""


class GatedModel(DownloadError):
    pass


class HubUnreachable(DownloadError):
    pass


class ChecksumMismatch(DownloadError):
    pass


def _private_hub() -> None:
    """No telemetry: huggingface_hub otherwise adds details to its user agent and fetches
    a list of AI agents from the hub to fill them in. The setting is read at import."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from huggingface_hub import constants

    constants.HF_HUB_DISABLE_TELEMETRY = True


def _cache_dir(cache_dir: Path | None) -> str | None:
    return str(cache_dir) if cache_dir is not None else None


def cached_file(entry: ModelFile, *, cache_dir: Path | None = None) -> Path | None:
    """The entry's file in the HF cache, or None; no network, no hashing."""
    _private_hub()
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        entry.repo, entry.filename, cache_dir=_cache_dir(cache_dir), revision=entry.revision
    )
    if isinstance(found, str) and Path(found).is_file():
        return Path(found)
    return None


def sha256_of(path: Path, progress: ProgressFn | None = None) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    done = 0
    with path.open("rb") as stream:
        while chunk := stream.read(8 << 20):
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, size)
    return digest.hexdigest()


def expected_sha256(entry: ModelFile, path: Path, revision: str | None = None) -> str | None:
    """The checksum ``path`` must have: the registry's, else the hub's (the cache blob's name)."""
    if entry.sha256 and (revision is None or revision == entry.revision):
        return entry.sha256.lower()
    blob = path.resolve().name
    return blob if _SHA256.fullmatch(blob) else None


def verify(entry: ModelFile, path: Path, revision: str | None = None) -> str:
    """Check ``path`` against the registry; delete it and raise ChecksumMismatch if it differs.

    Returns the file's SHA-256.
    """
    expected = expected_sha256(entry, path, revision)
    pinned_size = entry.size if revision is None or revision == entry.revision else None
    size = path.stat().st_size
    if pinned_size is not None and size != pinned_size:
        _delete_cached(path)
        raise ChecksumMismatch(
            f"{entry.filename} has {size} bytes, the registry says {pinned_size}: "
            f"deleted it from the cache; run `{entry.command}` again"
        )
    actual = sha256_of(path)
    if expected is not None and actual != expected:
        _delete_cached(path)
        raise ChecksumMismatch(
            f"{entry.filename} failed its checksum (SHA-256 {actual[:12]}…, expected "
            f"{expected[:12]}…): deleted it from the cache; run `{entry.command}` again, "
            "and if it fails again the file on the hub is not the one the registry names"
        )
    return actual


def _delete_cached(path: Path) -> None:
    """Remove a cached file: the snapshot's link and the blob it points to."""
    target = path.resolve()
    for item in {path, target}:
        with contextlib.suppress(FileNotFoundError):
            item.unlink()


def _progress_bar(progress: ProgressFn | None, show: bool) -> Any:
    """A tqdm class for hf_hub_download: a bar on stderr if ``show``; counts go to ``progress``."""
    from tqdm import tqdm

    class Bar(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["disable"] = not show
            kwargs.setdefault("file", sys.stderr)
            self._done = int(kwargs.get("initial") or 0)
            self._total = kwargs.get("total")
            super().__init__(*args, **kwargs)
            if progress is not None:
                progress(self._done, self._total)

        def update(self, n: float | None = 1) -> bool | None:
            self._done += int(n or 0)
            if progress is not None:
                progress(self._done, self._total)
            result: bool | None = super().update(n)
            return result

    return Bar


def _token_present() -> bool:
    try:
        from huggingface_hub import get_token
    except ImportError:  # pragma: no cover - every supported huggingface_hub has it
        return bool(os.environ.get("HF_TOKEN"))
    return get_token() is not None


def gated_message(entry: ModelFile) -> str:
    page = f"https://huggingface.co/{entry.repo}"
    if _token_present():
        return (
            f"{entry.repo} is gated and your token has no access to it: open {page}, "
            "accept the licence with the same account, then run the command again"
        )
    return (
        f"{entry.repo} is gated: open {page} and accept the licence, then log in with "
        "`hf auth login` (or set HF_TOKEN to a token from "
        "https://huggingface.co/settings/tokens) and run the command again"
    )


def download(
    entry: ModelFile,
    *,
    revision: str | None = None,
    cache_dir: Path | None = None,
    endpoint: str | None = None,
    progress: ProgressFn | None = None,
    show_bar: bool = False,
) -> Path:
    """Fetch ``entry`` into the HF cache (or find it there), verify it, and return its path."""
    _private_hub()
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{entry.filename} from {entry.repo}"
    wanted = revision or entry.revision
    cached = cached_file(dataclasses.replace(entry, revision=wanted), cache_dir=cache_dir)
    if cached is not None:
        verify(entry, cached, revision)
        return cached
    if _offline_mode():
        raise HubUnreachable(f"offline mode (HF_HUB_OFFLINE) is on: cannot fetch {where}")
    hub = endpoint or os.environ.get("HF_ENDPOINT") or None
    _probe(entry, wanted, hub, where)
    try:
        found = hf_hub_download(
            repo_id=entry.repo,
            filename=entry.filename,
            revision=wanted,
            cache_dir=_cache_dir(cache_dir),
            endpoint=hub,
            tqdm_class=_progress_bar(progress, show_bar),
        )
    except GatedRepoError:
        raise GatedModel(gated_message(entry)) from None
    except (RevisionNotFoundError, RemoteEntryNotFoundError):
        raise DownloadError(
            f"the hub has no {entry.filename} in {entry.repo} at revision "
            f"{revision or entry.revision}"
        ) from None
    except RepositoryNotFoundError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise GatedModel(gated_message(entry)) from None
        raise DownloadError(f"the hub has no repository {entry.repo}") from None
    except (OfflineModeIsEnabled, LocalEntryNotFoundError):
        raise HubUnreachable(f"no network: cannot reach the hub to fetch {where}") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise DownloadError(f"the hub answered HTTP {status} for {where}") from None
    except OSError as exc:
        # A connection that stayed down through huggingface_hub's retries, a full disk,
        # or a size that did not match the hub's.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if _is_connection_error(exc):
            raise HubUnreachable(f"no network: cannot reach the hub to fetch {where}") from None
        raise DownloadError(f"cannot fetch {where}: {first}") from None
    except Exception as exc:
        if _is_connection_error(exc):
            raise HubUnreachable(f"no network: cannot reach the hub to fetch {where}") from None
        raise
    path = Path(found)
    verify(entry, path, revision)
    return path


def _offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _probe(entry: ModelFile, revision: str, endpoint: str | None, where: str) -> None:
    """One quick HEAD, so that no network is said at once: hf_hub_download itself retries
    a refused connection with backoff for about 23 s before it gives up."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(entry.repo, entry.filename, revision=revision, endpoint=endpoint)
    try:
        get_hf_file_metadata(url, timeout=10)
    except Exception as exc:
        if _is_connection_error(exc):
            raise HubUnreachable(f"no network: cannot reach the hub to fetch {where}") from None
        # Anything else (gated, not found) hf_hub_download reports in its own terms.


def _is_connection_error(exc: BaseException) -> bool:
    """httpx's (httpx2's) transport errors, without importing either by name."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"ConnectError", "TransportError", "TimeoutException", "ConnectionError"})
