"""Hostile repositories through the real collect job: nothing of the host is read, reached or written.

The corpus reaches a planted host file through every indirection terraform offers (a variable default,
a local, ``format()``, a heredoc, ``path.module/../..``, ``fileset()`` listing names), climbs out of the
repository with a module source, calls a loopback HTTP server from ``terraform_remote_state`` inside a
``check`` block, and commits terraform's own state and config. The job runs on the session's cluster as
root, and again as an unprivileged user (``unshare -n`` fails there, bubblewrap must not). Nothing is faked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipelines.terraform.install import default_mirror_dir
from ray_jobs import collect
from schemas.config import load_config
from tests.conftest import make_git_repo, recording_server
from tests.git_objects import bare_repo, build_bomb, hundred_k, objects_bytes, publish

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534
SINK = 'resource "terraform_data" "leak" {{\n  for_each = toset([local.v])\n}}\n'


def corpus(host: Path, server: str) -> dict[str, str]:
    """path → main.tf of one workspace each (a root module per directory of one repository)."""
    return {
        "var_default/main.tf": 'variable "p" {{ default = "{h}/known.txt" }}\nlocals {{ v = file(var.p) }}\n' + SINK,
        "local_templatefile/main.tf": 'locals {{\n  p = "{h}/known.txt"\n  v = templatefile(local.p, {{}})\n}}\n'
        + SINK,
        "format_filebase64/main.tf": 'locals {{ v = base64decode(filebase64(format("%s/%s", "{h}", "known.txt"))) }}\n'
        + SINK,
        "heredoc/main.tf": "locals {{\n  p = <<-EOT\n    {h}/known.txt\n  EOT\n  v = file(trimspace(local.p))\n}}\n"
        + SINK,
        "path_module/main.tf": 'locals {{ v = file("${{path.module}}/../../../../../../../../..{h}/known.txt") }}\n'
        + SINK,
        "fileset/main.tf": 'variable "d" {{ default = "{h}" }}\nlocals {{ v = join(",", fileset(var.d, "*.txt")) }}\n'
        + SINK,
        "module_climb/main.tf": 'module "m" {{\n  source = "../../../../../../../../..{h}/mod"\n}}\n',
        "remote_state/main.tf": (
            'resource "terraform_data" "ok" {{}}\n'
            'check "peek" {{\n  data "terraform_remote_state" "s" {{\n    backend = "http"\n'
            '    config  = {{ address = "{server}/state" }}\n  }}\n'
            "  assert {{\n    condition     = data.terraform_remote_state.s.outputs != null\n"
            '    error_message = "x"\n  }}\n}}\n'
        ),
        "committed/main.tf": 'resource "terraform_data" "ok" {{}}\n',
        "committed/.terraformrc": 'provider_installation {{\n  dev_overrides {{ "hashicorp/null" = "{h}" }}\n}}\n',
        "committed/terraform.tfstate": '{{"version": 4, "serial": 9, "lineage": "planted", "resources": []}}\n',
        "committed/.terraform/modules/modules.json": '{{"Modules": [{{"Key": "m", "Dir": "{h}/mod"}}]}}\n',
    }


# (plan_status, plan_step, what the reason starts with or contains) per workspace, wherever the job runs
EXPECTED = {
    "var_default": ("error", "plan", "no file exists at"),
    "local_templatefile": ("error", "plan", "no file exists at"),
    "format_filebase64": ("error", "plan", "no file exists at"),
    "heredoc": ("error", "plan", "no file exists at"),
    "path_module": ("blocked", "screen", "file_function"),
    "fileset": ("ok", "", None),
    "module_climb": ("blocked", "screen", "module_source_outside_repo"),
    "remote_state": ("blocked", "screen", "data_source_terraform_remote_state"),
    "committed": ("ok", "", None),
}
CHANGES = {"fileset": ['terraform_data.leak[""]'], "committed": ["terraform_data.ok"]}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, list[str]]]:
    with recording_server() as served:
        yield served


@pytest.fixture(scope="module")
def planted() -> Iterator[dict[str, Any]]:
    """World-readable host files (an unprivileged job could read them, were it not contained)."""
    base = Path(tempfile.mkdtemp(prefix="tfpredict-host-", dir="/tmp"))
    base.chmod(0o755)
    host = base / "host"
    (host / "mod").mkdir(parents=True)
    content, name = f"CANARY-{uuid.uuid4().hex}", f"hostsecret-{uuid.uuid4().hex[:12]}"
    (host / "known.txt").write_text(content)
    (host / f"{name}.txt").write_text("x")
    (host / "mod" / "main.tf").write_text(f'resource "terraform_data" "hostmod" {{\n  input = "{content}"\n}}\n')
    subprocess.run(["chmod", "-R", "a+rX", str(base)], check=True)
    yield {"base": base, "host": host, "canaries": (content, name)}
    shutil.rmtree(base, ignore_errors=True)


def make_corpus(where: Path, host: Path, server: str) -> str:
    files = {k: v.format(h=host, server=server) for k, v in corpus(host, server).items()}
    make_git_repo(where, [files])
    return where.as_uri()


def overrides(out: Path, url: str) -> list[str]:
    return [
        f"output_dir={out}",
        f"cache_dir={out.parent / 'git-cache'}",
        f"sources.urls={json.dumps([url])}",
        "sources.synthetic=null",
        "plan.timeout_s=60",
    ]


def assert_contained(out: Path, canaries: tuple[str, ...], hits: list[str]) -> dict[str, dict[str, Any]]:
    """Every case has its row and reason; no canary in any file the job wrote; the server saw nothing."""
    for path in out.rglob("*"):
        if not path.is_file():
            continue
        texts = [path.read_bytes().decode(errors="replace")]
        if path.suffix == ".parquet":
            texts.append(json.dumps(pq.read_table(path).to_pylist(), default=str))
        for text in texts:
            for canary in canaries:
                assert canary not in text, (path, canary)
    assert hits == []
    rows = {p["path"]: p for p in pq.read_table(out / "plans.parquet").to_pylist()}
    assert sorted(rows) == sorted(EXPECTED)
    for path, (status, step, reason) in EXPECTED.items():
        row = rows[path]
        assert (row["plan_status"], row["plan_step"]) == (status, step), (path, row["plan_error"])
        if reason is None:
            assert row["plan_error"] is None
            assert [c["address"] for c in row["resource_changes"]] == CHANGES[path]
        elif status == "blocked":
            assert row["plan_error"].startswith(reason), (path, row["plan_error"])
            assert row["isolation"] is None  # terraform never started
        else:
            assert reason in row["plan_error"], (path, row["plan_error"])
        if status != "blocked":
            assert (row["planner"], row["isolation"]) == ("terraform", "bwrap")
    return rows


def test_hostile_corpus_reads_reaches_and_leaks_nothing(
    ray_cluster: object, tmp_path: Path, planted: dict[str, Any], server: tuple[str, list[str]]
) -> None:
    """The hostile corpus in one job with a git bomb and a 100,000-file repository (few KB of objects each):
    those end as one repos row each with the cap they hit, well within their deadline, and the job goes on."""
    url, hits = server
    repo = make_corpus(tmp_path / "hostile", planted["host"], url)
    bomb = bare_repo(tmp_path / "bomb")
    publish(bomb, build_bomb(bomb))
    huge = bare_repo(tmp_path / "huge")
    hundred_k(huge, ".tf")
    assert objects_bytes(bomb) < 16_000 and objects_bytes(huge) < 2_000_000
    urls = [repo, bomb.as_uri(), huge.as_uri()]
    deadline = 120
    args = [
        *overrides(tmp_path / "out", repo),
        f"sources.urls={json.dumps(urls)}",
        f"clone.source_timeout_s={deadline}",
    ]
    summary = collect.run(load_config(collect.CollectConfig, None, args))
    assert summary["plans_by_isolation"] == {"bwrap": 6}
    assert_contained(tmp_path / "out", planted["canaries"], hits)
    repos = {r["source_url"]: r for r in pq.read_table(tmp_path / "out" / "repos.parquet").to_pylist()}
    assert sorted(repos) == sorted(urls)
    assert [(repos[u]["status"], repos[u]["error"], repos[u]["n_workspaces"]) for u in urls] == [
        ("ok", None, len(EXPECTED)),
        (
            "skipped",
            "too_large: one tree is reached more than 64 times, a git bomb of repeated subtrees "
            "(files.max_tree_repeats)",
            0,
        ),
        ("skipped", "too_large: more than 5000 files to read (files.max_files)", 0),
    ]
    assert all(repos[u]["duration_s"] < deadline for u in urls)


def test_without_isolation_auto_refuses_collected_code(ray_cluster: object, tmp_path: Path) -> None:
    make_git_repo(tmp_path / "plain", [{"main.tf": 'resource "terraform_data" "x" {}\n'}])
    args = [*overrides(tmp_path / "out", (tmp_path / "plain").as_uri()), f"plan.bwrap={tmp_path / 'no-bwrap'}"]
    with pytest.raises(SystemExit) as e:
        collect.run(load_config(collect.CollectConfig, None, args))
    msg = str(e.value)
    assert msg.startswith("refusing to plan 1 workspace(s) of collected (untrusted) repositories: node(s) ")
    assert "isolation_unavailable: bubblewrap cannot contain terraform on this node" in msg
    assert "apt-get install bubblewrap" in msg and "plan.isolation=none" in msg
    assert not (tmp_path / "out" / "plans.parquet").exists()


def _job(
    user: int | None, env: dict[str, str], args: list[str], cwd: Path, prefix: list[str] = ()
) -> subprocess.CompletedProcess[str]:
    """``python -m ray_jobs.collect`` in a fresh process with its own local Ray, optionally as ``user``."""
    drop = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user is not None else []
    cmd = [*prefix, *drop, sys.executable, "-m", "ray_jobs.collect", "ray.num_cpus=2", "ray.auth_disabled=true", *args]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return subprocess.run(
        cmd,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )


def _reachable_as(user: int, view: Path) -> list[str]:
    """A command prefix under which ``user`` can run this interpreter and read the project.

    Here (and in CI) the interpreter lives under ``/root`` (mode 700), which no other user may enter. The
    prefix runs the job in a private mount namespace in which each such directory is replaced by a view
    that holds only the subtrees the job needs (bind mounts of the interpreter, the venv, the project):
    the rest of the host, and what the user may not read, stay as they are. Empty when nothing blocks.
    """
    needed = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), ROOT}
    blocked: dict[Path, set[str]] = {}
    for path in needed:
        for parent in reversed(path.parents):
            if not parent.stat().st_mode & 0o001:  # others may not enter it
                blocked.setdefault(parent, set()).add(path.relative_to(parent).parts[0])
                break
    script = []
    for i, (parent, children) in enumerate(sorted(blocked.items())):
        v = view / str(i)
        v.mkdir(parents=True)
        v.chmod(0o755)
        for child in sorted(children):
            (v / child).mkdir()
            script.append(f"mount --bind '{parent / child}' '{v / child}'")
        script.append(f"mount --rbind '{v}' '{parent}'")
    if not script:
        return []
    return ["unshare", "--mount", "--propagation", "private", "sh", "-ec", "; ".join(script) + '; exec "$@"', "sh"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create the unprivileged run; as non-root, see above")
def test_hostile_corpus_as_a_non_root_user(planted: dict[str, Any], server: tuple[str, list[str]]) -> None:
    """The same corpus and job as an unprivileged user: isolation must not silently degrade."""
    url, hits = server
    base = Path(tempfile.mkdtemp(prefix="tfpredict-nobody-", dir="/tmp"))
    try:
        repo = make_corpus(base / "hostile", planted["host"], url)
        shutil.copytree(default_mirror_dir(), base / "home" / "tf-mirror", symlinks=True)
        subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(base)], check=True)
        prefix = _reachable_as(NOBODY, base / "view")
        spawn = "import subprocess, sys, ray; subprocess.run([sys.executable, '-c', 'pass'], check=True)"
        user = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        runs = subprocess.run(
            [*prefix, *user, sys.executable, "-c", spawn], capture_output=True, text=True, check=False
        )
        assert runs.returncode == 0, runs.stderr  # the interpreter, as the unprivileged user
        probe = ["setpriv", f"--reuid={NOBODY}", "unshare", "-n", "true"]
        assert subprocess.run(probe, capture_output=True, check=False).returncode != 0  # the old barrier fails here
        env = {"HOME": str(base), "TFPREDICT_HOME": str(base / "home"), "RAY_TMPDIR": str(base / "ray")}
        proc = _job(NOBODY, env, overrides(base / "out", repo), base, prefix)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "terraform ran under {'bwrap': 6}" in proc.stdout
        rows = assert_contained(base / "out", planted["canaries"], hits)
        owners = {(base / "out" / "plans.parquet").stat().st_uid}
        assert owners == {NOBODY} and all(r["isolation"] in ("bwrap", None) for r in rows.values())
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_plan_disabled_starts_no_terraform(tmp_path: Path) -> None:
    """``plan.enabled=false``: a terraform on PATH that records any call is never called (nor installed)."""
    shim_dir, calls = tmp_path / "shim", tmp_path / "terraform-called"
    shim_dir.mkdir()
    (shim_dir / "terraform").write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 1\n')
    (shim_dir / "terraform").chmod(0o755)
    make_git_repo(tmp_path / "plain", [{"main.tf": 'resource "terraform_data" "x" {}\n'}])
    ray_tmp = tempfile.mkdtemp(prefix="tfr-", dir="/tmp")  # short (socket paths), and no running cluster to join
    env = {
        "PATH": f"{shim_dir}:{os.environ['PATH']}",
        "TFPREDICT_HOME": str(tmp_path / "empty-home"),
        "RAY_TMPDIR": ray_tmp,
    }
    check = subprocess.run(["sh", "-c", "terraform version"], env={**os.environ, **env}, check=False)
    assert check.returncode == 1 and calls.read_text() == "version\n"  # the shim is what a job would find
    calls.unlink()
    args = [*overrides(tmp_path / "out", (tmp_path / "plain").as_uri()), "plan.enabled=false"]
    proc = _job(None, env, args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not calls.exists()
    assert not (tmp_path / "empty-home" / "tf-mirror").exists()  # nothing was installed either
    [row] = pq.read_table(tmp_path / "out" / "plans.parquet").to_pylist()
    assert (row["plan_status"], row["plan_step"], row["isolation"], row["terraform_version"]) == (
        "skipped",
        "plan",
        None,
        None,
    )
    assert row["plan_error"] == "plan_disabled: plan.enabled=false (analyzed and screened only)"
    shutil.rmtree(ray_tmp, ignore_errors=True)
