"""app: one service stack in a single root module."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from pipelines.collect.synthetic.config import Flavor, SyntheticConfig
from pipelines.collect.synthetic.model import Inst, Instances
from pipelines.collect.synthetic.text import (
    ENVIRONMENTS,
    GITIGNORE,
    PROJECTS,
    QUEUE_RETENTION,
    Rendered,
    assignments,
    flavor_of,
    join_blocks,
    make_params,
    pick_root,
    readme,
    root_versions_tf,
    semver,
    tpl,
    under_root,
    variable,
)


def init(rng: random.Random, cfg: SyntheticConfig) -> dict[str, Any]:
    project = rng.choice(PROJECTS)
    return make_params(
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
            "root": pick_root(rng),
            "count_at": rng.choice(("default", "tfvars", "literal")),
            "worker_refs_app": rng.random() < 0.6,
            "split": rng.random() < 0.7,
        },
        counts={"worker_count": rng.randint(2, 4)},
        values={
            "app_version": semver(rng),
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


def render(p: dict[str, Any]) -> Rendered:
    n, s, c, v = p["names"], p["style"], p["counts"], p["values"]
    flavor = flavor_of(p)
    queues, cache_on, wc = p["sets"]["queues"], p["flags"]["enable_cache"], c["worker_count"]
    count_expr = str(wc) if s["count_at"] == "literal" else "var.worker_count"
    worker_vars = (
        ""
        if s["count_at"] == "literal"
        else variable(
            "worker_count",
            "number",
            wc if s["count_at"] == "default" else 1,
            f"How many {n['worker']} instances to run.",
            ("var.worker_count >= 0 && var.worker_count <= 10", "The worker_count must be between 0 and 10."),
        )
    )
    variables = join_blocks(
        variable("project", "string", n["project"], "Short name used as a prefix for every resource."),
        variable(
            "environment",
            "string",
            n["environment"],
            "Deployment environment.",
            (
                'contains(["dev", "staging", "prod"], var.environment)',
                "The environment must be one of dev, staging, prod.",
            ),
        ),
        variable(
            "app_version",
            "string",
            v["app_version"],
            "Release deployed by this stack.",
            (r'can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.app_version))', "The app_version must look like 1.2.3."),
        ),
        worker_vars,
        variable("worker_image", "string", v["worker_image"], f"Container image of the {n['worker']}s."),
        variable(
            "queues",
            "map(number)",
            {q: QUEUE_RETENTION[q] for q in queues},
            "Queues to create, keyed by name, with message retention in hours.",
        ),
        variable("enable_cache", "bool", cache_on, "Whether to run a shared cache."),
        variable("config_revision", "string", v["config_revision"], "Revision of the rendered settings."),
        variable("schema_version", "string", v["schema_version"], "Database schema the app expects."),
    )
    app_ref = "\n    app   = null_resource.app.id" if s["worker_refs_app"] else ""
    main = tpl(
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

        <<settings>>
    """,
        count_expr=count_expr,
        app_ref=app_ref,
        settings=_settings(n, flavor),
        **n,
    )
    outputs = tpl(
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
    files = {"versions.tf": root_versions_tf(flavor)}
    if s["split"]:
        files |= {"variables.tf": variables, "main.tf": main, "outputs.tf": outputs}
    else:
        files["main.tf"] = join_blocks(variables, main, outputs)
    if s["count_at"] == "tfvars":
        files["terraform.tfvars"] = assignments(
            {"environment": n["environment"], "worker_count": wc}, "Values for this deployment"
        )
    root = s["root"]
    repo_files = under_root(root, files) | {
        ".gitignore": GITIGNORE,
        "README.md": readme(
            f"{n['project']} service",
            f"Infrastructure for the {n['project']} service: release, {n['worker']}s, {n['queue']}s and settings.",
            f"`cd {root} && terraform init && terraform plan`",
        ),
    }

    prefix = f"{n['project']}-{n['environment']}"
    insts: Instances = {"null_resource.app": Inst(force=(prefix, v["app_version"]), cbd=True)}
    refs = ("null_resource.app",) if s["worker_refs_app"] else ()
    for i in range(wc):
        insts[f"null_resource.{n['worker']}[{i}]"] = Inst(force=(prefix, i, v["worker_image"]), force_refs=refs)
    for q in queues:
        insts[f'null_resource.{n["queue"]}["{q}"]'] = Inst(force=(prefix, q, QUEUE_RETENTION[q]))
    if cache_on:
        insts[f"null_resource.{n['cache']}[0]"] = Inst(force=(prefix,))
    insts[f"terraform_data.{n['config']}"] = Inst(update=(v["config_revision"], tuple(sorted(queues))))
    insts[f"terraform_data.{n['migrations']}"] = Inst(force=(v["schema_version"],), update=(v["schema_version"],))
    return repo_files, {root: insts}


def _settings(n: Mapping[str, str], flavor: Flavor) -> str:
    """The settings (updated in place) and migrations (replaced) resources, in the flavor's resource type."""
    if flavor == "terraform_data":
        return tpl(
            """
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
            **n,
        ).rstrip("\n")
    return tpl(
        """
        # Rendered application settings: a new revision replaces them.
        resource "null_resource" "<<config>>" {
          triggers = {
            revision = var.config_revision
            queues   = join(",", sort(keys(var.queues)))
          }
        }

        # Migrations run again whenever schema_version changes.
        resource "null_resource" "<<migrations>>" {
          triggers = {
            schema_version = var.schema_version
            migration      = "migrate-to-${var.schema_version}"
          }
        }
    """,
        **n,
    ).rstrip("\n")
