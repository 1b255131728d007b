"""Run every stage end to end; with no arguments, on the embedded default (synthetic corpus, CPU).

    python -m ray_jobs.pipeline
    python -m ray_jobs.pipeline --config ray_jobs/configs/pipeline.yaml collect.sources.synthetic.n_repos=40
    ray job submit --working-dir . -- python -m ray_jobs.pipeline

Stages so far: collect → build_dataset. Each later stage (train, evaluate, serve) joins here as it lands.
Every stage writes under ``output_dir`` and uses the one ``ray`` section.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ray_jobs import build_dataset as build_dataset_job
from ray_jobs import collect as collect_job
from ray_jobs.common import RayConfig, parse_args, setup_logging
from schemas.config import Strict

DEFAULT_CONFIG = str(Path(__file__).parent / "configs" / "pipeline.yaml")


class PipelineConfig(Strict):
    output_dir: str = "data"  # overrides every stage's output_dir
    ray: RayConfig = RayConfig()  # overrides every stage's ray section
    collect: collect_job.CollectConfig = collect_job.CollectConfig()
    build_dataset: build_dataset_job.BuildDatasetConfig = build_dataset_job.BuildDatasetConfig()


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    cfg = parse_args(PipelineConfig, argv, __doc__ or "", DEFAULT_CONFIG)
    out = Path(cfg.output_dir)
    for stage in (cfg.collect, cfg.build_dataset):
        stage.output_dir, stage.ray = cfg.output_dir, cfg.ray

    summary = collect_job.run(cfg.collect)
    print(collect_job.format_summary(summary))
    (out / "collect_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))

    summary = build_dataset_job.run(cfg.build_dataset)
    print(build_dataset_job.format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
