"""Fetching untrusted repositories with real git: statuses, caps, symlinks, history, cache."""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.collect.git import FetchLimits, FileLimits, ReadBudget, fetch, read_local_dir, read_tree
from tests.conftest import make_git_repo


def test_fetch_reads_head_and_skips_symlinks_without_following(tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "secret.tf"
    secret.parent.mkdir()
    secret.write_text("# TARGET-CONTENT-NEVER-READ\n")
    [sha] = make_git_repo(
        tmp_path / "r", [{"main.tf": 'resource "terraform_data" "a" {}\n', "leak.tf": f"symlink:{secret}"}]
    )
    res = fetch((tmp_path / "r").as_uri(), None, tmp_path / "cache", FetchLimits())
    assert (res.status, res.error, res.commit_sha, res.commits) == ("ok", None, sha, [sha])
    files, skipped = read_tree(res.git_dir, sha, FileLimits())
    assert files == [{"path": "main.tf", "content": 'resource "terraform_data" "a" {}\n'}]
    assert skipped == [{"path": "leak.tf", "reason": "symlink (never followed)"}]


def test_fetch_history_lists_commits_oldest_first(tmp_path: Path) -> None:
    shas = make_git_repo(tmp_path / "r", [{"a.tf": "a = 1\n"}, {"a.tf": "a = 2\n"}, {"a.tf": "a = 3\n"}])
    res = fetch((tmp_path / "r").as_uri(), "main", tmp_path / "cache", FetchLimits(max_commits=2), history=True)
    assert res.status == "ok"
    assert res.commits == shas[1:]
    assert read_tree(res.git_dir, shas[1], FileLimits())[0] == [{"path": "a.tf", "content": "a = 2\n"}]


def test_fetch_failures_are_statuses(tmp_path: Path) -> None:
    make_git_repo(tmp_path / "r", [{"a.tf": "a = 1\n"}])
    cache = tmp_path / "cache"
    missing = fetch((tmp_path / "nope").as_uri(), None, cache, FetchLimits())
    assert (missing.status, missing.error) == ("error", "not_found: the repository does not exist or is not reachable")
    bad_ref = fetch((tmp_path / "r").as_uri(), "no-such-branch", cache, FetchLimits())
    assert (bad_ref.status, bad_ref.error) == ("error", "bad_ref: the ref does not exist in the repository")
    ext = fetch("ext::sh -c touch% /tmp/tfpredict-pwned", None, cache, FetchLimits())
    assert ext.status == "error" and ext.error.startswith("protocol_not_allowed")
    assert not Path("/tmp/tfpredict-pwned").exists()


def test_fetch_over_size_cap_is_skipped_and_not_cached(tmp_path: Path) -> None:
    make_git_repo(tmp_path / "big", [{"main.tf": "a = 1\n", "blob.txt": os.urandom(1_500_000).hex()}])
    res = fetch((tmp_path / "big").as_uri(), None, tmp_path / "cache", FetchLimits(max_repo_mb=1))
    assert res.status == "skipped"
    assert res.error == "too_large: the repository exceeds the 1 MB size cap (clone.max_repo_mb)"
    assert not any((tmp_path / "cache").glob("*.git"))
    # a rerun starts from nothing again and is skipped again: a half-fetched cache never lets it through
    again = fetch((tmp_path / "big").as_uri(), None, tmp_path / "cache", FetchLimits(max_repo_mb=1))
    assert (again.status, again.error) == (res.status, res.error)


def test_fetch_never_starts_past_the_source_deadline(tmp_path: Path) -> None:
    make_git_repo(tmp_path / "r", [{"a.tf": "a = 1\n"}])
    res = fetch((tmp_path / "r").as_uri(), None, tmp_path / "cache", FetchLimits(), budget=ReadBudget.starting(0))
    assert (res.status, res.error) == (
        "error",
        "timeout: the source took longer than 0s to fetch, read and discover (clone.source_timeout_s)",
    )
    assert not any((tmp_path / "cache").glob("*.git"))


def test_refetch_same_commit_downloads_nothing(tmp_path: Path) -> None:
    make_git_repo(tmp_path / "r", [{"a.tf": "a = 1\n" * 1000}])
    first = fetch((tmp_path / "r").as_uri(), None, tmp_path / "cache", FetchLimits())
    again = fetch((tmp_path / "r").as_uri(), None, tmp_path / "cache", FetchLimits())
    assert first.bytes > 0
    assert (again.commit_sha, again.git_dir, again.bytes) == (first.commit_sha, first.git_dir, 0)


def test_read_local_dir_skips_symlinks_and_caps(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.tf").write_text("# TARGET\n")
    root = tmp_path / "repo"
    (root / "mod").mkdir(parents=True)
    (root / "main.tf").write_text("a = 1\n")
    (root / "mod" / "big.tf").write_text("#" * 3000)
    (root / "link.tf").symlink_to(tmp_path / "outside" / "x.tf")
    (root / "linkdir").symlink_to(tmp_path / "outside")
    files, skipped, n = read_local_dir(root, FileLimits(max_file_kb=2))
    assert files == [{"path": "main.tf", "content": "a = 1\n"}]
    assert skipped == [
        {"path": "linkdir", "reason": "symlink (never followed)"},
        {"path": "link.tf", "reason": "symlink (never followed)"},
        {"path": "mod/big.tf", "reason": "over max_file_kb (3000 bytes)"},
    ]
    assert n == 6
