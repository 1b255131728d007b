"""envs: several roots (envs/dev, envs/prod ...) sharing ../../modules/<service>."""

from __future__ import annotations

import random
from typing import Any

from pipelines.collect.synthetic.config import Flavor, SyntheticConfig
from pipelines.collect.synthetic.model import Inst, Instances
from pipelines.collect.synthetic.text import (
    ENVIRONMENTS,
    GITIGNORE,
    INPUT_ATTR,
    MODULE_VERSIONS_TF,
    QUEUE_RETENTION,
    Rendered,
    assignments,
    flavor_of,
    hcl,
    join_blocks,
    make_params,
    readme,
    root_versions_tf,
    semver,
    tpl,
    variable,
)


def init(rng: random.Random, cfg: SyntheticConfig) -> dict[str, Any]:
    most = min(cfg.max_workspaces_per_repo, len(ENVIRONMENTS))
    envs = list(ENVIRONMENTS[: rng.randint(min(2, most), most)])
    if "prod" not in envs and len(envs) > 1:
        envs[-1] = "prod"
    p = make_params(
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
            f"{e}.release": semver(rng),
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


def render(p: dict[str, Any]) -> Rendered:
    n, c, v = p["names"], p["counts"], p["values"]
    mod, svc = n["module"], n["service"]
    flavor = flavor_of(p)
    res = flavor  # the resource type that holds values (text.INPUT_ATTR)
    mod_vars = join_blocks(
        variable("service_name", "string", required=True),
        variable(
            "environment",
            "string",
            required=True,
            validation=(f"contains({hcl(list(ENVIRONMENTS))}, var.environment)", "Unknown environment."),
        ),
        variable(
            "replicas",
            "number",
            1,
            "Replica count.",
            ("var.replicas >= 1 && var.replicas <= 20", "Replicas must be between 1 and 20."),
        ),
        variable("release", "string", required=True),
        variable("queues", "set(string)", []),
        variable("settings_revision", "string", required=True),
        variable("enable_monitoring", "bool", False),
    )
    mod_main = tpl(
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

        resource "<<res>>" "settings" {
          <<input>> = {
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
        res=res,
        input=INPUT_ATTR[flavor],
    )
    queue_mod = join_blocks(
        variable("name", "string", required=True),
        tpl(
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

        <<dead_letter>>

        output "queue_id" {
          value = null_resource.queue.id
        }
    """,
            schema=v["queue_schema"],
            dead_letter=_dead_letter(flavor),
        ),
    )
    mon_mod = join_blocks(
        variable("target", "string", required=True),
        tpl(
            """
        resource "null_resource" "alarm" {
          for_each = toset(["latency", "errors", "saturation"])

          triggers = {
            name = "${var.target}-${each.key}"
          }
        }

        resource "<<res>>" "dashboard" {
          <<input>> = {
            title = upper(var.target)
          }
        }
    """,
            res=res,
            input=INPUT_ATTR[flavor],
        ),
    )
    files = {
        f"modules/{mod}/main.tf": mod_main,
        f"modules/{mod}/variables.tf": mod_vars,
        f"modules/{mod}/versions.tf": MODULE_VERSIONS_TF,
        "modules/queue/main.tf": queue_mod,
        "modules/monitoring/main.tf": mon_mod,
        ".gitignore": GITIGNORE,
        "README.md": readme(
            f"{svc} environments",
            f"One root module per environment, all using `modules/{mod}`.",
            "`cd envs/<env> && terraform init && terraform plan`",
        ),
    }
    env_vars = join_blocks(
        variable("service_name", "string", svc),
        variable("replicas", "number", 1),
        variable("release", "string", required=True, description="Version deployed in this environment."),
        variable("queues", "list(string)", []),
        variable("settings_revision", "string", "r1"),
        variable("config_epoch", "string", "1", "Bump to bootstrap the environment again."),
        variable("enable_monitoring", "bool", False),
    )
    workspaces: dict[str, Instances] = {}
    for e in n["envs"]:
        root = f"envs/{e}"
        queues, mon = p["sets"][f"{e}.queues"], p["flags"][f"{e}.enable_monitoring"]
        files[f"{root}/versions.tf"] = root_versions_tf(flavor)
        files[f"{root}/variables.tf"] = env_vars
        files[f"{root}/main.tf"] = tpl(
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
            <<bootstrap>>

            output "deployment_id" {
              value = module.<<svc>>.deployment_id
            }
        """,
            svc=svc,
            mod=mod,
            env=e,
            bootstrap=_bootstrap(flavor, e),
        )
        files[f"{root}/terraform.tfvars"] = assignments(
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
        insts: Instances = {f"{m}.null_resource.deployment": Inst(force=(full, v[f"{e}.release"]), cbd=True)}
        for i in range(c[f"{e}.replicas"]):
            insts[f"{m}.null_resource.replica[{i}]"] = Inst(
                force=(full, i), force_refs=(f"{m}.null_resource.deployment",)
            )
        for i in range(c["health_checks"]):
            insts[f"{m}.null_resource.health_check[{i}]"] = Inst(force=(full, i))
        for q in queues:
            insts[f'{m}.module.queue["{q}"].null_resource.queue'] = Inst(force=(full, q, v["queue_schema"]))
            insts[f'{m}.module.queue["{q}"].terraform_data.dead_letter'] = Inst(update=(full, q))
        insts[f"{m}.terraform_data.settings"] = Inst(update=(v[f"{e}.settings_revision"], tuple(sorted(queues))))
        if mon:
            for a in ("errors", "latency", "saturation"):
                insts[f'{m}.module.monitoring[0].null_resource.alarm["{a}"]'] = Inst(force=(full, a))
            insts[f"{m}.module.monitoring[0].terraform_data.dashboard"] = Inst(update=(full,))
        insts["terraform_data.bootstrap"] = Inst(force=(v[f"{e}.config_epoch"],), update=(e,))
        workspaces[root] = insts
    return files, workspaces


def _dead_letter(flavor: Flavor) -> str:
    if flavor == "terraform_data":
        return tpl("""
            resource "terraform_data" "dead_letter" {
              input = "${var.name}-dlq"
            }
        """).rstrip("\n")
    return tpl("""
        resource "null_resource" "dead_letter" {
          triggers = {
            name = "${var.name}-dlq"
          }
        }
    """).rstrip("\n")


def _bootstrap(flavor: Flavor, env: str) -> str:
    if flavor == "terraform_data":
        return tpl(
            """
            resource "terraform_data" "bootstrap" {
              triggers_replace = [var.config_epoch]
              input            = "<<env>>"
            }
        """,
            env=env,
        ).rstrip("\n")
    return tpl(
        """
        resource "null_resource" "bootstrap" {
          triggers = {
            config_epoch = var.config_epoch
            environment  = "<<env>>"
          }
        }
    """,
        env=env,
    ).rstrip("\n")
