"""The layout of a finished train run (``runs/<name>/``), readable without torch: which weights it serves."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunWeights:
    """What a finished train run serves: ``model`` (+ ``adapter`` for LoRA/QLoRA) and the untrained ``base``."""

    model: str  # the base the adapter loads on, or the fully fine-tuned model directory
    adapter: str | None
    method: str
    base: str


def run_weights(run_dir: str | Path) -> RunWeights:
    """The exported weights of ``runs/<name>`` (``adapter/`` or, for method=full, ``model/``). Raises
    FileNotFoundError naming the fix when the run has not exported yet."""
    run = Path(run_dir)
    method = (
        json.loads((run / "train_config.json").read_text())["method"]
        if (run / "train_config.json").exists()
        else "lora"
    )
    if (run / "adapter" / "adapter_config.json").exists():
        base = json.loads((run / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"]
        return RunWeights(model=base, adapter=str(run / "adapter"), method=method, base=base)
    if (run / "model" / "config.json").exists():
        recorded = run / "base.json"
        base = json.loads(recorded.read_text())["base_model"] if recorded.exists() else str(run / "model")
        return RunWeights(model=str(run / "model"), adapter=None, method="full", base=base)
    raise FileNotFoundError(
        f"{run} has neither adapter/ nor model/: train the run first (python -m ray_jobs.train name={run.name})"
    )
