"""Every YAML in the repo loads and validates against what reads it: cluster.yaml with Ray's own cluster-launcher
checks (a broken copy fails with Ray's message), the Serve config with Serve's own schema and our AppArgs, the
KubeRay manifests with the fields the KubeRay operator requires (checked here by hand: no operator runs in CI)."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.serve.schema import ServeDeploySchema

from ray_jobs.common import TERRAFORM_RESOURCE
from serve.config import AppArgs

ROOT = Path(__file__).resolve().parents[1]


def _cluster() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_validates_with_rays_own_checks() -> None:
    cfg = prepare_config(_cluster())
    validate_config(cfg)
    types = cfg["available_node_types"]
    assert set(types) == {"head", "cpu_collect", "gpu_train", "gpu_train_8x", "gpu_serve"}
    assert types["head"]["resources"] == {"CPU": 0}  # no work scheduled on the head
    assert types["cpu_collect"]["resources"][TERRAFORM_RESOURCE] == types["cpu_collect"]["resources"]["CPU"]
    assert all(TERRAFORM_RESOURCE not in t["resources"] for n, t in types.items() if n != "cpu_collect")
    assert types["gpu_train_8x"]["resources"]["GPU"] == 8 and types["gpu_serve"]["resources"]["GPU"] == 1
    assert all(isinstance(v, int) for t in types.values() for v in t["resources"].values())
    assert any("scripts/setup.sh" in c for c in cfg["setup_commands"])


@pytest.mark.parametrize(
    ("break_it", "words"),
    [
        (lambda c: c.pop("provider"), "provider"),
        (lambda c: c.update(max_workers="many"), "many"),
        (lambda c: c.update(max_worker=3), "'max_worker' was unexpected"),  # a typo is an error, not ignored
        (lambda c: c["available_node_types"]["cpu_collect"].pop("node_config"), "'node_config' is a required"),
        (lambda c: c["available_node_types"]["gpu_serve"].update(resources="lots"), "'lots' is not of type"),
        (lambda c: c.update(head_node_type="nosuch"), "head_node_type"),
    ],
)
def test_a_broken_cluster_yaml_fails_with_rays_message(break_it: Any, words: str) -> None:
    cfg = copy.deepcopy(_cluster())
    break_it(cfg)
    with pytest.raises((jsonschema.ValidationError, ValueError, KeyError)) as e:
        validate_config(prepare_config(cfg))
    assert words in str(e.value)


def _repo_yamls() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "*.yaml", "*.yml"], cwd=ROOT,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return [ROOT / p for p in out.stdout.split()]


def test_every_yaml_in_the_repo_loads_and_is_checked_by_its_reader() -> None:
    from schemas.config import load_config
    from tests.test_config import MODELS  # the job configs' models, by file-name prefix

    paths = _repo_yamls()
    assert {p.relative_to(ROOT).as_posix() for p in paths} >= {
        "cluster.yaml", "serve/serve_config.yaml", "cluster/rayjob.yaml", "cluster/rayservice.yaml"}  # fmt: skip
    for p in paths:
        doc = yaml.safe_load(p.read_text())
        assert isinstance(doc, dict) and doc, p
        rel = p.relative_to(ROOT).as_posix()
        if rel.startswith("ray_jobs/configs/"):
            load_config(MODELS[p.stem.split("_")[0]], p)
        elif rel == "serve/serve_config.yaml":
            _serve_config(doc)
        elif rel.startswith("cluster/"):
            _kuberay(doc)
        elif rel == "cluster.yaml":
            validate_config(prepare_config(doc))
        else:
            pytest.fail(f"{rel}: a YAML no test checks; add its reader here")


def _serve_config(doc: dict[str, Any]) -> None:
    ServeDeploySchema.model_validate(doc)  # Serve's own schema of `serve run` / `serve deploy` files
    for app in doc["applications"]:
        assert app["import_path"] == "serve.app:build_app"
        AppArgs(**app["args"])  # every arg is an AppArgs field


def _kuberay(doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] in ("RayJob", "RayService") and doc["metadata"]["name"]
    spec = doc["spec"]
    cluster = spec["rayClusterSpec"] if doc["kind"] == "RayJob" else spec["rayClusterConfig"]
    if doc["kind"] == "RayJob":
        assert spec["entrypoint"].startswith("python -m ray_jobs.")
    else:
        _serve_config(yaml.safe_load(spec["serveConfigV2"]))  # a string holding a Serve config
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # no work on the head, as in cluster.yaml
    assert head["template"]["spec"]["containers"][0]["image"]
    for group in cluster["workerGroupSpecs"]:
        assert group["groupName"] and "rayStartParams" in group
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        (container,) = group["template"]["spec"]["containers"]
        assert container["image"] and container["resources"]["limits"]
    assert cluster["rayVersion"] == __import__("ray").__version__
