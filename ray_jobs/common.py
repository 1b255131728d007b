"""What every job entrypoint shares: CLI parsing, Ray start-up, atomic table writes, summaries."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from pipelines import storage
from schemas.config import ConfigError, Strict, load_config

M = TypeVar("M", bound=BaseModel)
logger = logging.getLogger("tfpredict")

TERRAFORM_RESOURCE = "terraform"  # custom resource of nodes that can run terraform (cluster.yaml)


class RayConfig(Strict):
    address: str | None = None  # None: an existing cluster (RAY_ADDRESS / ray job submit) or a new local one
    num_cpus: int | None = None  # local cluster only; default: all cores
    auth_disabled: bool = False  # local throwaway clusters only (sets RAY_AUTH_MODE=disabled)


def parse_args(model: type[M], argv: Sequence[str] | None, doc: str, default_config: str | None) -> M:
    """``--config FILE key=value ...`` → a validated config (every error listed at once)."""
    p = argparse.ArgumentParser(
        description=doc.split("\n\n", maxsplit=1)[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc
    )
    p.add_argument("--config", default=default_config, help="YAML config (default: %(default)s)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. plan.timeout_s=60")
    args = p.parse_args(argv)
    try:
        return load_config(model, args.config, args.overrides)
    except ConfigError as e:  # the message lists every problem; a traceback would only hide it
        p.exit(2, f"{p.prog}: {e}\n")


def setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


_started_local: list[bool] = []  # set once this process started its own local cluster, whose nodes share its disk


def init_ray(cfg: RayConfig) -> None:
    """Connect to a cluster, or start a local one whose node can run terraform."""
    import ray

    if ray.is_initialized():
        return
    if cfg.address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=cfg.address or os.environ["RAY_ADDRESS"], log_to_driver=True)
        return
    if cfg.auth_disabled:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    n = cfg.num_cpus or os.cpu_count() or 1
    _started_local.append(True)
    # "local": a private cluster even when another job's local cluster runs here (plain ray.init() would join
    # that one, and die with it; with num_cpus it refuses: "When connecting to an existing cluster, num_cpus ...")
    ray.init(
        address="local",
        num_cpus=n,
        resources={TERRAFORM_RESOURCE: n},
        include_dashboard=False,
        runtime_env={"worker_process_setup_hook": "ray_jobs.common.quiet_local_workers"},
    )


def attach(cfg: RayConfig, output_dir: str) -> str:
    """Connect to Ray (``init_ray``) for a stage that writes under ``output_dir``; the location to use.

    On a cluster this process did not start (``ray job submit``, ``ray.address``, a notebook's ``ray.init``),
    workers on other nodes read and write there too: a relative path is refused (under ``ray job submit`` it
    would name a directory inside the job's copy of the working directory, deleted with the job), and so is a
    local path some alive node cannot see (checked by a marker file the driver writes and every node looks for).
    """
    import ray

    remote = not _started_local and bool(ray.is_initialized() or cfg.address or os.environ.get("RAY_ADDRESS"))
    if remote and not storage.is_uri(output_dir) and not Path(output_dir).is_absolute():
        raise SystemExit(
            f"output_dir={output_dir!r} is a relative path, and this job runs on a Ray cluster: it would land in "
            "the job's copy of the working directory (removed with the job) or a different directory on each "
            "node. Give a location every node sees: an absolute path on shared storage (output_dir=/mnt/shared/"
            "tfpredict) or an object store URI (output_dir=s3://bucket/tfpredict)."
        )
    init_ray(cfg)
    if storage.is_uri(output_dir):
        return output_dir
    out = Path(output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if remote:
        blind = nodes_not_seeing(out)
        if blind:
            raise SystemExit(
                f"output_dir={out} is local to the driver's node: {len(blind)} alive node(s) do not see it "
                f"({', '.join(blind[:3])}). Put it on storage every node mounts at that path (NFS, EFS, a "
                "Kubernetes volume: cluster.yaml and cluster/rayjob.yaml mount /data), or use an object store URI."
            )
    return str(out)


def nodes_not_seeing(directory: Path) -> list[str]:
    """The alive nodes (by IP and id) on which ``directory`` does not hold a marker this process just wrote."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    marker = directory / f".tfpredict-visible-{uuid.uuid4().hex}"
    marker.write_text("")
    try:
        nodes = [n for n in ray.nodes() if n["Alive"]]
        look = ray.remote(num_cpus=0, max_retries=0)(os.path.exists)
        refs = [
            look.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                str(marker)
            )
            for n in nodes
        ]
        seen = ray.get(refs, timeout=120)
    finally:
        marker.unlink(missing_ok=True)
    return [f"{n['NodeManagerAddress']} ({n['NodeID'][:8]})" for n, ok in zip(nodes, seen, strict=True) if not ok]


def quiet_local_workers() -> None:
    """Worker setup on the local cluster, which runs without the dashboard: Ray Train's placement-group cleaner
    asks the State API (served by the dashboard) whether the train controller lives, once a second, and logs a
    warning each time it cannot (hundreds of lines a run). This cluster ends with the driver, so there is
    nothing for the cleaner to clean; on a real cluster the dashboard runs and the warning means something."""
    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(logging.ERROR)


def write_table_atomic(table: pa.Table, path: str | Path) -> None:
    """Write one Parquet dataset directory as a whole: temp directory, then rename over the old one."""
    final = Path(path)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    pq.write_table(table, tmp / "part-00000.parquet")
    swap_dir(tmp, final)


def swap_dir(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` so that readers see the old or the new data, never a mix."""
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
