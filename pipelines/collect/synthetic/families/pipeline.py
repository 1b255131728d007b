"""pipeline: data pipeline with a counted module, a for-expression map and map(object)."""

from __future__ import annotations

import random
from typing import Any

from pipelines.collect.synthetic.config import Flavor, SyntheticConfig
from pipelines.collect.synthetic.model import Inst, Instances
from pipelines.collect.synthetic.text import (
    GITIGNORE,
    INPUT_ATTR,
    MODULE_VERSIONS_TF,
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

STAGES = ("ingest", "validate", "transform", "enrich", "aggregate", "publish")
BUCKETS = {
    "raw": (7, False),
    "staging": (14, False),
    "curated": (90, True),
    "archive": (365, True),
    "exports": (30, True),
}


def init(rng: random.Random, cfg: SyntheticConfig) -> dict[str, Any]:
    stages = sorted(rng.sample(range(len(STAGES)), rng.randint(2, 4)))
    return make_params(
        names={"pipeline": rng.choice(("clickstream", "billing_events", "telemetry", "orders_etl"))},
        style={"root": pick_root(rng), "count_at": rng.choice(("default", "tfvars"))},
        counts={"pool_count": rng.randint(1, 3), "workers_per_pool": rng.randint(1, 3)},
        values={
            "release": semver(rng),
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


def render(p: dict[str, Any]) -> Rendered:
    n, s, c, v, sets = p["names"], p["style"], p["counts"], p["values"], p["sets"]
    pipe, notify = n["pipeline"], p["flags"]["enable_notifications"]
    flavor = flavor_of(p)
    res = flavor  # the resource type that holds values (text.INPUT_ATTR)
    buckets = {b: {"retention_days": BUCKETS[b][0], "versioning": BUCKETS[b][1]} for b in sets["buckets"]}
    variables = join_blocks(
        variable(
            "pipeline",
            "string",
            pipe,
            "Pipeline name (lower snake case).",
            ('can(regex("^[a-z][a-z0-9_]*$", var.pipeline))', "The pipeline name must be lower snake case."),
        ),
        variable("release", "string", v["release"]),
        variable("code_version", "string", v["code_version"], "Version of the job code."),
        variable("schedule", "string", v["schedule"]),
        variable("catalog_schema", "string", v["catalog_schema"]),
        variable(
            "stages",
            "list(string)",
            sets["stages"],
            "Stages, in execution order.",
            ("length(var.stages) > 0", "At least one stage is required."),
        ),
        variable(
            "buckets",
            "map(object({\n    retention_days = number\n    versioning     = bool\n  }))",
            buckets,
            "Storage areas of the pipeline.",
        ),
        variable(
            "pool_count",
            "number",
            c["pool_count"] if s["count_at"] == "default" else 1,
            "Worker pools.",
            ("var.pool_count <= 8", "At most 8 pools are allowed."),
        ),
        variable("workers_per_pool", "number", c["workers_per_pool"]),
        variable("enable_notifications", "bool", notify),
    )
    main = tpl(
        """
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

        <<scheduler_and_catalog>>

        resource "null_resource" "notifier" {
          count = var.enable_notifications ? 1 : 0

          triggers = {
            channel = "#${replace(var.pipeline, "_", "-")}-alerts"
          }

          depends_on = [<<res>>.scheduler]
        }

        output "jobs" {
          value = local.jobs
        }
    """,
        scheduler_and_catalog=_scheduler_and_catalog(flavor),
        res=res,
    )
    pool = join_blocks(
        variable("pipeline", "string", required=True),
        variable("pool_index", "number", required=True),
        variable("workers", "number", 1),
        variable("release_id", "string", required=True, description="Workers restart with every release."),
        tpl(
            """
            resource "null_resource" "worker" {
              count = var.workers

              triggers = {
                name    = format("%s-pool%d-worker%d", var.pipeline, var.pool_index, count.index)
                release = var.release_id
              }
            }

            resource "<<res>>" "pool" {
              <<input>> = {
                index = var.pool_index
                size  = var.workers
              }
            }
        """,
            res=res,
            input=INPUT_ATTR[flavor],
        ),
    )
    files = {
        "versions.tf": root_versions_tf(flavor),
        "variables.tf": variables,
        "main.tf": main,
        "modules/worker_pool/main.tf": pool,
        "modules/worker_pool/versions.tf": MODULE_VERSIONS_TF,
    }
    if s["count_at"] == "tfvars":
        files["terraform.tfvars"] = assignments({"pool_count": c["pool_count"]}, "Capacity")
    root = s["root"]
    repo_files = under_root(root, files) | {
        ".gitignore": GITIGNORE,
        "README.md": readme(
            f"{pipe} pipeline",
            "Batch pipeline: storage, jobs per stage, worker pools.",
            f"`cd {root} && terraform plan`",
        ),
    }
    insts: Instances = {"null_resource.release": Inst(force=(pipe, v["release"]), cbd=True)}
    for b in sets["buckets"]:
        insts[f'null_resource.bucket["{b}"]'] = Inst(force=(pipe, b, *BUCKETS[b]))
    for st in sets["stages"]:
        insts[f'null_resource.job["{st}"]'] = Inst(force=(pipe, st, v["code_version"]))
    for i in range(c["pool_count"]):
        for j in range(c["workers_per_pool"]):
            insts[f"module.worker_pool[{i}].null_resource.worker[{j}]"] = Inst(
                force=(pipe, i, j), force_refs=("null_resource.release",)
            )
        insts[f"module.worker_pool[{i}].terraform_data.pool"] = Inst(update=(i, c["workers_per_pool"]))
    insts["terraform_data.scheduler"] = Inst(update=(v["schedule"], tuple(sets["stages"])))
    insts["terraform_data.catalog"] = Inst(force=(v["catalog_schema"],), update=tuple(sorted(sets["buckets"])))
    if notify:
        insts["null_resource.notifier[0]"] = Inst(force=(pipe,))
    return repo_files, {root: insts}


def _scheduler_and_catalog(flavor: Flavor) -> str:
    if flavor == "terraform_data":
        return tpl("""
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
        """).rstrip("\n")
    return tpl("""
        resource "null_resource" "scheduler" {
          triggers = {
            schedule = var.schedule
            order    = join(" -> ", var.stages)
          }
        }

        # The data catalog is rebuilt for every schema version and every change of buckets.
        resource "null_resource" "catalog" {
          triggers = {
            schema  = var.catalog_schema
            buckets = join(",", sort(keys(var.buckets)))
          }
        }
    """).rstrip("\n")
