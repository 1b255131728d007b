"""The terraform sandbox with real terraform and the offline mirror."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.terraform.sandbox import SandboxConfig, plan_workspace, resolve_isolation
from tests.conftest import recording_server


def f(path: str, content: str) -> dict[str, str]:
    return {"path": path, "content": content}


def changes(res) -> list[tuple[str, list[str]]]:
    return [(r["address"], r["actions"]) for r in res.resource_changes]


MAIN = """
variable "n" { default = 3 }
resource "null_resource" "cbd" {
  count    = var.n
  triggers = { v = "one" }
  lifecycle { create_before_destroy = true }
}
resource "terraform_data" "upd" { input = "one" }
resource "terraform_data" "rep" { triggers_replace = ["one"] }
module "m" { source = "../modules/m" }
"""


def test_fresh_plan_with_module_and_count(sandbox_cfg: SandboxConfig) -> None:
    files = [f("env/main.tf", MAIN), f("modules/m/main.tf", 'resource "terraform_data" "z" {}\n')]
    res = plan_workspace(files, "env", sandbox_cfg)
    assert (res.status, res.error, res.terraform_version) == ("ok", None, res.terraform_version)
    assert changes(res) == [
        ("module.m.terraform_data.z", ["create"]),
        ("null_resource.cbd[0]", ["create"]),
        ("null_resource.cbd[1]", ["create"]),
        ("null_resource.cbd[2]", ["create"]),
        ("terraform_data.rep", ["create"]),
        ("terraform_data.upd", ["create"]),
    ]
    assert res.resource_changes[0]["module_address"] == "module.m"
    assert res.resource_changes[1]["provider"] == "registry.terraform.io/hashicorp/null"


def test_history_plan_shows_update_delete_and_both_replace_orders(sandbox_cfg: SandboxConfig) -> None:
    before = [f("env/main.tf", MAIN), f("modules/m/main.tf", 'resource "terraform_data" "z" {}\n')]
    after = [
        f(
            "env/main.tf",
            MAIN.replace("default = 3", "default = 2")
            .replace('"one"', '"two"')
            .replace('module "m" { source = "../modules/m" }', ""),
        )
    ]
    res = plan_workspace(after, "env", sandbox_cfg, prior_files=before, trusted=True)
    assert res.status == "ok", res.error
    assert changes(res) == [
        ("module.m.terraform_data.z", ["delete"]),
        ("null_resource.cbd[0]", ["create", "delete"]),
        ("null_resource.cbd[1]", ["create", "delete"]),
        ("null_resource.cbd[2]", ["delete"]),
        ("terraform_data.rep", ["delete", "create"]),
        ("terraform_data.upd", ["update"]),
    ]


def test_plan_error_and_timeout_are_statuses(sandbox_cfg: SandboxConfig) -> None:
    bad = plan_workspace([f("main.tf", 'resource "null_resource" "x" {\n  nope = 1\n}\n')], ".", sandbox_cfg)
    assert (bad.status, bad.step) == ("error", "plan")
    assert bad.error.startswith("terraform plan failed: Error: Unsupported argument on main.tf line 2")
    slow_cfg = SandboxConfig(**{**sandbox_cfg.__dict__, "timeout_s": 3})
    slow = plan_workspace([f("main.tf", 'resource "terraform_data" "x" {\n  count = 200000\n}\n')], ".", slow_cfg)
    assert (slow.status, slow.step) == ("timeout", "plan")
    assert slow.error == "terraform plan exceeded the 3s limit"
    assert 3 <= slow.duration_s < 30


def test_provider_outside_the_mirror_fails_offline(sandbox_cfg: SandboxConfig) -> None:
    res = plan_workspace([f("main.tf", 'resource "aws_s3_bucket" "b" {}\n')], ".", sandbox_cfg)
    assert (res.status, res.step) == ("error", "init")
    assert "provider registry.terraform.io/hashicorp/aws was not found" in res.error


def test_environment_is_scrubbed(sandbox_cfg: SandboxConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """terraform reads TF_VAR_* from its environment: ours must not reach it (nor any credential)."""
    monkeypatch.setenv("TF_VAR_leak", "from-host-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    tf = 'variable "leak" { default = "clean" }\nresource "terraform_data" "x" {\n  for_each = toset([var.leak])\n}\n'
    res = plan_workspace([f("main.tf", tf)], ".", sandbox_cfg)
    assert changes(res) == [('terraform_data.x["clean"]', ["create"])]


def test_unsafe_paths_never_written(sandbox_cfg: SandboxConfig, tmp_path: Path) -> None:
    target = tmp_path / "escaped.tf"
    res = plan_workspace([f(f"../../../../../../{target}", "a = 1\n")], ".", sandbox_cfg)
    assert (res.status, res.step) == ("error", "setup")
    assert res.error.startswith("sandbox: unsafe path")
    assert not target.exists() and not os.path.exists(str(target))


# ---------------------------------------------------------------- containment (attacks)
# Each attack runs twice: inside bubblewrap it must fail to reach the host, and with isolation=none the
# same configuration must succeed in reaching it, so that a sandbox that silently stopped working fails here.


@pytest.fixture
def host_dir(tmp_path: Path) -> tuple[Path, str, str]:
    """A host directory outside any workspace: known.txt holds a canary, another file's name is a canary."""
    d = tmp_path / "host"
    d.mkdir()
    content, name = f"CANARY-{uuid.uuid4().hex}", f"hostsecret-{uuid.uuid4().hex[:12]}"
    (d / "known.txt").write_text(content)
    (d / f"{name}.txt").write_text("x")
    mod = d / "mod"
    mod.mkdir()
    (mod / "main.tf").write_text(f'resource "terraform_data" "hostmod" {{\n  input = "{content}"\n}}\n')
    return d, content, name


def unconfined(cfg: SandboxConfig) -> SandboxConfig:
    return dataclasses.replace(cfg, isolation="none")


FILE_ATTACKS = {
    "variable_default": 'variable "p" {{ default = "{d}/known.txt" }}\nlocals {{ v = file(var.p) }}\n',
    "local_templatefile": 'locals {{\n  p = "{d}/known.txt"\n  v = templatefile(local.p, {{}})\n}}\n',
    "format_filebase64": 'locals {{ v = base64decode(filebase64(format("%s/%s", "{d}", "known.txt"))) }}\n',
    "heredoc": "locals {{\n  p = <<-EOT\n    {d}/known.txt\n  EOT\n  v = file(trimspace(local.p))\n}}\n",
    "path_module_climb": 'locals {{ v = file("${{path.module}}/../../../../../../../../..{d}/known.txt") }}\n',
    "fileset_names": 'locals {{ v = join(",", fileset("{d}", "*.txt")) }}\n',
}
LEAK_SINK = 'resource "terraform_data" "leak" {\n  for_each = toset([local.v])\n}\n'


@pytest.mark.parametrize("attack", sorted(FILE_ATTACKS))
def test_file_functions_cannot_read_the_host(
    attack: str, sandbox_cfg: SandboxConfig, host_dir: tuple[Path, str, str]
) -> None:
    d, content, name = host_dir
    files = [f("main.tf", FILE_ATTACKS[attack].format(d=d) + LEAK_SINK)]
    contained = plan_workspace(files, ".", sandbox_cfg)
    assert contained.isolation == "bwrap"
    seen = json.dumps([contained.error, contained.resource_changes])
    assert content not in seen and name not in seen
    if attack == "fileset_names":  # nothing to list inside the sandbox: one empty key, no host names
        assert (contained.status, changes(contained)) == ("ok", [('terraform_data.leak[""]', ["create"])])
    else:
        assert (contained.status, contained.step) == ("error", "plan")
        assert "no file exists at" in contained.error
    leaked = plan_workspace(files, ".", unconfined(sandbox_cfg))  # the control: uncontained, it leaks
    assert leaked.isolation == "none" and leaked.status == "ok"
    assert (content if attack != "fileset_names" else name) in json.dumps(leaked.resource_changes)


def test_module_source_outside_the_workspace_is_not_there(
    sandbox_cfg: SandboxConfig, host_dir: tuple[Path, str, str]
) -> None:
    d, content, _ = host_dir
    files = [f("env/main.tf", f'module "m" {{\n  source = "../../../../../../../../..{d}/mod"\n}}\n')]
    contained = plan_workspace(files, "env", sandbox_cfg)
    assert (contained.status, contained.step) == ("error", "init")
    assert "Unreadable module directory" in contained.error and content not in contained.error
    leaked = plan_workspace(files, "env", unconfined(sandbox_cfg))
    assert changes(leaked) == [("module.m.terraform_data.hostmod", ["create"])]


@pytest.fixture
def loopback_server() -> Iterator[tuple[str, list[str]]]:
    with recording_server() as served:
        yield served


def test_no_network_inside_the_sandbox(sandbox_cfg: SandboxConfig, loopback_server: tuple[str, list[str]]) -> None:
    url, hits = loopback_server
    tf = (
        'data "terraform_remote_state" "s" {\n  backend = "http"\n'
        f'  config = {{ address = "{url}/state" }}\n}}\n'
        'resource "terraform_data" "x" {\n  input = data.terraform_remote_state.s.outputs\n}\n'
    )
    contained = plan_workspace([f("main.tf", tf)], ".", sandbox_cfg)
    assert (contained.status, contained.step, hits) == ("error", "plan", [])
    plan_workspace([f("main.tf", tf)], ".", unconfined(sandbox_cfg))
    assert hits == ["/state"]  # the control: uncontained, terraform reached the loopback server


def test_planted_terraform_state_and_config_are_never_written(sandbox_cfg: SandboxConfig) -> None:
    state = json.dumps({"version": 4, "terraform_version": "1.11.4", "serial": 1, "lineage": "l", "outputs": {},
                        "resources": [{"mode": "managed", "type": "terraform_data", "name": "ok",
                                       "provider": 'provider["terraform.io/builtin/terraform"]',
                                       "instances": [{"attributes": {"id": "1"}}]}]})  # fmt: skip
    files = [
        f("main.tf", 'resource "terraform_data" "ok" {}\n'),
        f("terraform.tfstate", state),
        f(".terraformrc", 'provider_installation {\n  dev_overrides { "hashicorp/null" = "/tmp" }\n}\n'),
        f(".terraform/modules/modules.json", '{"Modules": []}'),
    ]
    res = plan_workspace(files, ".", sandbox_cfg)
    assert changes(res) == [("terraform_data.ok", ["create"])]  # the planted state would make it a no-op


def test_outputs_are_bounded(sandbox_cfg: SandboxConfig) -> None:
    files = [f("main.tf", 'resource "terraform_data" "x" {\n  count = 20\n}\n')]
    many = plan_workspace(files, ".", dataclasses.replace(sandbox_cfg, max_resource_changes=19))
    assert (many.status, many.step, many.error) == (
        "too_large",
        "show",
        "20 resource changes > plan.max_resource_changes=19",
    )
    big = plan_workspace(files, ".", dataclasses.replace(sandbox_cfg, max_plan_json_mb=0.001))
    assert (big.status, big.step, big.resource_changes) == ("too_large", "show", [])
    assert big.error.startswith("terraform show printed ") and big.error.endswith("MB > plan.max_plan_json_mb=0.001")
    assert plan_workspace(files, ".", dataclasses.replace(sandbox_cfg, max_resource_changes=20)).status == "ok"


def _fake_bwrap(tmp_path: Path) -> str:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    return str(fake)


@pytest.mark.parametrize("broken", ["missing", "fails"])
def test_without_isolation_auto_refuses_untrusted_code(broken: str, sandbox_cfg: SandboxConfig, tmp_path: Path) -> None:
    bwrap = str(tmp_path / "no-such-bwrap") if broken == "missing" else _fake_bwrap(tmp_path)
    cfg = dataclasses.replace(sandbox_cfg, bwrap=bwrap)
    files = [f("main.tf", 'resource "terraform_data" "x" {}\n')]
    refused = plan_workspace(files, ".", cfg)
    assert (refused.status, refused.step, refused.isolation) == ("error", "sandbox", "")
    why = "is not installed" if broken == "missing" else "setting up uid map: Permission denied"
    assert refused.error.startswith("isolation_unavailable: bubblewrap cannot contain terraform on this node (")
    assert why in refused.error and "apt-get install bubblewrap" in refused.error
    assert "plan.isolation=none" in refused.error
    trusted = plan_workspace(files, ".", cfg, trusted=True)  # our own synthetic repos still plan, uncontained
    assert (trusted.status, trusted.isolation) == ("ok", "none")
    strict = plan_workspace(files, ".", dataclasses.replace(cfg, isolation="bwrap"), trusted=True)
    assert (strict.status, strict.step) == ("error", "sandbox")
    assert resolve_isolation(dataclasses.replace(cfg, isolation="none")) == "none"


def test_history_mode_needs_trusted_code(sandbox_cfg: SandboxConfig) -> None:
    files = [f("main.tf", 'resource "terraform_data" "x" {}\n')]
    res = plan_workspace(files, ".", sandbox_cfg, prior_files=files)
    assert (res.status, res.step) == ("error", "sandbox")
    assert res.error == "sandbox: history mode applies code, so it needs trusted=True"


NON_ROOT_SCRIPT = """
import dataclasses, json, sys
from pipelines.terraform.sandbox import SandboxConfig, plan_workspace
cfg = SandboxConfig(terraform=sys.argv[1], mirror=sys.argv[2])
out = {}
for name, files in json.loads(sys.argv[3]).items():
    r = plan_workspace(files, ".", cfg)
    out[name] = [r.status, r.step, r.isolation, r.error, r.resource_changes]
print(json.dumps(out))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root; as non-root the suite already is")
def test_containment_holds_for_a_non_root_user(sandbox_cfg: SandboxConfig, host_dir: tuple[Path, str, str]) -> None:
    """As an unprivileged user (`unshare -n` fails there) bubblewrap still contains every attack."""
    d, content, name = host_dir
    base = Path(tempfile.mkdtemp(prefix="tfpredict-nonroot-", dir="/tmp"))
    try:
        shutil.copytree(sandbox_cfg.mirror, base / "mirror", symlinks=True)
        d_copy = base / "host"
        shutil.copytree(d, d_copy)  # the user must be able to read the host file, or the test proves nothing
        subprocess.run(["chown", "-R", "65534:65534", str(base)], check=True)
        attacks = {k: [f("main.tf", v.format(d=d_copy) + LEAK_SINK)] for k, v in FILE_ATTACKS.items()}
        env = {"PATH": os.environ["PATH"], "HOME": str(base), "PYTHONPATH": str(Path(__file__).parents[2])}
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", NON_ROOT_SCRIPT,
               sandbox_cfg.terraform, str(base / "mirror"), json.dumps(attacks)]  # fmt: skip
        assert subprocess.run(["setpriv", "--reuid=65534", "unshare", "-n", "true"], check=False).returncode != 0
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False, cwd=base)
        assert proc.returncode == 0, proc.stderr[-2000:]
        results = json.loads(proc.stdout)
        assert content not in proc.stdout and name not in proc.stdout
        assert {k: v[:3] for k, v in results.items()} == {
            k: ["ok", "", "bwrap"] if k == "fileset_names" else ["error", "plan", "bwrap"] for k in FILE_ATTACKS
        }
    finally:
        shutil.rmtree(base, ignore_errors=True)
