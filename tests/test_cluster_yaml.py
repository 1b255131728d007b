"""cluster.yaml is a valid Ray cluster-launcher config and routes terraform work to collect nodes."""

from __future__ import annotations

from pathlib import Path

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from ray_jobs.common import TERRAFORM_RESOURCE

ROOT = Path(__file__).resolve().parents[1]


def test_cluster_yaml_validates_with_rays_own_checks() -> None:
    cfg = prepare_config(yaml.safe_load((ROOT / "cluster.yaml").read_text()))
    validate_config(cfg)
    types = cfg["available_node_types"]
    assert set(types) == {"head", "cpu_collect", "gpu_train"}
    assert types["cpu_collect"]["resources"][TERRAFORM_RESOURCE] == types["cpu_collect"]["resources"]["CPU"]
    assert TERRAFORM_RESOURCE not in types["gpu_train"]["resources"]
    assert all(isinstance(v, int) for t in types.values() for v in t["resources"].values())
    assert any("scripts/setup.sh" in c for c in cfg["setup_commands"])
