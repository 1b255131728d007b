"""Stage manifests (pipelines/storage.py) on a local filesystem: published last, trusted only while every file
they name is there at its size, never half written."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
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


def test_an_output_dir_the_driver_cannot_write_stops_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No Ray is started: the location is probed first (an object store nobody listens for; a regular file)."""
    from ray_jobs.common import RayConfig, attach

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: connection refused
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with pytest.raises(SystemExit, match=r"output_dir=s3://nobucket/x cannot be written from the driver: .*Could not "
                       r"connect.* Fix: for an object store, give this machine credentials"):  # fmt: skip
        attach(RayConfig(), "s3://nobucket/x")
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit, match=f"output_dir={tmp_path / 'file'} cannot be written from the driver"):
        attach(RayConfig(), str(tmp_path / "file"))


def test_the_mitigation_loop_refuses_an_object_store_by_name() -> None:
    from ray_jobs import mitigate
    from schemas.config import load_config

    cfg = load_config(mitigate.MitigateConfig, None, ["output_dir=s3://bucket/x"])
    with pytest.raises(SystemExit, match="mitigate: output_dir=s3://bucket/x is an object store; the mitigation loop"):
        mitigate.run(cfg)


# ---------------------------------------------------------------- on an S3-compatible server (moto, loopback)
@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3 server (moto's server mode) on loopback and a bucket; the location prefix to use."""
    import socket
    import subprocess
    import sys
    import time

    import boto3

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t",
           "AWS_REGION": "us-east-1", "TFPREDICT_HOME": str(tmp_path_factory.mktemp("home"))}  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for attempt in range(100):  # until the server answers
            try:
                boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"]).create_bucket(Bucket="tfp-test")
                break
            except Exception:
                if attempt == 99:
                    raise
                time.sleep(0.1)
        yield "s3://tfp-test"
    finally:
        server.terminate()
        server.wait(timeout=10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_a_directory_is_published_whole_or_not_at_all(s3: str) -> None:
    loc = f"{s3}/w/out"
    with storage.writing_dir(loc) as tmp:
        (tmp / "a.txt").write_text("one")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("two!")
    assert storage.listing(loc) == {"a.txt": 3, "sub/b.txt": 4}
    with pytest.raises(RuntimeError, match="mid-write"), storage.writing_dir(loc) as tmp:
        (tmp / "c.txt").write_text("never published")
        raise RuntimeError("mid-write")
    assert storage.listing(loc) == {"a.txt": 3, "sub/b.txt": 4}  # the failed write changed nothing
    with storage.writing_dir(loc) as tmp:
        (tmp / "new.txt").write_text("x")
    assert storage.listing(loc) == {"new.txt": 1}  # replaced, not merged
    assert [k for k in storage.listing(f"{s3}/w") if ".tmp-" in k] == []


def test_a_node_copy_follows_the_store(s3: str) -> None:
    loc = f"{s3}/n/model"
    with storage.writing_dir(loc) as tmp:
        (tmp / "config.json").write_text("{}")
    first = storage.on_node(loc)
    assert (first / "config.json").read_text() == "{}"
    assert storage.on_node(loc) == first and storage.local(loc) == str(first)
    with storage.writing_dir(loc) as tmp:
        (tmp / "config.json").write_text('{"v": 2}')
    assert (storage.on_node(loc) / "config.json").read_text() == '{"v": 2}'  # republished: copied again
    assert storage.local("Qwen/Qwen2.5-1.5B") == "Qwen/Qwen2.5-1.5B"  # a hub id is not a location
    with pytest.raises(FileNotFoundError, match=f"no directory at {s3}/n/missing"):
        storage.on_node(f"{s3}/n/missing")


def test_a_mirror_uploads_what_changed_and_drops_what_the_store_lost(s3: str, tmp_path: Path) -> None:
    loc = f"{s3}/m/run"
    local = storage.mirror(loc)
    (local / "metrics.jsonl").write_text("1\n")
    (local / "best").mkdir()
    (local / "best" / "w.bin").write_bytes(b"aaaa")
    (local / "checkpoint_1").mkdir()
    (local / "checkpoint_1" / "state").write_text("Ray Train's")
    assert storage.sync_up(local, loc, exclude=("checkpoint_",)) == 2
    assert storage.sync_up(local, loc, exclude=("checkpoint_",)) == 0  # nothing changed since
    (local / "best" / "w.bin").write_bytes(b"bbbb")  # same size, new content: still uploaded
    assert storage.sync_up(local, loc, exclude=("checkpoint_",)) == 1
    assert storage.listing(loc) == {"metrics.jsonl": 2, "best/w.bin": 4}
    # another node, or this one after the run was deleted and started over
    storage.delete(f"{loc}/metrics.jsonl")
    again = storage.mirror(loc, exclude=("checkpoint_",))
    assert again == local and not (local / "metrics.jsonl").exists()
    assert (local / "best" / "w.bin").read_bytes() == b"bbbb"
    assert storage.mirror(str(tmp_path / "plain")) == tmp_path / "plain"  # a path is its own mirror
    assert storage.sync_up(tmp_path / "plain", str(tmp_path / "plain")) == 0


def test_manifests_on_the_object_store(s3: str) -> None:
    out = f"{s3}/p"
    with storage.writing_dir(f"{out}/plans.parquet") as tmp:
        (tmp / "part-0.parquet").write_bytes(b"x" * 7)
    fp = storage.fingerprint("collect", {}, {})
    storage.publish(out, "collect", fp, ["plans.parquet"], {"n": 1})
    found, why = storage.current(out, "collect", fp)
    assert why == "current" and found is not None and found["outputs"] == {"plans.parquet": {"part-0.parquet": 7}}
    storage.delete(f"{out}/plans.parquet/part-0.parquet")
    assert storage.current(out, "collect", fp)[0] is None
