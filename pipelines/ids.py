"""Stable identifiers shared by every stage: repo_id, workspace_id, content hashes."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit, urlunsplit

_SCP_LIKE = re.compile(r"^(?P<user>[^@/:]+@)?(?P<host>[^/:]+):(?P<path>(?!//).+)$")


def short_hash(*parts: str, n: int = 16) -> str:
    """Hex digest of the parts joined by NUL; stable across runs, machines and Python versions."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:n]


def normalize_url(url: str) -> str:
    """Canonical form of a git URL so that the same repository always gets the same repo_id.

    scp-like ``git@host:owner/repo.git`` becomes ``ssh://host/owner/repo``; scheme and host are
    lower-cased; credentials, a trailing ``.git`` and trailing slashes are dropped. Local paths
    are returned as absolute ``file://`` URLs.
    """
    url = url.strip()
    if "://" not in url:
        m = _SCP_LIKE.match(url)
        if m and not url.startswith(("/", ".")):
            url = f"ssh://{m['host']}/{m['path']}"
        else:
            from pathlib import Path

            url = Path(url).expanduser().resolve().as_uri()
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.port:
        host = f"{host}:{parts.port}"
    path = parts.path.rstrip("/")
    path = path.removesuffix(".git")
    return urlunsplit((parts.scheme.lower(), host, path, "", ""))


def repo_id(url: str) -> str:
    """Stable hash of the normalized URL (ARCHITECTURE.md, Artifacts)."""
    return short_hash(normalize_url(url))


def synthetic_repo_id(seed: int | str, name: str) -> str:
    """A synthetic corpus repo's id: its seed and name, not where it was written (so its split is the same on every
    machine and in every output_dir)."""
    return short_hash(f"synthetic://seed-{seed}/{name}")


def workspace_id(repo_id_: str, commit_sha: str, path: str, prior: str | None = None) -> str:
    """hash(repo_id, commit, path); history-mode rows also hash the base commit they were planned on."""
    parts = [repo_id_, commit_sha, path.strip("/") or "."]
    if prior:
        parts.append(prior)
    return short_hash(*parts)
