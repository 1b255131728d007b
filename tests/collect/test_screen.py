"""Analysis and safety screening of parsed workspaces."""

from __future__ import annotations

import pytest

from pipelines.collect.analyze import analyze, parse_workspace
from pipelines.collect.hcl import HclParser
from pipelines.collect.screen import screen

ALLOWED = ("registry.terraform.io/hashicorp/null", "terraform.io/builtin/terraform")


@pytest.fixture(scope="module")
def parser() -> HclParser:
    with HclParser() as p:
        yield p


def ws(parser: HclParser, files: dict[str, str], history: bool = False):
    fl = [{"path": k, "content": v} for k, v in files.items()]
    parsed = parse_workspace(fl, parser)
    a = analyze(parsed)
    return parsed, a, screen(parsed, fl, a.providers, ALLOWED, history=history)


def test_clean_workspace_analysis(parser: HclParser) -> None:
    parsed, a, s = ws(
        parser,
        {
            "main.tf": 'variable "n" { default = 2 }\n'
            'resource "null_resource" "a" {\n  count = var.n\n}\n'
            'resource "terraform_data" "b" {\n  for_each = toset(["x"])\n  input = var.n > 1 ? 1 : 0\n}\n'
            'module "m" {\n  source = "./m"\n}\noutput "o" { value = 1 }\n',
            "m/main.tf": 'resource "terraform_data" "c" {}\n',
            "m/data.tf.json": '{"resource": {"null_resource": {"j": {}}}}',
        },
    )
    assert (parsed.status, s.blocked, s.providers_outside) == ("ok", [], [])
    assert (a.providers, a.resource_types) == (list(ALLOWED), ["null_resource", "terraform_data"])
    assert (a.n_resources, a.n_modules, a.n_variables, a.n_outputs) == (4, 1, 1, 1)
    assert (a.complexity_score, a.complexity_bucket, a.risky_constructs) == (10.0, "medium", [])


def test_everything_plan_would_execute_or_fetch_is_blocked(parser: HclParser) -> None:
    _, a, s = ws(
        parser,
        {
            "main.tf": """
data "external" "pwn" { program = ["sh", "-c", "touch /tmp/x"] }
data "http" "get" { url = "https://example.com" }
data "terraform_remote_state" "s" {
  backend = "local"
  config = { path = "/etc/state" }
}
module "remote" { source = "git::https://example.com/m.git" }
module "registry" { source = "terraform-aws-modules/vpc/aws" }
terraform {
  backend "s3" { bucket = "b" }
}
resource "terraform_data" "f" { input = file("/proc/self/environ") }
resource "terraform_data" "g" { input = templatefile("${path.module}/../../x.tpl", {}) }
resource "terraform_data" "ok" { input = file("${path.module}/files/a.txt") }
resource "aws_s3_bucket" "b" {}
"""
        },
        history=False,
    )
    assert s.status == "blocked"
    assert [b.split(":")[0] for b in s.blocked] == [
        "backend",
        "data_source_external",
        "data_source_http",
        "data_source_terraform_remote_state",
        "file_function",
        "file_function",
        "remote_module",
        "remote_module",
    ]
    assert "main.tf file(/proc/self/environ) reads outside the workspace" in "; ".join(s.blocked)
    assert "main.tf templatefile(${path.module}/../../x.tpl) reads outside the workspace" in "; ".join(s.blocked)
    assert s.providers_outside == [
        "registry.terraform.io/hashicorp/aws",
        "registry.terraform.io/hashicorp/external",
        "registry.terraform.io/hashicorp/http",
    ]
    assert a.risky_constructs == ["data.external", "data.http", "data.terraform_remote_state", "remote_module"]


def test_provisioners_block_history_mode_only(parser: HclParser) -> None:
    files = {"main.tf": 'resource "null_resource" "p" {\n  provisioner "local-exec" {\n    command = "id"\n  }\n}\n'}
    assert ws(parser, files)[2].blocked == []
    assert ws(parser, files, history=True)[2].blocked == [
        "provisioner: main.tf null_resource.p would run at apply (history mode)"
    ]


def test_parse_failures_are_statuses(parser: HclParser) -> None:
    parsed = parse_workspace(
        [{"path": "a.tf", "content": "a = 1\n"}, {"path": "b.tf", "content": "resource {"}], parser
    )
    assert (parsed.status, parsed.docs) == ("error", {})
    assert parsed.error.startswith("b.tf: Unexpected")
    bad_json = parse_workspace([{"path": "x.tf.json", "content": "[1]"}], parser)
    assert (bad_json.status, bad_json.error) == ("error", "x.tf.json: a .tf.json file must hold a JSON object")
