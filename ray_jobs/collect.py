"""Collect Terraform repositories and real ``terraform plan`` ground truth → repos.parquet, plans.parquet.

    python -m ray_jobs.collect --config ray_jobs/configs/collect.yaml [key=value ...]
    ray job submit --working-dir . -- python -m ray_jobs.collect --config ray_jobs/configs/collect.yaml

One Ray Data pipeline: sources → fetch + scrub + discover (one task per source) → analyze + screen
(one task per workspace) → sandboxed plan (on nodes with the ``terraform`` resource) → Parquet.
Every source yields one repos row and every discovered workspace one plans row, whatever fails.
A rerun skips workspaces already planned for the same commit and never duplicates rows.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from pipelines import storage
from pipelines.collect.azure_devops import AzureDevOpsConfig, azure_devops_repos
from pipelines.collect.discover import DiscoverLimits
from pipelines.collect.git import FetchLimits, FileLimits
from pipelines.collect.github import GitHubSearchConfig, github_search
from pipelines.collect.repo import CollectSettings, WorkspaceTask, collect_source
from pipelines.collect.sources import Source, dedupe, from_local_dirs, from_manifest, from_urls
from pipelines.collect.synthetic import SyntheticConfig
from pipelines.collect.synthetic.corpus import repo_refs
from pipelines.collect.workspace import (
    RULES_VERSION,
    AnalyzeSettings,
    analyze_task,
    base_row,
    encode,
    worker_parser,
)
from pipelines.terraform.install import (
    BUILTIN_PROVIDER,
    MIRROR_PROVIDERS,
    ensure_mirror,
    ensure_terraform,
    terraform_version,
)
from pipelines.terraform.sandbox import IsolationUnavailable, SandboxConfig, resolve_isolation
from ray_jobs.common import (
    TERRAFORM_RESOURCE,
    RayConfig,
    attach,
    parse_args,
    setup_logging,
    write_table_atomic,
)
from schemas.config import Strict
from schemas.tables import PLANS, conform

logger = logging.getLogger("tfpredict.collect")
DEFAULT_CONFIG = str(Path(__file__).parent / "configs" / "collect.yaml")


# ---------------------------------------------------------------- config
class SourcesConfig(Strict):
    urls: list[str] = []  # git URLs (https, ssh, file, git@host:path)
    ref: str | None = None  # ref for `urls` (default branch when None)
    manifests: list[str] = []  # .txt / .csv / .yaml manifests
    local_dirs: list[str] = []  # plain directories (not git)
    github: GitHubSearchConfig | None = None
    azure_devops: AzureDevOpsConfig | None = None
    synthetic: SyntheticConfig | None = None  # the embedded default corpus
    synthetic_history: bool = True  # plan every commit of synthetic repos against its parent


class CloneConfig(Strict):
    depth: int = 1
    timeout_s: float = 300  # the fetch alone
    max_repo_mb: float = 500  # objects on disk (compressed) for one repository
    allowed_protocols: list[str] = ["https", "ssh", "file"]
    max_commits: int = 20  # history mode
    # one source's fetch + tree walk + file reads + discovery; past it: one `timeout` row, no workspaces
    source_timeout_s: float = 600


class FilesConfig(Strict):
    # passing any cap but max_file_kb ends the source as one `too_large` row with no workspaces
    max_file_kb: float = 512  # larger files are skipped and listed in skipped_files; the rest is read
    max_files: int = 5000  # files to read (by extension) in one tree
    max_tree_entries: int = 200_000  # directory entries visited in one tree walk (git or a local dir)
    max_total_mb: float = 256  # uncompressed bytes decoded per source: trees walked + files read
    max_tree_repeats: int = 64  # one tree object reached more often than this: a git bomb
    max_path_bytes: int = 4096  # Linux PATH_MAX: longer paths cannot be checked out


class DiscoverConfig(Strict):
    min_tf_files: int = 1
    max_tf_files: int = 200
    max_workspace_kb: float = 2048
    max_workspaces: int = 200


class PlanConfig(Strict):
    enabled: bool = True  # false: analyze and screen only; terraform never starts (nor is it installed)
    timeout_s: float = 120
    cpu_s: int = 300
    memory_mb: int = 2048
    # auto: bubblewrap when the node offers it, else refuse untrusted code (our synthetic repos may run
    # uncontained); bwrap: always require it; none: no containment, only for code you trust
    isolation: Literal["auto", "bwrap", "none"] = "auto"
    bwrap: str = "bwrap"  # bubblewrap binary on each node (name on PATH or absolute path)
    max_plan_json_mb: float = 64  # `terraform show -json` output per workspace; larger → too_large
    max_resource_changes: int = 10000  # per workspace; more → too_large
    parse_timeout_s: float = 10
    static_fallback: bool = True  # label providers outside the mirror with the static planner
    mirror_dir: str | None = None  # default: $TFPREDICT_HOME/tf-mirror on each node
    # CPU (and `terraform` resource) per plan task. 0.5: two plans in flight per core. terraform is CPU-bound
    # (xargs -P 3 on 2 cores is no faster than -P 2), but Ray Data notices a finished task only every ~0.1 s
    # and then dispatches the next: with one plan per core that gap idles the core ~25% of the time.
    num_cpus: float = 0.5
    retry_failed: bool = False  # rerun: plan again rows that ended in error/timeout


class CollectConfig(Strict):
    output_dir: str = "data"
    cache_dir: str | None = None  # git cache, per node (default: $TFPREDICT_HOME/git-cache)
    resume: bool = True  # false: replan everything
    sources: SourcesConfig = SourcesConfig()
    clone: CloneConfig = CloneConfig()
    files: FilesConfig = FilesConfig()
    discover: DiscoverConfig = DiscoverConfig()
    plan: PlanConfig = PlanConfig()
    ray: RayConfig = RayConfig()


# ---------------------------------------------------------------- sources
def resolve_sources(cfg: CollectConfig) -> list[Source]:
    s = cfg.sources
    out: list[Source] = []
    if s.synthetic is not None:  # each repo is built on the node that collects it (corpus.materialize)
        for url, name, spec in repo_refs(s.synthetic):
            out.append(
                Source(
                    url=url,
                    kind="git",
                    origin="synthetic",
                    trusted=True,
                    history=s.synthetic_history,
                    labels={"synthetic": name, "seed": str(s.synthetic.seed), "spec": spec},
                )
            )
    schemes = cfg.clone.allowed_protocols
    out += from_urls(s.urls, ref=s.ref, allowed_schemes=schemes) if s.urls else []
    for m in s.manifests:
        out += from_manifest(m, allowed_schemes=schemes)
    out += from_local_dirs(s.local_dirs) if s.local_dirs else []
    if s.github is not None:
        out += github_search(s.github)
    if s.azure_devops is not None:
        out += azure_devops_repos(s.azure_devops)
    return dedupe(out)


# ---------------------------------------------------------------- UDFs (run on Ray workers)
def collect_udf(row: dict[str, Any], settings: CollectSettings) -> dict[str, Any]:
    src = Source.from_row(row)
    repo_row, tasks = collect_source(src, settings)
    return {
        "repo": json.dumps(repo_row, default=datetime.isoformat),
        "trusted": src.trusted,
        "workspace_ids": [t.workspace_id for t in tasks],
        "tasks": [t.to_json() for t in tasks],
    }


def explode_udf(row: dict[str, Any], skip: frozenset[str]) -> list[dict[str, Any]]:
    return [{"task": t} for wid, t in zip(row["workspace_ids"], row["tasks"], strict=True) if wid not in skip]


_SANDBOX: dict[str, SandboxConfig] = {}


def _sandbox(plan: dict[str, Any]) -> SandboxConfig:
    """Per-worker sandbox settings; terraform and the mirror are resolved on the node that plans."""
    key = json.dumps(plan, sort_keys=True)
    if key not in _SANDBOX:
        mirror = ensure_mirror(Path(plan["mirror_dir"]) if plan["mirror_dir"] else None)
        _SANDBOX[key] = SandboxConfig(
            terraform=str(ensure_terraform()),
            mirror=str(mirror),
            timeout_s=plan["timeout_s"],
            cpu_s=plan["cpu_s"],
            memory_mb=plan["memory_mb"],
            max_plan_json_mb=plan["max_plan_json_mb"],
            max_resource_changes=plan["max_resource_changes"],
            isolation=plan["isolation"],
            bwrap=plan["bwrap"],
        )
    return _SANDBOX[key]


def node_setup(plan: dict[str, Any]) -> dict[str, Any]:
    """On one node, before its plan tasks: install terraform and the mirror (once, atomically), probe isolation."""
    import ray

    cfg = _sandbox(plan)
    try:
        isolation, problem = resolve_isolation(cfg), None
    except IsolationUnavailable as e:
        isolation, problem = "none", str(e)
    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "terraform_version": terraform_version(cfg.terraform),
        "isolation": isolation,
        "problem": problem,
    }


def workspace_udf(batch: pa.Table, analyze: AnalyzeSettings, plan: dict[str, Any]) -> pa.Table:
    """Analyze, screen and plan workspaces → plans rows in the declared schema (one task per workspace).

    A task, not an actor: a killed worker's task is retried by Ray, and workers keep the parser
    process and sandbox settings between tasks (module-level caches).
    """
    import ray

    from pipelines.terraform.ground_truth import plan_encoded

    node = ray.get_runtime_context().get_node_id()
    rows = []
    for text in batch.column("task").to_pylist():
        task = WorkspaceTask.from_json(text)
        try:
            analyzed, route = analyze_task(task, analyze, worker_parser(analyze.parse_timeout_s))
        except Exception as e:  # keep the row: a bug must not lose a workspace
            logger.exception("analyze failed for %s", task.workspace_id)
            analyzed, route = base_row(task), "skip"
            analyzed.update(
                plan_status="error", plan_error=f"internal: {type(e).__name__}: {e}"[:600], plan_step="analyze"
            )
        sandbox = _sandbox(plan) if plan["enabled"] and route == "terraform" else None
        row = plan_encoded(encode(analyzed, route, task), sandbox, node)
        row["collected_at"] = datetime.now(UTC)
        rows.append(row)
    return conform(rows, "plans")


# ---------------------------------------------------------------- driver
def allowed_providers() -> tuple[str, ...]:
    return tuple(sorted({p.source for p in MIRROR_PROVIDERS} | {BUILTIN_PROVIDER}))


def _existing_plans(location: str, retry_failed: bool) -> set[str]:
    """Workspaces an earlier run finished under today's rules (rows made under older rules are replanned)."""
    if not storage.listing(location):
        return set()
    fs, path = storage.resolve(location)
    cols = ["workspace_id", "plan_status", "rules_version"]
    existing = pads.dataset(path, format="parquet", filesystem=fs)
    if not set(cols) <= set(existing.schema.names):  # a table from before rules_version
        return set()
    t = existing.to_table(columns=cols).to_pylist()
    return {
        r["workspace_id"]
        for r in t
        if r["rules_version"] == RULES_VERSION and not (retry_failed and r["plan_status"] in ("error", "timeout"))
    }


def prepare_nodes(plan: dict[str, Any], resource: bool) -> list[dict[str, Any]]:
    """Run ``node_setup`` once on every alive node that may plan (with the terraform resource, if any has it)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n["Alive"] and (not resource or n["Resources"].get(TERRAFORM_RESOURCE))]
    setup = ray.remote(node_setup)
    refs = [
        setup.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
            plan
        )
        for n in nodes
    ]
    return ray.get(refs)


def check_isolation(nodes: list[dict[str, Any]], isolation: str, untrusted: int) -> None:
    """Refuse to start when a node cannot contain terraform and the run would need it to."""
    bad = [n for n in nodes if n["problem"]]
    if not bad or isolation == "none":
        return
    if isolation == "auto" and untrusted == 0:
        logger.warning("%d node(s) lack isolation; only trusted (synthetic) repositories will be planned", len(bad))
        return
    who = ", ".join(n["node_id"][:12] for n in bad)
    raise SystemExit(
        f"refusing to plan {untrusted} workspace(s) of collected (untrusted) repositories: node(s) {who}: "
        f"{bad[0]['problem']}"
    )


def run(cfg: CollectConfig) -> dict[str, Any]:
    import ray

    start = time.monotonic()
    cfg.output_dir = out = attach(cfg.ray, cfg.output_dir)
    sources = resolve_sources(cfg)
    if not sources:
        raise SystemExit("no sources: set sources.urls, manifests, local_dirs, github, azure_devops or synthetic")
    settings = CollectSettings(
        cache_dir=cfg.cache_dir,  # None: each node's own $TFPREDICT_HOME/git-cache
        fetch=FetchLimits(
            depth=cfg.clone.depth,
            timeout_s=cfg.clone.timeout_s,
            max_repo_mb=cfg.clone.max_repo_mb,
            allowed_protocols=tuple(cfg.clone.allowed_protocols),
            max_commits=cfg.clone.max_commits,
            source_timeout_s=cfg.clone.source_timeout_s,
        ),
        files=FileLimits(**cfg.files.model_dump()),
        discover=DiscoverLimits(**cfg.discover.model_dump()),
    )
    logger.info("collecting %d sources into %s", len(sources), out)

    # Phase A: one task per source; repo rows are small and go to the driver.
    fetched = (
        ray.data.from_items([s.to_row() for s in sources], override_num_blocks=len(sources))
        .map(collect_udf, fn_kwargs={"settings": settings}, num_cpus=0.5)
        .materialize()
    )
    repos, all_ids = [], set()
    trusted_ids: dict[str, bool] = {}
    for r in fetched.select_columns(["repo", "trusted", "workspace_ids"]).iter_rows():
        repos.append(json.loads(r["repo"]))
        repos[-1]["collected_at"] = datetime.fromisoformat(repos[-1]["collected_at"])
        all_ids.update(r["workspace_ids"])
        trusted_ids.update(dict.fromkeys(r["workspace_ids"], bool(r["trusted"])))
    write_table_atomic(conform(repos, "repos"), storage.join(out, "repos.parquet"))

    fetch_s = time.monotonic() - start
    # Phase B: one row per workspace; skip what an earlier run already planned.
    phase_b = time.monotonic()
    plans_path = storage.join(out, "plans.parquet")
    done = _existing_plans(plans_path, cfg.plan.retry_failed) if cfg.resume else set()
    todo = all_ids - done
    logger.info(
        "%d workspaces discovered, %d already planned, %d to plan", len(all_ids), len(all_ids & done), len(todo)
    )
    tmp = storage.temp_sibling(plans_path)
    fs, tmp_path = storage.resolve(tmp)
    fs.create_dir(tmp_path)
    if todo:
        analyze = AnalyzeSettings(
            allowed_providers=allowed_providers(),
            static_fallback=cfg.plan.static_fallback,
            parse_timeout_s=cfg.plan.parse_timeout_s,
        )
        plan_args: dict[str, Any] = {"num_cpus": cfg.plan.num_cpus}
        has_resource = ray.cluster_resources().get(TERRAFORM_RESOURCE, 0) > 0
        if has_resource:
            plan_args["resources"] = {TERRAFORM_RESOURCE: cfg.plan.num_cpus}
        else:
            logger.warning("no node advertises the %r resource; planning on any node", TERRAFORM_RESOURCE)
        if cfg.plan.enabled:  # terraform, mirror and isolation once per node, before any plan task
            nodes = prepare_nodes(cfg.plan.model_dump(), has_resource)
            check_isolation(nodes, cfg.plan.isolation, sum(not trusted_ids[w] for w in todo))
        (
            fetched.flat_map(explode_udf, fn_kwargs={"skip": frozenset(done)})
            .repartition(len(todo))  # one block per workspace, so that plans spread over every slot
            .map_batches(
                workspace_udf,
                batch_size=1,
                batch_format="pyarrow",
                fn_kwargs={"analyze": analyze, "plan": cfg.plan.model_dump()},
                **plan_args,
            )
            # same remote args as the map, so Ray Data fuses the write into it: a separate write
            # operator would hold back part of the CPU budget and halve the plan concurrency
            .write_parquet(tmp_path, filesystem=fs, mode="overwrite", ray_remote_args=plan_args)
        )
    keep = all_ids & done
    if keep:  # carry earlier rows of still-discovered workspaces over, untouched
        old = pads.dataset(storage.resolve(plans_path)[1], format="parquet", filesystem=fs)
        old = old.to_table(filter=pads.field("workspace_id").isin(list(keep)))
        pq.write_table(old.cast(PLANS), f"{tmp_path}/previous-run.parquet", filesystem=fs)
    if not storage.listing(tmp):
        pq.write_table(PLANS.empty_table(), f"{tmp_path}/empty.parquet", filesystem=fs)
    written = pq.read_table(tmp_path, columns=["workspace_id"], filesystem=fs).column("workspace_id").to_pylist()
    if len(written) != len(all_ids) or set(written) != all_ids:  # never publish a table that lost or doubled rows
        missing, extra = sorted(all_ids - set(written))[:10], len(written) - len(set(written))
        raise RuntimeError(
            f"plans table check failed: {len(written)} rows for {len(all_ids)} workspaces "
            f"(missing e.g. {missing}, duplicates {extra}); left {tmp} for inspection"
        )
    storage.replace_dir(tmp, plans_path)
    plan_s = time.monotonic() - phase_b
    summary = summarize(out, time.monotonic() - start)
    summary["planned_now"] = len(todo)
    summary["timings"] = {"fetch_stage_s": round(fetch_s, 2), "plan_stage_s": round(plan_s, 2)}
    storage.write_json(storage.join(out, "collect_summary.json"), summary)
    return summary


def summarize(out: str, elapsed: float) -> dict[str, Any]:
    fs, root = storage.resolve(out)
    repos = pq.read_table(f"{root}/repos.parquet", columns=["status", "error", "secrets_found"], filesystem=fs)
    plans = pq.read_table(
        f"{root}/plans.parquet",
        columns=["plan_status", "planner", "plan_step", "plan_error", "secrets_found", "isolation"],
        filesystem=fs,
    ).to_pylist()
    repos = repos.to_pylist()
    reason = lambda e: (e or "").split(":", 1)[0]  # noqa: E731
    summary = {
        "output_dir": str(out),
        "repos": len(repos),
        "repos_by_status": dict(Counter(r["status"] for r in repos)),
        "repo_errors": dict(Counter(reason(r["error"]) for r in repos if r["status"] != "ok")),
        "workspaces": len(plans),
        "plans_by_status": dict(Counter(p["plan_status"] for p in plans)),
        "plans_by_planner": dict(Counter(p["planner"] for p in plans if p["plan_status"] == "ok")),
        "plans_by_isolation": dict(Counter(p["isolation"] for p in plans if p["isolation"])),
        "plan_reasons": dict(
            Counter(f"{p['plan_step']}:{reason(p['plan_error'])}" for p in plans if p["plan_status"] != "ok")
        ),
        "secrets_scrubbed": sum(r["secrets_found"] or 0 for r in repos),
        "elapsed_s": round(elapsed, 1),
        "workspaces_per_s": round(len(plans) / elapsed, 2) if elapsed else None,
    }
    return summary


def format_summary(s: dict[str, Any]) -> str:
    lines = [
        "",
        "collect summary",
        f"  repos       {s['repos']:>6}  {s['repos_by_status']}",
    ]
    if s["repo_errors"]:
        lines.append(f"              reasons {s['repo_errors']}")
    lines += [
        f"  workspaces  {s['workspaces']:>6}  {s['plans_by_status']}  planner {s['plans_by_planner']}",
        f"              terraform ran under {s['plans_by_isolation'] or 'nothing (no plan ran)'}",
    ]
    if s["plan_reasons"]:
        lines.append(f"              reasons {s['plan_reasons']}")
    lines += [
        f"  secrets scrubbed {s['secrets_scrubbed']}",
        f"  {s['elapsed_s']} s, {s['workspaces_per_s']} workspaces/s",
        f"  wrote {s['output_dir']}/repos.parquet and {s['output_dir']}/plans.parquet",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    cfg = parse_args(CollectConfig, argv, __doc__ or "", DEFAULT_CONFIG)
    print(format_summary(run(cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
