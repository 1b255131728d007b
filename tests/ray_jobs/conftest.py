"""One small real corpus for the train, evaluate and mitigate tests: collected (real git, real terraform plans,
history mode for change examples) and built into the default dataset once per session. Tests write their own
runs/, reports/ and models/ entries under it, each by its own name, and never modify the dataset. ``fake_run``
lays out runs/fake as the train job would, holding a LoRA adapter with random weights (a deliberately broken
model, for evaluation and mitigation tests that test those stages, not learning)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

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


@pytest.fixture(scope="session")
def fake_run(plan_data: Path) -> str:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipelines.train.model import TinyShape, build_tiny_model

    shape = TinyShape(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=176, max_position_embeddings=4096)  # fmt: skip
    base = build_tiny_model(plan_data / "models" / "tiny", plan_data / "models" / "tiny-base-test", shape, seed=0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(base)), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"])
    )
    torch.manual_seed(0)
    for n, p in model.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.5)
    run_dir = plan_data / "runs" / "fake"
    model.save_pretrained(str(run_dir / "adapter"))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(run_dir / "adapter"))
    settings = {"method": "lora", "learning_rate": 0.01, "max_seq_len": 2048, "batch_size": 2, "eval_every": 2,
                "checkpoint_every": 2, "export": {"merged": False, "modelfile": False}}  # fmt: skip
    (run_dir / "train_config.json").write_text(json.dumps(settings))
    return "fake"
