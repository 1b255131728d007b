"""Analysis and safety screening of parsed workspaces, attacked through indirection, nesting and encoding.

Every case goes through the real python-hcl2 v7 parser (``HclParser``) or ``load_tf_json``, never hand-built
trees, because the screen's weak points are exactly the shapes v7 produces.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import git
import pytest

from pipelines.collect.analyze import analyze, parse_workspace
from pipelines.collect.discover import DiscoverLimits, discover
from pipelines.collect.hcl import HclParser, parse_hcl_inline
from pipelines.collect.screen import SCREEN_RULES_VERSION, Screen, screen
from pipelines.collect.synthetic import SyntheticConfig, generate_corpus

ALLOWED = ("registry.terraform.io/hashicorp/null", "terraform.io/builtin/terraform")
DYN = "file_function_dynamic_path"
RS = "data.terraform_remote_state"


@pytest.fixture(scope="module")
def parser() -> HclParser:
    with HclParser() as p:
        yield p


def ws(parser: HclParser, files: dict[str, str], root: str = ".", history: bool = False):
    fl = [{"path": k, "content": textwrap.dedent(v)} for k, v in files.items()]
    parsed = parse_workspace(fl, parser)
    assert parsed.status == "ok", parsed.error
    a = analyze(parsed)
    return parsed, a, screen(parsed, fl, a.providers, ALLOWED, root=root, history=history)


def blocked(parser: HclParser, files: dict[str, str], root: str = ".") -> list[str]:
    return ws(parser, files, root)[2].blocked


def test_rules_version_is_an_int() -> None:
    assert SCREEN_RULES_VERSION == 2


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
    assert (parsed.status, s.blocked, s.providers_outside, s.risky) == ("ok", [], [], [])
    assert (a.providers, a.resource_types) == (list(ALLOWED), ["null_resource", "terraform_data"])
    assert (a.n_resources, a.n_modules, a.n_variables, a.n_outputs) == (4, 1, 1, 1)
    assert (a.complexity_score, a.complexity_bucket) == (10.0, "medium")


def test_everything_plan_would_execute_or_fetch_is_blocked(parser: HclParser) -> None:
    _, _a, s = ws(
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
    )
    assert s.status == "blocked"
    assert s.blocked == [
        "backend: main.tf declares backend ['s3'] (state lives elsewhere)",
        "data_source_external: main.tf data.external.pwn would run at plan time",
        "data_source_http: main.tf data.http.get would run at plan time",
        "data_source_terraform_remote_state: main.tf data.terraform_remote_state.s would run at plan time",
        "file_function: main.tf file(/proc/self/environ) reads outside the workspace",
        "file_function: main.tf templatefile(${path.module}/../../x.tpl) reads outside the workspace",
        "remote_module: main.tf module.registry source 'terraform-aws-modules/vpc/aws' would be fetched by init",
        "remote_module: main.tf module.remote source 'git::https://example.com/m.git' would be fetched by init",
    ]
    assert s.providers_outside == [
        "registry.terraform.io/hashicorp/aws",
        "registry.terraform.io/hashicorp/external",
        "registry.terraform.io/hashicorp/http",
    ]
    assert s.risky == ["data.external", "data.http", "data.terraform_remote_state", "remote_module"]


# --------------------------------------------------------------------------------------------------
# What python-hcl2 v7 actually produces: the shapes the screen walks
# --------------------------------------------------------------------------------------------------


def test_v7_shapes_of_nested_blocks_and_expressions() -> None:
    doc = parse_hcl_inline(
        textwrap.dedent(
            """
            check "c" {
              data "http" "h" { url = "u" }
            }
            resource "null_resource" "r" {
              dynamic "d" {
                for_each = [1]
                content { v = base64encode(file(local.p)) }
              }
            }
            locals {
              t = templatefile("/t", { k = file("/etc/x") })
              m = { a = templatefile("/t", { k = file("/etc/x") }) }
              h = <<EOT
            x ${file("/etc/h")}
            EOT
            }
            """
        )
    )
    assert doc["check"] == [{"c": {"data": [{"http": {"h": {"url": "u"}}}]}}]
    assert doc["resource"][0]["null_resource"]["r"]["dynamic"] == [
        {"d": {"for_each": [1], "content": [{"v": "${base64encode(file(local.p))}"}]}}
    ]
    # objects inside calls come back as JSON with the quotes inside interpolations put back
    assert doc["locals"][0]["t"] == '${templatefile("/t", {"k": "${file("/etc/x")}"})}'
    assert doc["locals"][0]["m"] == {"a": '${templatefile("/t", {"k": "${file("/etc/x")}"})}'}
    assert doc["locals"][0]["h"] == 'x ${file("/etc/h")}'


# --------------------------------------------------------------------------------------------------
# Data sources, backends, provisioners: at any depth, in HCL and JSON syntax
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "want"),
    [
        (
            {
                "main.tf": 'check "c" {\n  data "http" "probe" { url = "https://x" }\n  assert {\n'
                '    condition = true\n    error_message = "m"\n  }\n}\n'
            },
            ["data_source_http: main.tf check.c.data.http.probe would run at plan time"],
        ),
        (
            {
                "main.tf": 'check "c" {\n  data "terraform_remote_state" "s" {\n    backend = "http"\n'
                '    config = { address = "http://x" }\n  }\n}\n'
            },
            [f"data_source_terraform_remote_state: main.tf check.c.{RS}.s would run at plan time"],
        ),
        (  # no such construct in terraform, but a future one must not slip through
            {
                "main.tf": 'resource "null_resource" "r" {\n  dynamic "x" {\n    for_each = [1]\n    content {\n'
                '      data "external" "e" { program = ["id"] }\n    }\n  }\n}\n'
            },
            ["data_source_external: main.tf null_resource.r.dynamic.x.content.data.external.e would run at plan time"],
        ),
        (
            {
                "modules/a/main.tf": 'data "external" "deep" { program = ["id"] }\n',
                "main.tf": 'module "a" { source = "./modules/a" }\n',
            },
            ["data_source_external: modules/a/main.tf data.external.deep would run at plan time"],
        ),
        (
            {"main.tf.json": json.dumps({"data": {"http": {"j": {"url": "u"}}}})},
            ["data_source_http: main.tf.json data.http.j would run at plan time"],
        ),
        (
            {"main.tf.json": json.dumps({"data": [{"external": [{"j": [{"program": ["id"]}]}]}]})},
            ["data_source_external: main.tf.json data.external.j would run at plan time"],
        ),
        (
            {"main.tf.json": json.dumps({"check": {"c": {"data": {"http": {"j": {"url": "u"}}}}}})},
            ["data_source_http: main.tf.json check.c.data.http.j would run at plan time"],
        ),
        (  # json.loads keeps the last of repeated keys; HCL's JSON reader keeps both blocks
            {"main.tf.json": '{"data": {"http": {"first": {"url": "u"}}}, "data": {"null_data_source": {"x": {}}}}'},
            ["data_source_http: main.tf.json data.http.first would run at plan time"],
        ),
        (
            {"main.tf.json": json.dumps({"terraform": {"backend": {"http": {"address": "http://x"}}}})},
            ["backend: main.tf.json declares backend ['http'] (state lives elsewhere)"],
        ),
        (
            {"main.tf.json": json.dumps({"terraform": [{"backend": [{"local": {}}]}]})},
            ["backend: main.tf.json declares backend ['local'] (state lives elsewhere)"],
        ),
        (  # an empty cloud block is still a cloud block (settings come from the environment)
            {"main.tf.json": json.dumps({"terraform": {"cloud": {}}})},
            ["cloud: main.tf.json declares a terraform cloud block"],
        ),
        (
            {"main.tf": "terraform {\n  cloud {}\n}\n"},
            ["cloud: main.tf declares a terraform cloud block"],
        ),
        (
            {"main.tf": 'terraform {\n  backend "http" {\n    address = "https://x"\n  }\n}\n'},
            ["backend: main.tf declares backend ['http'] (state lives elsewhere)"],
        ),
        (
            {"main.tf.json": json.dumps({"module": {"m": {"source": "../../../../etc"}}})},
            [
                'module_source_outside_repo: main.tf.json module.m source "../../../../etc" resolves outside the '
                "repository"
            ],
        ),
    ],
)
def test_blocks_are_found_at_any_depth_and_in_json(parser: HclParser, files: dict[str, str], want: list[str]) -> None:
    assert blocked(parser, files) == want


def test_provisioners_block_history_mode_only_at_any_depth(parser: HclParser) -> None:
    files = {
        "main.tf": 'resource "null_resource" "p" {\n  provisioner "local-exec" {\n    command = "id"\n  }\n}\n'
        'module "a" { source = "./a" }\n',
        "a/main.tf.json": json.dumps(
            {"resource": {"terraform_data": {"j": {"provisioner": {"local-exec": {"command": "id"}}}}}}
        ),
    }
    fresh = ws(parser, files)[2]
    assert (fresh.blocked, fresh.risky) == ([], ["provisioner"])
    assert ws(parser, files, history=True)[2].blocked == [
        "provisioner: a/main.tf.json terraform_data.j would run at apply (history mode)",
        "provisioner: main.tf null_resource.p would run at apply (history mode)",
    ]


def test_benign_lookalikes_are_not_blocked(parser: HclParser) -> None:
    """Names the rules look for, used where terraform gives them no power."""
    _, _a, s = ws(
        parser,
        {
            "main.tf": """
            resource "google_compute_backend_service" "b" {
              backend { group = "g" }
            }
            resource "kubernetes_config_map" "c" {
              data = { http = "not a data source", external = "x" }
            }
            resource "aws_s3_object" "o" { source = "./files/app.zip" }
            data "terraform_data_is_not_blocked" "x" {}
            locals {
              description = "reads a file(/etc/passwd) at plan time"
              escaped     = "$${file("/etc/passwd")}"
              prose       = "upload the file (see ${var.doc})"
            }
            """,
        },
    )
    assert s.blocked == []
    assert s.risky == [DYN]  # "file (see ${var.doc})" reads as a call on a computed path: a signal only


# --------------------------------------------------------------------------------------------------
# File functions: literal escapes block, computed paths are signals
# --------------------------------------------------------------------------------------------------


def _fn_case(expr: str, root: str = ".", where: str = "main.tf") -> tuple[list[str], list[str]]:
    """(blocked reasons, risky) for a workspace whose ``where`` file sets ``locals { x = <expr> }``."""
    files = {where: f"locals {{\n  x = {expr}\n}}\n"}
    if where != "main.tf":
        files["main.tf"] = f'module "m" {{ source = "./{where.rsplit("/", 1)[0]}" }}\n'
    if root != ".":
        files = {f"{root}/{k}": v for k, v in files.items()}
    return files, root


@pytest.mark.parametrize(
    ("expr", "root", "where", "shown"),
    [
        ('file("/etc/passwd")', ".", "main.tf", "file(/etc/passwd)"),
        ('filebase64("~/.ssh/id_rsa")', ".", "main.tf", "filebase64(~/.ssh/id_rsa)"),
        ('file("../x")', ".", "main.tf", "file(../x)"),
        ('file("../../../x")', "envs/dev", "main.tf", "file(../../../x)"),
        ('file("./a/../../x")', ".", "main.tf", "file(./a/../../x)"),
        ('file("${path.module}/../../x")', "envs", "main.tf", "file(${path.module}/../../x)"),
        ('file("${path.root}/../x")', ".", "main.tf", "file(${path.root}/../x)"),
        ('file("${path.cwd}/../../x")', "envs", "main.tf", "file(${path.cwd}/../../x)"),
        ('file("${ path.module }/../../../x")', ".", "modules/a/main.tf", "file(${path.module}/../../../x)"),
        ('file("..\\\\..\\\\etc\\\\passwd")', ".", "main.tf", "file(..\\\\..\\\\etc\\\\passwd)"),
        ('file("%2e%2e/%2e%2e/etc/passwd")', ".", "main.tf", "file(%2e%2e/%2e%2e/etc/passwd)"),
        ('file("\\u002e\\u002e/etc/passwd")', ".", "main.tf", "file(\\u002e\\u002e/etc/passwd)"),
        ('file("//etc//passwd")', ".", "main.tf", "file(//etc//passwd)"),
        ('file("C:\\\\Windows\\\\win.ini")', ".", "main.tf", "file(C:\\\\Windows\\\\win.ini)"),
        ('file("/etc/${var.name}")', ".", "main.tf", "file(/etc/${var.name})"),  # the literal prefix leaves
        ('file("${path.module}/../../${var.f}")', ".", "main.tf", "file(${path.module}/../../${var.f})"),
        ('fileset("/", "etc/*")', ".", "main.tf", "fileset(/, etc/*)"),
        ('fileset(path.module, "../../**")', ".", "main.tf", "fileset(path.module, ../../**)"),
        ('fileset(path.root, "../${var.p}")', ".", "main.tf", "fileset(path.root, ../${var.p})"),
        ('fileexists("/var/run/secrets/token")', ".", "main.tf", "fileexists(/var/run/secrets/token)"),
        ('filemd5("/etc/shadow")', ".", "main.tf", "filemd5(/etc/shadow)"),
        ('filesha512("/etc/shadow")', ".", "main.tf", "filesha512(/etc/shadow)"),
        ('filebase64sha256("/etc/shadow")', ".", "main.tf", "filebase64sha256(/etc/shadow)"),
        ('pathexpand("~/.aws/credentials")', ".", "main.tf", "pathexpand(~/.aws/credentials)"),
        ('abspath("/")', ".", "main.tf", "abspath(/)"),
        # nested calls, conditionals, for expressions, objects inside calls (v7 renders those as JSON)
        ('base64encode(file("/etc/passwd"))', ".", "main.tf", "file(/etc/passwd)"),
        ('format("%s", file("/etc/passwd"))', ".", "main.tf", "file(/etc/passwd)"),
        ('var.c ? {a = "x\\"y"} : file("/etc/passwd")', ".", "main.tf", "file(/etc/passwd)"),
        ('[for k in ["a"] : file("/etc/passwd")]', ".", "main.tf", "file(/etc/passwd)"),
        ('templatefile("t.tpl", { k = file("/etc/passwd") })', ".", "main.tf", "file(/etc/passwd)"),
        ('templatefile("t.tpl", { k = { j = filemd5("/etc/passwd") } })', ".", "main.tf", "filemd5(/etc/passwd)"),
        ('{ (file("/etc/hostname")) = 1 }', ".", "main.tf", "file(/etc/hostname)"),  # in a key
        ('"prefix-${file("/etc/passwd")}"', ".", "main.tf", "file(/etc/passwd)"),
        ('<<EOT\n${file("/etc/passwd")}\nEOT', ".", "main.tf", "file(/etc/passwd)"),  # heredoc
        ("file(<<EOT\n/etc/passwd\nEOT\n)", ".", "main.tf", "file(/etc/passwd)"),  # a heredoc as the path
        # escape levels: v7 decodes a top-level template once, doubles backslashes in objects inside calls
        ('"${file("..\\\\..\\\\etc")}"', ".", "main.tf", "file(..\\..\\etc)"),
        (
            'templatefile("t", { c = file("x/\\u002e\\u002e/\\u002e\\u002e/etc") })',
            ".",
            "main.tf",
            "file(x/\\\\u002e\\\\u002e/\\\\u002e\\\\u002e/etc)",
        ),
        ('file    ("/etc/passwd")', ".", "main.tf", "file(/etc/passwd)"),
        ('file(\n  "/etc/passwd"\n)', ".", "main.tf", "file(/etc/passwd)"),
        ('"%{ for f in var.l }${file("/etc/passwd")}%{ endfor }"', ".", "main.tf", "file(/etc/passwd)"),
    ],
)
def test_literal_paths_leaving_the_repository_are_blocked(
    parser: HclParser, expr: str, root: str, where: str, shown: str
) -> None:
    files, root = _fn_case(expr, root, where)
    path = f"{root}/{where}" if root != "." else where
    assert blocked(parser, files, root) == [f"file_function: {path} {shown} reads outside the workspace"]


@pytest.mark.parametrize(
    ("expr", "root", "where", "risky"),
    [
        ('file("${path.module}/files/a.txt")', ".", "main.tf", []),
        ('file("files/a.txt")', ".", "main.tf", []),
        ('file("../shared/a.txt")', "envs/dev", "main.tf", []),  # climbs, but stays in the repository
        ('file("${path.module}/../shared/a.txt")', ".", "modules/a/main.tf", []),
        ('filebase64sha256("lambda.zip")', ".", "main.tf", []),
        ('fileset(path.module, "templates/*.tpl")', ".", "main.tf", []),
        ("abspath(path.root)", ".", "main.tf", []),
        ('pathexpand("./x")', ".", "main.tf", []),
        ('"$${file("/etc/passwd")} ${var.x}"', ".", "main.tf", []),  # escaped: text, not a call
        # computed paths: a signal for the dataset, never a block (the sandbox is the barrier)
        ("file(var.p)", ".", "main.tf", [DYN]),
        ("file(local.p)", ".", "main.tf", [DYN]),
        ('file("${var.dir}/x")', ".", "main.tf", [DYN]),
        ('file("${path.module}/${var.f}")', ".", "main.tf", [DYN]),
        ('file(format("%s/passwd", "/etc"))', ".", "main.tf", [DYN]),
        ('file(join("/", ["", "etc", "passwd"]))', ".", "main.tf", [DYN]),
        ("base64encode(file(local.p))", ".", "main.tf", [DYN]),
        ("templatefile(local.p, {})", ".", "main.tf", [DYN]),
        ('[for f in fileset(path.module, "*") : file(f)]', ".", "main.tf", [DYN]),
        ('file(element(["/etc/passwd"], 0))', ".", "main.tf", [DYN]),
        ('file("%{ if var.b }/etc/passwd%{ endif }")', ".", "main.tf", [DYN]),
        ("fileset(path.module, var.pattern)", ".", "main.tf", [DYN]),
        ('file(var.c ? "/etc/a" : "/etc/b")', ".", "main.tf", [DYN]),
    ],
)
def test_paths_inside_pass_and_computed_paths_are_signals(
    parser: HclParser, expr: str, root: str, where: str, risky: list[str]
) -> None:
    files, root = _fn_case(expr, root, where)
    _, _a, s = ws(parser, files, root)
    assert (s.blocked, s.risky) == ([], risky)


def test_file_path_in_a_variable_default_is_a_signal_not_a_block(parser: HclParser) -> None:
    """The case measured on main (ARCHITECTURE.md): the screen flags it; bubblewrap keeps /etc out of reach."""
    _, _a, s = ws(
        parser,
        {
            "main.tf": 'variable "p" { default = "/etc/passwd" }\n',
            "x.tf": 'resource "null_resource" "x" {\n  triggers = { x = file(var.p) }\n}\n',
        },
    )
    assert (s.blocked, s.risky) == ([], [DYN])


def test_file_functions_in_json_provider_and_dynamic_blocks(parser: HclParser) -> None:
    files = {
        "main.tf.json": json.dumps(
            {
                "locals": {"a": '${file("/etc/passwd")}', "b": "${file(var.p)}"},
                "resource": {"null_resource": {"r": {"triggers": {"k": '${templatefile("~/t", {})}'}}}},
            }
        ),
        "p.tf": 'provider "google" { credentials = file("~/.config/gcloud/creds.json") }\n',
        "d.tf": 'resource "null_resource" "d" {\n  dynamic "x" {\n    for_each = [1]\n'
        '    content { v = filesha1("/etc/group") }\n  }\n}\n',
    }
    _, _a, s = ws(parser, files)
    assert s.blocked == [
        "file_function: d.tf filesha1(/etc/group) reads outside the workspace",
        "file_function: main.tf.json file(/etc/passwd) reads outside the workspace",
        "file_function: main.tf.json templatefile(~/t) reads outside the workspace",
        "file_function: p.tf file(~/.config/gcloud/creds.json) reads outside the workspace",
    ]
    assert s.risky == [DYN]


def test_templates_read_by_templatefile_are_screened(parser: HclParser) -> None:
    """A template may call file() itself; the .tpl is no .tf file, so only following the call finds it."""
    files = {
        "envs/dev/main.tf": 'locals {\n  a = templatefile("${path.module}/../../tpl/user_data.tpl", {})\n'
        '  b = templatefile("ok.tpl", { n = 1 })\n  c = templatefile(var.t, {})\n}\n',
        "tpl/user_data.tpl": '#!/bin/sh\necho ${file("/etc/shadow")} ${filebase64(name)}\n$${file("/etc/x")}\n',
        "envs/dev/ok.tpl": 'hello ${n} ${file("envs/dev/motd")}\n',
    }
    _, _a, s = ws(parser, files, root="envs/dev")
    assert s.blocked == ["file_function: tpl/user_data.tpl file(/etc/shadow) reads outside the workspace"]
    assert s.risky == [DYN]  # filebase64(name) in the template, templatefile(var.t)


@pytest.mark.parametrize(
    ("expr", "shown"),
    [
        ('file("${"/etc"}/passwd")', 'file(${"/etc"}/passwd)'),
        ('file("${path.module}${"/../.."}/etc/passwd")', 'file(${path.module}${"/../.."}/etc/passwd)'),
        ('file("${"${"/"}"}etc/passwd")', 'file(${"${"/"}"}etc/passwd)'),
    ],
)
def test_literal_strings_interpolated_into_paths_are_literal(parser: HclParser, expr: str, shown: str) -> None:
    files, root = _fn_case(expr)
    assert blocked(parser, files, root) == [f"file_function: main.tf {shown} reads outside the workspace"]


def test_provider_namespaced_calls_do_not_parse_so_never_run(parser: HclParser) -> None:
    parsed = parse_workspace([{"path": "main.tf", "content": 'locals {\n  x = core::file("/etc/passwd")\n}\n'}], parser)
    assert parsed.status == "error"  # v7 rejects it: the workspace is skipped, never planned


# --------------------------------------------------------------------------------------------------
# Module sources through the resolver: every file, child modules included
# --------------------------------------------------------------------------------------------------


def test_module_sources_are_resolved_in_every_file(parser: HclParser) -> None:
    files = {
        "envs/dev/main.tf": 'module "app" { source = "../../modules/app" }\n'
        'module "gone" { source = "../../modules/gone" }\n'
        'module "dyn" { source = "${var.src}" }\n',
        "modules/app/main.tf": 'module "net" { source = "../net" }\nmodule "up" { source = "../../../x" }\n',
        "modules/net/main.tf": 'module "win" { source = "..\\\\..\\\\..\\\\..\\\\etc" }\n'
        'module "enc" { source = "./%2e%2e/%2e%2e/%2e%2e" }\n',
        "modules/net/extra.tf.json": json.dumps({"module": {"abs": {"source": "/etc"}}}),
    }
    _, _a, s = ws(parser, files, root="envs/dev")
    assert s.blocked == [
        'module_source_missing: envs/dev/main.tf module.gone source "../../modules/gone" resolves to '
        '"modules/gone": no such module directory in the workspace (no .tf or .tf.json files there)',
        'module_source_not_literal: envs/dev/main.tf module.dyn source "${var.src}" is not a literal string '
        "(terraform init rejects it)",
        'module_source_outside_repo: modules/app/main.tf module.up source "../../../x" resolves outside the repository',
        'module_source_outside_repo: modules/net/extra.tf.json module.abs source "/etc" resolves outside the '
        "repository",
        'module_source_outside_repo: modules/net/main.tf module.enc source "./%2e%2e/%2e%2e/%2e%2e" resolves '
        "outside the repository",
        'module_source_outside_repo: modules/net/main.tf module.win source "..\\\\..\\\\..\\\\..\\\\etc" resolves '
        "outside the repository",
    ]


# --------------------------------------------------------------------------------------------------
# Parse failures, hostile structure, and the benign corpus
# --------------------------------------------------------------------------------------------------


def test_parse_failures_are_statuses(parser: HclParser) -> None:
    parsed = parse_workspace(
        [{"path": "a.tf", "content": "a = 1\n"}, {"path": "b.tf", "content": "resource {"}], parser
    )
    assert (parsed.status, parsed.docs) == ("error", {})
    assert parsed.error.startswith("b.tf: Unexpected")
    bad_json = parse_workspace([{"path": "x.tf.json", "content": "[1]"}], parser)
    assert (bad_json.status, bad_json.error) == ("error", "x.tf.json: a .tf.json file must hold a JSON object")
    deep = parse_workspace([{"path": "x.tf.json", "content": '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"}], parser)
    assert (deep.status, deep.error.split(":")[0]) == ("error", "x.tf.json")


def test_deeply_nested_json_that_parses_is_walked_without_recursion(parser: HclParser) -> None:
    leaf = '{"data": {"http": {"deep": {"url": "u"}}}, "v": "${file(\\"/etc/passwd\\")}"}'
    text = '{"locals": ' + '{"x": ' * 900 + leaf + "}" * 900 + "}"
    _, _a, s = ws(parser, {"main.tf.json": text})
    assert s.blocked == [
        "data_source_http: main.tf.json locals" + ".x" * 900 + ".data.http.deep would run at plan time",
        "file_function: main.tf.json file(/etc/passwd) reads outside the workspace",
    ]


def test_hostile_call_floods_are_bounded_and_fail_closed(parser: HclParser) -> None:
    padded = "/" * 5000 + "etc/passwd"  # longer than the argument window: judged by its prefix
    _, _a, s = ws(parser, {"main.tf": f'locals {{\n  x = file("{padded}")\n}}\n'})
    assert s.blocked == [f"file_function: main.tf file({padded[:60]}) reads outside the workspace"]
    many = ", ".join(f'file("f{i}.txt")' for i in range(2000))  # benign and many: screened
    assert ws(parser, {"main.tf": f"locals {{\n  x = [{many}]\n}}\n"})[2].blocked == []
    flood = json.dumps({"locals": {"x": "${" + "file(" * 50_000 + "}"}})  # nested, never closed
    start = time.monotonic()
    _, _a, s = ws(parser, {"main.tf.json": flood})
    assert time.monotonic() - start < 20
    assert s.blocked == ["file_function_budget: more than 10000 file-function calls, too many to screen"]


def _files_at(repo: git.Repo, sha: str) -> list[dict[str, str]]:
    tree = repo.commit(sha).tree
    return [{"path": b.path, "content": b.data_stream.read().decode()} for b in tree.traverse() if b.type == "blob"]


def test_synthetic_corpus_passes_the_screen(parser: HclParser, tmp_path: Path) -> None:
    """The benign corpus (every family, every commit) is neither blocked nor flagged."""
    screens: dict[tuple[str, str, str], Screen] = {}
    for r in generate_corpus(SyntheticConfig(), tmp_path):
        repo = git.Repo(r.path)
        for sha in r.commits:
            for w in discover(_files_at(repo, sha), DiscoverLimits()):
                parsed = parse_workspace(w.files, parser)
                assert parsed.status == "ok", (r.name, w.path, parsed.error)
                a = analyze(parsed)
                screens[(r.name, sha, w.path)] = screen(parsed, w.files, a.providers, ALLOWED, root=w.path)
    assert len(screens) > 30
    assert {k: (s.blocked, s.risky) for k, s in screens.items() if s.blocked or s.risky} == {}
    assert any(s.providers_outside for s in screens.values())  # cloud repos still route to the static planner
