"""Hostile git repositories built from real objects with plumbing (``git mktree``, ``git hash-object``,
``git commit-tree``; large trees are written as raw tree objects through gitpython's object store): git
bombs, huge flat trees, 100,000-file repositories. Shared by the git-read tests and the job-level tests.
"""

from __future__ import annotations

import functools
import io
import os
import subprocess
from pathlib import Path
from typing import Any

import git
from gitdb import IStream

from tests.conftest import GIT_ENV

TREE, FILE, LINK, GITLINK = "40000", "100644", "120000", "160000"
MAIN_TF = b'resource "terraform_data" "a" {}\n'


# ---------------------------------------------------------------- building repositories from objects
def git_run(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    env = {**os.environ, **GIT_ENV}
    out = subprocess.run(["git", *args], cwd=repo, env=env, input=stdin, check=True, capture_output=True)
    return out.stdout.decode().strip()


def bare_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git_run(path, "init", "-q", "--bare", "-b", "main")
    return path


def put_blob(repo: Path, data: bytes) -> str:
    return git_run(repo, "hash-object", "-w", "--stdin", stdin=data)


def mktree(repo: Path, entries: list[tuple[str, str, str]]) -> str:
    """A tree from (mode, name, sha) entries with ``git mktree`` (which sorts and validates them)."""
    kind = {TREE: "tree", FILE: "blob", LINK: "blob", GITLINK: "commit"}
    text = "".join(f"{mode} {kind[mode]} {sha}\t{name}\n" for mode, name, sha in entries)
    return git_run(repo, "mktree", stdin=text.encode())


def put_raw_tree(repo: Path, entries: list[tuple[str, bytes | str, str]], sort: bool = True) -> str:
    """A raw tree object, written as-is (no validation): fast for 300k entries, and able to hold what
    ``git mktree`` refuses (duplicate names, ``..``, slashes), as a hand-made hostile pack can."""
    rows = [(mode, name.encode() if isinstance(name, str) else name, sha) for mode, name, sha in entries]
    if sort:  # git order: a tree sorts as if its name ended with "/"
        rows.sort(key=lambda r: r[1] + (b"/" if r[0] == TREE else b""))
    data = b"".join(mode.encode() + b" " + name + b"\0" + bytes.fromhex(sha) for mode, name, sha in rows)
    return _odb(repo).store(IStream(b"tree", len(data), io.BytesIO(data))).hexsha.decode()


@functools.cache
def _odb(repo: Path) -> Any:
    return git.Repo(repo).odb


def publish(repo: Path, tree: str) -> str:
    """Commit ``tree`` as the default branch; returns the commit."""
    sha = git_run(repo, "commit-tree", tree, "-m", "hostile")
    git_run(repo, "update-ref", "refs/heads/main", sha)
    return sha


def objects_bytes(repo: Path) -> int:
    return sum(p.stat().st_size for p in (repo / "objects").rglob("*") if p.is_file())


def build_bomb(repo: Path, levels: int = 10, width: int = 10, leaf: str = "main.tf") -> str:
    """The classic git bomb: ``levels`` trees, each with ``width`` entries naming the next one."""
    tree = mktree(repo, [(FILE, leaf, put_blob(repo, MAIN_TF))])
    for _ in range(levels):
        tree = mktree(repo, [(TREE, f"d{i}", tree) for i in range(width)])
    return tree


def hundred_k(repo: Path, ext: str) -> str:
    """100 distinct trees of 1,000 entries naming one blob: 100,000 files from 101 tree objects."""
    blob = put_blob(repo, MAIN_TF)
    dirs = [put_raw_tree(repo, [(FILE, f"f{i:03d}_{j:04d}{ext}", blob) for j in range(1000)]) for i in range(100)]
    return publish(repo, put_raw_tree(repo, [(TREE, f"m{i:03d}", t) for i, t in enumerate(dirs)]))
