"""Bounded reads of hostile repositories: git bombs, huge and deep trees, repeated blobs, deadlines.

Every repository here is built from real git objects with plumbing (``git mktree``, ``git hash-object``,
``git commit-tree``; large trees are written as raw tree objects through gitpython's object store) and
collected over ``file://`` through ``collect_source``: each ends as one repos row with the reason of the
cap it hits and no workspaces, and the call returns.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import git
import pytest

from pipelines.collect.git import FetchLimits, FileLimits, ReadAborted, ReadBudget, read_local_dir, read_tree
from pipelines.collect.repo import CollectSettings, WorkspaceTask, collect_source
from pipelines.collect.sources import Source
from tests.conftest import make_git_repo
from tests.git_objects import (
    FILE,
    GITLINK,
    LINK,
    MAIN_TF,
    TREE,
    bare_repo,
    build_bomb,
    git_run,
    hundred_k,
    mktree,
    objects_bytes,
    publish,
    put_blob,
    put_raw_tree,
)

TOO_MANY_ENTRIES = "too_large: more than 200000 tree entries (files.max_tree_entries)"
BOMB = "too_large: one tree is reached more than 64 times, a git bomb of repeated subtrees (files.max_tree_repeats)"
TIMEOUT = "timeout: the source took longer than {:g}s to fetch, read and discover (clone.source_timeout_s)"


def collect(
    repo: Path, tmp_path: Path, timeout_s: float = 60, **files: Any
) -> tuple[dict[str, Any], list[WorkspaceTask], float]:
    settings = CollectSettings(
        cache_dir=str(tmp_path / "cache"),
        fetch=FetchLimits(source_timeout_s=timeout_s),
        files=FileLimits(**files),
    )
    start = time.monotonic()
    row, tasks = collect_source(Source(url=repo.as_uri(), kind="git"), settings)
    return row, tasks, time.monotonic() - start


def report(name: str, elapsed: float, row: dict[str, Any]) -> None:
    print(f"\n[{name}] {elapsed:.2f}s status={row['status']} error={row['error']!r}")


# ---------------------------------------------------------------- git bombs
def test_git_bomb_is_one_too_large_row_long_before_its_deadline(tmp_path: Path) -> None:
    repo = bare_repo(tmp_path / "bomb")
    commit = publish(repo, build_bomb(repo))
    assert objects_bytes(repo) < 16_000  # a few KB of objects ...
    logical_paths = 10**10  # ... naming d{0-9}/ x 10 levels /main.tf
    assert logical_paths >= 10**9
    row, tasks, elapsed = collect(repo, tmp_path, timeout_s=60)
    report("git bomb 10x10", elapsed, row)
    assert (row["status"], row["error"], row["commit_sha"], tasks) == ("skipped", BOMB, commit, [])
    assert row["n_workspaces"] == 0
    assert elapsed < 60  # the deadline given to it


def test_git_bomb_without_the_repeat_cap_still_stops_at_the_entry_cap(tmp_path: Path) -> None:
    repo = bare_repo(tmp_path / "bomb")
    publish(repo, build_bomb(repo))
    row, tasks, elapsed = collect(repo, tmp_path, timeout_s=60, max_tree_repeats=10**12)
    report("git bomb of .tf files, repeat cap off", elapsed, row)  # depth-first: the files come first
    assert (row["status"], row["error"], tasks) == (
        "skipped",
        "too_large: more than 5000 files to read (files.max_files)",
        [],
    )
    # with nothing to read at the leaves, the walk itself is what the entry cap stops
    repo = bare_repo(tmp_path / "bomb-bin")
    publish(repo, build_bomb(repo, leaf="x.bin"))
    row, tasks, elapsed = collect(repo, tmp_path, timeout_s=60, max_tree_repeats=10**12)
    report("git bomb of .bin files, repeat cap off", elapsed, row)
    assert (row["status"], row["error"], tasks) == ("skipped", TOO_MANY_ENTRIES, [])
    assert elapsed < 60


def test_bomb_inside_an_excluded_directory_is_never_walked(tmp_path: Path) -> None:
    repo = bare_repo(tmp_path / "r")
    bomb = build_bomb(repo)
    root = mktree(
        repo, [(FILE, "main.tf", put_blob(repo, MAIN_TF)), (TREE, "node_modules", bomb), (TREE, ".git", bomb)]
    )
    publish(repo, root)
    row, tasks, elapsed = collect(repo, tmp_path)
    report("bomb under node_modules", elapsed, row)
    assert (row["status"], row["error"], row["n_workspaces"]) == ("ok", None, 1)
    assert [f["path"] for f in tasks[0].files] == ["main.tf"]


def test_repeated_subtrees_under_the_repeat_cap_stop_at_the_entry_cap(tmp_path: Path) -> None:
    """Four distinct 1,000-entry trees, each named 64 times (exactly the repeat cap): 256k entries."""
    repo = bare_repo(tmp_path / "r")
    blob = put_blob(repo, b"x")
    leaves = [put_raw_tree(repo, [(FILE, f"l{j}_{k:04d}.bin", blob) for k in range(1000)]) for j in range(4)]
    publish(
        repo, put_raw_tree(repo, [(TREE, f"e{j}_{k:02d}", leaf) for j, leaf in enumerate(leaves) for k in range(64)])
    )
    row, tasks, elapsed = collect(repo, tmp_path)
    report("4 x 64 repeated 1k-entry subtrees", elapsed, row)
    assert (row["status"], row["error"], tasks) == ("skipped", TOO_MANY_ENTRIES, [])


# ---------------------------------------------------------------- large, wide and deep trees
def test_a_repository_of_100k_files_stops_at_max_files(tmp_path: Path) -> None:
    repo = bare_repo(tmp_path / "r")
    hundred_k(repo, ".tf")
    row, tasks, elapsed = collect(repo, tmp_path)
    report("100k .tf files", elapsed, row)
    assert (row["status"], row["error"], tasks) == (
        "skipped",
        "too_large: more than 5000 files to read (files.max_files)",
        [],
    )
    assert row["skipped_files"] == []  # one row reason, not 95,000 skip records


def test_a_repository_of_100k_unwanted_files_stops_at_the_entry_cap(tmp_path: Path) -> None:
    repo = bare_repo(tmp_path / "r")
    hundred_k(repo, ".bin")
    row, tasks, elapsed = collect(repo, tmp_path, max_tree_entries=50_000)
    report("100k .bin files, 50k entry cap", elapsed, row)
    assert (row["status"], row["error"], tasks) == (
        "skipped",
        "too_large: more than 50000 tree entries (files.max_tree_entries)",
        [],
    )
    # under the caps the same 100k entries are walked to the end: nothing to read is a normal row
    row, tasks, elapsed = collect(repo, tmp_path)
    report("100k .bin files, default caps", elapsed, row)
    assert (row["status"], row["error"], tasks) == ("skipped", "no_terraform: no .tf files at this commit", [])


def test_one_flat_tree_of_300k_entries_stops_at_the_entry_cap(tmp_path: Path) -> None:
    repo = bare_repo(tmp_path / "r")
    blob = put_blob(repo, b"x")
    publish(repo, put_raw_tree(repo, [(FILE, f"f{i:06d}.bin", blob) for i in range(300_000)]))
    row, tasks, elapsed = collect(repo, tmp_path)
    report("flat 300k-entry tree", elapsed, row)
    assert (row["status"], row["error"], tasks) == ("skipped", TOO_MANY_ENTRIES, [])
    # the 10 MB tree object alone is over a 1 MB budget: refused from its size, before git inflates it
    row, tasks, elapsed = collect(repo, tmp_path, max_total_mb=1)
    report("flat 300k-entry tree, 1 MB cap", elapsed, row)
    assert (row["status"], row["error"], tasks) == (
        "skipped",
        "too_large: more than 1 MB of files and trees to read (files.max_total_mb)",
        [],
    )


def deep_chain(repo: Path, depth: int) -> str:
    """``depth`` nested trees named ``d`` over one main.tf, all written by one ``git hash-object``."""
    tree = put_raw_tree(repo, [(FILE, "main.tf", put_blob(repo, MAIN_TF))])
    scratch = repo.parent / "scratch"
    scratch.mkdir()
    paths = []
    for i in range(depth):
        data = b"40000 d\0" + bytes.fromhex(tree)
        tree = hashlib.sha1(b"tree %d\0" % len(data) + data).hexdigest()
        paths.append(scratch / f"{i}")
        paths[-1].write_bytes(data)
    listing = "\n".join(map(str, paths)).encode()
    written = git_run(repo, "hash-object", "-w", "-t", "tree", "--stdin-paths", stdin=listing)
    assert written.split()[-1] == tree
    return publish(repo, tree)


def test_a_tree_5000_deep_is_walked_without_recursion_and_capped_by_path_length(tmp_path: Path) -> None:
    repo = bare_repo(tmp_path / "r")
    commit = deep_chain(repo, 5000)
    row, tasks, elapsed = collect(repo, tmp_path)
    report("5000-deep tree", elapsed, row)
    assert (row["status"], row["error"], tasks) == (
        "skipped",
        "too_large: a path longer than 4096 bytes (files.max_path_bytes)",
        [],
    )
    # raise the path cap and the whole chain is walked (no RecursionError at depth 5,000)
    files, skipped = read_tree(repo, commit, FileLimits(max_path_bytes=20_000))
    assert files == [{"path": "d/" * 5000 + "main.tf", "content": MAIN_TF.decode()}]
    assert skipped == []


# ---------------------------------------------------------------- bytes and deadlines
def test_one_large_blob_under_many_names_stops_at_the_bytes_cap(tmp_path: Path) -> None:
    repo = bare_repo(tmp_path / "r")
    blob = put_blob(repo, b"# padding\n" * 20_000)  # 200 KB: under max_file_kb, stored once
    publish(repo, put_raw_tree(repo, [(FILE, f"f{i:03d}.tf", blob) for i in range(500)]))  # 100 MB decoded
    assert objects_bytes(repo) < 100_000
    row, tasks, elapsed = collect(repo, tmp_path, max_total_mb=8)
    report("200 KB blob under 500 names, 8 MB cap", elapsed, row)
    assert (row["status"], row["error"], tasks) == (
        "skipped",
        "too_large: more than 8 MB of files and trees to read (files.max_total_mb)",
        [],
    )


def test_the_deadline_stops_a_walk_midway(tmp_path: Path) -> None:
    repo = bare_repo(tmp_path / "r")
    commit = hundred_k(repo, ".tf")
    limits = FileLimits(max_files=10**6, max_total_mb=10**6)
    budget = ReadBudget.starting(0.5)
    start = time.monotonic()
    with pytest.raises(ReadAborted) as e:
        read_tree(repo, commit, limits, budget)
    elapsed = time.monotonic() - start
    print(f"\n[deadline 0.5s, read_tree] {elapsed:.2f}s, {budget.bytes_read} bytes read")
    assert (e.value.status, e.value.reason) == ("error", TIMEOUT.format(0.5))
    assert 0 < budget.bytes_read < 100_000 * len(MAIN_TF)  # it had started reading and did not finish

    # the same through collect_source: fetch and reading share the one deadline
    row, tasks, elapsed = collect(repo, tmp_path, timeout_s=1.5, max_files=10**6, max_total_mb=10**6)
    report("deadline 1.5s, collect_source", elapsed, row)
    assert (row["status"], row["error"], tasks) == ("error", TIMEOUT.format(1.5), [])


# ---------------------------------------------------------------- hostile entries and a normal repository
def test_hostile_entry_names_and_modes_are_skipped_never_used(tmp_path: Path) -> None:
    repo = bare_repo(tmp_path / "r")
    main = put_blob(repo, MAIN_TF)
    evil = put_blob(repo, b'resource "terraform_data" "evil" {}\n')
    sub = put_raw_tree(repo, [(FILE, "inner.tf", evil)])
    entries: list[tuple[str, bytes | str, str]] = [
        (FILE, "main.tf", main),
        (FILE, "main.tf", evil),  # a second entry of the same name
        (TREE, "..", sub),
        (TREE, ".", sub),
        (FILE, "../../escape.tf", evil),
        (FILE, "a\\b.tf", evil),
        (FILE, b"\xff\xfe.tf", evil),
        (LINK, "link.tf", put_blob(repo, b"/etc/passwd")),
        (GITLINK, "vendored", "0" * 40),
        ("100664", "legacy.tf", main),  # the old group-writable mode git still reads
    ]
    commit = publish(repo, put_raw_tree(repo, entries, sort=False))
    files, skipped = read_tree(repo, commit, FileLimits())
    assert files == [
        {"path": "legacy.tf", "content": MAIN_TF.decode()},
        {"path": "main.tf", "content": MAIN_TF.decode()},
    ]
    assert skipped == [
        {"path": "main.tf", "reason": "duplicate entry (never used)"},
        {"path": "..", "reason": "unsafe name (never used)"},
        {"path": ".", "reason": "unsafe name (never used)"},
        {"path": "../../escape.tf", "reason": "unsafe name (never used)"},
        {"path": "a\\b.tf", "reason": "unsafe name (never used)"},
        {"path": "\ufffd\ufffd.tf", "reason": "name not UTF-8 (never used)"},
        {"path": "link.tf", "reason": "symlink (never followed)"},
        {"path": "vendored", "reason": "submodule (not fetched)"},
    ]


def test_many_symlinks_are_listed_up_to_a_bound(tmp_path: Path) -> None:
    repo = bare_repo(tmp_path / "r")
    target = put_blob(repo, b"/etc/passwd")
    entries = [(LINK, f"l{i:04d}.tf", target) for i in range(1500)] + [(FILE, "main.tf", put_blob(repo, MAIN_TF))]
    commit = publish(repo, put_raw_tree(repo, entries))
    files, skipped = read_tree(repo, commit, FileLimits())
    assert [f["path"] for f in files] == ["main.tf"]
    assert len(skipped) == 1001
    assert skipped[-1] == {"path": "*", "reason": "500 more skipped entries (not listed)"}


def reference_read_tree(git_dir: str, commit: str, limits: FileLimits) -> tuple[list[dict[str, str]], list[Any]]:
    """The previous implementation (gitpython ``traverse`` over every entry), as an oracle for normal repos."""
    files, skipped = [], []
    for item in git.Repo(git_dir).commit(commit).tree.traverse():
        if item.type == "tree":
            continue
        path = item.path
        if item.mode == 0o120000:
            skipped.append({"path": path, "reason": "symlink (never followed)"})
            continue
        parts = path.split("/")
        if any(p in limits.exclude_dirs for p in parts[:-1]) or not path.endswith(limits.extensions):
            continue
        if item.size > limits.max_file_kb * 1024:
            skipped.append({"path": path, "reason": f"over max_file_kb ({item.size} bytes)"})
            continue
        try:
            files.append({"path": path, "content": item.data_stream.read().decode("utf-8")})
        except UnicodeDecodeError:
            skipped.append({"path": path, "reason": "not UTF-8 text"})
    return sorted(files, key=lambda f: f["path"]), skipped


def test_a_normal_repository_reads_as_before(tmp_path: Path) -> None:
    outside = tmp_path / "secret.tf"
    outside.write_text("# NEVER\n")
    tree = {
        "main.tf": 'module "net" {\n  source = "./modules/net"\n}\n',
        "modules/net/main.tf": 'resource "terraform_data" "n" {}\n',
        "modules/net/variables.tf": 'variable "x" {\n  default = 1\n}\n',
        "envs/dev/terraform.tfvars": "x = 2\n",
        "envs/dev/main.tf": 'resource "terraform_data" "d" {}\n',
        "scripts/run.sh": "#!/bin/sh\necho hi\n",
        "docs/README.md": "# docs\n",
        "big.json": "[" + "1," * 400_000 + "1]",
        "plain.tf": "ok = 1\n",
        "image.png": "not read",
        ".terraform/modules/x/main.tf": "# vendored\n",
        "node_modules/pkg/index.json": "{}",
        "a/b/c/d/e/deep.tf": "e = 1\n",
        "leak.tf": f"symlink:{outside}",
    }
    [sha] = make_git_repo(tmp_path / "src", [tree])
    (tmp_path / "src" / "latin1.txt").write_bytes(b"caf\xe9\n")
    git_run(tmp_path / "src", "add", "latin1.txt")
    git_run(tmp_path / "src", "commit", "-q", "-m", "latin1")
    sha = git_run(tmp_path / "src", "rev-parse", "HEAD")
    git_dir = str(tmp_path / "src" / ".git")
    files, skipped = read_tree(git_dir, sha, FileLimits())
    want_files, want_skipped = reference_read_tree(git_dir, sha, FileLimits())
    assert files == want_files
    assert sorted(skipped, key=str) == sorted(want_skipped, key=str)
    assert {s["reason"] for s in skipped} == {
        "symlink (never followed)",
        "over max_file_kb (800003 bytes)",
        "not UTF-8 text",
    }


# ---------------------------------------------------------------- plain directories
def local(root: Path, tmp_path: Path, timeout_s: float = 60, **files: Any) -> dict[str, Any]:
    settings = CollectSettings(
        cache_dir=str(tmp_path / "cache"), fetch=FetchLimits(source_timeout_s=timeout_s), files=FileLimits(**files)
    )
    row, tasks = collect_source(Source(url=str(root), kind="local", origin="local"), settings)
    if row["status"] != "ok":
        assert tasks == []
    return row


def test_local_dir_caps_end_the_source_as_one_row(tmp_path: Path) -> None:
    root = tmp_path / "dir"
    (root / "sub").mkdir(parents=True)
    for i in range(30):
        (root / "sub" / f"f{i:02d}.tf").write_text(f"a{i} = 1\n")
    (root / "main.tf").write_text("#" * 400_000)
    assert local(root, tmp_path)["status"] == "ok"
    assert local(root, tmp_path, max_tree_entries=25)["error"] == (
        "too_large: more than 25 tree entries (files.max_tree_entries)"
    )
    assert local(root, tmp_path, max_files=10)["error"] == "too_large: more than 10 files to read (files.max_files)"
    assert local(root, tmp_path, max_total_mb=0.25)["error"] == (
        "too_large: more than 0.25 MB of files and trees to read (files.max_total_mb)"
    )
    assert local(root, tmp_path, max_path_bytes=8)["error"] == (
        "too_large: a path longer than 8 bytes (files.max_path_bytes)"
    )
    row = local(root, tmp_path, timeout_s=0)
    assert (row["status"], row["error"]) == ("error", TIMEOUT.format(0))


def test_local_dir_fifo_odd_names_and_depth(tmp_path: Path) -> None:
    root = tmp_path / "dir"
    root.mkdir()
    (root / "main.tf").write_text("a = 1\n")
    os.mkfifo(root / "pipe.tf")  # opening it would block forever
    fd = os.open(os.fsencode(root) + b"/\xff.tf", os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    deep = str(root)
    for _ in range(1500):  # deeper than Python's recursion limit (os.walk recursed on 3.11); made iteratively
        deep += "/d"
        os.mkdir(deep)
    Path(deep, "deep.tf").write_text("b = 1\n")
    try:
        files, skipped, n = read_local_dir(root, FileLimits())
    finally:  # pytest's recursive tmp cleanup cannot remove 1,500 levels: unwind them here
        os.unlink(Path(deep, "deep.tf"))
        for _ in range(1500):
            os.rmdir(deep)
            deep = os.path.dirname(deep)
    assert [f["path"] for f in files] == ["d/" * 1500 + "deep.tf", "main.tf"]
    assert skipped == [
        {"path": "\ufffd.tf", "reason": "name not UTF-8"},
        {"path": "pipe.tf", "reason": "not a regular file (never opened)"},
    ]
    assert n == 12
