"""The layout of a finished train run (``runs/<name>/``), readable without torch: which weights it serves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines import storage

CHECKPOINTS = ("checkpoint_",)  # Ray Train's checkpoints in a run directory (it stores and restores them itself)


@dataclass(frozen=True)
class RunWeights:
    """What a finished train run serves: ``model`` (+ ``adapter`` for LoRA/QLoRA) and the untrained ``base``."""

    model: str  # the base the adapter loads on, or the fully fine-tuned model directory
    adapter: str | None
    method: str
    base: str


def run_weights(run_dir: str | Path) -> RunWeights:
    """The exported weights of ``runs/<name>`` (``adapter/`` or, for method=full, ``model/``), as locations (paths
    or object store URIs). Raises FileNotFoundError naming the fix when the run has not exported yet."""
    run = str(run_dir)
    method = (storage.read_json(storage.join(run, "train_config.json")) or {}).get("method", "lora")
    recorded = (storage.read_json(storage.join(run, "base.json")) or {}).get("base_model")  # as the run named it
    adapter = storage.read_json(storage.join(run, "adapter", "adapter_config.json"))
    if adapter is not None:
        base = recorded or adapter["base_model_name_or_path"]
        return RunWeights(model=base, adapter=storage.join(run, "adapter"), method=method, base=base)
    if storage.exists(storage.join(run, "model", "config.json")):
        model = storage.join(run, "model")
        return RunWeights(model=model, adapter=None, method="full", base=recorded or model)
    name = run.rstrip("/").rsplit("/", 1)[-1]
    raise FileNotFoundError(
        f"{run} has neither adapter/ nor model/: train the run first (python -m ray_jobs.train name={name})"
    )
