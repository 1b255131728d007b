"""network: root + for_each module (subnet) that nests a module (host), optional firewall."""

from __future__ import annotations

import random
from typing import Any

from pipelines.collect.synthetic.config import Flavor, SyntheticConfig
from pipelines.collect.synthetic.model import Inst, Instances
from pipelines.collect.synthetic.text import (
    GITIGNORE,
    MODULE_VERSIONS_TF,
    Rendered,
    flavor_of,
    join_blocks,
    make_params,
    pick_root,
    readme,
    root_versions_tf,
    tpl,
    under_root,
    variable,
)

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


def init(rng: random.Random, cfg: SyntheticConfig) -> dict[str, Any]:
    return make_params(
        names={
            "network": rng.choice(("core", "edge", "shared", "backbone")),
            "domain": rng.choice(("example.internal", "corp.local", "svc.internal")),
            "vpc_cidr": f"10.{rng.randint(0, 250)}.0.0/16",
        },
        style={"root": pick_root(rng)},
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


def render(p: dict[str, Any]) -> Rendered:
    n, v, sets = p["names"], p["values"], p["sets"]
    hosts, fw_on = p["counts"]["hosts_per_subnet"], p["flags"]["enable_firewall"]
    flavor = flavor_of(p)
    host_mod = _host_module(flavor)
    host_vars = join_blocks(
        variable("subnet_name", "string", required=True),
        variable("cidr_block", "string", required=True),
        variable(
            "host_count",
            "number",
            1,
            "Hosts in this subnet.",
            ("var.host_count >= 0", "The host_count cannot be negative."),
        ),
        variable("image", "string", required=True, description="Machine image for every host."),
    )
    subnet_main = tpl("""
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
    subnet_vars = join_blocks(
        variable("name", "string", required=True),
        variable(
            "cidr_block",
            "string",
            required=True,
            validation=("can(cidrhost(var.cidr_block, 0))", "The cidr_block must be a CIDR range."),
        ),
        variable("network_id", "string", required=True),
        variable("host_count", "number", 1),
        variable("host_image", "string", required=True),
    )
    subnet_out = tpl("""
        output "id" {
          value = null_resource.subnet.id
        }

        output "host_addresses" {
          value = module.hosts.addresses
        }
    """)
    fw_main = join_blocks(
        variable("network", "string", required=True),
        variable("rules", "list(string)", required=True, description="Rule names, applied in order."),
        tpl("""
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
    root_vars = join_blocks(
        variable("network_name", "string", n["network"]),
        variable(
            "vpc_cidr",
            "string",
            n["vpc_cidr"],
            "Address space of the whole network.",
            ("can(cidrnetmask(var.vpc_cidr))", "The vpc_cidr must be an IPv4 CIDR block."),
        ),
        variable("network_revision", "string", v["network_revision"], "Bump to rebuild the network (new one first)."),
        variable("subnet_names", "list(string)", sets["subnets"], "Subnets, one /24 each, in order."),
        variable("hosts_per_subnet", "number", hosts),
        variable("host_image", "string", v["host_image"]),
        variable("domain", "string", n["domain"]),
        variable("dns_zones", "list(string)", sets["dns_zones"]),
        variable("dns_ttl", "number", int(v["dns_ttl"])),
        variable("route_table_version", "string", v["route_table_version"]),
        variable("enable_firewall", "bool", fw_on),
        variable("firewall_rules", "list(string)", sets["firewall_rules"]),
    )
    root_main = tpl(
        """
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

        <<routes>>

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
    """,
        routes=_routes(flavor),
    )
    root = p["style"]["root"]
    repo_files = under_root(
        root,
        {
            "versions.tf": root_versions_tf(flavor),
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
        "README.md": readme(
            f"{n['network']} network",
            "Network layout: subnets with their hosts, DNS zones, routes and an optional firewall.",
            f"`cd {root} && terraform plan`",
        ),
    }

    insts: Instances = {
        "null_resource.network": Inst(force=(n["network"], n["vpc_cidr"], v["network_revision"]), cbd=True)
    }
    for idx, k in enumerate(sets["subnets"]):
        m = f'module.subnet["{k}"]'
        insts[f"{m}.null_resource.subnet"] = Inst(force=(k, idx), force_refs=("null_resource.network",))
        for j in range(hosts):
            insts[f"{m}.module.hosts.terraform_data.host[{j}]"] = Inst(update=(k, idx, j, v["host_image"]))
    for z in sets["dns_zones"]:
        insts[f'null_resource.dns_zone["{z}"]'] = Inst(force=(z, v["dns_ttl"]))
    insts["terraform_data.routes"] = Inst(
        force=(v["route_table_version"],), update=tuple(sorted((k, i) for i, k in enumerate(sets["subnets"])))
    )
    if fw_on:
        for r, rule in enumerate(sets["firewall_rules"]):
            insts[f"module.firewall[0].null_resource.rule[{r}]"] = Inst(force=(r, rule))
    return repo_files, {root: insts}


def _host_module(flavor: Flavor) -> str:
    """modules/host: a counted resource whose values other modules read back (output / triggers)."""
    if flavor == "terraform_data":
        return tpl("""
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
    return tpl("""
        # A group of hosts in one subnet. Addresses start at .10.
        resource "null_resource" "host" {
          count = var.host_count

          triggers = {
            hostname = format("%s-host-%02d", var.subnet_name, count.index + 1)
            address  = cidrhost(var.cidr_block, count.index + 10)
            image    = var.image
          }
        }

        output "addresses" {
          value = null_resource.host[*].triggers.address
        }
    """)


def _routes(flavor: Flavor) -> str:
    if flavor == "terraform_data":
        return tpl("""
            # Replaced when its version changes, updated in place when the subnets change.
            resource "terraform_data" "routes" {
              triggers_replace = {
                version = var.route_table_version
              }

              input = [for name, cidr in local.subnets : "${name}=${cidr}"]
            }
        """).rstrip("\n")
    return tpl("""
        # Replaced when its version or the subnets change.
        resource "null_resource" "routes" {
          triggers = {
            version = var.route_table_version
            routes  = join(",", [for name, cidr in local.subnets : "${name}=${cidr}"])
          }
        }
    """).rstrip("\n")
