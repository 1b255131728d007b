"""Typed configs: every YAML in the repo loads; bad keys and types fail with every error listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from ray_jobs.build_dataset import BuildDatasetConfig
from ray_jobs.collect import CollectConfig
from ray_jobs.evaluate import EvaluateConfig
from ray_jobs.mitigate import MitigateConfig
from ray_jobs.pipeline import PipelineConfig
from ray_jobs.train import TrainConfig
from schemas.config import ConfigError, load_config, parse_overrides

ROOT = Path(__file__).resolve().parents[1]
# every job YAML and the model that reads it, chosen by file-name prefix
MODELS = {
    "collect": CollectConfig,
    "pipeline": PipelineConfig,
    "build": BuildDatasetConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "mitigate": MitigateConfig,
}


def job_yamls() -> list[Path]:
    return sorted((ROOT / "ray_jobs" / "configs").glob("*.yaml"))


def test_there_are_job_configs() -> None:
    assert {p.stem.split("_")[0] for p in job_yamls()} == set(MODELS)


@pytest.mark.parametrize("path", job_yamls(), ids=lambda p: p.name)
def test_every_job_yaml_loads_and_opens_with_its_command(path: Path) -> None:
    model = MODELS[path.stem.split("_")[0]]
    load_config(model, path)
    first = path.read_text().splitlines()[:4]
    assert first[0].startswith("# ") and any("python -m ray_jobs." in line for line in first)


def test_overrides_are_typed_and_nested() -> None:
    cfg = load_config(CollectConfig, None, ["plan.timeout_s=30", "sources.urls=[file:///a, file:///b]", "resume=false"])
    assert (cfg.plan.timeout_s, cfg.sources.urls, cfg.resume) == (30.0, ["file:///a", "file:///b"], False)
    assert parse_overrides(["a.b.c=1", "a.d=x"]) == {"a": {"b": {"c": 1}, "d": "x"}}


def test_all_errors_listed_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("plan:\n  timeout_s: soon\n  tiemout: 3\nsources:\n  synthetic:\n    n_repos: many\n")
    with pytest.raises(ConfigError) as e:
        load_config(CollectConfig, bad, ["clone.depth=deep"])
    msg = str(e.value)
    assert msg.startswith(f"{bad}: 4 config error(s):")
    for line in (
        "plan.timeout_s: Input should be a valid number",
        "plan.tiemout: Extra inputs are not permitted (unknown key",
        "sources.synthetic.n_repos: Input should be a valid integer",
        "clone.depth: Input should be a valid integer",
    ):
        assert line in msg


def test_config_file_problems_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(CollectConfig, tmp_path / "missing.yaml")
    (tmp_path / "l.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(CollectConfig, tmp_path / "l.yaml")
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        parse_overrides(["novalue"])


def test_job_cli_reports_config_errors_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    from ray_jobs.build_dataset import main

    with pytest.raises(SystemExit) as e:
        main(["tasks={nope: 1}", "length.over_limit=maybe"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert "2 config error(s)" in err and "unknown tasks ['nope']" in err and "length.over_limit" in err
