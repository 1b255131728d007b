"""Fetch untrusted git repositories safely and read their files straight from git objects.

Clones go into one bare repository per URL under the cache directory (``<cache>/<repo_id>.git``), so a
rerun with the same URL and commit downloads nothing new (cached by URL + commit). Nothing is checked
out: files are read from tree objects, so symlinks are never materialized or followed (a symlink entry
is skipped with a reason) and LFS smudge filters or hooks never run. Fetches are shallow by default,
never recurse into submodules, run with ``GIT_TERMINAL_PROMPT=0`` and a protocol allowlist, and are
killed when they exceed their time or size limit.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import git

from pipelines.ids import repo_id as make_repo_id

logger = logging.getLogger(__name__)

SYMLINK_MODE = 0o120000
SUBMODULE_MODE = 0o160000


@dataclass(frozen=True)
class FetchLimits:
    depth: int = 1  # shallow by default; history mode fetches max_commits
    timeout_s: float = 300.0
    max_repo_mb: float = 500.0  # objects downloaded for one fetch
    allowed_protocols: tuple[str, ...] = ("https", "ssh", "file")
    max_commits: int = 20  # history mode: newest N commits of the ref


@dataclass
class FetchResult:
    status: str  # ok | error | skipped
    error: str | None = None
    commit_sha: str = ""
    commits: list[str] = field(default_factory=list)  # oldest first; [commit_sha] unless history
    git_dir: str = ""
    bytes: int = 0
    duration_s: float = 0.0


def _dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):  # a temp file git removed meanwhile
                total += os.lstat(os.path.join(root, f)).st_size
    return total


def _git_env(limits: FetchLimits) -> dict[str, str]:
    return {
        "GIT_TERMINAL_PROMPT": "0",  # never wait for a password on a repo that needs auth
        "GIT_ASKPASS": "/bin/echo",  # ... nor through an askpass helper
        "SSH_ASKPASS": "/bin/echo",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o ConnectTimeout=20",
        "GIT_ALLOW_PROTOCOL": ":".join(limits.allowed_protocols),
        "GIT_LFS_SKIP_SMUDGE": "1",
        "GIT_PROTOCOL_FROM_USER": "0",
    }


def classify_git_error(stderr: str) -> str:
    """A short, actionable reason from git's stderr."""
    s = stderr.lower()
    if (
        "terminal prompts disabled" in s
        or "authentication failed" in s
        or "could not read username" in s
        or "permission denied (publickey" in s
        or "401" in s
        or "403" in s
    ):
        return "auth_required: the repository needs credentials (configure a git credential helper or ssh key)"
    if (
        "not found" in s
        or "does not appear to be a git repository" in s
        or "does not exist" in s
        or "could not resolve host" in s
        or "404" in s
    ):
        return "not_found: the repository does not exist or is not reachable"
    if "couldn't find remote ref" in s or "unknown revision" in s or "not our ref" in s:
        return "bad_ref: the ref does not exist in the repository"
    if "transport" in s and "not allowed" in s:
        return "protocol_not_allowed: the URL's protocol is not in clone.allowed_protocols"
    line = " ".join(stderr.strip().split())[:300]
    return f"git_error: {line}"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def fetch(url: str, ref: str | None, cache_dir: str | Path, limits: FetchLimits, history: bool = False) -> FetchResult:
    """Fetch ``ref`` (default branch when None) of ``url`` into the per-URL bare cache; never raises for bad repos."""
    start = time.monotonic()
    scheme = url.split("://", 1)[0] if "://" in url else "ssh"
    if scheme not in limits.allowed_protocols:
        return FetchResult("error", f"protocol_not_allowed: {scheme!r} is not in {list(limits.allowed_protocols)}")
    git_dir = Path(cache_dir).expanduser().resolve() / f"{make_repo_id(url)}.git"
    with _locked(git_dir):
        try:
            repo = git.Repo(git_dir) if (git_dir / "HEAD").exists() else git.Repo.init(git_dir, bare=True)
        except git.GitError as e:
            shutil.rmtree(git_dir, ignore_errors=True)
            return FetchResult("error", f"cache: {e}", duration_s=time.monotonic() - start)
        # the cap is on the repository's objects in the cache, not on one fetch's delta, so that a
        # rerun (or a fetch killed half-way) can never let an oversized repository through
        before = _dir_bytes(git_dir / "objects")
        cap = limits.max_repo_mb * 2**20
        too_large = f"too_large: the repository exceeds the {limits.max_repo_mb:g} MB size cap (clone.max_repo_mb)"
        args = [
            "git",
            "-c",
            "protocol.file.allow=always",
            "-c",
            "core.hooksPath=/dev/null",
            "fetch",
            "--no-tags",
            "--no-recurse-submodules",
            "--quiet",
        ]
        depth = limits.max_commits if history else limits.depth
        if depth > 0:
            args.append(f"--depth={depth}")
        args += ["--", url, ref or "HEAD"]
        env = {**os.environ, **_git_env(limits)}
        proc = repo.git.execute(args, as_process=True, env=env, start_new_session=True)
        popen = proc.proc
        assert popen is not None
        reason = None
        while popen.poll() is None:
            time.sleep(0.1)
            if time.monotonic() - start > limits.timeout_s:
                reason = f"timeout: fetch exceeded {limits.timeout_s:g}s"
            elif _dir_bytes(git_dir / "objects") > cap:
                reason = too_large
            if reason:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
        stderr = popen.stderr.read().decode(errors="replace") if popen.stderr else ""
        total = _dir_bytes(git_dir / "objects")
        fetched = max(0, total - before)
        if not reason and total > cap:  # finished between two polls
            reason = too_large
        if reason:
            if reason == too_large:  # drop the whole cache entry: nothing of it may be used later
                shutil.rmtree(git_dir, ignore_errors=True)
            else:
                _drop_partial(git_dir)
            return FetchResult(
                "skipped" if reason.startswith("too_large") else "error",
                reason,
                bytes=fetched,
                duration_s=time.monotonic() - start,
            )
        if popen.returncode != 0:
            return FetchResult("error", classify_git_error(stderr), bytes=fetched, duration_s=time.monotonic() - start)
        head = (git_dir / "FETCH_HEAD").read_text().split()[0]
        commits = [head]
        if history:
            commits = repo.git.rev_list("--reverse", f"--max-count={limits.max_commits}", head).split()
        return FetchResult("ok", None, head, commits, str(git_dir), fetched, time.monotonic() - start)


def _drop_partial(git_dir: Path) -> None:
    """A killed fetch leaves temp packs; remove them so the cache never grows past the cap."""
    for p in (git_dir / "objects" / "pack").glob("tmp_*"):
        p.unlink(missing_ok=True)
    for p in (git_dir / "objects" / "incoming-*",):
        shutil.rmtree(p, ignore_errors=True)


@dataclass(frozen=True)
class FileLimits:
    max_file_kb: float = 512.0
    max_files: int = 5000
    extensions: tuple[str, ...] = (
        ".tf",
        ".tfvars",
        ".tf.json",
        ".tfvars.json",
        ".tpl",
        ".tftpl",
        ".json",
        ".yaml",
        ".yml",
        ".sh",
        ".txt",
        ".cfg",
        ".conf",
        ".ps1",
        ".py",
        ".md",
    )
    exclude_dirs: tuple[str, ...] = (".git", ".terraform", "node_modules", ".github")


def _wanted(path: str, limits: FileLimits) -> bool:
    parts = path.split("/")
    return not any(p in limits.exclude_dirs for p in parts[:-1]) and path.endswith(limits.extensions)


def read_tree(
    git_dir: str | Path, commit: str, limits: FileLimits
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Files at ``commit`` as ({path, content}, ...) plus skipped entries ({path, reason}).

    Symlinks and submodules are skipped, never resolved; binary and oversized files are skipped.
    """
    repo = git.Repo(git_dir)
    files: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    for item in repo.commit(commit).tree.traverse():
        if item.type == "tree":
            continue
        path = item.path
        if item.mode == SYMLINK_MODE:
            skipped.append({"path": path, "reason": "symlink (never followed)"})
            continue
        if item.type == "submodule" or item.mode == SUBMODULE_MODE:
            skipped.append({"path": path, "reason": "submodule (not fetched)"})
            continue
        if not _wanted(path, limits):
            continue
        if item.size > limits.max_file_kb * 1024:
            skipped.append({"path": path, "reason": f"over max_file_kb ({item.size} bytes)"})
            continue
        if len(files) >= limits.max_files:
            skipped.append({"path": path, "reason": f"over max_files ({limits.max_files})"})
            continue
        data = item.data_stream.read()
        try:
            files.append({"path": path, "content": data.decode("utf-8")})
        except UnicodeDecodeError:
            skipped.append({"path": path, "reason": "not UTF-8 text"})
    files.sort(key=lambda f: f["path"])
    return files, skipped


def read_local_dir(root: str | Path, limits: FileLimits) -> tuple[list[dict[str, str]], list[dict[str, str]], int]:
    """Like ``read_tree`` for a plain directory: symlinks are skipped (never followed), caps applied."""
    base = Path(root).resolve()
    files: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        rel_dir = Path(dirpath).relative_to(base)
        keep = []
        for d in sorted(dirnames):
            if d in limits.exclude_dirs:
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                skipped.append({"path": (rel_dir / d).as_posix(), "reason": "symlink (never followed)"})
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = (rel_dir / name).as_posix()
            if os.path.islink(full):
                skipped.append({"path": rel, "reason": "symlink (never followed)"})
                continue
            if not _wanted(rel, limits):
                continue
            st = os.lstat(full)
            if st.st_size > limits.max_file_kb * 1024:
                skipped.append({"path": rel, "reason": f"over max_file_kb ({st.st_size} bytes)"})
                continue
            if len(files) >= limits.max_files:
                skipped.append({"path": rel, "reason": f"over max_files ({limits.max_files})"})
                continue
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fh:
                data = fh.read()
            total += len(data)
            try:
                files.append({"path": rel, "content": data.decode("utf-8")})
            except UnicodeDecodeError:
                skipped.append({"path": rel, "reason": "not UTF-8 text"})
    files.sort(key=lambda f: f["path"])
    return files, skipped, total
