"""Stage manifests (pipelines/storage.py) on a local filesystem: published last, trusted only while every file
they name is there at its size, never half written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines import storage


def _stage(out: Path) -> None:
    (out / "plans.parquet").mkdir(parents=True)
    (out / "plans.parquet" / "part-0.parquet").write_bytes(b"x" * 10)
    (out / "repos.parquet").write_bytes(b"y" * 3)


def test_a_published_stage_is_current_for_its_fingerprint_only(tmp_path: Path) -> None:
    _stage(tmp_path)
    fp = storage.fingerprint("collect", {"n": 1}, {})
    m = storage.publish(str(tmp_path), "collect", fp, ["plans.parquet", "repos.parquet"], {"workspaces": 2})
    assert m["outputs"] == {"plans.parquet": {"part-0.parquet": 10}, "repos.parquet": {"": 3}}
    found, why = storage.current(str(tmp_path), "collect", fp)
    assert why == "current" and found is not None and found["result"] == {"workspaces": 2}
    other = storage.fingerprint("collect", {"n": 2}, {})
    assert storage.current(str(tmp_path), "collect", other) == (None, "its settings or inputs changed")
    upstream = storage.fingerprint("build_dataset", {}, {"collect": storage.digest(m)})
    assert upstream != storage.fingerprint("build_dataset", {}, {"collect": "another digest"})


@pytest.mark.parametrize("tamper", ["truncate", "delete", "add", "replace_dir"])
def test_outputs_changed_after_publishing_are_not_current(tmp_path: Path, tamper: str) -> None:
    _stage(tmp_path)
    fp = storage.fingerprint("collect", {}, {})
    storage.publish(str(tmp_path), "collect", fp, ["plans.parquet", "repos.parquet"], {})
    part = tmp_path / "plans.parquet" / "part-0.parquet"
    if tamper == "truncate":
        part.write_bytes(b"x")
    elif tamper == "delete":
        part.unlink()
    elif tamper == "add":  # a second writer's file beside the published one
        (tmp_path / "plans.parquet" / "part-1.parquet").write_bytes(b"z")
    else:  # the directory swapped for a new one of the same name and size, but other file names
        part.rename(tmp_path / "plans.parquet" / "part-9.parquet")
    found, why = storage.current(str(tmp_path), "collect", fp)
    assert found is None and why.startswith("plans.parquet changed since it was published"), why


def test_a_stage_killed_before_its_manifest_is_never_current(tmp_path: Path) -> None:
    _stage(tmp_path)  # outputs written, manifest never: what a killed stage leaves
    fp = storage.fingerprint("collect", {}, {})
    assert storage.current(str(tmp_path), "collect", fp) == (None, "never published")
    with pytest.raises(FileNotFoundError, match=r"outputs \['datasets/x'\] .* are missing; nothing was published"):
        storage.publish(str(tmp_path), "build_dataset", fp, ["datasets/x"], {})
    assert not (tmp_path / storage.MANIFEST_DIR / "build_dataset.json").exists()


def test_manifests_are_replaced_whole_and_withdrawn(tmp_path: Path) -> None:
    _stage(tmp_path)
    fp = storage.fingerprint("collect", {}, {})
    storage.publish(str(tmp_path), "collect", fp, ["repos.parquet"], {"n": 1})
    storage.publish(str(tmp_path), "collect", fp, ["repos.parquet"], {"n": 2})
    files = sorted(p.name for p in (tmp_path / storage.MANIFEST_DIR).iterdir())
    assert files == ["collect.json"]  # no temp file left beside it
    assert json.loads((tmp_path / storage.MANIFEST_DIR / "collect.json").read_text())["result"] == {"n": 2}
    storage.withdraw(str(tmp_path), "collect")
    storage.withdraw(str(tmp_path), "collect")  # twice is fine
    assert storage.current(str(tmp_path), "collect", fp) == (None, "never published")


def test_a_manifest_of_another_format_is_not_trusted(tmp_path: Path) -> None:
    _stage(tmp_path)
    fp = storage.fingerprint("collect", {}, {})
    storage.publish(str(tmp_path), "collect", fp, ["repos.parquet"], {})
    path = tmp_path / storage.MANIFEST_DIR / "collect.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "format": 0}))
    assert storage.current(str(tmp_path), "collect", fp) == (None, "manifest format 0 (this version writes 1)")
