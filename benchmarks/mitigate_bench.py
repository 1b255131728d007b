"""Does one mitigation round raise F1 where the model is weakest? The real loop on a deliberately weakened model.

    .venv/bin/python benchmarks/mitigate_bench.py [--output-dir data] [--weak-steps 80] [--round-steps 220]

The weakened model is the embedded default's train stage (``ray_jobs/configs/pipeline.yaml``: a full fine-tune of
the tiny base on plan prediction) stopped after ``--weak-steps`` instead of 300 (``runs/bench-weak``, reused when
it exists). Then ``ray_jobs.mitigate`` runs one round with ``ray_jobs/configs/mitigate.yaml``'s settings: evaluate
on the val split with the constrained decoder, take the weakest error category, collect and plan a fresh synthetic
corpus (seed 1000, real terraform), keep that category's slice plus replayed train examples, continue the weak
model for ``--round-steps`` steps, evaluate again. Printed last: the round table, whose last column is the
targeted slice's F1 before → after. Needs the dataset stage's output (``make pipeline``, or
``python -m ray_jobs.pipeline train_enabled=false``). Takes about 30 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ray_jobs import mitigate, train  # noqa: E402
from schemas.config import load_config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output-dir", default="data")
    ap.add_argument("--weak-steps", type=int, default=80)
    ap.add_argument("--round-steps", type=int, default=220)
    args = ap.parse_args()
    out = Path(args.output_dir).resolve()
    if not (out / "datasets" / "default" / "val.parquet").exists():
        sys.exit(f"needs {out}/datasets/default: run `python -m ray_jobs.pipeline train_enabled=false` first")
    settings = yaml.safe_load((ROOT / "ray_jobs" / "configs" / "pipeline.yaml").read_text())["train"]
    settings.update({"name": "bench-weak", "output_dir": str(out), "max_steps": args.weak_steps})
    weak = train.TrainConfig.model_validate(settings)
    if not (out / "runs" / "bench-weak" / "model" / "config.json").exists():
        train.run(weak)
    cfg = load_config(
        mitigate.MitigateConfig,
        mitigate.DEFAULT_CONFIG,
        [f"output_dir={out}", "name=bench-mitigate", "run=bench-weak", "max_rounds=1",
         f"train={{max_steps: {args.round_steps}, eval_every: 50, checkpoint_every: 50}}"],
    )  # fmt: skip
    r = mitigate.run(cfg)
    print("\n" + mitigate.format_table(r))


if __name__ == "__main__":
    main()
