"""Static planner: literal HCL workspaces in, exact ``resource_changes`` and notes out.

``CROSS_CHECK_CASES`` hold the configs that use only ``null_resource`` (hashicorp/null) and
``terraform_data``; their expected address lists below were produced by real terraform 1.11.4
(``init -backend=false``, ``plan -refresh=false``, ``show -json``), so a terraform-backed test can
reuse them with the project's provider mirror. The other cases need providers we cannot run
offline (aws, azurerm, google ...), which is exactly what the static planner is for.
"""

from __future__ import annotations

import textwrap

import pytest

from pipelines.collect.hcl import parse_hcl_inline
from pipelines.terraform.static_planner import StaticPlan, static_plan

NULL = "registry.terraform.io/hashicorp/null"
BUILTIN = "terraform.io/builtin/terraform"


def tf(files: dict[str, str]) -> dict[str, str]:
    """A ``files`` mapping with each file's indentation removed (configs are written inline)."""
    return {path: textwrap.dedent(text).lstrip("\n") for path, text in files.items()}


def addresses(plan: StaticPlan) -> list[str]:
    assert plan.error is None, plan.error
    return [row["address"] for row in plan.resource_changes]


# ---------------------------------------------------------------------------------------------
# Configs cross-checked with real terraform (null_resource / terraform_data only)

PLAIN = tf(
    {
        "main.tf": """
    resource "null_resource" "a" {}
    resource "terraform_data" "b" {
      input = "x"
    }
    data "null_data_source" "d" {
      inputs = { a = "b" }
    }
    output "o" { value = data.null_data_source.d.outputs }
    """,
    }
)

COUNTS = tf(
    {
        "envs/dev/main.tf": """
    variable "n" { default = 1 }
    variable "from_tfvars" { default = 1 }
    variable "from_auto" { default = 1 }
    variable "enabled" { default = false }
    locals {
      replicas = var.n * 2 + 1
      zones    = ["a", "b", "c"]
    }
    resource "null_resource" "literal" { count = 2 }
    resource "null_resource" "var" { count = var.n }
    resource "null_resource" "tfvars" { count = var.from_tfvars }
    resource "null_resource" "auto" { count = var.from_auto }
    resource "null_resource" "local" { count = local.replicas }
    resource "null_resource" "cond" { count = var.enabled ? 1 : 0 }
    resource "null_resource" "cond2" { count = var.n > 1 ? 3 : length(local.zones) }
    resource "terraform_data" "len" { count = length(local.zones) - 1 }
    resource "terraform_data" "zero" { count = 0 }
    resource "terraform_data" "many" { count = 11 }
    """,
        "envs/dev/terraform.tfvars": """
    from_tfvars = 3
    from_auto   = 5
    """,
        "envs/dev/b.auto.tfvars": """
    from_auto = 2
    """,
        "envs/dev/a.auto.tfvars": """
    from_auto = 4
    enabled   = true
    """,
    }
)

FOR_EACH = tf(
    {
        "main.tf": """
    variable "tags" {
      type    = map(string)
      default = { web = "w", db = "d", "cache-1" = "c" }
    }
    variable "names" {
      type    = set(string)
      default = ["b", "a", "b"]
    }
    variable "users" {
      default = [{ name = "ann", admin = true }, { name = "bob", admin = false }]
    }
    locals {
      envs   = toset(["prod", "dev", "stage"])
      admins = { for u in var.users : u.name => u if u.admin }
    }
    resource "null_resource" "set" { for_each = toset(["b", "a", "c"]) }
    resource "null_resource" "map_var" { for_each = var.tags }
    resource "null_resource" "set_var" { for_each = var.names }
    resource "terraform_data" "local_set" { for_each = local.envs }
    resource "terraform_data" "for_expr" { for_each = local.admins }
    resource "terraform_data" "for_list" { for_each = toset([for n in ["x", "y"] : "${n}-1"]) }
    resource "terraform_data" "literal_map" {
      for_each = { one = 1, two = 2 }
    }
    resource "terraform_data" "empty" { for_each = {} }
    """,
    }
)

MODULES = tf(
    {
        "envs/prod/main.tf": """
    module "net" {
      source = "../../modules/net"
      count  = 2
      prefix = "n${count.index}"
    }
    module "env" {
      source   = "../../modules/net"
      for_each = { prod = 2, dev = 1 }
      prefix   = each.key
      size     = each.value
    }
    module "single" {
      source = "./local"
    }
    resource "terraform_data" "root" {}
    """,
        "envs/prod/local/main.tf": """
    resource "null_resource" "here" {}
    """,
        "modules/net/main.tf": """
    variable "prefix" {}
    variable "size" { default = 1 }
    resource "null_resource" "node" { count = var.size }
    module "inner" {
      source = "./inner"
      names  = [var.prefix, "shared"]
    }
    """,
        "modules/net/inner/main.tf": """
    variable "names" { type = list(string) }
    resource "terraform_data" "t" { for_each = toset(var.names) }
    """,
    }
)

KEYS = tf(
    {
        "main.tf": r"""
    resource "terraform_data" "k" {
      for_each = toset(["a b", "q\"x", "b.c", "B", "é", "$${x}", "%%{y}", "10", "9", "t\tx", "back\\slash"])
    }
    """,
    }
)

REFERENCES = tf(
    {
        "main.tf": """
    resource "null_resource" "base" {
      for_each = toset(["x", "y"])
    }
    resource "null_resource" "per_base" { for_each = null_resource.base }
    resource "terraform_data" "counted" { count = length(null_resource.base) }
    resource "terraform_data" "ids" { count = length(terraform_data.counted[*].id) }
    module "m" {
      source = "./m"
      n      = 2
    }
    resource "terraform_data" "from_output" { for_each = module.m.names }
    resource "terraform_data" "from_output_count" { count = module.m.size }
    """,
        "m/main.tf": """
    variable "n" {}
    resource "null_resource" "r" { count = var.n }
    output "names" { value = toset([for i in range(var.n) : "item-${i}"]) }
    output "size" { value = length(null_resource.r) }
    """,
    }
)

FUNCTIONS = tf(
    {
        "main.tf": """
    variable "extra" {
      type    = list(string)
      default = ["e1"]
    }
    locals {
      base    = { a = 1, b = 2 }
      merged  = merge(local.base, { c = 3 })
      flat    = flatten([["p", "q"], ["r"]])
      zipped  = zipmap(["k1", "k2"], ["v1", "v2"])
      picked  = lookup(local.merged, "c", 0)
      all     = distinct(concat(var.extra, ["e2", "e1"]))
      biggest = max(1, 4, 2)
      first   = coalesce("", "first")
      elem    = element(["u", "v"], 3)
      ranged  = range(1, 4)
    }
    resource "null_resource" "merged" { for_each = local.merged }
    resource "null_resource" "flat" { for_each = toset(local.flat) }
    resource "null_resource" "zipped" { for_each = local.zipped }
    resource "terraform_data" "picked" { count = local.picked }
    resource "terraform_data" "all" { for_each = toset(local.all) }
    resource "terraform_data" "biggest" { count = local.biggest }
    resource "terraform_data" "first" { for_each = toset([local.first, local.elem]) }
    resource "terraform_data" "ranged" { for_each = toset([for n in local.ranged : tostring(n)]) }
    resource "terraform_data" "keys" { for_each = toset(keys(local.base)) }
    resource "terraform_data" "contains" { count = contains(local.flat, "q") ? 1 : 0 }
    resource "terraform_data" "min" { count = min(3, length(local.flat)) }
    """,
    }
)

ADVANCED = tf(
    {
        "main.tf": """
    provider "null" {
      alias = "other"
    }
    variable "services" {
      type = map(object({
        replicas = optional(number, 2)
        public   = optional(bool, false)
      }))
      default = {
        api = {}
        web = { replicas = 1, public = true }
        job = { replicas = 0 }
      }
    }
    variable "regions" {
      type    = list(string)
      default = ["r1"]
    }
    locals {
      public  = { for name, svc in var.services : name => svc if svc.public }
      indexed = { for i, r in var.regions : r => i }
      flat    = flatten([for name, svc in var.services : [for i in range(svc.replicas) : "${name}-${i}"]])
    }
    resource "null_resource" "aliased" {
      provider = null.other
      count    = 1
    }
    resource "null_resource" "my-dashed_name" {}
    resource "null_resource" "svc" { for_each = var.services }
    resource "null_resource" "public" { for_each = local.public }
    resource "terraform_data" "replica" { for_each = toset(local.flat) }
    resource "terraform_data" "region" { for_each = local.indexed }
    resource "terraform_data" "overridden" { count = 5 }
    module "per_region" {
      source    = "./modules/svc"
      for_each  = toset(var.regions)
      providers = { null = null.other }
      region    = each.value
    }
    module "off" {
      source = "./modules/svc"
      count  = length(var.regions) > 5 ? 1 : 0
      region = "never"
    }
    resource "terraform_data" "splat" { count = length(module.per_region["r2"].ids) }
    """,
        "override.tf": """
    resource "terraform_data" "overridden" { count = 2 }
    """,
        "terraform.tfvars.json": """
    {"regions": ["r2", "r1", "r3"]}
    """,
        "modules/svc/main.tf": """
    variable "region" {}
    resource "null_resource" "in_region" { count = 2 }
    output "ids" { value = null_resource.in_region[*].id }
    """,
    }
)

V7_QUIRKS = tf(
    {
        "main.tf": r"""
    provider "null" {
      alias = "b"
    }
    variable "on" { default = true }
    locals {
      names = ["a b", "c.d", "x-y"]
    }
    resource "terraform_data" "native" { for_each = toset(local.names) }
    resource "terraform_data" "inline" { for_each = toset(["a b", "c.d", "1", "true", "w\"q"]) }
    resource "terraform_data" "cond" { for_each = var.on ? toset(["it's", "p"]) : toset([]) }
    resource "terraform_data" "json" { for_each = merge({ "k 1" = "v" }, { k2 = ["w", "x"] }) }
    resource "terraform_data" "nested" {
      for_each = { for o in [{ n = "o1", tags = ["t"] }, { n = "o2", tags = [] }] : o.n => o if length(o.tags) > 0 }
    }
    resource "terraform_data" "spread" { count = max([1, 3, 2]...) }
    resource "null_resource" "null_alias" { provider = null.b }
    """,
    }
)

CROSS_CHECK_CASES: list[tuple[str, dict[str, str], str]] = [
    ("plain", PLAIN, "."),
    ("counts", COUNTS, "envs/dev"),
    ("for_each", FOR_EACH, ""),
    ("modules", MODULES, "envs/prod"),
    ("keys", KEYS, "."),
    ("references", REFERENCES, "."),
    ("functions", FUNCTIONS, "."),
    ("advanced", ADVANCED, ""),
    ("v7_quirks", V7_QUIRKS, "."),
]

# Addresses real terraform 1.11.4 planned for each cross-check case, in plain string order.
EXPECTED_ADDRESSES: dict[str, list[str]] = {
    "plain": ["null_resource.a", "terraform_data.b"],
    "counts": [
        "null_resource.auto[0]",
        "null_resource.auto[1]",
        "null_resource.cond2[0]",
        "null_resource.cond2[1]",
        "null_resource.cond2[2]",
        "null_resource.cond[0]",
        "null_resource.literal[0]",
        "null_resource.literal[1]",
        "null_resource.local[0]",
        "null_resource.local[1]",
        "null_resource.local[2]",
        "null_resource.tfvars[0]",
        "null_resource.tfvars[1]",
        "null_resource.tfvars[2]",
        "null_resource.var[0]",
        "terraform_data.len[0]",
        "terraform_data.len[1]",
        "terraform_data.many[0]",
        "terraform_data.many[10]",
        "terraform_data.many[1]",
        "terraform_data.many[2]",
        "terraform_data.many[3]",
        "terraform_data.many[4]",
        "terraform_data.many[5]",
        "terraform_data.many[6]",
        "terraform_data.many[7]",
        "terraform_data.many[8]",
        "terraform_data.many[9]",
    ],
    "for_each": [
        'null_resource.map_var["cache-1"]',
        'null_resource.map_var["db"]',
        'null_resource.map_var["web"]',
        'null_resource.set["a"]',
        'null_resource.set["b"]',
        'null_resource.set["c"]',
        'null_resource.set_var["a"]',
        'null_resource.set_var["b"]',
        'terraform_data.for_expr["ann"]',
        'terraform_data.for_list["x-1"]',
        'terraform_data.for_list["y-1"]',
        'terraform_data.literal_map["one"]',
        'terraform_data.literal_map["two"]',
        'terraform_data.local_set["dev"]',
        'terraform_data.local_set["prod"]',
        'terraform_data.local_set["stage"]',
    ],
    "modules": [
        'module.env["dev"].module.inner.terraform_data.t["dev"]',
        'module.env["dev"].module.inner.terraform_data.t["shared"]',
        'module.env["dev"].null_resource.node[0]',
        'module.env["prod"].module.inner.terraform_data.t["prod"]',
        'module.env["prod"].module.inner.terraform_data.t["shared"]',
        'module.env["prod"].null_resource.node[0]',
        'module.env["prod"].null_resource.node[1]',
        'module.net[0].module.inner.terraform_data.t["n0"]',
        'module.net[0].module.inner.terraform_data.t["shared"]',
        "module.net[0].null_resource.node[0]",
        'module.net[1].module.inner.terraform_data.t["n1"]',
        'module.net[1].module.inner.terraform_data.t["shared"]',
        "module.net[1].null_resource.node[0]",
        "module.single.null_resource.here",
        "terraform_data.root",
    ],
    "keys": [
        'terraform_data.k["$${x}"]',
        'terraform_data.k["%%{y}"]',
        'terraform_data.k["10"]',
        'terraform_data.k["9"]',
        'terraform_data.k["B"]',
        'terraform_data.k["a b"]',
        'terraform_data.k["b.c"]',
        r'terraform_data.k["back\\slash"]',
        r'terraform_data.k["q\"x"]',
        r'terraform_data.k["t\tx"]',
        'terraform_data.k["é"]',
    ],
    "references": [
        "module.m.null_resource.r[0]",
        "module.m.null_resource.r[1]",
        'null_resource.base["x"]',
        'null_resource.base["y"]',
        'null_resource.per_base["x"]',
        'null_resource.per_base["y"]',
        "terraform_data.counted[0]",
        "terraform_data.counted[1]",
        'terraform_data.from_output["item-0"]',
        'terraform_data.from_output["item-1"]',
        "terraform_data.from_output_count[0]",
        "terraform_data.from_output_count[1]",
        "terraform_data.ids[0]",
        "terraform_data.ids[1]",
    ],
    "functions": [
        'null_resource.flat["p"]',
        'null_resource.flat["q"]',
        'null_resource.flat["r"]',
        'null_resource.merged["a"]',
        'null_resource.merged["b"]',
        'null_resource.merged["c"]',
        'null_resource.zipped["k1"]',
        'null_resource.zipped["k2"]',
        'terraform_data.all["e1"]',
        'terraform_data.all["e2"]',
        "terraform_data.biggest[0]",
        "terraform_data.biggest[1]",
        "terraform_data.biggest[2]",
        "terraform_data.biggest[3]",
        "terraform_data.contains[0]",
        'terraform_data.first["first"]',
        'terraform_data.first["v"]',
        'terraform_data.keys["a"]',
        'terraform_data.keys["b"]',
        "terraform_data.min[0]",
        "terraform_data.min[1]",
        "terraform_data.min[2]",
        "terraform_data.picked[0]",
        "terraform_data.picked[1]",
        "terraform_data.picked[2]",
        'terraform_data.ranged["1"]',
        'terraform_data.ranged["2"]',
        'terraform_data.ranged["3"]',
    ],
    "advanced": [
        'module.per_region["r1"].null_resource.in_region[0]',
        'module.per_region["r1"].null_resource.in_region[1]',
        'module.per_region["r2"].null_resource.in_region[0]',
        'module.per_region["r2"].null_resource.in_region[1]',
        'module.per_region["r3"].null_resource.in_region[0]',
        'module.per_region["r3"].null_resource.in_region[1]',
        "null_resource.aliased[0]",
        "null_resource.my-dashed_name",
        'null_resource.public["web"]',
        'null_resource.svc["api"]',
        'null_resource.svc["job"]',
        'null_resource.svc["web"]',
        "terraform_data.overridden[0]",
        "terraform_data.overridden[1]",
        'terraform_data.region["r1"]',
        'terraform_data.region["r2"]',
        'terraform_data.region["r3"]',
        'terraform_data.replica["api-0"]',
        'terraform_data.replica["api-1"]',
        'terraform_data.replica["web-0"]',
        "terraform_data.splat[0]",
        "terraform_data.splat[1]",
    ],
    "v7_quirks": [
        "null_resource.null_alias",
        """terraform_data.cond["it's"]""",
        'terraform_data.cond["p"]',
        'terraform_data.inline["1"]',
        'terraform_data.inline["a b"]',
        'terraform_data.inline["c.d"]',
        'terraform_data.inline["true"]',
        r'terraform_data.inline["w\"q"]',
        'terraform_data.json["k 1"]',
        'terraform_data.json["k2"]',
        'terraform_data.native["a b"]',
        'terraform_data.native["c.d"]',
        'terraform_data.native["x-y"]',
        'terraform_data.nested["o1"]',
        "terraform_data.spread[0]",
        "terraform_data.spread[1]",
        "terraform_data.spread[2]",
    ],
}


@pytest.mark.parametrize(("case_id", "files", "workspace"), CROSS_CHECK_CASES, ids=[c[0] for c in CROSS_CHECK_CASES])
def test_cross_check_cases_match_terraform(case_id: str, files: dict[str, str], workspace: str) -> None:
    plan = static_plan(files, workspace)
    assert addresses(plan) == EXPECTED_ADDRESSES[case_id]
    assert plan.unresolved == []


def test_rows_have_the_exact_contract_shape_and_skip_data_sources() -> None:
    plan = static_plan(PLAIN, ".")
    assert plan == StaticPlan(
        resource_changes=[
            {
                "address": "null_resource.a",
                "module_address": None,
                "type": "null_resource",
                "name": "a",
                "provider": NULL,
                "actions": ["create"],
            },
            {
                "address": "terraform_data.b",
                "module_address": None,
                "type": "terraform_data",
                "name": "b",
                "provider": BUILTIN,
                "actions": ["create"],
            },
        ],
        unresolved=[],
        error=None,
    )


def test_module_rows_carry_the_module_instance_address() -> None:
    rows = {row["address"]: row for row in static_plan(MODULES, "envs/prod").resource_changes}
    assert rows['module.env["prod"].module.inner.terraform_data.t["prod"]'] == {
        "address": 'module.env["prod"].module.inner.terraform_data.t["prod"]',
        "module_address": 'module.env["prod"].module.inner',
        "type": "terraform_data",
        "name": "t",
        "provider": BUILTIN,
        "actions": ["create"],
    }
    assert rows["module.net[1].null_resource.node[0]"]["module_address"] == "module.net[1]"
    assert rows["module.single.null_resource.here"]["module_address"] == "module.single"


@pytest.mark.parametrize("workspace", [".", "", "./", "envs/..", "./."])
def test_workspace_path_spellings_of_the_repo_root(workspace: str) -> None:
    assert addresses(static_plan(PLAIN, workspace)) == ["null_resource.a", "terraform_data.b"]


def test_var_overrides_beat_tfvars_and_are_converted_to_the_declared_type() -> None:
    files = tf(
        {
            "main.tf": """
            variable "n" {
              type    = number
              default = 1
            }
            variable "names" {
              type    = set(string)
              default = ["x"]
            }
            variable "untyped" { default = 1 }
            resource "null_resource" "n" { count = var.n }
            resource "null_resource" "names" { for_each = var.names }
            resource "null_resource" "untyped" { count = var.untyped }
            """,
            "terraform.tfvars": 'n = 5\nnames = ["t"]\n',
        }
    )
    plan = static_plan(files, ".", var_overrides={"n": "2", "names": ("b", "a", "b"), "nope": 1})
    assert addresses(plan) == [
        "null_resource.n[0]",
        "null_resource.n[1]",
        'null_resource.names["a"]',
        'null_resource.names["b"]',
        "null_resource.untyped[0]",
    ]
    assert plan.unresolved == ['var_overrides sets "nope", which the root module does not declare; ignored']


def test_providers_from_type_prefix_aliases_and_required_providers() -> None:
    files = tf(
        {
            "main.tf": """
            terraform {
              required_providers {
                github  = { source = "integrations/github" }
                mycloud = { source = "Example.COM/acme/mycloud" }
                aws     = { source = "hashicorp/aws", version = "~> 5.0" }
                google  = "~> 4.0"
              }
            }
            provider "aws" {
              alias = "west"
            }
            resource "aws_instance" "web" { provider = aws.west }
            resource "azurerm_resource_group" "rg" {}
            resource "google_storage_bucket" "b" {}
            resource "github_repository" "r" {}
            resource "mycloud_thing" "t" {}
            resource "terraform_data" "d" {}
            module "child" { source = "./child" }
            """,
            "child/main.tf": """
            resource "github_team" "t" {}
            """,
        }
    )
    plan = static_plan(files, "")
    assert [(r["address"], r["type"], r["name"], r["provider"]) for r in plan.resource_changes] == [
        ("aws_instance.web", "aws_instance", "web", "registry.terraform.io/hashicorp/aws"),
        ("azurerm_resource_group.rg", "azurerm_resource_group", "rg", "registry.terraform.io/hashicorp/azurerm"),
        ("github_repository.r", "github_repository", "r", "registry.terraform.io/integrations/github"),
        ("google_storage_bucket.b", "google_storage_bucket", "b", "registry.terraform.io/hashicorp/google"),
        # a child module without its own required_providers gets hashicorp/<prefix>, as in terraform
        ("module.child.github_team.t", "github_team", "t", "registry.terraform.io/hashicorp/github"),
        ("mycloud_thing.t", "mycloud_thing", "t", "example.com/acme/mycloud"),
        ("terraform_data.d", "terraform_data", "d", BUILTIN),
    ]
    assert plan.unresolved == []


def test_registry_git_and_out_of_repo_modules_are_skipped_with_notes() -> None:
    files = tf(
        {
            "envs/prod/main.tf": """
            module "vpc" {
              source  = "terraform-aws-modules/vpc/aws"
              version = "5.0.0"
            }
            module "git" { source = "git::https://example.com/mods.git//net?ref=v1" }
            module "up" { source = "../../../shared/net" }
            module "ok" { source = "../../modules/ok" }
            resource "aws_s3_bucket" "logs" {}
            """,
            "modules/ok/main.tf": """
            resource "aws_sqs_queue" "q" {}
            """,
        }
    )
    plan = static_plan(files, "envs/prod")
    assert addresses(plan) == ["aws_s3_bucket.logs", "module.ok.aws_sqs_queue.q"]
    assert plan.unresolved == [
        'module.vpc: source "terraform-aws-modules/vpc/aws" is not a local path (registry, git or URL); '
        "resources unknown",
        'module.git: source "git::https://example.com/mods.git//net?ref=v1" is not a local path '
        "(registry, git or URL); resources unknown",
        'module.up: source "../../../shared/net" points outside the repository; resources unknown',
    ]


def test_module_sources_go_through_the_collect_resolver() -> None:
    """The static planner resolves sources like discovery and the screen: every spelling of "outside" is
    outside, and terraform's backslash form of a local path is local."""
    files = tf(
        {
            "envs/prod/main.tf": """
            module "win" { source = "..\\\\..\\\\modules\\\\ok" }
            module "enc" { source = "./%2e%2e/%2e%2e/%2e%2e/etc" }
            module "bs" { source = "..\\\\..\\\\..\\\\etc" }
            module "abs" { source = "/etc" }
            module "climb" { source = "../../modules/ok/../../../x" }
            """,
            "modules/ok/main.tf": """
            resource "aws_sqs_queue" "q" {}
            """,
        }
    )
    plan = static_plan(files, "envs/prod")
    assert addresses(plan) == ["module.win.aws_sqs_queue.q"]
    assert plan.unresolved == [
        'module.enc: source "./%2e%2e/%2e%2e/%2e%2e/etc" points outside the repository; resources unknown',
        'module.bs: source "..\\..\\..\\etc" points outside the repository; resources unknown',
        'module.abs: source "/etc" points outside the repository; resources unknown',
        'module.climb: source "../../modules/ok/../../../x" points outside the repository; resources unknown',
    ]


def test_missing_local_module_directory_makes_the_workspace_unplannable() -> None:
    files = tf(
        {
            "envs/prod/main.tf": """
            resource "null_resource" "a" {}
            module "gone" {
              source = "../../modules/gone"
              count  = 0
            }
            """,
            "modules/gone/README.md": "moved\n",
        }
    )
    plan = static_plan(files, "envs/prod")
    assert plan.resource_changes == []
    assert plan.error == (
        "module.gone (called from envs/prod): local source '../../modules/gone' resolves to "
        "'modules/gone', which has no .tf files in the given files; include that directory or fix the source"
    )


def test_unknown_count_is_one_instance_and_unknown_for_each_is_none() -> None:
    files = tf(
        {
            "main.tf": """
            variable "required" {}
            data "aws_ami" "x" {}
            data "aws_availability_zones" "all" {}
            resource "aws_instance" "web" { count = length(data.aws_ami.x.ids) }
            resource "aws_subnet" "az" { for_each = toset(data.aws_availability_zones.all.names) }
            resource "aws_eip" "req" { count = var.required }
            resource "aws_eip" "attr" { count = length(aws_instance.web[0].tags) }
            resource "aws_eip" "fn" { count = length(regexall("a", "banana")) }
            module "m" {
              source = "./m"
              count  = data.aws_ami.x.count
            }
            module "fe" {
              source   = "./m"
              for_each = toset(data.aws_availability_zones.all.names)
            }
            """,
            "m/main.tf": """
            resource "aws_vpc" "v" {}
            """,
        }
    )
    plan = static_plan(files, ".")
    assert addresses(plan) == [
        "aws_eip.attr[0]",
        "aws_eip.fn[0]",
        "aws_eip.req[0]",
        "aws_instance.web[0]",
        "module.m[0].aws_vpc.v",
    ]
    assert plan.unresolved == [
        "aws_instance.web: count depends on data.aws_ami.x; assumed 1",
        "aws_subnet.az: for_each depends on data.aws_availability_zones.all; no instances emitted",
        "aws_eip.req: count depends on var.required, which has no value "
        "(no default, tfvars value or override); assumed 1",
        "aws_eip.attr: count depends on aws_instance.web (known only after apply); assumed 1",
        "aws_eip.fn: count uses unsupported function regexall(); assumed 1",
        "module.m: count depends on data.aws_ami.x; assumed 1",
        "module.fe: for_each depends on data.aws_availability_zones.all; module skipped",
    ]


def test_terraform_level_errors_become_notes_on_the_resource() -> None:
    files = tf(
        {
            "main.tf": """
            locals {
              a = local.b
              b = local.a
              m = { x = 1 }
            }
            resource "null_resource" "cycle" { count = local.a }
            resource "null_resource" "missing_key" { count = local.m["y"] }
            resource "null_resource" "fraction" { count = 1.5 }
            resource "null_resource" "list" { for_each = ["b", "a"] }
            resource "null_resource" "null" { for_each = null }
            resource "null_resource" "fallback" { count = try(local.m["y"], 2) }
            """,
        }
    )
    plan = static_plan(files, ".")
    assert addresses(plan) == [
        "null_resource.cycle[0]",
        "null_resource.fallback[0]",
        "null_resource.fallback[1]",
        "null_resource.fraction[0]",
        'null_resource.list["a"]',
        'null_resource.list["b"]',
        "null_resource.missing_key[0]",
    ]
    assert plan.unresolved == [
        "null_resource.cycle: count depends on a reference cycle through local.a; assumed 1",
        "null_resource.missing_key: count could not be evaluated (no key or attribute 'y' in a map with "
        "keys ['x']); assumed 1",
        "null_resource.fraction: count is 1.5, not a whole non-negative number; assumed 1",
        "null_resource.list: for_each is a list, which terraform rejects (wrap it in toset()); "
        "keys taken from its elements",
        "null_resource.null: for_each is a null, not a map or a set of strings; no instances emitted",
    ]


def test_invalid_hcl_and_duplicates_make_the_workspace_unplannable() -> None:
    broken = static_plan({"main.tf": 'resource "null_resource" "a" {\n'}, ".")
    assert broken.resource_changes == []
    assert broken.error is not None
    assert broken.error.startswith("main.tf: invalid HCL (")
    dup = static_plan({"a.tf": 'resource "null_resource" "x" {}\n', "b.tf": 'resource "null_resource" "x" {}\n'}, ".")
    assert dup.error == "b.tf: duplicate resource null_resource.x; terraform rejects this config"
    empty = static_plan({"other/main.tf": 'resource "null_resource" "x" {}\n'}, "envs/prod")
    assert empty.error == "workspace 'envs/prod' has no .tf files in the given files"


def test_module_cycle_is_an_error() -> None:
    files = {
        "a/main.tf": 'module "b" {\n  source = "../b"\n}\n',
        "b/main.tf": 'module "a" {\n  source = "../a"\n}\n',
    }
    assert static_plan(files, "a").error == "module.a (called from b): source '../a' makes a module cycle through a"


def test_tf_json_files_are_ignored_with_a_note() -> None:
    files = {
        "main.tf": 'resource "null_resource" "a" {}\n',
        "extra.tf.json": '{"resource": {"null_resource": {"b": {}}}}',
    }
    plan = static_plan(files, ".")
    assert addresses(plan) == ["null_resource.a"]
    assert plan.unresolved == ["extra.tf.json: .tf.json files are not read by the static planner"]


def test_a_given_parser_replaces_the_default() -> None:
    seen: list[str] = []

    def parser(text: str) -> dict:
        seen.append(text)
        return parse_hcl_inline(text.replace("REPLICAS", "3"))

    plan = static_plan({"main.tf": 'resource "null_resource" "a" { count = REPLICAS }\n'}, ".", parser=parser)
    assert addresses(plan) == ["null_resource.a[0]", "null_resource.a[1]", "null_resource.a[2]"]
    assert seen == ['resource "null_resource" "a" { count = REPLICAS }\n']


def test_huge_counts_are_truncated_with_a_note() -> None:
    plan = static_plan({"main.tf": 'resource "null_resource" "x" { count = 1000000000 }\n'}, ".")
    assert len(plan.resource_changes) == 10_000
    assert {r["address"] for r in plan.resource_changes} == {f"null_resource.x[{i}]" for i in range(10_000)}
    assert plan.unresolved == ["null_resource.x: count is 1000000000; only the first 10000 are listed"]


def test_value_bombs_stop_at_the_evaluation_budget() -> None:
    doubling = "\n".join(f'  s{i} = "${{local.s{i - 1}}}${{local.s{i - 1}}}"' for i in range(1, 60))
    src = f'locals {{\n  s0 = "ab"\n{doubling}\n}}\nresource "null_resource" "x" {{ count = length(local.s59) }}\n'
    plan = static_plan({"main.tf": src}, ".")
    assert plan.resource_changes == []
    assert plan.error == (
        "evaluating this config took more than 2000000 steps (values or instance counts far beyond real "
        "configs); not planned statically"
    )


@pytest.mark.parametrize(("case_id", "files", "workspace"), CROSS_CHECK_CASES, ids=[c[0] for c in CROSS_CHECK_CASES])
def test_static_plan_equals_real_terraform(case_id: str, files: dict[str, str], workspace: str, sandbox_cfg) -> None:
    """The same workspace planned by real terraform (offline mirror) and by the static planner."""
    from pipelines.terraform.sandbox import plan_workspace

    real = plan_workspace([{"path": p, "content": c} for p, c in files.items()], workspace, sandbox_cfg)
    assert real.status == "ok", real.error
    assert static_plan(files, workspace).resource_changes == real.resource_changes
