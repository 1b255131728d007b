"""Every stage as a Ray job: a real head started with ``ray start --head`` on loopback (its own temp dir, its
dashboard serving the job API), jobs submitted with the real ``ray job submit --working-dir <repo>`` CLI.

Shown here: the collect stage and then the whole pipeline end SUCCEEDED with their artifacts; the job's copy
of the working directory holds code, not ``.git``, ``data/`` or venvs; a relative ``output_dir`` is refused
with the fix; a pipeline stopped (``ray job stop``) during training and submitted again skips the current
stages and resumes training from its last checkpoint; a third submission skips every stage.

Starts its own Ray cluster beside the session's: run alone, e.g.
    flock /tmp/tfpredict-ray.lock .venv/bin/python -m pytest tests/ray_jobs/test_job_submit.py -q -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SYNTH = {"n_repos": 4, "seed": 3, "commits_per_repo": 2, "cloud_fraction": 0.0}
SMALL_TINY = ["hidden_size=64", "num_hidden_layers=2", "intermediate_size=176", "num_attention_heads=4"]
PIPELINE = [
    f"collect.sources.synthetic={json.dumps(SYNTH)}",
    'build_dataset.tasks={"plan_prediction": 1.0}',
    "build_dataset.split.min_groups=2",
    "train.method=lora",
    "train.max_steps=30",
    "train.eval_every=10",
    "train.checkpoint_every=2",
    "train.export.merged=false",
    *(f"train.tiny.{s}" for s in SMALL_TINY),
    "evaluate.limit=3",
    "evaluate.max_new_tokens=64",
    "evaluate.baselines=[trivial,static]",
    "evaluate.constrained=[true]",
    "evaluate.bootstrap=50",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Head:
    dashboard: str
    env: dict[str, str]

    def submit(self, job_id: str, *entrypoint: str, wait: bool = True) -> subprocess.CompletedProcess[str]:
        """The real CLI: ``ray job submit --working-dir <repo> -- <entrypoint>``."""
        cmd = [str(BIN / "ray"), "job", "submit", f"--address={self.dashboard}", f"--submission-id={job_id}",
               f"--working-dir={REPO}", *([] if wait else ["--no-wait"]), "--", *entrypoint]  # fmt: skip
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=900, check=False)

    def client(self) -> Any:
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.dashboard)

    def status(self, job_id: str) -> str:
        return str(self.client().get_job_status(job_id))

    def logs(self, job_id: str) -> str:
        return str(self.client().get_job_logs(job_id))


@pytest.fixture(scope="module")
def head() -> Iterator[Head]:
    """``ray start --head --block`` in its own process group (SIGTERM ends it and every process it started;
    ``ray stop`` would also stop the session's cluster)."""
    temp = tempfile.mkdtemp(prefix="tfh-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env |= {"RAY_AUTH_MODE": "disabled", "PATH": f"{BIN}{os.pathsep}{env['PATH']}", "RAY_USAGE_STATS_ENABLED": "0"}
    port, dash = _free_port(), _free_port()
    cmd = [str(BIN / "ray"), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
           "--num-cpus=2", '--resources={"terraform": 2}', "--include-dashboard=true", "--dashboard-host=127.0.0.1",
           f"--dashboard-port={dash}", f"--temp-dir={temp}", "--disable-usage-stats"]  # fmt: skip
    log = open(Path(temp) / "ray-start.log", "w")  # noqa: SIM115 - open for the cluster's lifetime
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    h = Head(f"http://127.0.0.1:{dash}", env)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                h.client().list_jobs()
                break
            except Exception as e:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ray start failed: {(Path(temp) / 'ray-start.log').read_text()[-3000:]}") from e
                time.sleep(1)
        yield h
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _wait(head: Head, job_id: str, until: set[str], timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    while (s := head.status(job_id)) not in until:
        assert time.monotonic() < deadline, f"{job_id} still {s}:\n{head.logs(job_id)[-4000:]}"
        time.sleep(1)
    return s


def test_the_jobs_working_dir_holds_code_only(head: Head) -> None:
    r = head.submit("listing", "python", "-c", "import os, json; print(json.dumps(sorted(os.listdir('.'))))")
    assert r.returncode == 0, r.stdout + r.stderr
    listed = json.loads(next(line for line in r.stdout.splitlines() if line.startswith("[")))
    assert {"ray_jobs", "pipelines", "serve", "schemas", "pyproject.toml", "cluster.yaml"} <= set(listed)
    assert not {".git", "data", ".venv", ".ci"} & set(listed), listed


def test_a_relative_output_dir_is_refused_on_a_cluster(head: Head) -> None:
    r = head.submit(
        "relative", "python", "-m", "ray_jobs.collect", "output_dir=data", f"sources.synthetic={json.dumps(SYNTH)}"
    )
    assert r.returncode != 0 and head.status("relative") == "FAILED"
    logs = head.logs("relative")
    assert "output_dir='data' is a relative path, and this job runs on a Ray cluster" in logs
    assert "output_dir=s3://bucket/tfpredict" in logs and "Traceback" not in logs


def test_collect_as_a_job(head: Head, tmp_path: Path) -> None:
    out = tmp_path / "collected"
    r = head.submit("collect", "python", "-m", "ray_jobs.collect", f"output_dir={out}",
                    f"sources.synthetic={json.dumps(SYNTH)}", f"cache_dir={tmp_path / 'git'}")  # fmt: skip
    assert r.returncode == 0 and head.status("collect") == "SUCCEEDED", r.stdout[-4000:] + r.stderr[-2000:]
    plans = pq.read_table(out / "plans.parquet").to_pylist()
    summary = json.loads((out / "collect_summary.json").read_text())
    assert len(plans) == summary["workspaces"] > 0
    assert {p["plan_status"] for p in plans} == {"ok"} and {p["planner"] for p in plans} == {"terraform"}
    assert "collect summary" in head.logs("collect")


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_the_pipeline_as_a_job_stopped_in_training_resumes(head: Head, tmp_path: Path) -> None:
    out = tmp_path / "data"
    entry = ["python", "-m", "ray_jobs.pipeline", f"output_dir={out}", *PIPELINE]
    run_dir = out / "runs" / "tiny"

    r = head.submit("pipeline-1", *entry, wait=False)
    assert r.returncode == 0, r.stdout + r.stderr
    deadline = time.monotonic() + 900
    while not (list(run_dir.glob("checkpoint_*")) and any(m.get("step", 0) >= 2 for m in _metrics(run_dir))):
        assert head.status("pipeline-1") in {"PENDING", "RUNNING"}, head.logs("pipeline-1")[-4000:]
        assert time.monotonic() < deadline, head.logs("pipeline-1")[-4000:]
        time.sleep(0.5)
    subprocess.run([str(BIN / "ray"), "job", "stop", f"--address={head.dashboard}", "pipeline-1"], env=head.env,
                   capture_output=True, check=True, timeout=120)  # fmt: skip
    assert _wait(head, "pipeline-1", {"STOPPED", "FAILED", "SUCCEEDED"}) == "STOPPED"
    stopped_at = max(m["step"] for m in _metrics(run_dir) if "step" in m)
    assert 2 <= stopped_at < 30
    published = {p.stem for p in (out / "_manifests").glob("*.json")}
    assert published == {"collect", "build_dataset"}  # training never published: no reader takes it for done

    r = head.submit("pipeline-2", *entry)
    logs = head.logs("pipeline-2")
    assert r.returncode == 0 and head.status("pipeline-2") == "SUCCEEDED", logs[-6000:]
    assert "stages    collect skipped (current), build_dataset skipped (current), train ran in" in logs
    lines = _metrics(run_dir)
    resumed = [m for m in lines if "resumed" in m]
    assert len(resumed) == 1 and 2 <= resumed[0]["step"] <= stopped_at, resumed
    assert max(m["step"] for m in lines if "loss" in m) == 30
    after = lines[lines.index(resumed[0]) + 1 :]
    assert all(m["step"] > resumed[0]["step"] for m in after if "loss" in m)  # no step trained twice
    # the artifacts: dataset, adapter, report, and a manifest per stage naming what it published
    assert (out / "datasets" / "default" / "test.parquet").exists() and (run_dir / "adapter").is_dir()
    report = out / "reports" / "default"
    metrics = json.loads((report / "metrics.json").read_text())
    assert (report / "report.html").exists() and set(metrics["predictors"]) >= {
        "trivial",
        "static",
        "fine-tuned (constrained)",
    }
    assert {p.stem for p in (out / "_manifests").glob("*.json")} == {"collect", "build_dataset", "train", "evaluate"}
    assert "pipeline summary" in logs and f"report    {report}/report.html" in logs

    r = head.submit("pipeline-3", *entry)
    logs = head.logs("pipeline-3")
    assert r.returncode == 0 and head.status("pipeline-3") == "SUCCEEDED", logs[-4000:]
    assert ("stages    collect skipped (current), build_dataset skipped (current), train skipped (current), "
            "evaluate skipped (current)") in logs  # fmt: skip
    assert "pipeline summary" in logs and "test F1" in logs
