"""Every stage as a Ray job on a real multi-node cluster: a head started with ``ray start --head`` on loopback
(0 CPUs, like cluster.yaml's: it runs the job drivers and schedules no task) and two worker nodes joined with
``ray start --address``, each with its own HOME, TMPDIR and TFPREDICT_HOME, and each inside a mount namespace
(bubblewrap) in which the head's directories are an empty tmpfs: a worker that tried to read the driver's local
disk (its temp files, caches, the job's working-directory copy) would find nothing. Only worker ``tf`` declares
the ``terraform`` resource. Artifacts go to an S3-compatible object store on loopback (moto's server mode; AWS
credentials and endpoint in every node's environment, as a cluster's instance profile would give them). Jobs
are submitted with the real ``ray job submit --working-dir <repo>`` CLI.

Shown here: the job's working directory holds code, not ``.git``, ``data/`` or venvs; a relative ``output_dir``
is refused, and so is a path only the driver's node sees; the collect stage as a job writes its tables, every
plan made on the terraform node; the whole pipeline with ``output_dir=s3://...`` stopped (``ray job stop``)
during training and submitted again skips the current stages and resumes training from its last checkpoint;
a third submission skips every stage.

Starts its own Ray cluster beside the session's: run alone, e.g.
    flock /tmp/tfpredict-ray.lock .venv/bin/python -m pytest tests/ray_jobs/test_job_submit.py -q -p no:cacheprovider
"""

from __future__ import annotations

import contextlib
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
MIRROR = Path.home() / ".cache" / "tfpredict" / "tf-mirror"  # built by scripts/setup.sh; each node links it
BUCKET = "tfpredict-ci"
SYNTH = {"n_repos": 4, "seed": 3, "commits_per_repo": 2, "cloud_fraction": 0.0}
SMALL_TINY = ["hidden_size=64", "num_hidden_layers=2", "intermediate_size=176", "num_attention_heads=4"]
PIPELINE = [
    f"collect.sources.synthetic={json.dumps(SYNTH)}",
    "build_dataset.split.min_groups=2",
    "build_dataset.terminal_report.n_synthetic=10",
    "build_dataset.records.limit=20",
    "train.method=lora",
    "train.max_steps=30",
    "train.eval_every=10",
    "train.checkpoint_every=2",
    "train.log_every=1",  # a metrics line every step: the stored log ends at the step of the stored checkpoint
    "train.export.merged=false",
    *(f"train.tiny.{s}" for s in SMALL_TINY),
    "evaluate.limit=3",
    "evaluate.max_new_tokens=64",
    "evaluate.baselines=[trivial,static]",
    "evaluate.constrained=[true]",
    "evaluate.tasks=[]",
    "evaluate.bootstrap=50",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    dashboard: str
    env: dict[str, str]
    head_root: Path  # the head's HOME, TMPDIR, TFPREDICT_HOME and Ray temp dir: invisible to the workers
    s3: Any  # a boto3 client of the object store

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

    def keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        keys = (o["Key"] for page in pages for o in page.get("Contents", []))
        return sorted(k for k in keys if not k.endswith("/"))  # not the directory markers pyarrow writes


def _node_env(base: dict[str, str], root: Path) -> dict[str, str]:
    """A node's own HOME, TMPDIR and TFPREDICT_HOME under ``root`` (the provider mirror linked in)."""
    home = root / "home"
    (home / ".cache" / "tfpredict").mkdir(parents=True)
    (home / ".cache" / "tfpredict" / "tf-mirror").symlink_to(MIRROR)
    (root / "tmp").mkdir()
    return base | {"HOME": str(home), "TMPDIR": str(root / "tmp"), "TFPREDICT_HOME": str(home / ".cache/tfpredict")}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """moto, then ``ray start --head --block`` and two ``ray start --address --block`` workers, each in its own
    process group (SIGTERM ends it and what it started; ``ray stop`` would also stop the session's cluster)."""
    import boto3

    root = Path(tempfile.mkdtemp(prefix="tfc-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    s3_port, port, dash, agent = _free_port(), _free_port(), _free_port(), _free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_", "TFPREDICT_"))}
    base |= {"RAY_AUTH_MODE": "disabled", "PATH": f"{BIN}{os.pathsep}{base['PATH']}", "RAY_USAGE_STATS_ENABLED": "0",
             "AWS_ACCESS_KEY_ID": "ci", "AWS_SECRET_ACCESS_KEY": "ci", "AWS_REGION": "us-east-1",
             "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}"}  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    logs = []

    def start(name: str, cmd: list[str], env: dict[str, str]) -> None:
        logs.append(open(root / f"{name}.log", "wb"))  # noqa: SIM115 - open for the cluster's lifetime
        procs.append(subprocess.Popen(cmd, env=env, stdout=logs[-1], stderr=subprocess.STDOUT, start_new_session=True))

    def log_tail() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(root.glob("*.log")))

    try:
        start("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], base)
        head_root = root / "head"
        head_env = _node_env(base, head_root)
        start("head", [str(BIN / "ray"), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
                       "--num-cpus=0", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                       f"--dashboard-port={dash}", f"--dashboard-agent-listen-port={agent}",  # the job agent: not
                       # the default port, which the session's cluster (tests/conftest.py) already holds
                       f"--temp-dir={head_root / 'ray'}", "--disable-usage-stats"],
              head_env)  # fmt: skip
        s3 = boto3.client("s3", endpoint_url=base["AWS_ENDPOINT_URL"], aws_access_key_id="ci",
                          aws_secret_access_key="ci", region_name="us-east-1")  # fmt: skip
        c = Cluster(f"http://127.0.0.1:{dash}", head_env, head_root, s3)
        deadline = time.monotonic() + 180
        while True:
            try:
                c.client().list_jobs()
                s3.create_bucket(Bucket=BUCKET)
                break
            except Exception as e:
                if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                    raise RuntimeError(f"cluster start failed:\n{log_tail()}") from e
                time.sleep(1)
        for name, res in (("tf", '--resources={"terraform": 1}'), ("cpu", "--resources={}")):
            node_root = root / name
            env = _node_env(base, node_root)
            start(name, ["bwrap", "--dev-bind", "/", "/", "--tmpfs", str(head_root), "--", str(BIN / "ray"), "start",
                         f"--address=127.0.0.1:{port}", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", res,
                         f"--temp-dir={node_root / 'ray'}", "--disable-usage-stats"], env)  # fmt: skip
        while len(_nodes(c)) < 3:
            assert all(p.poll() is None for p in procs) and time.monotonic() < deadline, log_tail()
            time.sleep(1)
        # the dashboard answers before its job agent is up ("No available agent to submit job"): one trivial job
        # through, and the cluster takes submissions
        while True:
            try:
                ready = c.client().submit_job(entrypoint="true")
                break
            except RuntimeError as e:
                assert "No available agent" in str(e) and time.monotonic() < deadline + 120, f"{e}\n{log_tail()}"
                time.sleep(2)
        while c.status(ready) not in {"SUCCEEDED", "FAILED", "STOPPED"}:
            assert time.monotonic() < deadline + 240, log_tail()
            time.sleep(1)
        yield c
    finally:
        for p in reversed(procs):
            with_group(p.pid, signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with_group(p.pid, signal.SIGKILL)
        for f in logs:
            f.close()
        shutil.rmtree(root, ignore_errors=True)


def with_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _nodes(c: Cluster) -> list[dict[str, Any]]:
    """Alive nodes from the dashboard's State API: id and declared resources."""
    import requests

    r = requests.get(f"{c.dashboard}/api/v0/nodes", params={"detail": "true", "limit": 100}, timeout=30)
    r.raise_for_status()
    rows = r.json()["data"]["result"]["result"]
    return [{"id": n["node_id"], "resources": n["resources_total"]} for n in rows if n["state"] == "ALIVE"]


def _wait(cluster: Cluster, job_id: str, until: set[str], timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    while (s := cluster.status(job_id)) not in until:
        assert time.monotonic() < deadline, f"{job_id} still {s}:\n{cluster.logs(job_id)[-4000:]}"
        time.sleep(1)
    return s


def test_the_jobs_working_dir_holds_code_only(cluster: Cluster) -> None:
    r = cluster.submit("listing", "python", "-c", "import os, json; print(json.dumps(sorted(os.listdir('.'))))")
    assert r.returncode == 0, r.stdout + r.stderr
    listed = json.loads(next(line for line in r.stdout.splitlines() if line.startswith("[")))
    assert {"ray_jobs", "pipelines", "serve", "schemas", "pyproject.toml", "cluster.yaml"} <= set(listed)
    assert not {".git", "data", ".venv", ".ci"} & set(listed), listed


def test_a_relative_output_dir_is_refused_on_a_cluster(cluster: Cluster) -> None:
    r = cluster.submit(
        "relative", "python", "-m", "ray_jobs.collect", "output_dir=data", f"sources.synthetic={json.dumps(SYNTH)}"
    )
    assert r.returncode != 0 and cluster.status("relative") == "FAILED"
    logs = cluster.logs("relative")
    assert "output_dir='data' is a relative path, and this job runs on a Ray cluster" in logs
    assert "output_dir=s3://bucket/tfpredict" in logs and "Traceback" not in logs


def test_an_output_dir_only_the_drivers_node_sees_is_refused(cluster: Cluster) -> None:
    hidden = cluster.head_root / "tmp" / "outputs"  # exists for the driver; an empty tmpfs on both workers
    r = cluster.submit("node-local", "python", "-m", "ray_jobs.collect", f"output_dir={hidden}",
                       f"sources.synthetic={json.dumps(SYNTH)}")  # fmt: skip
    assert r.returncode != 0 and cluster.status("node-local") == "FAILED"
    logs = cluster.logs("node-local")
    assert f"output_dir={hidden} is local to the driver's node: 2 alive node(s) do not see it" in logs, logs[-3000:]
    assert "Traceback" not in logs and not list(hidden.glob("*.parquet"))


def test_a_shared_path_that_links_to_the_drivers_disk_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    """Indirection: the path names a directory every node sees, but it is a symlink into the head's disk."""
    hidden = cluster.head_root / "tmp" / "linked"
    hidden.mkdir(parents=True)
    (tmp_path / "out").symlink_to(hidden)
    r = cluster.submit("linked", "python", "-m", "ray_jobs.collect", f"output_dir={tmp_path / 'out'}",
                       f"sources.synthetic={json.dumps(SYNTH)}")  # fmt: skip
    assert r.returncode != 0 and cluster.status("linked") == "FAILED"
    assert f"output_dir={hidden} is local to the driver's node" in cluster.logs("linked")


def test_collect_as_a_job_plans_only_on_the_terraform_node(cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "collected"  # a directory every node sees (the shared volume of a real cluster)
    r = cluster.submit("collect", "python", "-m", "ray_jobs.collect", f"output_dir={out}",
                       f"sources.synthetic={json.dumps(SYNTH)}")  # fmt: skip
    assert r.returncode == 0 and cluster.status("collect") == "SUCCEEDED", r.stdout[-4000:] + r.stderr[-2000:]
    plans = pq.read_table(out / "plans.parquet").to_pylist()
    summary = json.loads((out / "collect_summary.json").read_text())
    assert len(plans) == summary["workspaces"] > 0 and "collect summary" in cluster.logs("collect")
    assert {p["plan_status"] for p in plans} == {"ok"} and {p["planner"] for p in plans} == {"terraform"}
    tf_node = [n["id"] for n in _nodes(cluster) if n["resources"].get("terraform")]
    assert len(tf_node) == 1 and {p["node_id"] for p in plans} == set(tf_node)
    # the workers built the synthetic repositories themselves, each in its own TFPREDICT_HOME
    homes = [cluster.head_root.parent / n / "home/.cache/tfpredict/synthetic" for n in ("tf", "cpu")]
    built = [p.name for home in homes for p in home.glob("*/*") if p.is_dir()]
    assert sorted(built) == sorted({p["source_url"].rsplit("/", 1)[1] for p in plans})
    assert not (cluster.head_root / "home/.cache/tfpredict/synthetic").exists()


def _metrics(lines: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in lines.splitlines()]


def test_the_pipeline_on_s3_stopped_in_training_resumes(cluster: Cluster) -> None:
    out = f"s3://{BUCKET}/pipeline"
    entry = ["python", "-m", "ray_jobs.pipeline", f"output_dir={out}", *PIPELINE]

    def run_file(name: str) -> str:
        try:
            return cluster.s3.get_object(Bucket=BUCKET, Key=f"pipeline/runs/tiny/{name}")["Body"].read().decode()
        except cluster.s3.exceptions.NoSuchKey:
            return ""

    def checkpoints() -> set[str]:
        return {k.split("/")[3] for k in cluster.keys("pipeline/runs/tiny/checkpoint_")}

    r = cluster.submit("pipeline-1", *entry, wait=False)
    assert r.returncode == 0, r.stdout + r.stderr
    deadline = time.monotonic() + 900
    while not (checkpoints() and any(m.get("step", 0) >= 2 for m in _metrics(run_file("metrics.jsonl")))):
        assert cluster.status("pipeline-1") in {"PENDING", "RUNNING"}, cluster.logs("pipeline-1")[-4000:]
        assert time.monotonic() < deadline, cluster.logs("pipeline-1")[-4000:]
        time.sleep(0.5)
    subprocess.run([str(BIN / "ray"), "job", "stop", f"--address={cluster.dashboard}", "pipeline-1"],
                   env=cluster.env, capture_output=True, check=True, timeout=120)  # fmt: skip
    assert _wait(cluster, "pipeline-1", {"STOPPED", "FAILED", "SUCCEEDED"}) == "STOPPED"
    stopped_at = max(m["step"] for m in _metrics(run_file("metrics.jsonl")) if "step" in m)
    assert 2 <= stopped_at < 30
    published = {k.rsplit("/", 1)[1] for k in cluster.keys("pipeline/_manifests/")}
    assert published == {"collect.json", "build_dataset.json"}  # training never published: no reader trusts it

    r = cluster.submit("pipeline-2", *entry)
    logs = cluster.logs("pipeline-2")
    assert r.returncode == 0 and cluster.status("pipeline-2") == "SUCCEEDED", logs[-6000:]
    assert "stages    collect skipped (current), build_dataset skipped (current), train ran in" in logs
    lines = _metrics(run_file("metrics.jsonl"))
    resumed = [m for m in lines if "resumed" in m]
    # from the last checkpoint Ray Train registered: the one the stored log reached (rank 0 uploads the log just
    # before each checkpoint), or an earlier one when the stop fell between that upload and the registration
    step = resumed[0]["step"] if len(resumed) == 1 else None
    assert step is not None and step % 2 == 0 and stopped_at - 4 <= step <= stopped_at, (resumed, stopped_at)
    assert max(m["step"] for m in lines if "loss" in m) == 30
    after = lines[lines.index(resumed[0]) + 1 :]
    assert all(m["step"] > resumed[0]["step"] for m in after if "loss" in m)  # no step trained twice
    # every artifact is in the object store, and a manifest per stage names what it published
    keys = cluster.keys("pipeline/")
    for key in ("datasets/default/test.parquet", "runs/tiny/adapter/adapter_model.safetensors",
                "reports/default/report.html", "reports/default/metrics.json", "plans.parquet/"):  # fmt: skip
        assert any(k.startswith(f"pipeline/{key}") for k in keys), key
    assert {k.rsplit("/", 1)[1] for k in cluster.keys("pipeline/_manifests/")} == {
        "collect.json", "build_dataset.json", "train.json", "evaluate.json"}  # fmt: skip
    body = cluster.s3.get_object(Bucket=BUCKET, Key="pipeline/reports/default/metrics.json")["Body"].read()
    assert set(json.loads(body)["predictors"]) == {"trivial", "static", "fine-tuned (constrained)"}
    assert "pipeline summary" in logs and f"report    {out}/reports/default/report.html" in logs
    plans = pq.read_table(f"{BUCKET}/pipeline/plans.parquet", filesystem=_s3fs(cluster)).to_pylist()
    tf_node = {n["id"] for n in _nodes(cluster) if n["resources"].get("terraform")}
    assert plans and {p["node_id"] for p in plans} == tf_node

    r = cluster.submit("pipeline-3", *entry)
    logs = cluster.logs("pipeline-3")
    assert r.returncode == 0 and cluster.status("pipeline-3") == "SUCCEEDED", logs[-4000:]
    assert ("stages    collect skipped (current), build_dataset skipped (current), train skipped (current), "
            "evaluate skipped (current)") in logs  # fmt: skip
    assert "pipeline summary" in logs and "test F1" in logs


def _s3fs(cluster: Cluster) -> Any:
    import pyarrow.fs as pafs

    return pafs.S3FileSystem(access_key="ci", secret_key="ci", region="us-east-1", scheme="http",
                             endpoint_override=cluster.env["AWS_ENDPOINT_URL"].removeprefix("http://"))  # fmt: skip
