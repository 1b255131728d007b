"""The train job end to end on the session's two-node Ray cluster: a real collect run and a real dataset
build feed 4-bit QLoRA of a tiny Llama on 2 Ray Train workers (DDP over gloo, CPU). Then: the exported
adapter reloads to the logits training saw, the merged model matches it, a rerun of the name resumes, a
SIGKILLed worker is replaced and the run resumes from its last checkpoint, early stopping stops.
Nothing is faked.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipelines.train.export import load_trained
from pipelines.train.loop import PROBE
from ray_jobs import train
from schemas.config import load_config

# a smaller tiny model than the embedded default: the same code paths, a fraction of the CPU time
SMALL = ["tiny.hidden_size=128", "tiny.num_hidden_layers=2", "tiny.intermediate_size=352", "tiny.num_attention_heads=4"]
QLORA = ["max_steps=16", "eval_every=4", "checkpoint_every=4", "early_stopping_patience=null", "learning_rate=0.004"]


@pytest.fixture(scope="module")
def data(plan_data: Path) -> Path:
    return plan_data


def run(data: Path, name: str, *overrides: str) -> dict[str, Any]:
    args = [f"output_dir={data}", f"name={name}", "tasks=[plan_prediction]", "max_seq_len=2048", *SMALL]
    cfg = load_config(train.TrainConfig, train.DEFAULT_CONFIG, [*args, *overrides])
    return train.run(cfg)


def metrics(data: Path, name: str) -> list[dict[str, float]]:
    return [json.loads(line) for line in (data / "runs" / name / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def mlruns(data: Path) -> str:
    return (data.parent / "mlruns").as_uri()


@pytest.fixture(scope="module")
def trained(data: Path, mlruns: str) -> dict[str, Any]:
    return run(data, "qlora", *QLORA, f"mlflow.tracking_uri={mlruns}")


def test_the_tiny_base_can_be_pretrained_first_once(data: Path) -> None:
    """tiny.pretrain: a full-parameter run on every token of the train split makes the base, cached for reruns."""
    args = ["tiny.pretrain.max_steps=12", "max_steps=4", "eval_every=4", "checkpoint_every=4", "export.merged=false"]
    out = run(data, "pretrained", *args)
    p = out["pretrain"]
    assert p is not None and p["steps"] == 12
    assert p["best_eval_loss"] < 0.8 * p["first_eval_loss"]  # every token of the val split: it learned the text
    assert Path(out["base_model"]).name.startswith("tiny-pretrained-")
    pre = [json.loads(x) for x in (Path(p["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in pre if "eval_loss" in m] == [0, 12]
    assert json.loads((Path(p["run_dir"]) / "train_config.json").read_text())["loss_on"] == "all"
    # the fine-tune starts from the pretrained weights, not random ones: its first eval is far below log(vocab)
    vocab = json.loads((Path(out["base_model"]) / "config.json").read_text())["vocab_size"]
    assert out["final"]["first_eval_loss"] < 0.9 * float(torch.log(torch.tensor(vocab)))
    # a rerun finds the cached base and pretrains nothing (resolving is all a rerun does before its fine-tune)
    cfg = load_config(train.TrainConfig, train.DEFAULT_CONFIG, [f"output_dir={data}", "name=pretrained",
                      "tasks=[plan_prediction]", "max_seq_len=2048", *SMALL, *args])  # fmt: skip
    assert train.resolve_base(cfg) == (out["base_model"], None)


def test_qlora_on_two_workers_learns_the_plan_task(trained: dict[str, Any], data: Path) -> None:
    f = trained["final"]
    assert trained["method"] == "qlora" and f["step"] == trained["total_steps"] == 16
    rows = [r for r in pq.read_table(data / "datasets" / "default" / "train.parquet").to_pylist()]
    plan = [r for r in rows if r["task"] == "plan_prediction"]
    # one assistant turn at the end: cut to 2,048 tokens, an example keeps no label when its prompt fills the window
    cut_off = sum(1 for r in plan if r["n_tokens"] - r["n_trainable"] >= 2048)
    assert trained["data"]["train"] == {
        **trained["data"]["train"],
        "examples": len(plan),
        "dropped_no_trainable": cut_off,
    }
    assert len(plan) > cut_off
    lines = metrics(data, "qlora")
    evals = [m["eval_loss"] for m in lines if "eval_loss" in m]
    print(f"\neval loss by eval: {[round(e, 3) for e in evals]}")
    assert evals[0] == f["first_eval_loss"] and min(evals) == f["best_eval_loss"]
    assert f["best_eval_loss"] < 0.85 * f["first_eval_loss"]  # clearly below where it started
    assert [m["step"] for m in lines if "eval_loss" in m] == [0, 4, 8, 12, 16]
    assert all(m["tokens_per_s"] > 0 and m["grad_norm"] >= 0 for m in lines if "loss" in m)
    assert list((data / "runs" / "qlora" / "tensorboard").glob("events.out.tfevents.*"))


def test_the_exported_adapter_reloads_to_the_logits_training_saw(trained: dict[str, Any], data: Path) -> None:
    run_dir = data / "runs" / "qlora"
    probe = torch.load(run_dir / PROBE)
    model = load_trained(trained["base_model"], run_dir / "adapter", "qlora")
    with torch.no_grad():
        logits = model(input_ids=probe["input_ids"]).logits
    assert torch.allclose(logits, probe["logits"], atol=1e-4), float((logits - probe["logits"]).abs().max())
    adapter_cfg = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert (adapter_cfg["r"], adapter_cfg.get("modules_to_save")) == (16, None)
    assert (run_dir / "adapter" / "tokenizer.json").exists() and (run_dir / "adapter" / "chat_template.jinja").exists()


def test_merged_export_matches_the_adapter(trained: dict[str, Any], data: Path) -> None:
    diff = trained["exported"]["merged_max_abs_logit_diff"]
    print(f"\nmerged vs adapter: max |logit diff| {diff:.2e}")
    assert diff < 0.05
    text = (data / "runs" / "qlora" / "Modelfile").read_text()
    assert text.startswith(f"FROM {data / 'runs' / 'qlora' / 'merged'}\n") and 'PARAMETER stop "<|eot_id|>"' in text


def test_metrics_reach_mlflow(
    trained: dict[str, Any], data: Path, mlruns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real mlflow client over a file-store URI, written by rank 0 inside the Ray Train worker."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the reader's side of MLflow 3's file-store switch

    client = MlflowClient(tracking_uri=mlruns)
    run_id = (data / "runs" / "qlora" / "mlflow_run_id").read_text()
    r = client.get_run(run_id)
    assert r.info.run_name == "qlora" and r.info.status == "FINISHED"
    assert (r.data.params["method"], r.data.params["lora.r"], r.data.params["max_steps"]) == ("qlora", "16", "16")
    evals = [(m["step"], m["eval_loss"]) for m in metrics(data, "qlora") if "eval_loss" in m]
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "eval_loss")] == evals


def test_rerunning_a_finished_name_resumes_instead_of_starting_over(
    trained: dict[str, Any], data: Path, mlruns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    before = metrics(data, "qlora")
    again = run(data, "qlora", *QLORA, f"mlflow.tracking_uri={mlruns}")
    assert again["final"]["step"] == 16 and again["final"]["trained_tokens"] == trained["final"]["trained_tokens"]
    assert again["base_model"] == trained["base_model"]
    after = metrics(data, "qlora")
    assert after[: len(before)] == before and after[len(before) :] == [{"resumed": 1.0, "step": 16}]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlruns)  # the same MLflow run, continued
    names = [r.info.run_name for r in client.search_runs([client.get_experiment_by_name("tfpredict").experiment_id])]
    assert names == ["qlora"]
    # the same name with settings that would change what its checkpoints mean: refused before any work
    with pytest.raises(SystemExit, match=r"runs/qlora was trained with other settings \(learning_rate: 0.004 → 0.001"):
        run(data, "qlora", *QLORA, "learning_rate=0.001", f"mlflow.tracking_uri={mlruns}")
    assert metrics(data, "qlora") == after


def _short_chats(n: int) -> list[dict[str, Any]]:
    """Plan-prediction chats small enough to fit in a few CI steps: one counted resource, its canonical plan."""
    names = ["web", "db", "queue", "cache", "api", "worker", "logs", "dns", "cdn", "vpn"]
    out = []
    for i in range(n):
        name, k = names[i % len(names)], i % 3 + 1
        changes = [{"actions": ["create"], "address": f"terraform_data.{name}[{j}]"} for j in range(k)]
        answer = json.dumps({"resource_changes": changes}, separators=(",", ":"), sort_keys=True)
        msgs = [
            {"role": "system", "content": "Predict the plan."},
            {"role": "user", "content": f'resource "terraform_data" "{name}" {{\n  count = {k}\n}}\n'},
            {"role": "assistant", "content": answer},
        ]
        out.append({"example_id": f"chat-{i:02d}", "task": "plan_prediction", "messages": msgs})
    return out


def test_the_trained_model_stops_by_itself_on_training_prompts(data: Path, tmp_path: Path) -> None:
    """End-of-turn tokens are in the loss, so the QLoRA-trained tiny model ends its answers to training prompts
    with the end-of-turn token (the tiny template's EOS) under greedy decoding instead of running on."""
    from pipelines.dataset.tokens import load_tokenizer
    from pipelines.train.data import tokenize

    chats = _short_chats(10)
    pq.write_table(pa.Table.from_pylist(chats[:8]), tmp_path / "train.parquet")
    pq.write_table(pa.Table.from_pylist(chats[8:]), tmp_path / "val.parquet")
    out = run(
        data, "eos", f"dataset_dir={tmp_path}", "packing=false", "batch_size=4", "max_steps=100", "eval_every=100",
        "checkpoint_every=100", "learning_rate=0.01", "warmup_ratio=0", "export.merged=false",
    )  # fmt: skip
    assert out["method"] == "qlora" and out["final"]["step"] == 100
    tok = load_tokenizer(out["run_dir"] + "/adapter")
    model = load_trained(out["base_model"], Path(out["run_dir"]) / "adapter", "qlora")
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    assert eot == tok.eos_token_id
    stopped, same = 0, 0
    for c in chats[:8]:
        prompt = tok.apply_chat_template(c["messages"][:-1], add_generation_prompt=True, return_dict=False)
        answer = tokenize(tok, c["messages"], 512).input_ids[len(prompt) :]  # as training saw it, EOS included
        with torch.no_grad():
            gen = model.generate(
                input_ids=torch.tensor([prompt]), max_new_tokens=len(answer) + 32, do_sample=False,
                eos_token_id=eot, pad_token_id=tok.pad_token_id,
            )[0, len(prompt) :].tolist()  # fmt: skip
        stopped += int(eot in gen)
        same += int(gen == answer)
    print(f"\nstopped by itself on {stopped}/8 training prompts; reproduced {same}/8 answers exactly")
    assert stopped == 8


def _train_workers() -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        if "RayTrainWorker" in " ".join(p.info["cmdline"] or []):
            out.append(p)
    return out


def test_a_killed_worker_resumes_from_the_last_checkpoint(data: Path) -> None:
    name = "killed"
    result: dict[str, Any] = {}
    t = threading.Thread(
        target=lambda: result.update(
            run(data, name, "max_steps=12", "eval_every=4", "checkpoint_every=2", "export.merged=false")
        )
    )
    t.start()
    run_dir = data / "runs" / name
    deadline = time.monotonic() + 600

    def past_a_checkpoint() -> bool:
        """A checkpoint (step 2) is on disk and training has logged step 5: Ray has registered it by then."""
        log = run_dir / "metrics.jsonl"
        steps = [json.loads(x)["step"] for x in log.read_text().splitlines()] if log.exists() else []
        return bool(list(run_dir.glob("checkpoint_*"))) and max(steps, default=0) >= 5

    while not past_a_checkpoint() and t.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    victims = _train_workers()
    assert victims and t.is_alive()
    os.kill(victims[-1].pid, signal.SIGKILL)
    t.join(timeout=900)
    assert result["final"]["step"] == 12
    lines = metrics(data, name)
    assert lines[0]["step"] == 0  # a new name starts fresh
    resumed = [m["step"] for m in lines if m.get("resumed")]
    assert len(resumed) == 1 and 2 <= resumed[0] < 12
    assert [m["step"] for m in lines if "eval_loss" in m].count(0) == 1  # not restarted from scratch
    # after the restart the steps go on from the checkpoint, and every step up to the end is logged
    steps = [m["step"] for m in lines if "loss" in m]
    assert steps[-1] == 12 and (run_dir / "adapter" / "adapter_model.safetensors").exists()


def test_early_stopping_stops_when_eval_loss_stops_improving(data: Path) -> None:
    out = run(
        data, "early", "method=lora", "max_steps=50", "eval_every=1", "early_stopping_patience=2",
        "early_stopping_min_delta=100", "export.merged=false",
    )  # fmt: skip
    assert out["method"] == "lora"  # plain LoRA (full-precision base) through the whole job
    assert out["final"]["stopped_early"] is True and out["final"]["step"] == 2
    assert [m["step"] for m in metrics(data, "early") if "eval_loss" in m] == [0, 1, 2]
