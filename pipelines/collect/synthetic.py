"""Synthetic Terraform corpus: local git repositories that know their own plans.

The embedded default run has no network, so its data source is generated here: N git repositories
written like real infrastructure repos (variables with validation, locals, outputs, local and nested
modules, count/for_each in every form, shared modules across ``envs/*`` roots, lifecycle rules),
using only ``null_resource`` (hashicorp/null 2.1.2, in the offline mirror) and terraform's built-in
``terraform_data``, so real ``terraform plan`` labels them offline. A ``cloud_fraction`` of the repos
is written for aws/azurerm/google instead; those cannot be planned offline and are labelled later by
the static planner.

The generator never parses its own HCL to know the answer. Each family renders files *and*, from the
same parameters, a model of every resource instance (what forces replacement, what updates in place,
create_before_destroy, which other instances' ids it reads). Fresh plans are "create" for every
instance; history plans (commit N applied over commit N-1) are a diff of two models. The tests check
both against real terraform.

Rules the families keep so that the model stays exact: create_before_destroy resources read nothing
from other resources (terraform would propagate CBD to their dependencies), and references are to
``.id`` of null_resources only (unknown after a replace: a dependent trigger forces a replace, a
dependent ``input`` an update).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
AUTHOR = ("tfpredict synthetic", "synthetic@tfpredict.invalid")
BASE_EPOCH = 1704067200  # 2024-01-01T00:00:00Z; commit k of repo i is at + i days + k hours
GIT_TIMEOUT_S = 60

NONCLOUD_FAMILIES = ("app", "network", "envs", "pipeline")
CLOUD_FAMILIES = ("aws", "azurerm", "google")
# Mutation kinds, in the order the history commits rotate through them (first five: every action).
KINDS = (
    "replace_cbd",
    "update",
    "replace",
    "count_down",
    "count_up",
    "replace_tr",
    "remove_key",
    "add_key",
    "remove_resource",
    "add_resource",
)
ROTATION_STRIDE = 2  # repo j's first history commit starts at KINDS[2j]: 3 repos x 2 commits cover the first six
COUNT_MAX = 5

PROJECTS = ("billing", "checkout", "inventory", "search", "ledger", "notify", "catalog", "identity")
ENVIRONMENTS = ("dev", "staging", "prod", "qa", "perf")
QUEUE_RETENTION = {"orders": 24, "emails": 72, "events": 48, "invoices": 168, "refunds": 96, "audit": 336}
SUBNETS = ("public", "private", "data", "mgmt", "edge", "transit")
DNS_ZONES = ("internal", "corp", "svc", "db", "ops")
FIREWALL_RULES = (
    "allow-https-443",
    "allow-ssh-22-bastion",
    "allow-dns-53",
    "deny-telnet-23",
    "allow-postgres-5432-app",
    "allow-metrics-9100",
)
STAGES = ("ingest", "validate", "transform", "enrich", "aggregate", "publish")
BUCKETS = {
    "raw": (7, False),
    "staging": (14, False),
    "curated": (90, True),
    "archive": (365, True),
    "exports": (30, True),
}
CLOUD_BUCKETS = ("assets", "backups", "uploads", "reports", "exports", "logs-archive")


class SyntheticConfig(BaseModel):
    """What to generate; the same config always gives the same repositories and commit SHAs."""

    model_config = ConfigDict(extra="forbid")

    n_repos: int = Field(12, ge=1)
    seed: int = 0
    commits_per_repo: int = Field(3, ge=1)  # commit 0 is the initial config, later ones mutate it
    cloud_fraction: float = Field(0.25, ge=0.0, le=1.0)  # aws/azurerm/google repos (static planner)
    max_workspaces_per_repo: int = Field(3, ge=1)


@dataclass(frozen=True)
class SyntheticRepo:
    name: str
    path: Path
    url: str
    commits: tuple[str, ...]
    workspaces: tuple[str, ...]
    cloud: bool
    expected: Mapping[tuple[str, str], list[dict[str, Any]]]
    expected_history: Mapping[tuple[str, str, str], list[dict[str, Any]]]
    family: str = ""


# --------------------------------------------------------------------------------------------------
# The instance model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Inst:
    """One resource instance as terraform will see it, reduced to what decides its planned action."""

    force: tuple[Any, ...] = ()  # inputs of triggers / triggers_replace: a change replaces
    update: tuple[Any, ...] = ()  # inputs of terraform_data.input: a change updates in place
    cbd: bool = False  # lifecycle.create_before_destroy
    force_refs: tuple[str, ...] = ()  # instances whose id feeds ``force``
    update_refs: tuple[str, ...] = ()  # instances whose id feeds ``update``


Instances = dict[str, _Inst]


def _fresh_plan(insts: Instances) -> list[dict[str, Any]]:
    return [{"address": a, "actions": ["create"]} for a in sorted(insts)]


def _history_plan(old: Instances, new: Instances) -> list[dict[str, Any]]:
    """Actions when ``new`` is planned over the applied ``old`` (no-op rows omitted)."""
    memo: dict[str, list[str]] = {}

    def unknown_id(addr: str) -> bool:  # after this plan the instance's id is not known yet
        return action(addr) in (["create"], ["delete", "create"], ["create", "delete"])

    def action(addr: str) -> list[str]:
        if addr not in memo:
            n, o = new[addr], old.get(addr)
            if o is None:
                memo[addr] = ["create"]
            elif n.force != o.force or any(unknown_id(r) for r in n.force_refs):
                memo[addr] = ["create", "delete"] if n.cbd else ["delete", "create"]
            elif n.update != o.update or any(unknown_id(r) for r in n.update_refs):
                memo[addr] = ["update"]
            else:
                memo[addr] = ["no-op"]
        return memo[addr]

    rows = [{"address": a, "actions": ["delete"]} for a in old.keys() - new.keys()]
    rows += [{"address": a, "actions": action(a)} for a in new if action(a) != ["no-op"]]
    return sorted(rows, key=lambda r: r["address"])


# --------------------------------------------------------------------------------------------------
# HCL text helpers
# --------------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"<<([a-z_]+)>>")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _t(template: str, **kw: Any) -> str:
    """Dedent ``template`` and fill ``<<name>>`` placeholders (HCL keeps its own braces and ``${}``)."""
    text = textwrap.dedent(template).lstrip("\n")

    def fill(m: re.Match[str]) -> str:
        if m.group(1) not in kw:
            raise KeyError(f"template placeholder <<{m.group(1)}>> has no value")
        return str(kw[m.group(1)])

    return _PLACEHOLDER.sub(fill, text)


def _hcl(v: Any, indent: int = 0) -> str:
    """A Python value as an HCL expression (maps on several lines, aligned like terraform fmt)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_hcl(x, indent) for x in v) + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        keys = [k if _IDENT.match(k) else json.dumps(k) for k in v]
        pairs = [(k, _hcl(x, indent + 2)) for k, x in zip(keys, v.values(), strict=True)]
        return "{\n" + _aligned(pairs, indent + 2) + " " * indent + "}"
    raise TypeError(f"cannot render {type(v).__name__} as HCL")


def _assignments(pairs: Mapping[str, Any], comment: str = "") -> str:
    """A .tfvars body: aligned ``name = value`` lines."""
    head = f"# {comment}\n" if comment else ""
    return head + _aligned([(k, _hcl(v)) for k, v in pairs.items()], 0)


def _aligned(pairs: list[tuple[str, str]], indent: int) -> str:
    """``k = v`` lines aligned like terraform fmt: runs of one-line values share a column, and a
    multi-line value is neither padded nor part of a run."""
    out, run = [], []
    for k, v in [*pairs, ("", "\n")]:  # the sentinel flushes the last run
        if "\n" in v:
            width = max((len(rk) for rk, _ in run), default=0)
            out += [f"{' ' * indent}{rk.ljust(width)} = {rv}\n" for rk, rv in run]
            run = []
            if k:
                out.append(f"{' ' * indent}{k} = {v}\n")
        else:
            run.append((k, v))
    return "".join(out)


def _variable(  # noqa: PLR0917 - mirrors the order of a variable block's attributes
    name: str,
    type_: str,
    default: Any = None,
    description: str = "",
    validation: tuple[str, str] | None = None,
    required: bool = False,
) -> str:
    attrs = []
    if description:
        attrs.append(("description", json.dumps(description)))
    attrs.append(("type", type_))
    if not required:
        attrs.append(("default", _hcl(default, 2)))
    body = _aligned(attrs, 2)
    if validation:
        cond, msg = validation
        body += f"\n  validation {{\n    condition     = {cond}\n    error_message = {json.dumps(msg)}\n  }}\n"
    return f'variable "{name}" {{\n{body}}}\n'


def _join(*blocks: str) -> str:
    return "\n".join(b.rstrip("\n") + "\n" for b in blocks if b)


NULL_VERSIONS_TF = _t("""
    terraform {
      required_version = ">= 1.4"

      required_providers {
        null = {
          source  = "hashicorp/null"
          version = "~> 2.1"
        }
      }
    }
""")

MODULE_VERSIONS_TF = _t("""
    terraform {
      required_providers {
        null = {
          source = "hashicorp/null"
        }
      }
    }
""")

GITIGNORE = ".terraform/\n*.tfstate\n*.tfstate.*\ncrash.log\n*.tfplan\n"


def _under(root: str, files: Mapping[str, str]) -> dict[str, str]:
    return {(f"{root}/{p}" if root != "." else p): c for p, c in files.items()}


def _pick_root(rng: random.Random) -> str:
    return rng.choice((".", ".", "terraform", "infra"))


def _semver(rng: random.Random) -> str:
    return f"{rng.randint(1, 3)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}"


def _readme(title: str, about: str, how: str) -> str:
    return f"# {title}\n\n{about}\n\n## Usage\n\n{how}\n"


# --------------------------------------------------------------------------------------------------
# Families. Each has init(rng, cfg) -> params and render(params) -> (files, {workspace: instances}).
# Params keep every mutable knob in the same five places so that mutations are generic:
#   counts{key: int}, values{key: str} + value_kinds{key: kind}, sets{key: list} + set_pools,
#   flags{key: bool}; names/style hold choices that never change after the first commit.
# --------------------------------------------------------------------------------------------------

Rendered = tuple[dict[str, str], dict[str, Instances]]


def _params(**kw: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "counts": {},
        "values": {},
        "value_kinds": {},
        "sets": {},
        "set_pools": {},
        "flags": {},
        "names": {},
        "style": {},
    }
    p.update(kw)
    return p


# ---- app: one service stack in a single root module ---------------------------------------------


def _init_app(rng: random.Random, cfg: SyntheticConfig) -> dict[str, Any]:
    project = rng.choice(PROJECTS)
    return _params(
        names={
            "project": project,
            "environment": rng.choice(ENVIRONMENTS[:3]),
            "worker": rng.choice(("worker", "consumer", "processor")),
            "queue": rng.choice(("queue", "topic", "stream")),
            "cache": rng.choice(("cache", "session_store", "rate_limiter")),
            "config": rng.choice(("config", "settings", "feature_flags")),
            "migrations": rng.choice(("migrations", "schema")),
        },
        style={
            "root": _pick_root(rng),
            "count_at": rng.choice(("default", "tfvars", "literal")),
            "worker_refs_app": rng.random() < 0.6,
            "split": rng.random() < 0.7,
        },
        counts={"worker_count": rng.randint(2, 4)},
        values={
            "app_version": _semver(rng),
            "worker_image": f"registry.internal/{project}/worker:{rng.randint(1, 4)}.{rng.randint(0, 20)}",
            "config_revision": f"r{rng.randint(1, 40)}",
            "schema_version": f"v{rng.randint(1, 30)}",
        },
        value_kinds={
            "app_version": "replace_cbd",
            "worker_image": "replace",
            "config_revision": "update",
            "schema_version": "replace_tr",
        },
        sets={"queues": rng.sample(list(QUEUE_RETENTION), rng.randint(2, 3))},
        set_pools={"queues": list(QUEUE_RETENTION)},
        flags={"enable_cache": rng.random() < 0.7},
    )


def _render_app(p: dict[str, Any]) -> Rendered:
    n, s, c, v = p["names"], p["style"], p["counts"], p["values"]
    queues, cache_on, wc = p["sets"]["queues"], p["flags"]["enable_cache"], c["worker_count"]
    count_expr = str(wc) if s["count_at"] == "literal" else "var.worker_count"
    worker_vars = (
        ""
        if s["count_at"] == "literal"
        else _variable(
            "worker_count",
            "number",
            wc if s["count_at"] == "default" else 1,
            f"How many {n['worker']} instances to run.",
            ("var.worker_count >= 0 && var.worker_count <= 10", "worker_count must be between 0 and 10."),
        )
    )
    variables = _join(
        _variable("project", "string", n["project"], "Short name used as a prefix for every resource."),
        _variable(
            "environment",
            "string",
            n["environment"],
            "Deployment environment.",
            ('contains(["dev", "staging", "prod"], var.environment)', "environment must be one of dev, staging, prod."),
        ),
        _variable(
            "app_version",
            "string",
            v["app_version"],
            "Release deployed by this stack.",
            (r'can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.app_version))', "app_version must look like 1.2.3."),
        ),
        worker_vars,
        _variable("worker_image", "string", v["worker_image"], f"Container image of the {n['worker']}s."),
        _variable(
            "queues",
            "map(number)",
            {q: QUEUE_RETENTION[q] for q in queues},
            "Queues to create, keyed by name, with message retention in hours.",
        ),
        _variable("enable_cache", "bool", cache_on, "Whether to run a shared cache."),
        _variable("config_revision", "string", v["config_revision"], "Revision of the rendered settings."),
        _variable("schema_version", "string", v["schema_version"], "Database schema the app expects."),
    )
    app_ref = "\n    app   = null_resource.app.id" if s["worker_refs_app"] else ""
    main = _t(
        """
        locals {
          name_prefix = "${var.project}-${var.environment}"
        }

        # The release itself. A new version comes up before the old one is torn down.
        resource "null_resource" "app" {
          triggers = {
            name    = local.name_prefix
            version = var.app_version
          }

          lifecycle {
            create_before_destroy = true
          }
        }

        resource "null_resource" "<<worker>>" {
          count = <<count_expr>>

          triggers = {
            name  = format("%s-<<worker>>-%02d", local.name_prefix, count.index + 1)
            image = var.worker_image<<app_ref>>
          }
        }

        # One <<queue>> per entry in var.queues; the value is the retention in hours.
        resource "null_resource" "<<queue>>" {
          for_each = var.queues

          triggers = {
            name      = "${local.name_prefix}-${each.key}"
            retention = each.value
          }
        }

        resource "null_resource" "<<cache>>" {
          count = var.enable_cache ? 1 : 0

          triggers = {
            name = upper("${local.name_prefix}-<<cache>>")
          }

          depends_on = [null_resource.app]
        }

        # Rendered application settings: a change updates them in place.
        resource "terraform_data" "<<config>>" {
          input = {
            revision = var.config_revision
            queues   = join(",", sort(keys(var.queues)))
          }
        }

        # Migrations run again whenever schema_version changes.
        resource "terraform_data" "<<migrations>>" {
          triggers_replace = [var.schema_version]
          input            = "migrate-to-${var.schema_version}"
        }
    """,
        count_expr=count_expr,
        app_ref=app_ref,
        **n,
    )
    outputs = _t(
        """
        output "app_id" {
          description = "ID of the current release."
          value       = null_resource.app.id
        }

        output "<<worker>>_names" {
          value = null_resource.<<worker>>[*].triggers.name
        }

        output "<<queue>>_names" {
          value = { for k, q in null_resource.<<queue>> : k => q.triggers.name }
        }
    """,
        **n,
    )
    files = {"versions.tf": NULL_VERSIONS_TF}
    if s["split"]:
        files |= {"variables.tf": variables, "main.tf": main, "outputs.tf": outputs}
    else:
        files["main.tf"] = _join(variables, main, outputs)
    if s["count_at"] == "tfvars":
        files["terraform.tfvars"] = _assignments(
            {"environment": n["environment"], "worker_count": wc}, "Values for this deployment"
        )
    root = s["root"]
    repo_files = _under(root, files) | {
        ".gitignore": GITIGNORE,
        "README.md": _readme(
            f"{n['project']} service",
            f"Infrastructure for the {n['project']} service: release, {n['worker']}s, {n['queue']}s and settings.",
            f"`cd {root} && terraform init && terraform plan`",
        ),
    }

    prefix = f"{n['project']}-{n['environment']}"
    insts: Instances = {"null_resource.app": _Inst(force=(prefix, v["app_version"]), cbd=True)}
    refs = ("null_resource.app",) if s["worker_refs_app"] else ()
    for i in range(wc):
        insts[f"null_resource.{n['worker']}[{i}]"] = _Inst(force=(prefix, i, v["worker_image"]), force_refs=refs)
    for q in queues:
        insts[f'null_resource.{n["queue"]}["{q}"]'] = _Inst(force=(prefix, q, QUEUE_RETENTION[q]))
    if cache_on:
        insts[f"null_resource.{n['cache']}[0]"] = _Inst(force=(prefix,))
    insts[f"terraform_data.{n['config']}"] = _Inst(update=(v["config_revision"], tuple(sorted(queues))))
    insts[f"terraform_data.{n['migrations']}"] = _Inst(force=(v["schema_version"],), update=(v["schema_version"],))
    return repo_files, {root: insts}


# ---- network: root + for_each module (subnet) that nests a module (host), optional firewall -----


def _init_network(rng: random.Random, cfg: SyntheticConfig) -> dict[str, Any]:
    return _params(
        names={
            "network": rng.choice(("core", "edge", "shared", "backbone")),
            "domain": rng.choice(("example.internal", "corp.local", "svc.internal")),
            "vpc_cidr": f"10.{rng.randint(0, 250)}.0.0/16",
        },
        style={"root": _pick_root(rng)},
        counts={"hosts_per_subnet": rng.randint(1, 3)},
        values={
            "network_revision": f"{rng.randint(2022, 2024)}.{rng.randint(1, 9)}",
            "dns_ttl": str(rng.choice((60, 300, 900))),
            "host_image": f"debian-12-v{rng.randint(1, 9)}",
            "route_table_version": f"v{rng.randint(1, 9)}",
        },
        value_kinds={
            "network_revision": "replace_cbd",
            "dns_ttl": "replace",
            "host_image": "update",
            "route_table_version": "replace_tr",
        },
        sets={
            "subnets": rng.sample(SUBNETS, rng.randint(2, 3)),
            "dns_zones": rng.sample(DNS_ZONES, rng.randint(1, 3)),
            "firewall_rules": rng.sample(FIREWALL_RULES, rng.randint(2, 3)),
        },
        set_pools={"subnets": list(SUBNETS), "dns_zones": list(DNS_ZONES), "firewall_rules": list(FIREWALL_RULES)},
        flags={"enable_firewall": rng.random() < 0.6},
    )


def _render_network(p: dict[str, Any]) -> Rendered:
    n, v, sets = p["names"], p["values"], p["sets"]
    hosts, fw_on = p["counts"]["hosts_per_subnet"], p["flags"]["enable_firewall"]
    host_mod = _t("""
        # A group of hosts in one subnet. Addresses start at .10.
        resource "terraform_data" "host" {
          count = var.host_count

          input = {
            hostname = format("%s-host-%02d", var.subnet_name, count.index + 1)
            address  = cidrhost(var.cidr_block, count.index + 10)
            image    = var.image
          }
        }

        output "addresses" {
          value = terraform_data.host[*].output.address
        }
    """)
    host_vars = _join(
        _variable("subnet_name", "string", required=True),
        _variable("cidr_block", "string", required=True),
        _variable(
            "host_count",
            "number",
            1,
            "Hosts in this subnet.",
            ("var.host_count >= 0", "host_count cannot be negative."),
        ),
        _variable("image", "string", required=True, description="Machine image for every host."),
    )
    subnet_main = _t("""
        resource "null_resource" "subnet" {
          triggers = {
            name       = var.name
            cidr_block = var.cidr_block
            network_id = var.network_id
          }
        }

        # Hosts live in their own module so that other stacks can reuse it.
        module "hosts" {
          source = "../host"

          subnet_name = var.name
          cidr_block  = var.cidr_block
          host_count  = var.host_count
          image       = var.host_image
        }
    """)
    subnet_vars = _join(
        _variable("name", "string", required=True),
        _variable(
            "cidr_block",
            "string",
            required=True,
            validation=("can(cidrhost(var.cidr_block, 0))", "cidr_block must be a CIDR range."),
        ),
        _variable("network_id", "string", required=True),
        _variable("host_count", "number", 1),
        _variable("host_image", "string", required=True),
    )
    subnet_out = _t("""
        output "id" {
          value = null_resource.subnet.id
        }

        output "host_addresses" {
          value = module.hosts.addresses
        }
    """)
    fw_main = _join(
        _variable("network", "string", required=True),
        _variable("rules", "list(string)", required=True, description="Rule names, applied in order."),
        _t("""
            resource "null_resource" "rule" {
              count = length(var.rules)

              triggers = {
                network  = var.network
                priority = 100 + count.index * 10
                rule     = var.rules[count.index]
              }
            }
        """),
    )
    root_vars = _join(
        _variable("network_name", "string", n["network"]),
        _variable(
            "vpc_cidr",
            "string",
            n["vpc_cidr"],
            "Address space of the whole network.",
            ("can(cidrnetmask(var.vpc_cidr))", "vpc_cidr must be an IPv4 CIDR block."),
        ),
        _variable("network_revision", "string", v["network_revision"], "Bump to rebuild the network (new one first)."),
        _variable("subnet_names", "list(string)", sets["subnets"], "Subnets, one /24 each, in order."),
        _variable("hosts_per_subnet", "number", hosts),
        _variable("host_image", "string", v["host_image"]),
        _variable("domain", "string", n["domain"]),
        _variable("dns_zones", "list(string)", sets["dns_zones"]),
        _variable("dns_ttl", "number", int(v["dns_ttl"])),
        _variable("route_table_version", "string", v["route_table_version"]),
        _variable("enable_firewall", "bool", fw_on),
        _variable("firewall_rules", "list(string)", sets["firewall_rules"]),
    )
    root_main = _t("""
        locals {
          # One /24 per subnet, numbered in the order they are listed in var.subnet_names.
          subnets = { for idx, name in var.subnet_names : name => cidrsubnet(var.vpc_cidr, 8, idx) }
        }

        resource "null_resource" "network" {
          triggers = {
            name     = var.network_name
            cidr     = var.vpc_cidr
            revision = var.network_revision
          }

          lifecycle {
            create_before_destroy = true
          }
        }

        module "subnet" {
          source   = "./modules/subnet"
          for_each = local.subnets

          name       = each.key
          cidr_block = each.value
          network_id = null_resource.network.id
          host_count = var.hosts_per_subnet
          host_image = var.host_image
        }

        resource "null_resource" "dns_zone" {
          for_each = toset(var.dns_zones)

          triggers = {
            zone = "${each.value}.${var.domain}"
            ttl  = var.dns_ttl
          }
        }

        # Replaced when its version changes, updated in place when the subnets change.
        resource "terraform_data" "routes" {
          triggers_replace = {
            version = var.route_table_version
          }

          input = [for name, cidr in local.subnets : "${name}=${cidr}"]
        }

        module "firewall" {
          source = "./modules/firewall"
          count  = var.enable_firewall ? 1 : 0

          network = var.network_name
          rules   = var.firewall_rules

          depends_on = [module.subnet]
        }

        output "subnet_ids" {
          value = { for name, s in module.subnet : name => s.id }
        }
    """)
    root = p["style"]["root"]
    repo_files = _under(
        root,
        {
            "versions.tf": NULL_VERSIONS_TF,
            "variables.tf": root_vars,
            "main.tf": root_main,
            "modules/subnet/main.tf": subnet_main,
            "modules/subnet/variables.tf": subnet_vars,
            "modules/subnet/outputs.tf": subnet_out,
            "modules/subnet/versions.tf": MODULE_VERSIONS_TF,
            "modules/host/main.tf": host_mod,
            "modules/host/variables.tf": host_vars,
            "modules/firewall/main.tf": fw_main,
            "modules/firewall/versions.tf": MODULE_VERSIONS_TF,
        },
    ) | {
        ".gitignore": GITIGNORE,
        "README.md": _readme(
            f"{n['network']} network",
            "Network layout: subnets with their hosts, DNS zones, routes and an optional firewall.",
            f"`cd {root} && terraform plan`",
        ),
    }

    insts: Instances = {
        "null_resource.network": _Inst(force=(n["network"], n["vpc_cidr"], v["network_revision"]), cbd=True)
    }
    for idx, k in enumerate(sets["subnets"]):
        m = f'module.subnet["{k}"]'
        insts[f"{m}.null_resource.subnet"] = _Inst(force=(k, idx), force_refs=("null_resource.network",))
        for j in range(hosts):
            insts[f"{m}.module.hosts.terraform_data.host[{j}]"] = _Inst(update=(k, idx, j, v["host_image"]))
    for z in sets["dns_zones"]:
        insts[f'null_resource.dns_zone["{z}"]'] = _Inst(force=(z, v["dns_ttl"]))
    insts["terraform_data.routes"] = _Inst(
        force=(v["route_table_version"],), update=tuple(sorted((k, i) for i, k in enumerate(sets["subnets"])))
    )
    if fw_on:
        for r, rule in enumerate(sets["firewall_rules"]):
            insts[f"module.firewall[0].null_resource.rule[{r}]"] = _Inst(force=(r, rule))
    return repo_files, {root: insts}


# ---- envs: several roots (envs/dev, envs/prod ...) sharing ../../modules/<service> -------------


def _init_envs(rng: random.Random, cfg: SyntheticConfig) -> dict[str, Any]:
    most = min(cfg.max_workspaces_per_repo, len(ENVIRONMENTS))
    envs = list(ENVIRONMENTS[: rng.randint(min(2, most), most)])
    if "prod" not in envs and len(envs) > 1:
        envs[-1] = "prod"
    p = _params(
        names={
            "service": rng.choice(("api", "storefront", "payments", "gateway", "reports")),
            "module": rng.choice(("service", "app")),
            "envs": envs,
        },
        counts={"health_checks": rng.randint(1, 3)},
        values={"queue_schema": f"v{rng.randint(1, 6)}"},
        value_kinds={"queue_schema": "replace"},
    )
    for e in envs:
        p["counts"][f"{e}.replicas"] = rng.randint(1, 2) if e != "prod" else rng.randint(2, 4)
        p["values"] |= {
            f"{e}.release": _semver(rng),
            f"{e}.settings_revision": f"r{rng.randint(1, 30)}",
            f"{e}.config_epoch": str(rng.randint(1, 5)),
        }
        p["value_kinds"] |= {
            f"{e}.release": "replace_cbd",
            f"{e}.settings_revision": "update",
            f"{e}.config_epoch": "replace_tr",
        }
        p["sets"][f"{e}.queues"] = rng.sample(list(QUEUE_RETENTION), rng.randint(1, 2))
        p["set_pools"][f"{e}.queues"] = list(QUEUE_RETENTION)
        p["flags"][f"{e}.enable_monitoring"] = e == "prod" or rng.random() < 0.3
    return p


def _render_envs(p: dict[str, Any]) -> Rendered:
    n, c, v = p["names"], p["counts"], p["values"]
    mod, svc = n["module"], n["service"]
    mod_vars = _join(
        _variable("service_name", "string", required=True),
        _variable(
            "environment",
            "string",
            required=True,
            validation=(f"contains({_hcl(list(ENVIRONMENTS))}, var.environment)", "unknown environment."),
        ),
        _variable(
            "replicas",
            "number",
            1,
            "Replica count.",
            ("var.replicas >= 1 && var.replicas <= 20", "replicas must be between 1 and 20."),
        ),
        _variable("release", "string", required=True),
        _variable("queues", "set(string)", []),
        _variable("settings_revision", "string", required=True),
        _variable("enable_monitoring", "bool", False),
    )
    mod_main = _t(
        """
        locals {
          full_name = "${var.service_name}-${var.environment}"
        }

        # Blue/green: the new deployment exists before the old one goes away.
        resource "null_resource" "deployment" {
          triggers = {
            name    = local.full_name
            release = var.release
          }

          lifecycle {
            create_before_destroy = true
          }
        }

        resource "null_resource" "replica" {
          count = var.replicas

          triggers = {
            name       = format("%s-%d", local.full_name, count.index)
            deployment = null_resource.deployment.id
          }
        }

        # Synthetic health checks, the same number in every environment.
        resource "null_resource" "health_check" {
          count = <<health_checks>>

          triggers = {
            target = "${local.full_name}-check-${count.index}"
          }
        }

        module "queue" {
          source   = "../queue"
          for_each = var.queues

          name = "${local.full_name}-${each.key}"
        }

        resource "terraform_data" "settings" {
          input = {
            revision = var.settings_revision
            queues   = join(",", sort(tolist(var.queues)))
          }
        }

        module "monitoring" {
          source = "../monitoring"
          count  = var.enable_monitoring ? 1 : 0

          target = local.full_name
        }

        output "deployment_id" {
          value = null_resource.deployment.id
        }
    """,
        health_checks=c["health_checks"],
    )
    queue_mod = _join(
        _variable("name", "string", required=True),
        _t(
            """
        locals {
          # Message schema shared by every queue; bumping it recreates the queues.
          schema = "<<schema>>"
        }

        resource "null_resource" "queue" {
          triggers = {
            name   = var.name
            schema = local.schema
          }
        }

        resource "terraform_data" "dead_letter" {
          input = "${var.name}-dlq"
        }

        output "queue_id" {
          value = null_resource.queue.id
        }
    """,
            schema=v["queue_schema"],
        ),
    )
    mon_mod = _join(
        _variable("target", "string", required=True),
        _t("""
        resource "null_resource" "alarm" {
          for_each = toset(["latency", "errors", "saturation"])

          triggers = {
            name = "${var.target}-${each.key}"
          }
        }

        resource "terraform_data" "dashboard" {
          input = {
            title = upper(var.target)
          }
        }
    """),
    )
    files = {
        f"modules/{mod}/main.tf": mod_main,
        f"modules/{mod}/variables.tf": mod_vars,
        f"modules/{mod}/versions.tf": MODULE_VERSIONS_TF,
        "modules/queue/main.tf": queue_mod,
        "modules/monitoring/main.tf": mon_mod,
        ".gitignore": GITIGNORE,
        "README.md": _readme(
            f"{svc} environments",
            f"One root module per environment, all using `modules/{mod}`.",
            "`cd envs/<env> && terraform init && terraform plan`",
        ),
    }
    env_vars = _join(
        _variable("service_name", "string", svc),
        _variable("replicas", "number", 1),
        _variable("release", "string", required=True, description="Version deployed in this environment."),
        _variable("queues", "list(string)", []),
        _variable("settings_revision", "string", "r1"),
        _variable("config_epoch", "string", "1", "Bump to bootstrap the environment again."),
        _variable("enable_monitoring", "bool", False),
    )
    workspaces: dict[str, Instances] = {}
    for e in n["envs"]:
        root = f"envs/{e}"
        queues, mon = p["sets"][f"{e}.queues"], p["flags"][f"{e}.enable_monitoring"]
        files[f"{root}/versions.tf"] = NULL_VERSIONS_TF
        files[f"{root}/variables.tf"] = env_vars
        files[f"{root}/main.tf"] = _t(
            """
            module "<<svc>>" {
              source = "../../modules/<<mod>>"

              service_name      = var.service_name
              environment       = "<<env>>"
              replicas          = var.replicas
              release           = var.release
              queues            = toset(var.queues)
              settings_revision = var.settings_revision
              enable_monitoring = var.enable_monitoring
            }

            # Bumping config_epoch bootstraps this environment again.
            resource "terraform_data" "bootstrap" {
              triggers_replace = [var.config_epoch]
              input            = "<<env>>"
            }

            output "deployment_id" {
              value = module.<<svc>>.deployment_id
            }
        """,
            svc=svc,
            mod=mod,
            env=e,
        )
        files[f"{root}/terraform.tfvars"] = _assignments(
            {
                "replicas": c[f"{e}.replicas"],
                "release": v[f"{e}.release"],
                "queues": queues,
                "settings_revision": v[f"{e}.settings_revision"],
                "config_epoch": v[f"{e}.config_epoch"],
                "enable_monitoring": mon,
            },
            f"{e} environment",
        )
        m, full = f"module.{svc}", f"{svc}-{e}"
        insts: Instances = {f"{m}.null_resource.deployment": _Inst(force=(full, v[f"{e}.release"]), cbd=True)}
        for i in range(c[f"{e}.replicas"]):
            insts[f"{m}.null_resource.replica[{i}]"] = _Inst(
                force=(full, i), force_refs=(f"{m}.null_resource.deployment",)
            )
        for i in range(c["health_checks"]):
            insts[f"{m}.null_resource.health_check[{i}]"] = _Inst(force=(full, i))
        for q in queues:
            insts[f'{m}.module.queue["{q}"].null_resource.queue'] = _Inst(force=(full, q, v["queue_schema"]))
            insts[f'{m}.module.queue["{q}"].terraform_data.dead_letter'] = _Inst(update=(full, q))
        insts[f"{m}.terraform_data.settings"] = _Inst(update=(v[f"{e}.settings_revision"], tuple(sorted(queues))))
        if mon:
            for a in ("errors", "latency", "saturation"):
                insts[f'{m}.module.monitoring[0].null_resource.alarm["{a}"]'] = _Inst(force=(full, a))
            insts[f"{m}.module.monitoring[0].terraform_data.dashboard"] = _Inst(update=(full,))
        insts["terraform_data.bootstrap"] = _Inst(force=(v[f"{e}.config_epoch"],), update=(e,))
        workspaces[root] = insts
    return files, workspaces


# ---- pipeline: data pipeline with a counted module, a for-expression map and map(object) --------


def _init_pipeline(rng: random.Random, cfg: SyntheticConfig) -> dict[str, Any]:
    stages = sorted(rng.sample(range(len(STAGES)), rng.randint(2, 4)))
    return _params(
        names={"pipeline": rng.choice(("clickstream", "billing_events", "telemetry", "orders_etl"))},
        style={"root": _pick_root(rng), "count_at": rng.choice(("default", "tfvars"))},
        counts={"pool_count": rng.randint(1, 3), "workers_per_pool": rng.randint(1, 3)},
        values={
            "release": _semver(rng),
            "code_version": f"{rng.randint(2023, 2024)}.{rng.randint(1, 12)}.1",
            "schedule": f"rate({rng.choice((5, 15, 30))} minutes)",
            "catalog_schema": f"v{rng.randint(1, 9)}",
        },
        value_kinds={
            "release": "replace_cbd",
            "code_version": "replace",
            "schedule": "update",
            "catalog_schema": "replace_tr",
        },
        sets={"stages": [STAGES[i] for i in stages], "buckets": rng.sample(list(BUCKETS), rng.randint(1, 3))},
        set_pools={"stages": list(STAGES), "buckets": list(BUCKETS)},
        flags={"enable_notifications": rng.random() < 0.5},
    )


def _render_pipeline(p: dict[str, Any]) -> Rendered:
    n, s, c, v, sets = p["names"], p["style"], p["counts"], p["values"], p["sets"]
    pipe, notify = n["pipeline"], p["flags"]["enable_notifications"]
    buckets = {b: {"retention_days": BUCKETS[b][0], "versioning": BUCKETS[b][1]} for b in sets["buckets"]}
    variables = _join(
        _variable(
            "pipeline",
            "string",
            pipe,
            "Pipeline name (lower snake case).",
            ('can(regex("^[a-z][a-z0-9_]*$", var.pipeline))', "pipeline must be lower snake case."),
        ),
        _variable("release", "string", v["release"]),
        _variable("code_version", "string", v["code_version"], "Version of the job code."),
        _variable("schedule", "string", v["schedule"]),
        _variable("catalog_schema", "string", v["catalog_schema"]),
        _variable(
            "stages",
            "list(string)",
            sets["stages"],
            "Stages, in execution order.",
            ("length(var.stages) > 0", "at least one stage is required."),
        ),
        _variable(
            "buckets",
            "map(object({\n    retention_days = number\n    versioning     = bool\n  }))",
            buckets,
            "Storage areas of the pipeline.",
        ),
        _variable(
            "pool_count",
            "number",
            c["pool_count"] if s["count_at"] == "default" else 1,
            "Worker pools.",
            ("var.pool_count <= 8", "at most 8 pools."),
        ),
        _variable("workers_per_pool", "number", c["workers_per_pool"]),
        _variable("enable_notifications", "bool", notify),
    )
    main = _t("""
        locals {
          # Stage name => job name, e.g. "ingest" => "CLICKSTREAM_INGEST"
          jobs      = { for s in var.stages : s => upper(format("%s_%s", var.pipeline, s)) }
          code_hash = md5(var.code_version)
        }

        resource "null_resource" "release" {
          triggers = {
            pipeline = var.pipeline
            version  = var.release
          }

          lifecycle {
            create_before_destroy = true
          }
        }

        resource "null_resource" "bucket" {
          for_each = var.buckets

          triggers = {
            name           = "${var.pipeline}-${each.key}"
            retention_days = each.value.retention_days
            versioning     = each.value.versioning
          }
        }

        resource "null_resource" "job" {
          for_each = local.jobs

          triggers = {
            name      = each.value
            code_hash = local.code_hash
          }

          depends_on = [null_resource.bucket]
        }

        module "worker_pool" {
          source = "./modules/worker_pool"
          count  = var.pool_count

          pipeline   = var.pipeline
          pool_index = count.index
          workers    = var.workers_per_pool
          release_id = null_resource.release.id
        }

        resource "terraform_data" "scheduler" {
          input = {
            schedule = var.schedule
            order    = join(" -> ", var.stages)
          }
        }

        # The data catalog is rebuilt for every schema version.
        resource "terraform_data" "catalog" {
          triggers_replace = [var.catalog_schema]
          input            = sort(keys(var.buckets))
        }

        resource "null_resource" "notifier" {
          count = var.enable_notifications ? 1 : 0

          triggers = {
            channel = "#${replace(var.pipeline, "_", "-")}-alerts"
          }

          depends_on = [terraform_data.scheduler]
        }

        output "jobs" {
          value = local.jobs
        }
    """)
    pool = _join(
        _variable("pipeline", "string", required=True),
        _variable("pool_index", "number", required=True),
        _variable("workers", "number", 1),
        _variable("release_id", "string", required=True, description="Workers restart with every release."),
        _t("""
            resource "null_resource" "worker" {
              count = var.workers

              triggers = {
                name    = format("%s-pool%d-worker%d", var.pipeline, var.pool_index, count.index)
                release = var.release_id
              }
            }

            resource "terraform_data" "pool" {
              input = {
                index = var.pool_index
                size  = var.workers
              }
            }
        """),
    )
    files = {
        "versions.tf": NULL_VERSIONS_TF,
        "variables.tf": variables,
        "main.tf": main,
        "modules/worker_pool/main.tf": pool,
        "modules/worker_pool/versions.tf": MODULE_VERSIONS_TF,
    }
    if s["count_at"] == "tfvars":
        files["terraform.tfvars"] = _assignments({"pool_count": c["pool_count"]}, "Capacity")
    root = s["root"]
    repo_files = _under(root, files) | {
        ".gitignore": GITIGNORE,
        "README.md": _readme(
            f"{pipe} pipeline",
            "Batch pipeline: storage, jobs per stage, worker pools.",
            f"`cd {root} && terraform plan`",
        ),
    }
    insts: Instances = {"null_resource.release": _Inst(force=(pipe, v["release"]), cbd=True)}
    for b in sets["buckets"]:
        insts[f'null_resource.bucket["{b}"]'] = _Inst(force=(pipe, b, *BUCKETS[b]))
    for st in sets["stages"]:
        insts[f'null_resource.job["{st}"]'] = _Inst(force=(pipe, st, v["code_version"]))
    for i in range(c["pool_count"]):
        for j in range(c["workers_per_pool"]):
            insts[f"module.worker_pool[{i}].null_resource.worker[{j}]"] = _Inst(
                force=(pipe, i, j), force_refs=("null_resource.release",)
            )
        insts[f"module.worker_pool[{i}].terraform_data.pool"] = _Inst(update=(i, c["workers_per_pool"]))
    insts["terraform_data.scheduler"] = _Inst(update=(v["schedule"], tuple(sets["stages"])))
    insts["terraform_data.catalog"] = _Inst(force=(v["catalog_schema"],), update=tuple(sorted(sets["buckets"])))
    if notify:
        insts["null_resource.notifier[0]"] = _Inst(force=(pipe,))
    return repo_files, {root: insts}


# ---- cloud families: not plannable offline; every instance is "create" on fresh state ----------


def _init_cloud(rng: random.Random, cfg: SyntheticConfig, family: str) -> dict[str, Any]:
    project = rng.choice(PROJECTS)
    zones = {
        "aws": ("us-east-1a", "us-east-1b", "us-east-1c"),
        "azurerm": ("frontend", "backend", "data"),
        "google": ("apps", "data", "ops"),
    }[family]
    return _params(
        names={
            "project": project,
            "environment": rng.choice(ENVIRONMENTS[:3]),
            "octet": rng.randint(0, 250),
            "ports": rng.sample((22, 80, 443, 8080, 8443), rng.randint(2, 3)),
            "vms": rng.sample(("jumpbox", "build", "metrics", "worker"), rng.randint(1, 2)),
            "subscriptions": rng.sample(("audit", "indexer", "mailer", "billing"), 2),
        },
        style={"root": "."},
        counts={"instance_count": rng.randint(1, 3)},
        values={"app_version": _semver(rng)},
        value_kinds={"app_version": "update"},
        sets={"zones": rng.sample(zones, 2), "buckets": rng.sample(CLOUD_BUCKETS, rng.randint(1, 3))},
        set_pools={"zones": list(zones), "buckets": list(CLOUD_BUCKETS)},
        flags={"enable_extra": rng.random() < 0.6},
    )


def _cloud_versions(provider: str, version: str) -> str:
    return _t(
        """
        terraform {
          required_version = ">= 1.5"

          required_providers {
            <<provider>> = {
              source  = "hashicorp/<<provider>>"
              version = "<<version>>"
            }
          }
        }
    """,
        provider=provider,
        version=version,
    )


def _render_aws(p: dict[str, Any]) -> Rendered:
    n, sets = p["names"], p["sets"]
    zones = sets["zones"]
    subnets = {z: f"10.{n['octet']}.{i}.0/24" for i, z in enumerate(p["set_pools"]["zones"]) if z in zones}
    variables = _join(
        _variable("region", "string", "us-east-1"),
        _variable("project", "string", n["project"]),
        _variable(
            "environment",
            "string",
            n["environment"],
            validation=(
                'contains(["dev", "staging", "prod"], var.environment)',
                "environment must be dev, staging or prod.",
            ),
        ),
        _variable("app_version", "string", p["values"]["app_version"]),
        _variable("vpc_cidr", "string", f"10.{n['octet']}.0.0/16"),
        _variable("private_subnets", "map(string)", subnets, "Availability zone => CIDR."),
        _variable("instance_count", "number", p["counts"]["instance_count"]),
        _variable("instance_type", "string", "t3.micro"),
        _variable("ingress_ports", "list(number)", n["ports"]),
        _variable("buckets", "list(string)", sets["buckets"]),
        _variable("enable_access_logs", "bool", p["flags"]["enable_extra"]),
    )
    main = _t("""
        provider "aws" {
          region = var.region

          default_tags {
            tags = local.tags
          }
        }

        locals {
          name = "${var.project}-${var.environment}"
          tags = {
            Project     = var.project
            Environment = var.environment
            Version     = var.app_version
            ManagedBy   = "terraform"
          }
        }

        data "aws_ami" "ubuntu" {
          most_recent = true
          owners      = ["099720109477"]

          filter {
            name   = "name"
            values = ["ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"]
          }
        }

        resource "aws_vpc" "main" {
          cidr_block           = var.vpc_cidr
          enable_dns_hostnames = true

          tags = {
            Name = "${local.name}-vpc"
          }
        }

        resource "aws_subnet" "private" {
          for_each = var.private_subnets

          vpc_id            = aws_vpc.main.id
          cidr_block        = each.value
          availability_zone = each.key

          tags = {
            Name = format("%s-private-%s", local.name, each.key)
          }
        }

        resource "aws_security_group" "web" {
          name        = "${local.name}-web"
          description = "Web tier"
          vpc_id      = aws_vpc.main.id

          dynamic "ingress" {
            for_each = var.ingress_ports
            content {
              description = "port ${ingress.value}"
              from_port   = ingress.value
              to_port     = ingress.value
              protocol    = "tcp"
              cidr_blocks = ["0.0.0.0/0"]
            }
          }

          egress {
            from_port   = 0
            to_port     = 0
            protocol    = "-1"
            cidr_blocks = ["0.0.0.0/0"]
          }
        }

        resource "aws_instance" "web" {
          count = var.instance_count

          ami                    = data.aws_ami.ubuntu.id
          instance_type          = var.instance_type
          subnet_id              = values(aws_subnet.private)[count.index % length(aws_subnet.private)].id
          vpc_security_group_ids = [aws_security_group.web.id]

          user_data = <<-EOT
            #!/bin/bash
            hostnamectl set-hostname ${local.name}-web-${count.index + 1}
          EOT

          tags = {
            Name = format("%s-web-%02d", local.name, count.index + 1)
          }
        }

        resource "aws_s3_bucket" "data" {
          for_each = toset(var.buckets)

          bucket = "${local.name}-${each.key}"
        }

        resource "aws_s3_bucket_versioning" "data" {
          for_each = aws_s3_bucket.data

          bucket = each.value.id

          versioning_configuration {
            status = "Enabled"
          }
        }

        module "access_logs" {
          source = "./modules/log_bucket"
          count  = var.enable_access_logs ? 1 : 0

          name           = "${local.name}-access-logs"
          retention_days = 30
        }

        output "instance_ids" {
          value = aws_instance.web[*].id
        }
    """)
    log_mod = _join(
        _variable("name", "string", required=True),
        _variable("retention_days", "number", 90),
        _t("""
            resource "aws_s3_bucket" "this" {
              bucket = var.name
            }

            resource "aws_s3_bucket_lifecycle_configuration" "this" {
              bucket = aws_s3_bucket.this.id

              rule {
                id     = "expire"
                status = "Enabled"

                expiration {
                  days = var.retention_days
                }
              }
            }
        """),
    )
    files = {
        "versions.tf": _cloud_versions("aws", "~> 5.0"),
        "variables.tf": variables,
        "main.tf": main,
        "modules/log_bucket/main.tf": log_mod,
        ".gitignore": GITIGNORE,
        "README.md": _readme(f"{n['project']} on AWS", "VPC, web tier and data buckets.", "`terraform plan`"),
    }
    addrs = ["aws_vpc.main", "aws_security_group.web"]
    addrs += [f'aws_subnet.private["{z}"]' for z in subnets]
    addrs += [f"aws_instance.web[{i}]" for i in range(p["counts"]["instance_count"])]
    for b in sets["buckets"]:
        addrs += [f'aws_s3_bucket.data["{b}"]', f'aws_s3_bucket_versioning.data["{b}"]']
    if p["flags"]["enable_extra"]:
        addrs += [
            "module.access_logs[0].aws_s3_bucket.this",
            "module.access_logs[0].aws_s3_bucket_lifecycle_configuration.this",
        ]
    return files, {".": dict.fromkeys(addrs, _Inst())}


def _render_azurerm(p: dict[str, Any]) -> Rendered:
    n, sets = p["names"], p["sets"]
    subnets = {z: f"10.{n['octet']}.{i}.0/24" for i, z in enumerate(p["set_pools"]["zones"]) if z in sets["zones"]}
    variables = _join(
        _variable("location", "string", "westeurope"),
        _variable("project", "string", n["project"]),
        _variable("environment", "string", n["environment"]),
        _variable("app_version", "string", p["values"]["app_version"]),
        _variable("address_space", "string", f"10.{n['octet']}.0.0/16"),
        _variable("subnets", "map(string)", subnets, "Subnet name => address prefix."),
        _variable("allowed_ports", "list(number)", n["ports"]),
        _variable("storage_account_count", "number", p["counts"]["instance_count"]),
        _variable("vm_names", "list(string)", n["vms"]),
        _variable("enable_monitoring", "bool", p["flags"]["enable_extra"]),
    )
    main = _t("""
        provider "azurerm" {
          features {}
        }

        locals {
          name = "${var.project}-${var.environment}"
          tags = {
            project     = var.project
            environment = var.environment
            version     = var.app_version
          }
        }

        resource "azurerm_resource_group" "main" {
          name     = "rg-${local.name}"
          location = var.location
          tags     = local.tags
        }

        resource "azurerm_virtual_network" "main" {
          name                = "vnet-${local.name}"
          address_space       = [var.address_space]
          location            = azurerm_resource_group.main.location
          resource_group_name = azurerm_resource_group.main.name
        }

        resource "azurerm_subnet" "this" {
          for_each = var.subnets

          name                 = "snet-${each.key}"
          resource_group_name  = azurerm_resource_group.main.name
          virtual_network_name = azurerm_virtual_network.main.name
          address_prefixes     = [each.value]
        }

        resource "azurerm_network_security_group" "web" {
          name                = "nsg-${local.name}-web"
          location            = azurerm_resource_group.main.location
          resource_group_name = azurerm_resource_group.main.name

          dynamic "security_rule" {
            for_each = var.allowed_ports
            content {
              name                       = "allow-${security_rule.value}"
              priority                   = 100 + security_rule.key
              direction                  = "Inbound"
              access                     = "Allow"
              protocol                   = "Tcp"
              source_port_range          = "*"
              destination_port_range     = tostring(security_rule.value)
              source_address_prefix      = "*"
              destination_address_prefix = "*"
            }
          }
        }

        resource "azurerm_storage_account" "data" {
          count = var.storage_account_count

          name                     = format("st%s%02d", replace(var.project, "-", ""), count.index + 1)
          resource_group_name      = azurerm_resource_group.main.name
          location                 = azurerm_resource_group.main.location
          account_tier             = "Standard"
          account_replication_type = "LRS"
          min_tls_version          = "TLS1_2"
        }

        module "vm" {
          source   = "./modules/linux_vm"
          for_each = toset(var.vm_names)

          name                = "${local.name}-${each.key}"
          resource_group_name = azurerm_resource_group.main.name
          location            = azurerm_resource_group.main.location
          subnet_id           = values(azurerm_subnet.this)[0].id
        }

        resource "azurerm_log_analytics_workspace" "main" {
          count = var.enable_monitoring ? 1 : 0

          name                = "log-${local.name}"
          location            = azurerm_resource_group.main.location
          resource_group_name = azurerm_resource_group.main.name
          sku                 = "PerGB2018"
          retention_in_days   = 30
        }
    """)
    vm_mod = _join(
        _variable("name", "string", required=True),
        _variable("resource_group_name", "string", required=True),
        _variable("location", "string", required=True),
        _variable("subnet_id", "string", required=True),
        _variable("size", "string", "Standard_B2s"),
        _t("""
            resource "azurerm_network_interface" "this" {
              name                = "nic-${var.name}"
              location            = var.location
              resource_group_name = var.resource_group_name

              ip_configuration {
                name                          = "internal"
                subnet_id                     = var.subnet_id
                private_ip_address_allocation = "Dynamic"
              }
            }

            resource "azurerm_linux_virtual_machine" "this" {
              name                  = "vm-${var.name}"
              resource_group_name   = var.resource_group_name
              location              = var.location
              size                  = var.size
              admin_username        = "azureuser"
              network_interface_ids = [azurerm_network_interface.this.id]

              admin_ssh_key {
                username   = "azureuser"
                public_key = file("${path.module}/id_rsa.pub")
              }

              os_disk {
                caching              = "ReadWrite"
                storage_account_type = "Standard_LRS"
              }

              source_image_reference {
                publisher = "Canonical"
                offer     = "0001-com-ubuntu-server-jammy"
                sku       = "22_04-lts"
                version   = "latest"
              }
            }
        """),
    )
    files = {
        "versions.tf": _cloud_versions("azurerm", "~> 3.100"),
        "variables.tf": variables,
        "main.tf": main,
        "modules/linux_vm/main.tf": vm_mod,
        ".gitignore": GITIGNORE,
        "README.md": _readme(f"{n['project']} on Azure", "Network, storage and VMs.", "`terraform plan`"),
    }
    addrs = ["azurerm_resource_group.main", "azurerm_virtual_network.main", "azurerm_network_security_group.web"]
    addrs += [f'azurerm_subnet.this["{z}"]' for z in subnets]
    addrs += [f"azurerm_storage_account.data[{i}]" for i in range(p["counts"]["instance_count"])]
    for vm in n["vms"]:
        addrs += [
            f'module.vm["{vm}"].azurerm_network_interface.this',
            f'module.vm["{vm}"].azurerm_linux_virtual_machine.this',
        ]
    if p["flags"]["enable_extra"]:
        addrs.append("azurerm_log_analytics_workspace.main[0]")
    return files, {".": dict.fromkeys(addrs, _Inst())}


def _render_google(p: dict[str, Any]) -> Rendered:
    n, sets = p["names"], p["sets"]
    subnets = {z: f"10.{n['octet']}.{i}.0/24" for i, z in enumerate(p["set_pools"]["zones"]) if z in sets["zones"]}
    variables = _join(
        _variable("project_id", "string", f"{n['project']}-{n['environment']}-4711"),
        _variable("region", "string", "europe-west1"),
        _variable("name", "string", f"{n['project']}-{n['environment']}"),
        _variable("app_version", "string", p["values"]["app_version"]),
        _variable("subnets", "map(string)", subnets),
        _variable("allowed_ports", "list(number)", n["ports"]),
        _variable("worker_count", "number", p["counts"]["instance_count"]),
        _variable("machine_type", "string", "e2-small"),
        _variable("buckets", "list(string)", sets["buckets"]),
        _variable("enable_events", "bool", p["flags"]["enable_extra"]),
    )
    main = _t(
        """
        provider "google" {
          project = var.project_id
          region  = var.region
        }

        locals {
          labels = {
            app     = var.name
            version = replace(var.app_version, ".", "-")
          }
        }

        resource "google_compute_network" "vpc" {
          name                    = "${var.name}-vpc"
          auto_create_subnetworks = false
        }

        resource "google_compute_subnetwork" "this" {
          for_each = var.subnets

          name          = "${var.name}-${each.key}"
          ip_cidr_range = each.value
          region        = var.region
          network       = google_compute_network.vpc.id
        }

        resource "google_compute_firewall" "ingress" {
          name    = "${var.name}-ingress"
          network = google_compute_network.vpc.name

          dynamic "allow" {
            for_each = var.allowed_ports
            content {
              protocol = "tcp"
              ports    = [tostring(allow.value)]
            }
          }

          source_ranges = ["0.0.0.0/0"]
        }

        resource "google_compute_instance" "worker" {
          count = var.worker_count

          name         = format("%s-worker-%02d", var.name, count.index + 1)
          machine_type = var.machine_type
          zone         = "${var.region}-b"
          labels       = local.labels

          boot_disk {
            initialize_params {
              image = "debian-cloud/debian-12"
            }
          }

          network_interface {
            subnetwork = values(google_compute_subnetwork.this)[0].id
          }
        }

        resource "google_storage_bucket" "data" {
          for_each = toset(var.buckets)

          name                        = "${var.project_id}-${each.key}"
          location                    = "EU"
          uniform_bucket_level_access = true

          versioning {
            enabled = true
          }
        }

        module "events" {
          source = "./modules/pubsub"
          count  = var.enable_events ? 1 : 0

          topic         = "${var.name}-events"
          subscriptions = <<subs>>
        }
    """,
        subs=_hcl(n["subscriptions"]),
    )
    pubsub = _join(
        _variable("topic", "string", required=True),
        _variable("subscriptions", "list(string)", []),
        _t("""
            resource "google_pubsub_topic" "this" {
              name = var.topic
            }

            resource "google_pubsub_subscription" "this" {
              for_each = toset(var.subscriptions)

              name                 = "${var.topic}-${each.key}"
              topic                = google_pubsub_topic.this.id
              ack_deadline_seconds = 30
            }
        """),
    )
    files = {
        "versions.tf": _cloud_versions("google", "~> 5.0"),
        "variables.tf": variables,
        "main.tf": main,
        "modules/pubsub/main.tf": pubsub,
        ".gitignore": GITIGNORE,
        "README.md": _readme(f"{n['project']} on GCP", "VPC, workers, buckets and events.", "`terraform plan`"),
    }
    addrs = ["google_compute_network.vpc", "google_compute_firewall.ingress"]
    addrs += [f'google_compute_subnetwork.this["{z}"]' for z in subnets]
    addrs += [f"google_compute_instance.worker[{i}]" for i in range(p["counts"]["instance_count"])]
    addrs += [f'google_storage_bucket.data["{b}"]' for b in sets["buckets"]]
    if p["flags"]["enable_extra"]:
        addrs.append("module.events[0].google_pubsub_topic.this")
        addrs += [f'module.events[0].google_pubsub_subscription.this["{s}"]' for s in n["subscriptions"]]
    return files, {".": dict.fromkeys(addrs, _Inst())}


@dataclass(frozen=True)
class _Family:
    init: Callable[[random.Random, SyntheticConfig], dict[str, Any]]
    render: Callable[[dict[str, Any]], Rendered]
    label: str  # short suffix of the repo name


FAMILIES: dict[str, _Family] = {
    "app": _Family(_init_app, _render_app, "app"),
    "network": _Family(_init_network, _render_network, "net"),
    "envs": _Family(_init_envs, _render_envs, "envs"),
    "pipeline": _Family(_init_pipeline, _render_pipeline, "etl"),
    "aws": _Family(lambda r, c: _init_cloud(r, c, "aws"), _render_aws, "aws"),
    "azurerm": _Family(lambda r, c: _init_cloud(r, c, "azurerm"), _render_azurerm, "azure"),
    "google": _Family(lambda r, c: _init_cloud(r, c, "google"), _render_google, "gcp"),
}


# --------------------------------------------------------------------------------------------------
# Mutations (history commits)
# --------------------------------------------------------------------------------------------------


def _bump(value: str, rng: random.Random) -> str:
    """Next version of a value: its last number goes up (1.4.2 -> 1.4.3, v7 -> v8, 300 -> 360)."""
    if value.isdigit():
        return str(int(value) + 60) if int(value) >= 60 else str(int(value) + 1)
    matches = list(re.finditer(r"\d+", value))
    if not matches:
        return value + "-2"
    m = matches[-1]
    return value[: m.start()] + str(int(m.group()) + rng.choice((1, 1, 2))) + value[m.end() :]


def _label(key: str) -> str:
    env, _, name = key.rpartition(".")
    return f"{name} in {env}" if env else name


def _candidates(p: dict[str, Any], kind: str, used: set[str]) -> list[str]:
    if kind in ("replace_cbd", "update", "replace", "replace_tr"):
        keys = [k for k, kk in p["value_kinds"].items() if kk == kind]
    elif kind == "count_down":
        keys = [k for k, n in p["counts"].items() if n >= 2]
    elif kind == "count_up":
        keys = [k for k, n in p["counts"].items() if n < COUNT_MAX]
    elif kind == "remove_key":
        keys = [k for k, s in p["sets"].items() if len(s) >= 2]
    elif kind == "add_key":
        keys = [k for k, s in p["sets"].items() if set(p["set_pools"][k]) - set(s)]
    elif kind == "remove_resource":
        keys = [k for k, f in p["flags"].items() if f]
    else:  # add_resource
        keys = [k for k, f in p["flags"].items() if not f]
    return sorted(k for k in keys if k not in used)


def _apply(p: dict[str, Any], kind: str, key: str, rng: random.Random) -> str:
    """Mutate ``p`` in place; return the commit-message line that describes the change."""
    what = _label(key)
    if kind in ("replace_cbd", "update", "replace", "replace_tr"):
        old = p["values"][key]
        p["values"][key] = _bump(old, rng)
        return f"Bump {what} from {old} to {p['values'][key]}"
    if kind in ("count_down", "count_up"):
        old = p["counts"][key]
        step = rng.randint(1, min(2, old - 1 if kind == "count_down" else COUNT_MAX - old))
        p["counts"][key] = old - step if kind == "count_down" else old + step
        return f"Scale {what} from {old} to {p['counts'][key]}"
    if kind == "remove_key":
        gone = rng.choice(p["sets"][key])
        p["sets"][key].remove(gone)
        return f"Remove {gone!r} from {what}"
    if kind == "add_key":
        new = rng.choice([x for x in p["set_pools"][key] if x not in p["sets"][key]])
        p["sets"][key].append(new)
        return f"Add {new!r} to {what}"
    p["flags"][key] = kind == "add_resource"
    return f"{'Enable' if p['flags'][key] else 'Disable'} {what.removeprefix('enable_')}"


def _mutate(p: dict[str, Any], rng: random.Random, rotation: int | None) -> str:
    """One history commit: a primary change (rotating through KINDS for coverage) plus 0-2 others."""
    used: set[str] = set()
    order = list(KINDS) if rotation is None else [KINDS[(rotation + i) % len(KINDS)] for i in range(len(KINDS))]
    if rotation is None:
        rng.shuffle(order)
    lines = []
    for kind in order:
        keys = _candidates(p, kind, used)
        if keys:
            key = rng.choice(keys)
            used.add(key)
            lines.append(_apply(p, kind, key, rng))
            break
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        options = [(k, key) for k in KINDS for key in _candidates(p, k, used)]
        if not options:
            break
        kind, key = rng.choice(options)
        used.add(key)
        lines.append(_apply(p, kind, key, rng))
    if not lines:
        return "Touch configuration"
    return lines[0] + ("\n\n" + "\n".join(f"- {line}" for line in lines[1:]) if lines[1:] else "")


# --------------------------------------------------------------------------------------------------
# Repo specs (pure) and git (side effects)
# --------------------------------------------------------------------------------------------------


@dataclass
class _Commit:
    files: dict[str, str]
    message: str
    instances: dict[str, Instances]


@dataclass
class _Spec:
    index: int
    name: str
    family: str
    cloud: bool
    commits: list[_Commit] = field(default_factory=list)

    @property
    def workspaces(self) -> tuple[str, ...]:
        return tuple(sorted(self.commits[0].instances))

    def digest(self) -> str:
        h = hashlib.sha256()
        for c in self.commits:
            h.update(json.dumps([c.message, sorted(c.files.items())]).encode())
        return h.hexdigest()[:16]


def _is_cloud(cfg: SyntheticConfig, i: int) -> bool:
    """Spread cloud repos evenly: repo i is cloud when the running cloud quota steps up at i."""
    f = cfg.cloud_fraction
    return math.floor((i + 1) * f + 1e-9) > math.floor(i * f + 1e-9)


def _repo_spec(cfg: SyntheticConfig, i: int) -> _Spec:
    """Everything about repo ``i`` except its SHAs; depends only on (cfg, i), not on n_repos."""
    rng = random.Random(f"tfpredict-synthetic:{cfg.seed}:{i}")
    n_cloud_before = sum(_is_cloud(cfg, j) for j in range(i))
    cloud = _is_cloud(cfg, i)
    if cloud:
        family = CLOUD_FAMILIES[(n_cloud_before + cfg.seed) % len(CLOUD_FAMILIES)]
    else:
        ordinal = i - n_cloud_before
        family = NONCLOUD_FAMILIES[(ordinal + cfg.seed) % len(NONCLOUD_FAMILIES)]
    fam = FAMILIES[family]
    spec = _Spec(i, f"synth-{i:04d}-{fam.label}", family, cloud)
    params = fam.init(rng, cfg)
    files, insts = fam.render(params)
    title = (
        params["names"].get("project")
        or params["names"].get("service")
        or params["names"].get("pipeline")
        or params["names"].get("network")
    )
    spec.commits.append(_Commit(files, f"Initial {title} infrastructure", insts))
    for k in range(1, cfg.commits_per_repo):
        params = copy.deepcopy(params)
        # Independent of commits_per_repo, so that more commits only extend a repo's history.
        rotation = None if cloud else (i - n_cloud_before) * ROTATION_STRIDE + k - 1
        message = _mutate(params, rng, rotation)
        files, insts = fam.render(params)
        spec.commits.append(_Commit(files, message, insts))
    return spec


def _git_env(repo_dir: Path, when: int) -> dict[str, str]:
    """Environment for every git call: no user/system config or hooks, fixed identity and dates."""
    stamp = f"{when} +0000"
    return {
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_DIR": str(repo_dir / ".git"),
        "GIT_WORK_TREE": str(repo_dir),
        "GIT_INDEX_FILE": str(repo_dir / ".git" / "index"),
        "GIT_AUTHOR_NAME": AUTHOR[0],
        "GIT_AUTHOR_EMAIL": AUTHOR[1],
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_NAME": AUTHOR[0],
        "GIT_COMMITTER_EMAIL": AUTHOR[1],
        "GIT_COMMITTER_DATE": stamp,
    }


def _sync_worktree(root: Path, old: Mapping[str, str], new: Mapping[str, str]) -> None:
    for path in sorted(set(old) - set(new)):
        target = root / path
        target.unlink()
        parent = target.parent
        while parent != root and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    for path, content in new.items():
        if old.get(path) != content:
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode("utf-8"))


def _build_repo(spec: _Spec, path: Path) -> list[str]:
    """Write the repo's commits into a temp dir, then swap it in place of ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    g = git.Git(str(tmp))
    shas: list[str] = []
    base = BASE_EPOCH + spec.index * 86400
    try:
        g.execute(
            ["git", "init", "-q", "-b", "main", "--template=", str(tmp)],
            env=_git_env(tmp, base),
            kill_after_timeout=GIT_TIMEOUT_S,
        )
        previous: dict[str, str] = {}
        for k, commit in enumerate(spec.commits):
            env = _git_env(tmp, base + k * 3600)
            _sync_worktree(tmp, previous, commit.files)
            previous = commit.files
            g.execute(["git", "add", "-A"], env=env, kill_after_timeout=GIT_TIMEOUT_S)
            g.execute(
                [
                    "git",
                    "commit",
                    "-q",
                    "--no-verify",
                    "--no-gpg-sign",
                    "--allow-empty",
                    "--cleanup=verbatim",
                    "-m",
                    commit.message,
                ],
                env=env,
                kill_after_timeout=GIT_TIMEOUT_S,
            )
            shas.append(str(g.execute(["git", "rev-parse", "HEAD"], env=env, kill_after_timeout=GIT_TIMEOUT_S)))
    except git.GitCommandError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(
            f"git failed while generating {spec.name}: {e}. Fix: check that `git` >= 2.28 "
            "is installed and the output directory is writable."
        ) from e
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return shas


def _head(path: Path) -> str | None:
    try:
        return git.Repo(path).head.commit.hexsha
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return None


# --------------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------------


def _entry(spec: _Spec, shas: list[str]) -> dict[str, Any]:
    expected = [
        {"commit": sha, "workspace": ws, "resource_changes": _fresh_plan(c.instances[ws])}
        for sha, c in zip(shas, spec.commits, strict=True)
        for ws in spec.workspaces
    ]
    history = []
    if not spec.cloud:
        for k in range(1, len(shas)):
            for ws in spec.workspaces:
                history.append(
                    {
                        "prior": shas[k - 1],
                        "commit": shas[k],
                        "workspace": ws,
                        "resource_changes": _history_plan(
                            spec.commits[k - 1].instances[ws], spec.commits[k].instances[ws]
                        ),
                    }
                )
    return {
        "name": spec.name,
        "family": spec.family,
        "cloud": spec.cloud,
        "digest": spec.digest(),
        "commits": shas,
        "workspaces": list(spec.workspaces),
        "expected": expected,
        "expected_history": history,
    }


def _repo_from_entry(out_dir: Path, e: Mapping[str, Any]) -> SyntheticRepo:
    path = (out_dir / e["name"]).resolve()
    return SyntheticRepo(
        name=e["name"],
        path=path,
        url=path.as_uri(),
        commits=tuple(e["commits"]),
        workspaces=tuple(e["workspaces"]),
        cloud=bool(e["cloud"]),
        expected={(x["commit"], x["workspace"]): x["resource_changes"] for x in e["expected"]},
        expected_history={
            (x["prior"], x["commit"], x["workspace"]): x["resource_changes"] for x in e["expected_history"]
        },
        family=e["family"],
    )


def _read_entries(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Entries of an existing manifest by name; {} when there is none or it is unreadable."""
    try:
        data = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        return {e["name"]: e for e in data["repos"]} if data.get("version") == MANIFEST_VERSION else {}
    except (OSError, ValueError, KeyError, TypeError) as e:
        if (out_dir / MANIFEST).exists():
            logger.warning("synthetic: ignoring unreadable %s (%s); rebuilding", out_dir / MANIFEST, e)
        return {}


def generate_corpus(cfg: SyntheticConfig, out_dir: Path) -> list[SyntheticRepo]:
    """Generate (or reuse) ``cfg.n_repos`` git repositories under ``out_dir`` plus ``manifest.json``.

    Repos whose manifest entry has the same content digest and whose HEAD matches are kept as they
    are; any other repo is rebuilt from scratch.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    old = _read_entries(out_dir)
    entries = []
    built = 0
    for i in range(cfg.n_repos):
        spec = _repo_spec(cfg, i)
        path = out_dir / spec.name
        prev = old.get(spec.name)
        reusable = bool(prev and prev.get("digest") == spec.digest() and prev.get("commits"))
        if reusable and prev is not None and _head(path) == prev["commits"][-1]:
            shas = list(prev["commits"])
        else:
            shas = _build_repo(spec, path)
            built += 1
        entries.append(_entry(spec, shas))
    manifest = {"version": MANIFEST_VERSION, "config": cfg.model_dump(), "repos": entries}
    tmp = out_dir / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / MANIFEST)
    logger.info(
        "synthetic corpus at %s: %d repos (%d built, %d reused)", out_dir, len(entries), built, len(entries) - built
    )
    return [_repo_from_entry(out_dir, e) for e in entries]


def load_manifest(out_dir: Path) -> list[SyntheticRepo]:
    """The repos recorded by the last ``generate_corpus`` into ``out_dir``."""
    path = Path(out_dir) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise FileNotFoundError(f"no synthetic corpus manifest at {path}; run generate_corpus first") from e
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); delete it and run generate_corpus again") from e
    if data.get("version") != MANIFEST_VERSION:
        raise ValueError(
            f"{path} has manifest version {data.get('version')!r}, expected {MANIFEST_VERSION}; "
            "run generate_corpus again to rebuild it"
        )
    return [_repo_from_entry(Path(out_dir), e) for e in data["repos"]]
