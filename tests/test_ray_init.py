"""A job started while another job's local Ray cluster runs on the machine gets its own cluster (plain
``ray.init()`` would join the other one, and die with it; with ``num_cpus`` Ray refused outright). Real Ray in
two child processes, on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# a cluster started the way `ray start` (and the test session's cluster_utils) start one: it registers itself as
# the machine's current cluster, which a plain ray.init() then joins
OTHER = """
import sys
from ray.cluster_utils import Cluster
c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
print("up", flush=True)
sys.stdin.read()
c.shutdown()
"""
OURS = """
import ray
from ray_jobs.common import RayConfig, init_ray
init_ray(RayConfig(num_cpus=1))
print(sorted(ray.cluster_resources()), ray.get_runtime_context().gcs_address)
ray.shutdown()
"""


def test_a_job_gets_its_own_local_cluster_while_another_runs() -> None:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    other = subprocess.Popen([sys.executable, "-c", OTHER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "up"
        out = subprocess.run([sys.executable, "-c", OURS], env=env, capture_output=True, text=True, timeout=120,
                             check=False)  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        assert "'terraform'" in out.stdout  # our cluster (the other one has no terraform resource)
    finally:
        assert other.stdin is not None
        other.stdin.close()  # the other cluster shuts down
        other.wait(timeout=60)
