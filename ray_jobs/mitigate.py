"""Error mitigation: evaluate, find the weakest error category, train on targeted examples, re-evaluate; repeat.

    python -m ray_jobs.mitigate                                    # improve runs/tiny on the default dataset
    python -m ray_jobs.mitigate run=tiny threshold=0.8 max_rounds=3 train.max_steps=60
    ray job submit --working-dir . -- python -m ray_jobs.mitigate --config ray_jobs/configs/mitigate.yaml

Round k evaluates the current model (round 0: ``run``) on ``split`` (val by default: the loop chooses data by
what it sees there, so the test split stays untouched), with the constrained decoder. It stops when micro F1
reaches ``threshold`` or after ``max_rounds`` rounds of training. Otherwise it takes the error category with the
most errors (``pipelines.evaluate.metrics.ERRORS``: invalid JSON, missed or hallucinated resources, wrong action,
count/for_each expansion, module address) and makes targeted training examples for it: a fresh synthetic corpus
(the corpus generator with seed ``synthetic.seed + k``) is collected and planned by real terraform, the dataset
stage builds plan-prediction examples from it (with its augmentations), and the examples of the category's slice
(``SLICE_OF_ERROR``: wrong action → change examples, expansion → examples whose plan has count/for_each
instances, module address → examples with module addresses; anything else → every example) are kept, mixed with
``replay`` examples of the original train split so the model does not forget the rest. Training continues from
the last model (a LoRA run's adapter through ``init_adapter``, a full run's weights as the new base) with the
original run's settings. ``reports/<name>/rounds.{json,md}`` holds the round table: micro F1, the weakest
category and its errors, and the F1 of the slice the previous round targeted, before and after.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from pipelines import storage
from pipelines.collect.synthetic.config import SyntheticConfig
from pipelines.evaluate import metrics as M
from pipelines.train.runs import run_weights
from ray_jobs import build_dataset as build_job
from ray_jobs import collect as collect_job
from ray_jobs import evaluate as evaluate_job
from ray_jobs import train as train_job
from ray_jobs.common import RayConfig, attach, parse_args, setup_logging
from schemas.config import Strict, load_config

logger = logging.getLogger("tfpredict.mitigate")
DEFAULT_CONFIG = str(Path(__file__).parent / "configs" / "mitigate.yaml")
TASK = "plan_prediction"
REFERENCE = "fine-tuned (constrained)"


class MitigateConfig(Strict):
    name: str = "mitigate"  # reports/<name>/, runs/<name>-r<k>, mitigate/<name>/ (targeted data) under output_dir
    output_dir: str = "data"
    run: str = "tiny"  # the train run to improve
    dataset: str = "default"  # the dataset the run trained on: ``split`` drives the loop, its train split is replayed
    split: str = "val"
    threshold: float = Field(0.8, ge=0, le=1)  # stop when micro F1 on ``split`` reaches it
    max_rounds: int = Field(3, ge=0)  # rounds of training at most
    examples_per_round: int = Field(64, gt=0)  # targeted train examples per round (at most)
    replay: int = Field(32, ge=0)  # original train examples mixed into each round
    synthetic: SyntheticConfig = SyntheticConfig(n_repos=12, seed=1000)  # round k uses seed + k
    synthetic_history: bool = True  # change examples (commit by commit) as well as fresh plans
    train: dict[str, Any] = {"max_steps": 40}  # overrides of the original run's settings for every round
    evaluate: dict[str, Any] = {}  # overrides of every round's evaluation (e.g. max_new_tokens, limit)
    seed: int = 0
    ray: RayConfig = RayConfig()


def weakest(errors: Mapping[str, int]) -> str | None:
    """The category with the most errors (ties: the earlier in ``ERRORS``); None when there is none."""
    ranked = sorted((c for c in M.ERRORS if errors.get(c)), key=lambda c: (-errors[c], M.ERRORS.index(c)))
    return ranked[0] if ranked else None


def slice_of(category: str) -> str:
    return M.SLICE_OF_ERROR.get(category, "all")


def targeted(rows: Sequence[Mapping[str, Any]], slice_name: str, k: int, seed: int) -> list[dict[str, Any]]:
    """Up to ``k`` plan-prediction rows of the slice (seeded choice, stable order by example id)."""
    picked = []
    for r in sorted(rows, key=lambda r: r["example_id"]):
        if r["task"] != TASK:
            continue
        truth, _ = M.parse_prediction(r["messages"][-1]["content"])
        if slice_name in M.slices_of(truth or [], r["subtask"]):
            picked.append(dict(r))
    rng = random.Random(seed)
    return sorted(rng.sample(picked, k) if len(picked) > k else picked, key=lambda r: r["example_id"])


# ---------------------------------------------------------------- the stages of one round
def evaluate_round(cfg: MitigateConfig, k: int, run: str) -> dict[str, Any]:
    overrides = {"name": f"{cfg.name}-round-{k}", "output_dir": cfg.output_dir, "dataset": cfg.dataset,
                 "split": cfg.split, "run": run, "baselines": [], "constrained": [True], "tasks": [],
                 **cfg.evaluate}  # fmt: skip
    ecfg = evaluate_job.EvaluateConfig.model_validate({**overrides, "ray": cfg.ray.model_dump()})
    return evaluate_job.run(ecfg)["predictors"][REFERENCE]


def make_data(cfg: MitigateConfig, k: int, category: str) -> tuple[Path, dict[str, Any]]:
    """Collect and plan a fresh synthetic corpus, build its examples, keep the category's slice + replay."""
    out = Path(cfg.output_dir).resolve()
    work = out / "mitigate" / cfg.name / f"round-{k}"
    synth = cfg.synthetic.model_copy(update={"seed": cfg.synthetic.seed + k})
    collect_job.run(
        load_config(
            collect_job.CollectConfig,
            None,
            [
                f"output_dir={work}",
                f"cache_dir={out / 'mitigate' / cfg.name / 'git'}",
                f"sources.synthetic={synth.model_dump_json()}",
                f"sources.synthetic_history={cfg.synthetic_history}",
            ],
        )
    )
    build = build_job.BuildDatasetConfig(
        name="generated", output_dir=str(work), tokenizer=str(_tokenizer(cfg)), tasks={TASK: 1.0}, ray=cfg.ray
    )
    build_job.run(build)
    gen = work / "datasets" / "generated"
    rows = [r for s in ("train", "val", "test") if (gen / f"{s}.parquet").exists()
            for r in pq.read_table(gen / f"{s}.parquet").to_pylist()]  # fmt: skip
    want = slice_of(category)
    picked = targeted(rows, want, cfg.examples_per_round, cfg.seed + k)
    if not picked:
        logger.warning("round %d: no generated example is in slice %r; training on every generated one", k, want)
        picked = targeted(rows, "all", cfg.examples_per_round, cfg.seed + k)
    orig = Path(cfg.output_dir).resolve() / "datasets" / cfg.dataset
    train_rows = pq.read_table(orig / "train.parquet").to_pylist()
    replay = targeted(train_rows, "all", cfg.replay, cfg.seed + 100 + k) if cfg.replay else []
    ds = work / "datasets" / "targeted"
    ds.mkdir(parents=True, exist_ok=True)
    schema = pq.read_schema(orig / "train.parquet")
    cols = schema.names
    pq.write_table(pa.Table.from_pylist([{c: r.get(c) for c in cols} for r in picked + replay], schema=schema),
                   ds / "train.parquet")  # fmt: skip
    pq.write_table(pq.read_table(orig / "val.parquet"), ds / "val.parquet")
    return ds, {"slice": want, "targeted": len(picked), "replay": len(replay), "generated": len(rows)}


def _tokenizer(cfg: MitigateConfig) -> Path:
    return Path(cfg.output_dir).resolve() / "models" / "tiny"


def round_config(cfg: MitigateConfig, k: int, run: str, data: Path) -> train_job.TrainConfig:
    """Round k's train config: ``run``'s own settings (and ``cfg.train``) on ``data``; a LoRA/QLoRA run's adapter
    continues (``init_adapter``) on the same base, a full fine-tune's model becomes the base."""
    out = Path(cfg.output_dir).resolve()
    prev = out / "runs" / run
    settings = json.loads((prev / "train_config.json").read_text())
    weights = run_weights(prev)
    # tasks: the round's examples are plan prediction, and so is the val loss that picks its best checkpoint
    settings.update({"name": f"{cfg.name}-r{k + 1}", "output_dir": str(out), "dataset_dir": str(data),
                     "tasks": [TASK], "max_examples": None, "base_model": weights.model,
                     "init_adapter": weights.adapter, "ray": cfg.ray.model_dump()})  # fmt: skip
    settings.update(cfg.train)
    return train_job.TrainConfig.model_validate(settings)


def train_round(cfg: MitigateConfig, k: int, run: str, data: Path) -> tuple[str, dict[str, Any]]:
    """Train round k (``round_config``) → the new run's name and what it reached."""
    tcfg = round_config(cfg, k, run, data)
    bad = train_job.problems(tcfg)
    if bad:
        raise SystemExit("mitigate: the round's train config has problems:\n  " + "\n  ".join(bad))
    s = train_job.run(tcfg)
    return tcfg.name, {"steps": s["final"].get("step"), "best_eval_loss": s["final"].get("best_eval_loss")}


# ---------------------------------------------------------------- the loop
def run(cfg: MitigateConfig) -> dict[str, Any]:
    start = time.monotonic()
    if storage.is_uri(cfg.output_dir):  # its rounds edit datasets and runs in place: a filesystem only, for now
        raise SystemExit(
            f"mitigate: output_dir={cfg.output_dir} is an object store; the mitigation loop runs on a filesystem "
            "path (a shared one on a cluster) for now"
        )
    cfg.output_dir = attach(cfg.ray, cfg.output_dir)
    out = Path(cfg.output_dir)
    try:
        run_weights(out / "runs" / cfg.run)
    except FileNotFoundError as e:
        raise SystemExit(f"mitigate: {e}, or set run=<name>") from None
    rounds: list[dict[str, Any]] = []
    run_name, target, stop = cfg.run, None, ""
    for k in range(cfg.max_rounds + 1):
        t0 = time.monotonic()
        m = evaluate_round(cfg, k, run_name)
        row: dict[str, Any] = {"round": k, "run": run_name, "micro_f1": m["micro_f1"], "macro_f1": m["macro_f1"],
                               "valid_rate": m["valid_rate"], "errors": m["errors"],
                               "slice_f1": {s: v["micro_f1"] for s, v in m["by_slice"].items()}}  # fmt: skip
        if target is not None:  # the slice the previous round trained for: before → after
            before = rounds[-1]["slice_f1"].get(target["slice"])
            row["targeted"] = {**target, "f1_before": before, "f1_after": row["slice_f1"].get(target["slice"])}
        cat = weakest(m["errors"])
        row["weakest"] = cat
        rounds.append(row)
        if m["micro_f1"] >= cfg.threshold:
            stop = f"threshold reached: micro F1 {m['micro_f1']:.3f} >= {cfg.threshold}"
        elif k == cfg.max_rounds:
            stop = f"round limit: {cfg.max_rounds} round(s) of training"
        elif cat is None:
            stop = "no errors left to target"
        if stop:
            row["duration_s"] = round(time.monotonic() - t0, 1)
            break
        assert cat is not None
        data, made = make_data(cfg, k, cat)
        run_name, trained = train_round(cfg, k, run_name, data)
        target = {"category": cat, "errors": m["errors"][cat], **made, **trained}
        row["next"] = target
        row["duration_s"] = round(time.monotonic() - t0, 1)
        logger.info("round %d: micro F1 %.3f, weakest %s (%d errors): trained %s on %d targeted + %d replayed",
                    k, m["micro_f1"], cat, m["errors"][cat], run_name, made["targeted"], made["replay"])  # fmt: skip
    report = out / "reports" / cfg.name
    report.mkdir(parents=True, exist_ok=True)
    result = {"name": cfg.name, "split": cfg.split, "threshold": cfg.threshold, "stop": stop, "rounds": rounds,
              "final_run": run_name, "duration_s": round(time.monotonic() - start, 1)}  # fmt: skip
    (report / "rounds.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    (report / "rounds.md").write_text(format_table(result) + "\n")
    result["report_dir"] = str(report)
    return result


def format_table(r: Mapping[str, Any]) -> str:
    lines = [
        f"mitigation rounds ({r['split']} split, threshold micro F1 {r['threshold']})",
        "",
        "| round | run | micro F1 | valid | weakest (errors) | trained for: slice, examples | slice F1 before→after |",
        "|---:|---|---:|---:|---|---|---|",
    ]
    for row in r["rounds"]:
        w = row["weakest"]
        weak = f"{w} ({row['errors'][w]})" if w else "–"
        nxt = row.get("next")
        plan = f"{nxt['slice']}: {nxt['targeted']} + {nxt['replay']} replay, {nxt['steps']} steps" if nxt else "–"
        t = row.get("targeted")
        moved = (f"{t['category']} → {t['slice']}: {t['f1_before']:.3f} → {t['f1_after']:.3f}"
                 if t and t["f1_before"] is not None and t["f1_after"] is not None else "–")  # fmt: skip
        lines.append(f"| {row['round']} | {row['run']} | {row['micro_f1']:.3f} | {row['valid_rate']:.2f} | {weak} | "
                     f"{plan} | {moved} |")  # fmt: skip
    lines += ["", f"stopped: {r['stop']}; final run: {r['final_run']} ({r['duration_s']} s)"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    cfg = parse_args(MitigateConfig, argv, __doc__ or "", DEFAULT_CONFIG)
    r = run(cfg)
    print("\n" + format_table(r) + f"\n  wrote {r['report_dir']}/rounds.{{json,md}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
