"""Tokenization + validation throughput: the build job's Ray Data stage vs a single-process loop.

    .venv/bin/python benchmarks/dataset_bench.py [--examples 4000] [--blocks N] [--cores N]

Both sides run the job's own ``prepare_udf`` (OpenAI-format validation, chat-template token counts with
assistant-only spans, content hash, MinHash signature) over the same examples (synthetic terminal
transcripts and their reports: long, realistic chat examples) with the same tokenizer, in batches of the
job's size. Baseline: a plain loop in this process. Ours: ``ray.data.from_items(...).map_batches(...)`` on a
local Ray cluster with N CPUs, workers warmed by a small pass first (both sides have the tokenizer loaded:
we compare steady-state throughput, not interpreter start-up). Ratio (ours/baseline throughput) printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.dataset.tasks import terminal_report  # noqa: E402
from pipelines.dataset.tokens import build_tiny_tokenizer  # noqa: E402
from ray_jobs.build_dataset import DedupConfig, LengthConfig, prepare_udf  # noqa: E402


def make_items(n: int) -> list[dict]:
    cfg = terminal_report.Config(n_synthetic=n, seed=7)
    items = []
    for row in terminal_report.sources(cfg):
        for ex in terminal_report.examples(row, cfg):
            items.append(
                {
                    "kind": "example",
                    "task": ex["task"],
                    "source_id": ex["source_id"],
                    "example_id": ex["example_id"],
                    "stage": "",
                    "reason": "",
                    "detail": "",
                    "example": json.dumps(ex),
                }
            )
    return items


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--examples", type=int, default=4000)
    p.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--blocks", type=int, default=0, help="input blocks (default: 4 per core)")
    args = p.parse_args()
    items = make_items(args.examples)
    work = Path(tempfile.mkdtemp(prefix="dataset-bench-"))
    texts = [json.loads(i["example"])["messages"][1]["content"] for i in items[:500]]
    tok = str(build_tiny_tokenizer(texts, work / "tok", vocab_size=4096))
    kw = {"tokenizer": tok, "length": LengthConfig(), "dedup": DedupConfig()}

    prepare_udf(pa.Table.from_pylist(items[:8]), **kw)  # load the tokenizer in this process
    t0 = time.perf_counter()
    n_base = 0
    for i in range(0, len(items), args.batch_size):
        n_base += prepare_udf(pa.Table.from_pylist(items[i : i + args.batch_size]), **kw).num_rows
    base_s = time.perf_counter() - t0

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(num_cpus=args.cores, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False

    def run(rows: list[dict], blocks: int) -> int:
        ds = ray.data.from_items(rows, override_num_blocks=blocks)
        return ds.map_batches(prepare_udf, batch_size=args.batch_size, batch_format="pyarrow", fn_kwargs=kw).count()

    @ray.remote(num_cpus=1)
    def warm(batch: list[dict]) -> int:  # every worker imports the job module and loads the tokenizer once
        time.sleep(1)  # hold the CPU so that the other warm-up lands on another worker
        return prepare_udf(pa.Table.from_pylist(batch), **kw).num_rows

    ray.get([warm.remote(items[:4]) for _ in range(args.cores)])
    run(items[: args.cores * 8], args.cores * 8)
    t0 = time.perf_counter()
    n_ours = run(items, args.blocks or args.cores * 4)
    ours_s = time.perf_counter() - t0
    ray.shutdown()
    assert n_base == n_ours == len(items), (n_base, n_ours, len(items))
    tokens = sum(len(json.loads(i["example"])["messages"][1]["content"]) for i in items)
    print(f"examples: {len(items)} ({tokens / 1e6:.1f} M characters), cores: {args.cores}, batch {args.batch_size}")
    print(f"baseline single-process loop: {base_s:.2f} s ({len(items) / base_s:.0f} examples/s)")
    print(f"ours, Ray Data map_batches:   {ours_s:.2f} s ({len(items) / ours_s:.0f} examples/s)")
    print(f"throughput ratio (ours / baseline): {base_s / ours_s:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
