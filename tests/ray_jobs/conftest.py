"""One small real corpus for the train, evaluate and mitigate tests: collected (real git, real terraform plans,
history mode for change examples) and built into the default dataset once per session. Tests write their own
runs/, reports/ and models/ entries under it, each by its own name, and never modify the dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ray_jobs import build_dataset, collect
from schemas.config import load_config

SYNTH = {"n_repos": 6, "seed": 1, "commits_per_repo": 2, "cloud_fraction": 0.0}


@pytest.fixture(scope="session")
def plan_data(ray_cluster: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plan-data") / "data"
    collect.run(
        load_config(
            collect.CollectConfig,
            None,
            [
                f"output_dir={out}",
                f"cache_dir={out.parent / 'git'}",
                f"sources.synthetic={json.dumps(SYNTH)}",
                "sources.synthetic_history=true",
            ],
        )
    )
    build_dataset.run(load_config(build_dataset.BuildDatasetConfig, None, [f"output_dir={out}", "split.min_groups=2"]))
    return out
