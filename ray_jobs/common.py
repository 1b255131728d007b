"""What every job entrypoint shares: CLI parsing, Ray start-up, atomic table writes, summaries."""

from __future__ import annotations

import argparse
import logging
import os
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

    The driver writes a marker there first: a location it cannot write (no credentials, no bucket, a read-only
    mount) stops the stage before any work with the store's own error. On a cluster this process did not start
    (``ray job submit``, ``ray.address``, a notebook's ``ray.init``), workers on other nodes read and write there
    too: a relative path is refused (under ``ray job submit`` it would name a directory inside the job's copy of
    the working directory, deleted with the job), and so is a location some alive node cannot read the marker
    from (a node-local path; an object store a node has no credentials for).
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
    location = output_dir if storage.is_uri(output_dir) else str(Path(output_dir).resolve())
    marker = storage.join(location, storage.MANIFEST_DIR, f".visible-{uuid.uuid4().hex}.json")
    try:
        storage.write_json(marker, {})
    except OSError as e:
        raise SystemExit(
            f"output_dir={location} cannot be written from the driver: {e}. Fix: for an object store, give this "
            "machine credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or an instance role; "
            "AWS_ENDPOINT_URL for an S3-compatible server) and create the bucket; for a path, make it writable."
        ) from None
    try:
        init_ray(cfg)
        blind = nodes_not_seeing(marker) if remote else []
    finally:
        storage.delete(marker)
    if blind and storage.is_uri(location):
        raise SystemExit(
            f"output_dir={location} cannot be read from {len(blind)} alive node(s) ({'; '.join(blind[:3])}). "
            "Give every node credentials for the store (cluster.yaml's IamInstanceProfile, or env_vars in the "
            "job's runtime env) and the same endpoint."
        )
    if blind:
        raise SystemExit(
            f"output_dir={location} is local to the driver's node: {len(blind)} alive node(s) do not see it "
            f"({'; '.join(blind[:3])}). Put it on storage every node mounts at that path (NFS, EFS, the "
            "Kubernetes volume cluster/rayjob.yaml mounts at /data), or use an object store URI."
        )
    return location


def _sees(location: str) -> str:
    """On one node: "" when ``location`` is readable there, else why not."""
    try:
        return "" if storage.exists(location) else "not there"
    except OSError as e:
        return str(e)[:300]


def nodes_not_seeing(marker: str) -> list[str]:
    """The alive nodes (IP, id and why) that cannot read the ``marker`` this process just wrote."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n["Alive"]]
    look = ray.remote(num_cpus=0, max_retries=0)(_sees)
    refs = [
        look.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(marker)
        for n in nodes
    ]
    found = ray.get(refs, timeout=120)
    return [f"{n['NodeManagerAddress']} ({n['NodeID'][:8]}): {why}" for n, why in zip(nodes, found, strict=True) if why]


def quiet_local_workers() -> None:
    """Worker setup on the local cluster, which runs without the dashboard: Ray Train's placement-group cleaner
    asks the State API (served by the dashboard) whether the train controller lives, once a second, and logs a
    warning each time it cannot (hundreds of lines a run). This cluster ends with the driver, so there is
    nothing for the cleaner to clean; on a real cluster the dashboard runs and the warning means something."""
    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(logging.ERROR)


def write_table_atomic(table: pa.Table, location: str | Path) -> None:
    """Write one Parquet dataset directory as a whole: a temp directory, then ``storage.replace_dir``."""
    tmp = storage.temp_sibling(str(location))
    fs, path = storage.resolve(tmp)
    fs.create_dir(path)
    pq.write_table(table, f"{path}/part-00000.parquet", filesystem=fs)
    storage.replace_dir(tmp, str(location))
