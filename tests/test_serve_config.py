"""The Serve application's arguments without a cluster: the checked-in config, runs resolved to their weights,
the API models' validation, the vLLM engine refused with a fix where vLLM is absent (as here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from ray_jobs.serve import ServeJobConfig, app_args
from schemas import api
from serve.app import build_app
from serve.config import AppArgs

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp: Path, name: str, kind: str) -> Path:
    run = tmp / "runs" / name
    if kind == "adapter":
        (run / "adapter").mkdir(parents=True)
        (run / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/m/base"}))
        (run / "train_config.json").write_text(json.dumps({"method": "qlora"}))
    else:
        (run / "model").mkdir(parents=True)
        (run / "model" / "config.json").write_text("{}")
        (run / "base.json").write_text(json.dumps({"base_model": "/m/tiny-base"}))
    return run


def test_the_checked_in_serve_config_is_valid_app_args() -> None:
    doc = yaml.safe_load((ROOT / "serve" / "serve_config.yaml").read_text())
    (app,) = doc["applications"]
    assert app["import_path"] == "serve.app:build_app" and doc["proxy_location"] == "HeadOnly"
    args = AppArgs(**app["args"])
    assert args.runs == ["data/runs/tiny"] and args.autoscaling.max_replicas == 2


def test_runs_resolve_to_their_weights_and_names(tmp_path: Path) -> None:
    _run(tmp_path, "tiny", "full")
    _run(tmp_path, "qwen", "adapter")
    full = app_args(ServeJobConfig(output_dir=str(tmp_path), run="tiny"))
    assert full.base_model == "/m/tiny-base" and [(m.name, m.path) for m in full.models] == [
        ("tiny", str(tmp_path / "runs" / "tiny" / "model"))]  # fmt: skip
    assert full.default_plan_model() == "tiny" and full.base_method == "lora"
    ad = app_args(ServeJobConfig(output_dir=str(tmp_path), run="qwen", app={"plan_model": "qwen"}))
    assert (ad.base_model, ad.base_method, ad.models[0].is_adapter) == ("/m/base", "qlora", True)
    with pytest.raises(SystemExit, match="train the run first"):
        app_args(ServeJobConfig(output_dir=str(tmp_path), run="missing"))
    with pytest.raises(ValidationError, match="unique"):  # a served name may not shadow the base or another
        AppArgs(base_model="/m", models=[{"name": "base", "path": "/a"}])
    with pytest.raises(ValidationError, match="base_model"):
        AppArgs()
    with pytest.raises(ValidationError, match="plan_model"):
        AppArgs(base_model="/m", plan_model="nope")
    with pytest.raises(ValidationError, match="look_back_period_s"):
        AppArgs(base_model="/m", autoscaling={"look_back_period_s": 5, "metrics_interval_s": 10})
    with pytest.raises(ValidationError, match="name"):  # names travel in URLs and headers: no spaces, no slashes
        AppArgs(base_model="/m", models=[{"name": "a/b", "path": "/a"}])


def test_the_vllm_engine_needs_vllm_and_says_so(tmp_path: Path) -> None:
    args = AppArgs(base_model="/m", engine="vllm")
    with pytest.raises(RuntimeError, match=r"pip install 'ray\[llm\]'"):
        build_app(args)


def test_api_models_refuse_what_would_silently_change_the_answer() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        api.PredictRequest(terraform_code="x", files={"main.tf": "x"})
    with pytest.raises(ValidationError, match="stop"):
        api.ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "x"}], stop=["a"] * 5)
    with pytest.raises(ValidationError, match="logprobs"):
        api.ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "x"}], logprobs=True)
    msg = api.ChatMessage(role="user", content=[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])
    assert msg.text() == "ab"
    with pytest.raises(ValueError, match="image_url"):
        api.ChatMessage(role="user", content=[{"type": "image_url", "image_url": {"url": "x"}}]).text()
    # OpenAI fields we do not implement are accepted and ignored on the OpenAI routes (stock clients send them)
    req = api.ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "x"}], presence_penalty=0.5)
    assert req.budget() is None and req.n == 1
    files = api.PredictRequest(files={"b.tf": "2", "a.tf": "1"}).file_list()
    assert [f["path"] for f in files] == ["a.tf", "b.tf"]
