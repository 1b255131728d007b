"""Plan-stage overhead of the collect job vs plain ``xargs -P <cores>`` running the same terraform.

    .venv/bin/python benchmarks/collect_bench.py [--repos 56] [--cores N] [--sample 16]

Both sides plan the same >= 40 synthetic workspaces (fresh state) with the same terraform binary and
offline provider mirror. Ours: the collect job's phase B (analyze + screen + sandboxed init/plan/show +
Parquet write) on a local Ray cluster with N CPUs, run twice: contained by bubblewrap (the default) and
with ``plan.isolation=none`` (the plan stage as it was before bubblewrap). Beside it, the sandbox's own
per-plan overhead: ``plan_workspace`` on a sample of the workspaces, one at a time, bwrap and none
interleaved. Baseline: the workspaces already written to disk, ``xargs -P N`` running
``terraform init && plan && show -json`` in each, nothing else. Ratio printed last.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.terraform.install import cli_config, ensure_mirror, ensure_terraform  # noqa: E402
from pipelines.terraform.sandbox import SandboxConfig, plan_workspace, write_files  # noqa: E402
from ray_jobs import collect  # noqa: E402
from schemas.config import load_config  # noqa: E402


def baseline(workspaces: list[dict], cores: int, work: Path) -> float:
    """xargs -P cores: init + plan + show -json per workspace, files pre-written, same mirror."""
    tf, mirror = ensure_terraform(), ensure_mirror()
    work.mkdir(parents=True, exist_ok=True)
    rc = work / "terraformrc"
    rc.write_text(cli_config(mirror))
    dirs = []
    for i, ws in enumerate(workspaces):
        root = work / f"ws{i}"
        write_files(root, ws["files"])
        dirs.append(str(root / ws["path"]) if ws["path"] != "." else str(root))
    script = (
        f'cd "$0" && {tf} init -input=false -backend=false -no-color >/dev/null && '
        f"{tf} plan -input=false -lock=false -refresh=false -no-color -out=p >/dev/null && "
        f"{tf} show -json p >plan.json"
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(work),
        "TF_CLI_CONFIG_FILE": str(rc),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
    }
    start = time.perf_counter()
    subprocess.run(
        ["xargs", "-0", "-P", str(cores), "-n", "1", "sh", "-c", script],
        input="\0".join(dirs).encode(),
        env=env,
        check=True,
    )
    elapsed = time.perf_counter() - start
    ok = sum((Path(d) / "plan.json").stat().st_size > 0 for d in dirs)
    assert ok == len(dirs), f"baseline planned {ok}/{len(dirs)}"
    return elapsed


def sandbox_overhead(workspaces: list[dict], sample: int) -> tuple[float, float]:
    """Mean seconds per plan_workspace call, (bwrap, none), sequential and interleaved to share the noise."""
    cfg = SandboxConfig(terraform=str(ensure_terraform()), mirror=str(ensure_mirror()))
    times: dict[str, list[float]] = {"bwrap": [], "none": []}
    plan_workspace(workspaces[0]["files"], workspaces[0]["path"], cfg)  # warm the page cache and the probe
    for ws in workspaces[:sample]:
        for isolation in ("bwrap", "none"):
            start = time.perf_counter()
            res = plan_workspace(ws["files"], ws["path"], SandboxConfig(**{**cfg.__dict__, "isolation": isolation}))
            times[isolation].append(time.perf_counter() - start)
            assert res.status == "ok" and res.isolation == isolation, res.error
    return sum(times["bwrap"]) / len(times["bwrap"]), sum(times["none"]) / len(times["none"])


def run_collect(work: Path, name: str, repos: int, cores: int, isolation: str) -> tuple[float, list[dict]]:
    cfg = load_config(
        collect.CollectConfig,
        None,
        [
            f"output_dir={work / name}",
            f"cache_dir={work / 'cache'}",
            f"ray.num_cpus={cores}",
            f"sources.synthetic={{n_repos: {repos}, seed: 1, commits_per_repo: 1, cloud_fraction: 0}}",
            "sources.synthetic_history=false",
            f"plan.isolation={isolation}",
        ],
    )
    summary = collect.run(cfg)
    plans = pq.read_table(work / name / "plans.parquet", columns=["path", "files", "plan_status", "isolation"])
    rows = plans.to_pylist()
    assert len(rows) >= 40, f"only {len(rows)} workspaces: raise --repos"
    assert all(p["plan_status"] == "ok" and p["isolation"] == isolation for p in rows), "every workspace must plan"
    return summary["timings"]["plan_stage_s"], rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repos", type=int, default=56)
    p.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    p.add_argument("--sample", type=int, default=16, help="workspaces for the sequential sandbox overhead")
    args = p.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with tempfile.TemporaryDirectory(prefix="tfpredict-bench-") as tmp:
        work = Path(tmp)
        # uncontained first: it also warms the git cache, so both runs fetch nothing
        none_s, _ = run_collect(work, "none", args.repos, args.cores, "none")
        ours, plans = run_collect(work, "bwrap", args.repos, args.cores, "bwrap")
        per_bwrap, per_none = sandbox_overhead(plans, args.sample)
        base = baseline(plans, args.cores, work / "baseline")
    print(f"workspaces: {len(plans)}  cores: {args.cores}")
    print(
        f"sandbox per plan (sequential, {args.sample} workspaces): bwrap {per_bwrap * 1000:.0f} ms, "
        f"none {per_none * 1000:.0f} ms, overhead {(per_bwrap - per_none) * 1000:+.0f} ms "
        f"({(per_bwrap / per_none - 1) * 100:+.1f}%)"
    )
    print(f"plan stage: bwrap {ours:.2f} s, isolation=none {none_s:.2f} s, bwrap/none {ours / none_s:.3f} (limit 1.10)")
    print(f"ours (collect plan stage, Ray Data, bwrap): {ours:.2f} s")
    print(f"baseline (xargs -P {args.cores} terraform init+plan+show): {base:.2f} s")
    print(f"ratio ours/baseline: {ours / base:.2f}")


if __name__ == "__main__":
    main()
