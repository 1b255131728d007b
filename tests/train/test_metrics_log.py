"""The train loop's metrics log: metrics.jsonl, TensorBoard, and MLflow with the real mlflow client against a
local file-store tracking URI (MLflow's own; no server, nothing faked). A resumed run continues the same
MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.train.loop import MetricsLog


def test_metrics_go_to_jsonl_tensorboard_and_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # a file: URI allows MLflow 3's file store itself
    uri = (tmp_path / "mlruns").as_uri()
    run_dir = tmp_path / "run"
    conf = {"tracking_uri": uri, "experiment": "exp", "run_name": "tiny", "params": {"lora.r": 16, "method": "qlora"}}
    log = MetricsLog(run_dir, True, conf)
    log.write(0, {"eval_loss": 7.5})
    log.write(5, {"loss": 6.0, "lr": 0.001})
    log.close()
    # the run restarts (resume after a failure, or a rerun of the name): same MLflow run, history appended
    again = MetricsLog(run_dir, True, conf)
    again.write(10, {"eval_loss": 6.5, "resumed": 1.0})
    again.close()

    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert lines == [
        {"step": 0, "eval_loss": 7.5},
        {"step": 5, "loss": 6.0, "lr": 0.001},
        {"step": 10, "eval_loss": 6.5, "resumed": 1.0},
    ]
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_id == (run_dir / "mlflow_run_id").read_text()
    assert run.info.run_name == "tiny" and run.info.status == "FINISHED"
    assert run.data.params == {"lora.r": "16", "method": "qlora"}
    history = client.get_metric_history(run.info.run_id, "eval_loss")
    assert [(m.step, m.value) for m in history] == [(0, 7.5), (10, 6.5)]
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "lr")] == [(5, 0.001)]


def test_other_ranks_write_nothing(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "run", False, {"tracking_uri": (tmp_path / "mlruns").as_uri()})
    log.write(1, {"loss": 1.0})
    log.close()
    assert not (tmp_path / "run").exists() and not (tmp_path / "mlruns").exists()
