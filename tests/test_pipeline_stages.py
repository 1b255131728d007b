"""The pipeline's stage bookkeeping (ray_jobs/pipeline.py ``run_stages``): which stages run, which are skipped
as current, what ``--force`` and a changed dataset do to a train run. The four stages are replaced here by
small functions that write files where the real ones do and record their calls, so that every case runs in
milliseconds; the real stages run through the same code in tests/ray_jobs/test_job_submit.py (a pipeline
job stopped in training and resumed, then skipped whole)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import storage
from ray_jobs import pipeline
from schemas.config import load_config


class FakeStages:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, out: Path) -> None:
        self.out, self.calls, self.saw_checkpoint = out, [], []
        self.interrupt_train = False
        for name in ("collect", "build_dataset", "train", "evaluate"):
            fake = SimpleNamespace(run=getattr(self, name), format_summary=lambda s: "")
            monkeypatch.setattr(pipeline, f"{name}_job", fake)

    def collect(self, cfg: Any) -> dict[str, Any]:
        self.calls.append("collect")
        n = cfg.sources.synthetic.n_repos
        plans = {"plan_status": ["ok"] * n, "planner": ["terraform"] * n, "plan_error": [None] * n,
                 "terraform_version": ["1.11.4"] * n}  # fmt: skip
        pq.write_table(pa.table(plans), self.out / "plans.parquet")
        (self.out / "repos.parquet").write_text("repos")
        return {"output_dir": str(self.out)}

    def build_dataset(self, cfg: Any) -> dict[str, Any]:
        self.calls.append("build_dataset")
        d = self.out / "datasets" / cfg.name
        d.mkdir(parents=True, exist_ok=True)
        (d / "train.parquet").write_text("examples")
        return {"output_dir": str(d), "examples": {"by_task": {"plan_prediction": {"train": 1}}}}

    def train(self, cfg: Any) -> dict[str, Any]:
        self.calls.append("train")
        run = self.out / "runs" / cfg.name
        self.saw_checkpoint.append((run / "checkpoint_000001").exists())
        (run / "checkpoint_000001").mkdir(parents=True, exist_ok=True)
        if self.interrupt_train:
            raise KeyboardInterrupt  # Ctrl-C, or `ray job stop`, mid-training
        (run / "adapter").mkdir(exist_ok=True)
        (run / "adapter" / "weights").write_text(f"{cfg.max_steps} steps")
        return {"exported": {"adapter": str(run / "adapter"), "merged": None, "adapter_config": {"r": 8}}}

    def evaluate(self, cfg: Any) -> dict[str, Any]:
        self.calls.append("evaluate")
        d = self.out / "reports" / cfg.name
        d.mkdir(parents=True, exist_ok=True)
        (d / "metrics.json").write_text("{}")
        return {"report_dir": str(d)}


def _cfg(out: Path, *overrides: str) -> pipeline.PipelineConfig:
    cfg = load_config(pipeline.PipelineConfig, pipeline.DEFAULT_CONFIG, [f"output_dir={out}", *overrides])
    for stage in (cfg.collect, cfg.build_dataset, cfg.train, cfg.evaluate):
        stage.output_dir = cfg.output_dir
    return cfg


@pytest.fixture
def stages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeStages:
    return FakeStages(monkeypatch, tmp_path)


ALL = ["collect", "build_dataset", "train", "evaluate"]


def test_a_rerun_skips_every_current_stage_and_reports_their_results(stages: FakeStages, tmp_path: Path) -> None:
    first, how = pipeline.run_stages(_cfg(tmp_path))
    assert stages.calls == ALL and all(h.startswith("ran in") for h in how.values())
    again, how = pipeline.run_stages(_cfg(tmp_path))
    assert stages.calls == ALL and set(how.values()) == {"skipped (current)"}
    assert again == json.loads(json.dumps(first))  # the results come back from the manifests


def test_a_changed_setting_reruns_its_stage_and_everything_after(stages: FakeStages, tmp_path: Path) -> None:
    pipeline.run_stages(_cfg(tmp_path))
    pipeline.run_stages(_cfg(tmp_path, "train.max_steps=7"))
    assert stages.calls == [*ALL, "train", "evaluate"]
    pipeline.run_stages(_cfg(tmp_path, "train.max_steps=7", "collect.sources.synthetic.n_repos=5"))
    assert stages.calls == [*ALL, "train", "evaluate", *ALL]
    # where and how fast a stage runs is not what it writes
    pipeline.run_stages(_cfg(tmp_path, "train.max_steps=7", "collect.sources.synthetic.n_repos=5", "ray.num_cpus=1",
                             "train.cpus_per_worker=1"))  # fmt: skip
    assert stages.calls == [*ALL, "train", "evaluate", *ALL]


def test_an_output_changed_behind_the_pipelines_back_is_redone(stages: FakeStages, tmp_path: Path) -> None:
    pipeline.run_stages(_cfg(tmp_path))
    (tmp_path / "datasets" / "default" / "train.parquet").write_text("edited by hand")
    pipeline.run_stages(_cfg(tmp_path))
    assert stages.calls == [*ALL, "build_dataset", "train", "evaluate"]
    (tmp_path / "plans.parquet").unlink()
    pipeline.run_stages(_cfg(tmp_path))
    assert stages.calls == [*ALL, "build_dataset", "train", "evaluate", *ALL]


def test_an_interrupted_training_resumes_and_force_starts_over(stages: FakeStages, tmp_path: Path) -> None:
    stages.interrupt_train = True
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_stages(_cfg(tmp_path))
    assert {p.stem for p in (tmp_path / storage.MANIFEST_DIR).iterdir()} == {"collect", "build_dataset"}
    stages.interrupt_train = False
    pipeline.run_stages(_cfg(tmp_path))
    assert stages.calls == [*ALL[:3], "train", "evaluate"]
    assert stages.saw_checkpoint == [False, True]  # the second run found the first one's checkpoint: it resumes

    _, how = pipeline.run_stages(_cfg(tmp_path), force=True)
    assert stages.calls == [*ALL[:3], "train", "evaluate", *ALL] and "skipped (current)" not in how.values()
    assert stages.saw_checkpoint == [False, True, False]  # --force: runs/tiny cleared, training starts over


def test_a_train_run_of_another_dataset_starts_over(stages: FakeStages, tmp_path: Path) -> None:
    stages.interrupt_train = True
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_stages(_cfg(tmp_path))
    stages.interrupt_train = False
    pipeline.run_stages(_cfg(tmp_path, "collect.sources.synthetic.n_repos=5"))  # new plans → new dataset
    assert stages.saw_checkpoint == [False, False]  # its checkpoints were trained on other data: not resumed
    # a run directory the pipeline did not start (a hand-run `ray_jobs.train` of that name) is not resumed either
    storage.withdraw(str(tmp_path), "train")
    (tmp_path / "runs" / "tiny" / "pipeline_inputs.json").unlink()
    pipeline.run_stages(_cfg(tmp_path, "collect.sources.synthetic.n_repos=5"))
    assert stages.saw_checkpoint == [False, False, False]


def test_no_plan_prediction_example_fails_and_is_not_published(
    stages: FakeStages, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = {"output_dir": "x", "examples": {"by_task": {"plan_prediction": {}}, "total": 0},
             "dropped": {"by_reason": {}}}  # fmt: skip
    monkeypatch.setattr(stages, "build_dataset", lambda cfg: (stages.calls.append("build_dataset"), empty)[1])
    monkeypatch.setattr(pipeline, "build_dataset_job", SimpleNamespace(run=stages.build_dataset,
                                                                       format_summary=lambda s: ""))  # fmt: skip
    (tmp_path / "datasets" / "default").mkdir(parents=True)
    (tmp_path / "datasets" / "default" / "train.parquet").write_text("")
    with pytest.raises(pipeline.PipelineFailed, match="produced 0 examples"):
        pipeline.run_stages(_cfg(tmp_path))
    with pytest.raises(pipeline.PipelineFailed):
        pipeline.run_stages(_cfg(tmp_path))
    assert stages.calls == ["collect", "build_dataset", "build_dataset"]  # redone after the failure, not skipped
