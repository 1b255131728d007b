"""Bad train configs fail before any cluster work, every problem listed at once (no Ray is started here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ray_jobs import train


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    d = tmp_path / "datasets" / "default"
    d.mkdir(parents=True)
    for split in ("train", "val"):
        (d / f"{split}.parquet").write_bytes(b"")
    return tmp_path


def test_a_good_config_has_no_problem(dataset: Path, tiny_model_dir: Path) -> None:
    assert train.check(None, [f"output_dir={dataset}", f"base_model={tiny_model_dir}", "max_seq_len=512"]) == []


def test_every_problem_is_listed_at_once(dataset: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    found = train.check(
        train.DEFAULT_CONFIG,
        [
            f"output_dir={tmp_path / 'nowhere'}",  # no dataset there
            f"base_model={tiny_model_dir}",
            "lora.r=0",
            "lora.target_modules=[q_proj, qkv_proj]",
            "max_seq_len=100000",
            "num_workers=4",
            "use_gpu=true",
            "learning_rat=0.1",
        ],
        cluster={"CPU": 16.0, "GPU": 2.0},
    )
    assert found[:2] == [
        "lora.r: Input should be greater than 0",
        "learning_rat: Extra inputs are not permitted (unknown key: check the spelling against the documented "
        "settings)",
    ]
    nowhere = (tmp_path / "nowhere" / "datasets" / "default").resolve()
    assert found[2:] == [
        f"dataset: {nowhere / 'train.parquet'} does not exist; run `python -m ray_jobs.build_dataset` first, or set "
        "dataset=<name> / dataset_dir=<path>",
        f"dataset: {nowhere / 'val.parquet'} does not exist; run `python -m ray_jobs.build_dataset` first, or set "
        "dataset=<name> / dataset_dir=<path>",
        "lora.target_modules: ['qkv_proj'] are not linear layers of the model (it has ['down_proj', 'gate_proj', "
        "'k_proj', 'lm_head', 'o_proj', 'q_proj', 'up_proj', 'v_proj'])",
        "max_seq_len: 100000 is over the model's limit of 512 positions",
        "num_workers: 4 GPU workers but the cluster has 2 GPUs; lower num_workers or add GPU nodes",
    ]


def test_cuda_only_choices_are_refused_on_cpu(dataset: Path, tiny_model_dir: Path) -> None:
    found = train.check(
        None,
        [
            f"output_dir={dataset}",
            f"base_model={tiny_model_dir}",
            "max_seq_len=512",
            "attn_implementation=flash_attention_2",
            "compute_dtype=float16",
        ],
    )
    assert found == [
        "attn_implementation: flash_attention_2 needs use_gpu=true (CUDA); use sdpa on CPU",
        "compute_dtype: float16 needs a GPU; use float32 (or auto) on CPU",
    ]


def test_a_model_that_cannot_be_found_is_named(dataset: Path, tmp_path: Path) -> None:
    [msg] = train.check(None, [f"output_dir={dataset}", f"base_model={tmp_path / 'no-model'}"])
    assert msg.startswith(f"base_model: cannot load the config of '{tmp_path / 'no-model'}'")


def test_the_main_entrypoint_exits_2_with_the_list(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        train.main([f"output_dir={dataset}", "lora.r=0", "base_model=tiny"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("train: 2 config problem(s), nothing was run:\n  - lora.r: Input should be greater than 0")
    assert "base_model=tiny: the tokenizer" in err


def test_mlflow_tracking_without_the_client_is_refused(
    dataset: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asked to track (by config or by the MLFLOW_TRACKING_URI a user exported) where mlflow is not installed."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    base = [f"output_dir={dataset}", f"base_model={tiny_model_dir}", "max_seq_len=512"]
    want = (
        "mlflow: tracking to http://mlflow.internal:5000 needs the mlflow client: pip install 'tfpredict[tracking]' "
        "(or unset mlflow.tracking_uri / MLFLOW_TRACKING_URI)"
    )
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert train.check(None, base) == []
    assert train.check(None, [*base, "mlflow.tracking_uri=http://mlflow.internal:5000"]) == [want]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert train.check(None, base) == [want]


def test_init_adapter_must_be_an_adapter_of_the_same_base(dataset: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    ad = tmp_path / "ad"
    ad.mkdir()
    base = [f"output_dir={dataset}", f"base_model={tiny_model_dir}", "max_seq_len=512"]
    assert train.check(None, [*base, f"init_adapter={ad}"]) == [
        f"init_adapter: {ad} has no adapter_config.json; give a PEFT adapter directory (runs/<run>/adapter)"
    ]
    (ad / "adapter_config.json").write_text('{"base_model_name_or_path": "/elsewhere/model"}')
    assert train.check(None, [*base, f"init_adapter={ad}"]) == [
        f"init_adapter: {ad} was trained on '/elsewhere/model', so set base_model=/elsewhere/model "
        f"(now '{tiny_model_dir}')"
    ]
    assert train.check(None, [*base, f"init_adapter={ad}", "method=full"]) == [
        "init_adapter: continues a LoRA adapter, so it needs method=lora or qlora (not full)"
    ]
    (ad / "adapter_config.json").write_text(f'{{"base_model_name_or_path": "{tiny_model_dir}"}}')
    assert train.check(None, [*base, f"init_adapter={ad}"]) == []


def test_a_resumed_name_may_change_how_long_not_what_it_trains() -> None:
    from ray_jobs.train import TrainConfig, resume_conflicts

    before = TrainConfig(name="r").model_dump()
    longer = TrainConfig(name="r", max_steps=900, eval_every=7, export={"merged": False}).model_dump()
    assert resume_conflicts(before, longer, "r") == []
    other = TrainConfig(name="r", method="full", lora={"r": 8}, learning_rate=0.01).model_dump()
    (msg,) = resume_conflicts(before, other, "r")
    assert "learning_rate: 0.0002 → 0.01" in msg and "method: 'qlora' → 'full'" in msg and "lora: " in msg
    assert msg.endswith("give the new settings a new name (name=...) or delete runs/r")
    # a key only one side has (an older run directory) counts as a difference too
    assert resume_conflicts({**before, "gone": 1}, before, "r") != []
