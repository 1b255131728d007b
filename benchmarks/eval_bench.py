"""Examples per second: the Ray Data batch predictor of ``ray_jobs.evaluate`` vs a one-at-a-time ``generate`` loop.

    .venv/bin/python benchmarks/eval_bench.py [--output-dir data] [--examples 48] [--max-new-tokens 64]

Same model (the embedded tiny base, untrained, so every answer runs the whole token budget: equal work on
both sides, no luck in where answers stop), same plan-prediction examples (the first N by id of all splits: an
untrained model has seen none), same greedy decoding without the constraint, same token budget:
- loop: one process, one model load, ``generate`` on one prompt at a time (all the machine's threads);
- Ray Data: ``predict_all`` as the evaluate job runs it: ``map_batches`` over an actor pool (``--actors``, one CPU
  and one model load each), batches of ``--batch-size`` prompts, left padded.
Both include loading the model; the Ray side includes its actors' start (not ``ray.init``). Answers are checked
equal between the two (batched left-padded greedy must not change what the model writes). Ratio printed last.
Needs the dataset stage's output (``make pipeline``, or ``python -m ray_jobs.pipeline train_enabled=false``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from pipelines.evaluate.predict import HF, PredictorConfig  # noqa: E402
from ray_jobs.common import RayConfig, init_ray  # noqa: E402
from ray_jobs.evaluate import EvaluateConfig, predict_all  # noqa: E402
from ray_jobs.train import TrainConfig, resolve_base  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output-dir", default="data")
    ap.add_argument("--examples", type=int, default=48)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--actors", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.output_dir).resolve()
    ds_dir = out / "datasets" / "default"
    if not (out / "models" / "tiny" / "tokenizer.json").exists() or not (ds_dir / "test.parquet").exists():
        sys.exit(f"needs {out}/models/tiny and {ds_dir}: run `python -m ray_jobs.pipeline train_enabled=false` first")
    base, _ = resolve_base(TrainConfig(output_dir=str(out)))  # the embedded tiny base (built once, cached)
    rows = [r for s in ("train", "val", "test") for r in pq.read_table(ds_dir / f"{s}.parquet").to_pylist()
            if r["task"] == "plan_prediction"]  # fmt: skip
    rows = sorted(rows, key=lambda r: r["example_id"])[: args.examples]
    n = len(rows)
    pc = PredictorConfig(name="tiny", kind="hf", model=str(base), max_new_tokens=args.max_new_tokens,
                         batch_size=args.batch_size)  # fmt: skip
    print(f"{n} plan-prediction examples, {args.max_new_tokens} new tokens each, model {base}")

    t0 = time.perf_counter()
    one = HF(pc)
    loop = {r["example_id"]: one.predict([r["messages"][:-1]])[0].text for r in rows}
    t_loop = time.perf_counter() - t0
    del one
    print(f"  one at a time:  {t_loop:7.1f} s  {n / t_loop:6.2f} examples/s")

    init_ray(RayConfig())
    split = out / "bench-eval"
    split.mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), split / "test.parquet")
    cfg = EvaluateConfig(output_dir=str(out), dataset_dir=str(split), actors=args.actors, run=None)
    t0 = time.perf_counter()
    table = predict_all(cfg, [pc])
    t_ray = time.perf_counter() - t0
    batched = dict(zip(table.column("example_id").to_pylist(), table.column("text").to_pylist(), strict=True))
    print(f"  Ray Data batch: {t_ray:7.1f} s  {n / t_ray:6.2f} examples/s  "
          f"({args.actors} actors x batch {args.batch_size})")  # fmt: skip
    same = sum(batched[k] == v for k, v in loop.items())
    print(f"  identical answers: {same}/{n}")
    print(f"speedup (examples/s, Ray Data batch / one at a time): {t_loop / t_ray:.2f}x")


if __name__ == "__main__":
    main()
