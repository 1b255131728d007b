"""The terraform sandbox with real terraform and the offline mirror."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.terraform.sandbox import SandboxConfig, plan_workspace


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
    res = plan_workspace(after, "env", sandbox_cfg, prior_files=before)
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
