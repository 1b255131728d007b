"""Run every stage end to end; with no arguments, on the embedded default (synthetic corpus, CPU).

    python -m ray_jobs.pipeline
    python -m ray_jobs.pipeline --config ray_jobs/configs/pipeline.yaml collect.sources.synthetic.n_repos=40
    ray job submit --working-dir . -- python -m ray_jobs.pipeline

Stages so far: collect. Each later stage (build_dataset, train, evaluate, serve) joins here as it lands.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ray_jobs import collect as collect_job
from ray_jobs.common import parse_args, setup_logging
from schemas.config import Strict

DEFAULT_CONFIG = str(Path(__file__).parent / "configs" / "pipeline.yaml")


class PipelineConfig(Strict):
    collect: collect_job.CollectConfig = collect_job.CollectConfig()


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    cfg = parse_args(PipelineConfig, argv, __doc__ or "", DEFAULT_CONFIG)
    summary = collect_job.run(cfg.collect)
    print(collect_job.format_summary(summary))
    (Path(cfg.collect.output_dir) / "collect_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
