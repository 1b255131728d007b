"""Fetch untrusted git repositories safely and read their files straight from git objects.

Clones go into one bare repository per URL under the cache directory (``<cache>/<repo_id>.git``), so a
rerun with the same URL and commit downloads nothing new (cached by URL + commit). Nothing is checked
out: files are read from tree objects, so symlinks are never materialized or followed (a symlink entry
is skipped with a reason) and LFS smudge filters or hooks never run. Fetches are shallow by default,
never recurse into submodules, run with ``GIT_TERMINAL_PROMPT=0`` and a protocol allowlist, and are
killed when they exceed their time or size limit.

Reading is bounded too, because a few KB of objects can name 10^10 paths (a "git bomb": each tree
level points many entries at the same subtree). ``read_tree`` walks tree objects itself, iteratively,
through two ``git cat-file`` processes that a watchdog kills at the source's deadline, and stops the
whole source (``ReadAborted``: one row, no workspaces) at the first cap it passes: tree entries
visited, one tree reached too many times, bytes decoded, files to read, path length, or the deadline.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections import Counter
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
    source_timeout_s: float = 600.0  # one source's fetch + reading + discovery (clone.source_timeout_s)


@dataclass
class FetchResult:
    status: str  # ok | error | skipped
    error: str | None = None
    commit_sha: str = ""
    commits: list[str] = field(default_factory=list)  # oldest first; [commit_sha] unless history
    git_dir: str = ""
    bytes: int = 0
    duration_s: float = 0.0


class ReadAborted(Exception):
    """A source went past one of its read caps or its deadline, or its objects are broken.

    The whole source ends as one repos row with ``status`` and ``reason``: a partial tree must never
    produce workspaces (half a module plans as something else).
    """

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _too_large(what: str, key: str) -> ReadAborted:
    return ReadAborted("skipped", f"too_large: {what} ({key})")


@dataclass
class ReadBudget:
    """What one source may still spend: one wall-clock deadline shared by fetch, reading and discovery,
    and the bytes decoded so far over every commit it reads (a history source reads several)."""

    timeout_s: float | None = None  # for the reason text; None: no deadline
    deadline: float | None = None  # a time.monotonic() value
    bytes_read: int = 0

    @classmethod
    def starting(cls, timeout_s: float | None, start: float | None = None) -> ReadBudget:
        if timeout_s is None:
            return cls()
        return cls(timeout_s, (time.monotonic() if start is None else start) + timeout_s)

    def remaining_s(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def timeout(self) -> ReadAborted:
        return ReadAborted(
            "error",
            f"timeout: the source took longer than {self.timeout_s or 0:g}s to fetch, read and discover "
            "(clone.source_timeout_s)",
        )

    def check(self) -> None:
        if self.expired():
            raise self.timeout()

    def take(self, n: int, limits: FileLimits) -> None:
        """Count ``n`` more decoded bytes, refusing the source before it reads past ``max_total_mb``."""
        if self.bytes_read + n > limits.max_total_mb * 2**20:
            raise _too_large(f"more than {limits.max_total_mb:g} MB of files and trees to read", "files.max_total_mb")
        self.bytes_read += n


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


def fetch(
    url: str,
    ref: str | None,
    cache_dir: str | Path,
    limits: FetchLimits,
    *,
    history: bool = False,
    budget: ReadBudget | None = None,
) -> FetchResult:
    """Fetch ``ref`` (default branch when None) of ``url`` into the per-URL bare cache; never raises for bad repos.

    The fetch is killed at ``limits.timeout_s`` or at the source's deadline (``budget``), whichever is first.
    """
    start = time.monotonic()
    scheme = url.split("://", 1)[0] if "://" in url else "ssh"
    if scheme not in limits.allowed_protocols:
        return FetchResult("error", f"protocol_not_allowed: {scheme!r} is not in {list(limits.allowed_protocols)}")
    if budget is not None and budget.expired():  # e.g. after waiting for another worker's fetch of this URL
        return FetchResult("error", budget.timeout().reason)
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
            elif budget is not None and budget.expired():
                reason = budget.timeout().reason
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
    max_file_kb: float = 512.0  # larger files are skipped (listed), the rest of the source is read
    max_files: int = 5000  # files to read (wanted by extension); more: the source is too_large
    # caps on one source's reading; passing any of them ends the source as one too_large row
    max_tree_entries: int = 200_000  # tree entries (directory entries) visited in one tree walk
    max_total_mb: float = 256.0  # uncompressed bytes decoded: trees walked + files read, all commits
    max_tree_repeats: int = 64  # the same tree object reached more often than this: a git bomb
    max_path_bytes: int = 4096  # Linux PATH_MAX: a longer path cannot be checked out anywhere
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
    exclude_dirs: tuple[str, ...] = (".git", ".terraform", "node_modules", ".github")  # never descended into


# a tree of 100k symlinks must not become a 100k-entry repos row: list this many, then count the rest
MAX_SKIPS_LISTED = 1000


class _Skips:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []
        self.more = 0

    def add(self, path: str, reason: str) -> None:
        if len(self.items) < MAX_SKIPS_LISTED:
            self.items.append({"path": path, "reason": reason})
        else:
            self.more += 1

    def result(self) -> list[dict[str, str]]:
        if not self.more:
            return self.items
        return [*self.items, {"path": "*", "reason": f"{self.more} more skipped entries (not listed)"}]


def _too_many_entries(limits: FileLimits) -> ReadAborted:
    return _too_large(f"more than {limits.max_tree_entries} tree entries", "files.max_tree_entries")


def _too_many_files(limits: FileLimits) -> ReadAborted:
    return _too_large(f"more than {limits.max_files} files to read", "files.max_files")


def _path_too_long(limits: FileLimits) -> ReadAborted:
    return _too_large(f"a path longer than {limits.max_path_bytes} bytes", "files.max_path_bytes")


def _unsafe_name(name: str) -> bool:
    """A tree entry name git itself would never write: it would escape or alias its directory on disk."""
    return name in ("", ".", "..") or "/" in name or "\\" in name


class _ObjectReader:
    """Sizes and contents of one bare repository's objects over two ``git cat-file`` processes.

    A watchdog kills both at the source's deadline, so no read can block past it: a killed process ends
    the pending read with EOF and the reader raises the timeout.
    """

    def __init__(self, git_dir: str | Path, budget: ReadBudget) -> None:
        self._budget = budget
        # nothing from the caller's git environment may redirect the object store; replace refs are ignored
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(GIT_DIR=str(git_dir), GIT_NO_REPLACE_OBJECTS="1", GIT_TERMINAL_PROMPT="0")
        self._check = self._start("--batch-check", env)
        self._data = self._start("--batch", env)
        self._timer: threading.Timer | None = None
        left = budget.remaining_s()
        if left is not None:
            self._timer = threading.Timer(max(0.0, left), self._kill)
            self._timer.daemon = True
            self._timer.start()

    @staticmethod
    def _start(batch: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        cmd = ["git", "cat-file", batch]
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)

    def __enter__(self) -> _ObjectReader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._kill()
        for proc in (self._check, self._data):
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            proc.wait()

    def _kill(self) -> None:
        for proc in (self._check, self._data):
            with contextlib.suppress(OSError):
                proc.kill()

    def _died(self) -> ReadAborted:
        if self._budget.expired():
            return self._budget.timeout()
        return ReadAborted("error", "git_error: git cat-file stopped while reading the repository's objects")

    def _ask(self, proc: subprocess.Popen[bytes], name: str) -> bytes:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(name.encode() + b"\n")
            proc.stdin.flush()
        except OSError as e:
            raise self._died() from e
        line = proc.stdout.readline(512)
        if not line.endswith(b"\n"):
            raise self._died()
        return line

    def info(self, name: str) -> tuple[str, str, int] | None:
        """(sha, type, size) of an object (any name git resolves, e.g. ``<commit>^{tree}``); None if missing."""
        line = self._ask(self._check, name)
        parts = line.split()
        if len(parts) == 3 and parts[2].isdigit():
            return parts[0].decode(), parts[1].decode(), int(parts[2])
        if parts[-1:] == [b"missing"]:
            return None
        raise ReadAborted("error", f"git_error: cat-file answered {line[:120]!r} for {name[:80]!r}")

    def contents(self, sha: str, size: int) -> bytes:
        """The object's bytes; call ``info`` first, and only for sizes the caps allow."""
        stdout = self._data.stdout
        assert stdout is not None
        header = self._ask(self._data, sha).split()
        if len(header) != 3 or header[0].decode() != sha or int(header[2]) != size:
            raise ReadAborted("error", f"git_error: cat-file answered {header!r} for {sha}")
        data = stdout.read(size)
        if len(data) != size or stdout.read(1) != b"\n":
            raise self._died()
        return data


def _tree_entries(data: bytes, sha: str) -> Iterator[tuple[int, bytes, str]]:
    """(mode, name, sha) of each entry of a raw tree object, lazily: a caller that stops stops parsing."""
    pos, end = 0, len(data)
    while pos < end:
        sp = data.find(b" ", pos, pos + 8)
        nul = data.find(b"\0", sp + 1)
        if sp < 0 or nul < 0 or nul + 21 > end:
            raise ReadAborted("error", f"git_error: malformed tree object {sha}")
        try:
            mode = int(data[pos:sp], 8)
        except ValueError as e:
            raise ReadAborted("error", f"git_error: malformed tree object {sha}") from e
        yield mode, data[sp + 1 : nul], data[nul + 1 : nul + 21].hex()
        pos = nul + 21


def read_tree(
    git_dir: str | Path, commit: str, limits: FileLimits, budget: ReadBudget | None = None
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Files at ``commit`` as ({path, content}, ...) plus skipped entries ({path, reason}).

    Symlinks and submodules are skipped, never resolved; binary and oversized files are skipped; the
    ``exclude_dirs`` are not descended into. Raises ``ReadAborted`` when the tree passes a cap of
    ``limits`` or the budget's deadline: the caller turns the whole source into one row.
    """
    if not commit or any(c.isspace() for c in commit):
        raise ValueError(f"read_tree needs a commit id, got {commit!r}")
    budget = budget if budget is not None else ReadBudget()
    files: list[dict[str, str]] = []
    skips = _Skips()
    max_file_bytes = limits.max_file_kb * 1024
    with _ObjectReader(git_dir, budget) as objects:
        root = objects.info(f"{commit}^{{tree}}")
        if root is None or root[1] != "tree":
            raise ReadAborted("error", f"git_error: commit {commit} is not in the fetched repository")
        # depth-first, on an explicit stack (a 5,000-deep tree must not recurse); an item is
        # (parent directory prefix shared by its siblings, name, tree sha), so pending paths cost little
        stack: list[tuple[str, str, str]] = [("", "", root[0])]
        reached: Counter[str] = Counter({root[0]: 1})
        # a tree reached again is parsed again from memory, not read again: its entries still count on
        # every reach, but a repeated subtree costs no git round trip (bounded: unique trees <= max_total_mb)
        tree_data: dict[str, bytes] = {}
        n_entries = 0
        while stack:
            parent, dirname, tree_sha = stack.pop()
            prefix = f"{parent}{dirname}/" if dirname else ""
            prefix_bytes = len(prefix.encode())
            budget.check()
            data = tree_data.get(tree_sha)
            if data is None:
                info = objects.info(tree_sha)
                if info is None or info[1] != "tree":
                    skips.add(prefix.rstrip("/"), "broken tree entry (missing or not a tree)")
                    continue
                budget.take(info[2], limits)
                data = tree_data[tree_sha] = objects.contents(tree_sha, info[2])
            else:
                budget.take(len(data), limits)
            children: list[tuple[str, str, str]] = []
            names: set[bytes] = set()
            for mode, raw, sha in _tree_entries(data, tree_sha):
                n_entries += 1
                if n_entries > limits.max_tree_entries:
                    raise _too_many_entries(limits)
                budget.check()
                if prefix_bytes + len(raw) > limits.max_path_bytes:
                    raise _path_too_long(limits)
                try:
                    name = raw.decode("utf-8")
                except UnicodeDecodeError:
                    skips.add(prefix + raw.decode("utf-8", "replace"), "name not UTF-8 (never used)")
                    continue
                path = prefix + name
                if _unsafe_name(name):
                    skips.add(path, "unsafe name (never used)")
                    continue
                if raw in names:
                    skips.add(path, "duplicate entry (never used)")
                    continue
                names.add(raw)
                kind = mode & 0o170000
                if kind == stat.S_IFDIR:
                    if name in limits.exclude_dirs:
                        continue
                    reached[sha] += 1
                    if reached[sha] > limits.max_tree_repeats:
                        raise _too_large(
                            f"one tree is reached more than {limits.max_tree_repeats} times, "
                            "a git bomb of repeated subtrees",
                            "files.max_tree_repeats",
                        )
                    children.append((prefix, name, sha))
                elif mode == SYMLINK_MODE:
                    skips.add(path, "symlink (never followed)")
                elif mode == SUBMODULE_MODE:
                    skips.add(path, "submodule (not fetched)")
                elif kind != stat.S_IFREG:
                    skips.add(path, f"unsupported mode {mode:o} (never used)")
                elif name.endswith(limits.extensions):
                    blob = objects.info(sha)
                    if blob is None or blob[1] != "blob":
                        skips.add(path, "broken file entry (missing or not a blob)")
                        continue
                    size = blob[2]
                    if size > max_file_bytes:
                        skips.add(path, f"over max_file_kb ({size} bytes)")
                        continue
                    if len(files) >= limits.max_files:
                        raise _too_many_files(limits)
                    budget.take(size, limits)
                    content = objects.contents(sha, size)
                    try:
                        files.append({"path": path, "content": content.decode("utf-8")})
                    except UnicodeDecodeError:
                        skips.add(path, "not UTF-8 text")
            stack.extend(reversed(children))
    files.sort(key=lambda f: f["path"])
    return files, skips.result()


def read_local_dir(
    root: str | Path, limits: FileLimits, budget: ReadBudget | None = None
) -> tuple[list[dict[str, str]], list[dict[str, str]], int]:
    """Like ``read_tree`` for a plain directory: symlinks are skipped (never followed), the same caps apply
    (entries, files, bytes, path length, deadline), and only regular files are opened (never a FIFO)."""
    budget = budget if budget is not None else ReadBudget()
    base = Path(root).resolve()
    files: list[dict[str, str]] = []
    skips = _Skips()
    total = 0
    max_file_bytes = int(limits.max_file_kb * 1024)
    n_entries = 0
    stack: list[str] = [""]  # relative directory prefixes ("" or "a/b/"); iterative: no recursion limit
    while stack:
        prefix = stack.pop()
        entries: list[os.DirEntry[str]] = []
        try:
            with os.scandir(base / prefix if prefix else base) as it:
                for entry in it:
                    n_entries += 1
                    if n_entries > limits.max_tree_entries:
                        raise _too_many_entries(limits)
                    budget.check()
                    entries.append(entry)
        except OSError as e:
            skips.add(prefix.rstrip("/") or ".", f"unreadable directory ({e.strerror})")
            continue
        entries.sort(key=lambda e: e.name)
        dirs, others = [], []
        for entry in entries:
            rel = prefix + entry.name
            try:
                n_bytes = len(rel.encode("utf-8"))
            except UnicodeEncodeError:  # os gives undecodable bytes as surrogates
                skips.add(rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), "name not UTF-8")
                continue
            if n_bytes > limits.max_path_bytes:
                raise _path_too_long(limits)
            # classified like os.walk (a symlink to a directory is listed with the directories), never followed
            (dirs if entry.is_dir() else others).append(entry)
        kept: list[str] = []
        for d in dirs:
            if d.name in limits.exclude_dirs:
                continue
            if d.is_symlink():
                skips.add(prefix + d.name, "symlink (never followed)")
            else:
                kept.append(f"{prefix}{d.name}/")
        for entry in others:
            rel = prefix + entry.name
            if entry.is_symlink():
                skips.add(rel, "symlink (never followed)")
                continue
            if not rel.endswith(limits.extensions):
                continue
            if not entry.is_file(follow_symlinks=False):
                skips.add(rel, "not a regular file (never opened)")
                continue
            st = entry.stat(follow_symlinks=False)
            if st.st_size > max_file_bytes:
                skips.add(rel, f"over max_file_kb ({st.st_size} bytes)")
                continue
            if len(files) >= limits.max_files:
                raise _too_many_files(limits)
            budget.take(st.st_size, limits)
            # O_NONBLOCK: a file swapped for a FIFO after the check must not block the open
            try:
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError as e:  # swapped for a symlink (ELOOP), or not readable
                skips.add(rel, f"unreadable file ({e.strerror})")
                continue
            with os.fdopen(fd, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    skips.add(rel, "not a regular file (never opened)")
                    continue
                data = fh.read(max_file_bytes + 1)
            if len(data) > max_file_bytes:  # grew after the check
                skips.add(rel, f"over max_file_kb ({len(data)}+ bytes)")
                continue
            total += len(data)
            try:
                files.append({"path": rel, "content": data.decode("utf-8")})
            except UnicodeDecodeError:
                skips.add(rel, "not UTF-8 text")
        stack.extend(reversed(kept))  # depth-first in name order, like os.walk
    files.sort(key=lambda f: f["path"])
    return files, skips.result(), total
