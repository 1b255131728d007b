"""Evaluate plan prediction on a dataset split against terraform's real plans, beside baselines → reports/<name>/.

    python -m ray_jobs.evaluate                                  # the embedded default: runs/tiny vs baselines
    python -m ray_jobs.evaluate run=qwen-plan limit=200
    python -m ray_jobs.evaluate predictors='[{name: vllm, kind: openai, base_url: "http://10.0.0.5:8000/v1", model: m}]'
    ray job submit --working-dir . -- python -m ray_jobs.evaluate --config ray_jobs/configs/evaluate.yaml

Ray Data reads the split; every predictor runs as ``map_batches`` over an actor pool (one model load per actor,
batched greedy generation, GPU or CPU) and scores each answer in place against the example's ground truth.
By default the predictors are: the trivial empty answer, the static HCL planner, the untrained base model and
the train run's fine-tuned adapter, each model with and without the schema-constrained decoder. Every example
gets one row per predictor (an error row when the predictor crashes or times out on it: a miss). Writes
``predictions.parquet`` (raw text, parsed answer or its error, latency, tokens, scores) and ``metrics.json``
(micro/macro P/R/F1 over (address, actions) and addresses, exact match, valid-JSON and cut rates, per action,
by provider, complexity bucket and task variant, bootstrap 95% intervals, deltas against the fine-tuned model).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from pipelines import storage
from pipelines.evaluate import metrics as M
from pipelines.evaluate import report as html_report
from pipelines.evaluate import tasks as T
from pipelines.evaluate.predict import SCHEMA_TASKS, PredictorConfig, make, predict_rows
from pipelines.train.runs import run_weights
from ray_jobs.common import RayConfig, attach, parse_args, setup_logging
from schemas.config import Strict

logger = logging.getLogger("tfpredict.evaluate")
DEFAULT_CONFIG = str(Path(__file__).parent / "configs" / "evaluate.yaml")
TASK = "plan_prediction"


class EvaluateConfig(Strict):
    name: str = "default"  # reports/<name>/ under output_dir
    output_dir: str = "data"
    dataset: str = "default"
    dataset_dir: str | None = None
    split: str = "test"
    limit: int | None = Field(None, gt=0)  # the first N examples (by id) only
    variants: list[Literal["plan", "change"]] | None = None  # only these variants (fresh plan / change); None: all
    run: str | None = "tiny"  # the train run whose adapter is "fine-tuned" (runs/<run>/adapter); None: none
    baselines: list[str] = ["trivial", "static", "base"]  # added before the fine-tuned model
    constrained: list[bool] = [True, False]  # each model predictor with / without the schema-constrained decoder
    predictors: list[PredictorConfig] = []  # more predictors (any kind), after the defaults
    # the other tasks evaluated when the split has them (pipelines.evaluate.tasks): same predictors, static aside
    tasks: list[Literal["rego_policy", "terminal_report", "records"]] = ["rego_policy", "terminal_report", "records"]
    records_metric: T.RecordsMetric = "rouge_l"  # records: rouge_l | token_f1 | exact against the reference
    max_new_tokens: int = Field(512, gt=0)
    batch_size: int = Field(8, gt=0)
    actors: int = Field(1, gt=0)  # actors per model predictor (each loads the model once)
    use_gpu: bool = False
    timeout_s: float = Field(300.0, gt=0)  # per example
    bootstrap: int = Field(1000, ge=0)  # resamples for the 95% intervals (0: none)
    ray: RayConfig = RayConfig()


def split_path(cfg: EvaluateConfig) -> str:
    d = cfg.dataset_dir or storage.join(cfg.output_dir, "datasets", cfg.dataset)
    return storage.join(d if storage.is_uri(d) else str(Path(d).resolve()), f"{cfg.split}.parquet")


def default_predictors(cfg: EvaluateConfig) -> list[PredictorConfig]:
    """trivial, static, the untrained base and the fine-tuned adapter (each model with/without constraint)."""
    common = {"max_new_tokens": cfg.max_new_tokens, "batch_size": cfg.batch_size, "timeout_s": cfg.timeout_s,
              "use_gpu": cfg.use_gpu}  # fmt: skip
    out: list[PredictorConfig] = []
    run = None
    if cfg.run is not None:
        try:
            run = run_weights(storage.join(cfg.output_dir, "runs", cfg.run))
        except FileNotFoundError as e:
            raise SystemExit(f"evaluate: {e}, or set run=<name> / run=null") from None
    base = run.base if run else None
    for b in cfg.baselines:
        if b in ("trivial", "static", "reference"):
            out.append(PredictorConfig(name=b, kind=b, **common))  # type: ignore[arg-type]
        elif b == "base":
            if base is None:
                raise SystemExit("evaluate: baseline 'base' needs run=<a train run> (its base model)")
            for c in cfg.constrained:
                out.append(PredictorConfig(name=_label("base", c), kind="hf", model=base, constrained=c, **common))
        else:
            raise SystemExit(f"evaluate: unknown baseline {b!r}; choose from trivial, static, base, reference")
    if run is not None:
        for c in cfg.constrained:
            name = _label("fine-tuned", c)
            tuned = {"model": run.model, "adapter": run.adapter, "method": run.method, "constrained": c}
            out.append(PredictorConfig(name=name, kind="hf", **tuned, **common))
    return out + list(cfg.predictors)


def _label(name: str, constrained: bool) -> str:
    return f"{name} (constrained)" if constrained else name


# ---------------------------------------------------------------- the Ray Data stage
PREDICTIONS = pa.schema(
    [
        ("example_id", pa.string()),
        ("predictor", pa.string()),
        ("provider", pa.string()),
        ("complexity_bucket", pa.string()),
        ("subtask", pa.string()),
        ("n_tokens", pa.int32()),
        ("truth", pa.string()),
        ("text", pa.string()),  # what the predictor wrote
        ("answer", pa.string()),  # what was scored: the text, or a cut constrained answer closed (status closed)
        ("finished", pa.bool_()),
        ("error", pa.string()),
        ("parse_error", pa.string()),
        ("status", pa.string()),  # ok | closed | invalid | cut | error
        ("latency_s", pa.float64()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("valid", pa.bool_()),
        ("exact_match", pa.bool_()),
        ("precision", pa.float64()),
        ("recall", pa.float64()),
        ("f1", pa.float64()),
        ("address_f1", pa.float64()),
        ("tp", pa.int32()),
        ("fp", pa.int32()),
        ("fn", pa.int32()),
    ]
)


class PredictUDF:
    """One predictor per actor: predicts a batch of examples and scores every answer against its truth."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = PredictorConfig(**cfg)
        self.predictor = make(self.cfg)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        preds = predict_rows(self.predictor, self.cfg, rows)
        out = []
        for r, p in zip(rows, preds, strict=True):
            truth_text = r["messages"][-1]["content"]
            truth, _ = M.parse_prediction(truth_text)
            read = M.read_answer(p.text, p.finished, self.cfg.constrained, p.error)
            score = M.score_example(read.changes, truth or [])
            out.append(
                {
                    "example_id": r["example_id"],
                    "predictor": self.cfg.name,
                    "provider": r["provider"],
                    "complexity_bucket": r["complexity_bucket"],
                    "subtask": r["subtask"],
                    "n_tokens": r["n_tokens"],
                    "truth": truth_text,
                    "text": p.text,
                    "answer": read.answer,
                    "finished": p.finished,
                    "error": p.error,
                    "parse_error": read.parse_error,
                    "status": read.status,
                    "latency_s": p.latency_s,
                    "prompt_tokens": p.prompt_tokens,
                    "completion_tokens": p.completion_tokens,
                    **score.as_row(),
                }
            )
        return pa.Table.from_pylist(out, schema=PREDICTIONS)


def _predict_on(ds: Any, udf: type, pc: PredictorConfig, cfg: EvaluateConfig, **kwargs: Any) -> Any:
    """``ds`` through one predictor: an actor pool (one model load each; one CPU, or a GPU), batches of prompts."""
    import os

    import ray

    model = pc.kind == "hf"
    remote: dict[str, Any] = {}
    key = os.environ.get(pc.api_key_env) if pc.kind == "openai" else None
    if key:  # the endpoint's key, from the job's environment to its actors (workers do not inherit the driver's)
        remote["runtime_env"] = {"env_vars": {pc.api_key_env: key}}
    return ds.map_batches(
        udf,
        fn_constructor_kwargs={"cfg": pc.model_dump(), **kwargs},
        batch_size=pc.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=cfg.actors if model else 1),
        num_cpus=1 if model else 0.5,
        num_gpus=1 if (model and pc.use_gpu) else 0,
        **remote,
    )


def predict_all(cfg: EvaluateConfig, predictors: Sequence[PredictorConfig]) -> pa.Table:
    import ray
    from ray.data.expressions import col

    pred = col("task") == TASK
    if cfg.variants is not None:
        pred = pred & col("subtask").is_in(list(cfg.variants))
    ds = ray.data.read_parquet(split_path(cfg)).filter(expr=pred)
    ds = ds.sort("example_id")
    if cfg.limit:
        ds = ds.limit(cfg.limit)
    # batches of similar length: a left-padded batch computes its longest prompt's length for every row
    ds = ds.sort(["n_tokens", "example_id"]).materialize()
    tables = []
    if ds.count() == 0:  # no plan-prediction example (a dataset of the other tasks): no actor starts
        return PREDICTIONS.empty_table()
    for pc in predictors:
        tables.append(_predict_on(ds, PredictUDF, pc, cfg).to_arrow_refs())
    return pa.concat_tables([PREDICTIONS.empty_table(), *(t for refs in tables for t in ray.get(refs))])


TASK_PREDICTIONS = pa.schema(
    [
        ("example_id", pa.string()),
        ("predictor", pa.string()),
        ("task", pa.string()),
        ("subtask", pa.string()),
        ("provider", pa.string()),
        ("truth", pa.string()),
        ("text", pa.string()),
        ("finished", pa.bool_()),
        ("error", pa.string()),
        ("status", pa.string()),  # ok | invalid | cut | error | a rego checker status (compile_error, ...)
        ("valid", pa.bool_()),  # schema-valid (terminal_report); null where the task has no schema
        ("score", pa.float64()),
        ("reason", pa.string()),
        ("latency_s", pa.float64()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
    ]
)


class TaskUDF:
    """The other tasks: one predictor per actor, each answer scored with ``pipelines.evaluate.tasks``."""

    def __init__(self, cfg: dict[str, Any], reference_tests: dict[str, str], records_metric: str) -> None:
        self.cfg = PredictorConfig(**cfg)
        self.predictor = make(self.cfg)
        self.tests = reference_tests  # query_id → the write_tests reference answer (scores write_policy answers)
        self.records_metric = records_metric

    def score(self, r: Mapping[str, Any], text: str) -> T.TaskScore:
        truth = r["messages"][-1]["content"]
        if r["task"] == "terminal_report":
            return T.score_terminal_report(text, truth)
        if r["task"] == "records":
            return T.score_records(text, truth, self.records_metric)  # type: ignore[arg-type]
        user = next((m["content"] for m in reversed(r["messages"]) if m["role"] == "user"), "")
        query_id = json.loads(r["labels"] or "{}").get("query_id", "")
        return T.score_rego(r["subtask"], text, user, self.tests.get(query_id))

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        out = []
        for r, p in zip(rows, predict_rows(self.predictor, self.cfg, rows), strict=True):
            s = T.TaskScore(0.0, "error", None, p.error) if p.error else self.score(r, p.text)
            if s.status == "invalid" and not p.finished:
                s = T.TaskScore(0.0, "cut", s.valid, f"ran into the token budget; {s.reason}")
            out.append(
                {
                    "example_id": r["example_id"],
                    "predictor": self.cfg.name,
                    "task": r["task"],
                    "subtask": r["subtask"],
                    "provider": r["provider"],
                    "truth": r["messages"][-1]["content"],
                    "text": p.text,
                    "finished": p.finished,
                    "error": p.error,
                    "status": s.status,
                    "valid": s.valid,
                    "score": s.score,
                    "reason": s.reason,
                    "latency_s": p.latency_s,
                    "prompt_tokens": p.prompt_tokens,
                    "completion_tokens": p.completion_tokens,
                }
            )
        return pa.Table.from_pylist(out, schema=TASK_PREDICTIONS)


def task_rows(cfg: EvaluateConfig) -> list[dict[str, Any]]:
    """The split's examples of ``cfg.tasks`` (the first ``limit`` of each task by id when set)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not cfg.tasks:
        return []
    table = pq.read_table(split_path(cfg))
    table = table.filter(pc.is_in(table["task"], pa.array(cfg.tasks))).sort_by("example_id")
    rows, seen = [], Counter[str]()
    for r in table.to_pylist():
        seen[r["task"]] += 1
        if cfg.limit is None or seen[r["task"]] <= cfg.limit:
            rows.append(r)
    return rows


def reference_tests(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """query_id → the reference answer of that query's write_tests example (both subtasks share a split)."""
    return {json.loads(r["labels"] or "{}").get("query_id", ""): r["messages"][-1]["content"]
            for r in rows if r["task"] == "rego_policy" and r["subtask"] == "write_tests"}  # fmt: skip


def for_task(pc: PredictorConfig, task: str) -> PredictorConfig | None:
    """The predictor as it runs on ``task``: the static planner sits the other tasks out; a constrained model
    follows the task's schema, and runs only where the task has one (its free twin covers the rest)."""
    if pc.kind == "static" or (pc.constrained and task not in SCHEMA_TASKS):
        return None
    return pc.model_copy(update={"task": task})


def predict_tasks(cfg: EvaluateConfig, predictors: Sequence[PredictorConfig]) -> pa.Table:
    import ray

    rows = task_rows(cfg)
    if not rows:
        return TASK_PREDICTIONS.empty_table()
    # from the whole split: ``limit`` may keep a query's write_policy example and leave its write_tests one out
    tests = reference_tests(task_rows(cfg.model_copy(update={"limit": None, "tasks": ["rego_policy"]})))
    refs = []
    for task in sorted({r["task"] for r in rows}):
        ds = ray.data.from_items([r for r in rows if r["task"] == task])
        for pc0 in predictors:
            pc = for_task(pc0, task)
            if pc is None:
                continue
            kwargs = {"reference_tests": tests, "records_metric": cfg.records_metric}
            refs += _predict_on(ds, TaskUDF, pc, cfg, **kwargs).to_arrow_refs()
    return pa.concat_tables([TASK_PREDICTIONS.empty_table(), *ray.get(refs)])


def compute_task_metrics(table: pa.Table, order: Sequence[str]) -> dict[str, Any]:
    """task → predictor → {n, score, pass_rate, valid_rate, status, by_subtask}, predictors in ``order``."""
    by: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in table.to_pylist():
        by.setdefault(r["task"], {}).setdefault(r["predictor"], []).append(r)
    out: dict[str, Any] = {}
    for task in sorted(by):
        out[task] = {}
        for name in [n for n in order if n in by[task]]:
            rs = sorted(by[task][name], key=lambda r: r["example_id"])
            scores = [T.TaskScore(r["score"], r["status"], r["valid"], r["reason"]) for r in rs]
            subs = sorted({r["subtask"] for r in rs})
            out[task][name] = {
                **T.summarize(scores),
                "by_subtask": {
                    k: T.summarize([s for s, r in zip(scores, rs, strict=True) if r["subtask"] == k]) for k in subs if k
                },
            }
    return out


# ---------------------------------------------------------------- metrics
def _parsed(r: Mapping[str, Any]) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """(the answer's changes or None when not valid, the truth's changes), from a prediction row's texts."""
    truth, _ = M.parse_prediction(r["truth"])
    pred = None if r["status"] == "error" else M.parse_prediction(r["answer"])[0]
    return pred, truth or []


def compute_metrics(table: pa.Table, cfg: EvaluateConfig, order: Sequence[str]) -> dict[str, Any]:
    rows = table.to_pylist()
    by_pred: dict[str, list[dict[str, Any]]] = {name: [] for name in order}
    for r in rows:
        by_pred[r["predictor"]].append(r)
    out: dict[str, Any] = {"split": cfg.split, "task": TASK, "n_examples": len({r["example_id"] for r in rows}),
                           "predictors": {}}  # fmt: skip
    if not rows:
        return out
    for name, rs in by_pred.items():
        rs.sort(key=lambda r: r["example_id"])
        parsed = [_parsed(r) for r in rs]
        scores = [M.score_example(p, t) for p, t in parsed]
        summary = M.summarize(scores).as_dict()
        status = Counter(r["status"] for r in rs)
        errors: Counter[str] = Counter()
        slices: list[tuple[M.ExampleScore, str]] = []
        for r, (p, t), s in zip(rs, parsed, scores, strict=True):
            errors += M.errors_of(r["status"], p, t)
            slices += [(s, k) for k in M.slices_of(t, r["subtask"])]
        out["predictors"][name] = {
            **summary,
            "status": dict(sorted(status.items())),
            "cut_rate": status.get("cut", 0) / max(len(rs), 1),
            "closed_rate": status.get("closed", 0) / max(len(rs), 1),
            "error_rate": status.get("error", 0) / max(len(rs), 1),
            "latency_s_mean": sum(r["latency_s"] for r in rs) / max(len(rs), 1),
            "intervals": M.intervals(scores, n_resamples=cfg.bootstrap) if cfg.bootstrap else {},
            "by_provider": _groups(scores, [r["provider"] for r in rs]),
            "by_complexity": _groups(scores, [r["complexity_bucket"] for r in rs]),
            "by_variant": _groups(scores, [r["subtask"] for r in rs]),
            "by_slice": _groups([s for s, _ in slices], [k for _, k in slices]),
            "errors": {k: errors[k] for k in M.ERRORS if errors[k]},
            "confusion": M.confusion(parsed),
        }
    ref = next((n for n in order if n.startswith("fine-tuned")), None)  # constrained first when both run
    if ref is not None:
        f = out["predictors"][ref]
        out["reference"] = ref
        out["deltas"] = {
            n: {k: f[k] - p[k] for k in ("micro_f1", "macro_f1", "exact_match", "valid_rate")}
            for n, p in out["predictors"].items()
            if n != ref
        }
    return out


def _groups(scores: Sequence[M.ExampleScore], keys: Sequence[str]) -> dict[str, dict[str, float]]:
    return {
        k: {"n": s.n, "micro_f1": s.micro_f1, "macro_f1": s.macro_f1, "exact_match": s.exact_match}
        for k, s in M.by_group(scores, keys).items()
    }


# ---------------------------------------------------------------- run
def run(cfg: EvaluateConfig) -> dict[str, Any]:
    import pyarrow.parquet as pq

    start = time.monotonic()
    cfg.output_dir = attach(cfg.ray, cfg.output_dir)
    path = split_path(cfg)
    if not storage.exists(path):
        raise SystemExit(f"evaluate: {path} does not exist; run `python -m ray_jobs.build_dataset` first")
    predictors = default_predictors(cfg)
    names = [p.name for p in predictors]
    dupes = sorted(n for n, c in Counter(names).items() if c > 1)
    if dupes:
        raise SystemExit(f"evaluate: predictor names must be unique; repeated: {dupes}")
    table = predict_all(cfg, predictors)
    report = storage.join(cfg.output_dir, "reports", cfg.name)
    table = table.sort_by([("predictor", "ascending"), ("example_id", "ascending")])
    others = predict_tasks(cfg, predictors).sort_by([("task", "ascending"), ("predictor", "ascending"),
                                                     ("example_id", "ascending")])  # fmt: skip
    m = compute_metrics(table, cfg, names)
    m["tasks"] = compute_task_metrics(others, names)
    m["records_metric"] = cfg.records_metric
    m["duration_s"] = round(time.monotonic() - start, 1)
    with storage.writing_dir(report) as tmp:
        pq.write_table(table, tmp / "predictions.parquet")
        pq.write_table(others, tmp / "task_predictions.parquet")
        (tmp / "metrics.json").write_text(json.dumps(m, indent=2, sort_keys=True))
        html_report.write(tmp / "report.html", m, table.to_pylist(), title=f"tfpredict evaluation: {cfg.name}")
    m["report_dir"] = report
    return m


def format_summary(m: Mapping[str, Any]) -> str:
    lines = ["", f"evaluate summary ({m['n_examples']} {m['task']} examples, {m['split']} split)"]
    lines.append(f"  {'predictor':28s} {'micro F1':>8s} {'macro F1':>8s} {'exact':>6s} {'valid':>6s} {'closed':>6s} "
                 f"{'cut':>5s} {'err':>5s}  95% CI micro F1")  # fmt: skip
    for name, p in m["predictors"].items():
        ci = p["intervals"].get("micro_f1")
        lines.append(
            f"  {name:28s} {p['micro_f1']:8.3f} {p['macro_f1']:8.3f} {p['exact_match']:6.2f} {p['valid_rate']:6.2f} "
            f"{p['closed_rate']:6.2f} {p['cut_rate']:5.2f} {p['error_rate']:5.2f}  "
            + (f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
        )
    if "reference" in m:
        d = ", ".join(f"{n} {v['micro_f1']:+.3f}" for n, v in m["deltas"].items())
        lines.append(f"  {m['reference']} micro F1 minus: {d}")
    for task, preds in m.get("tasks", {}).items():
        n = next(iter(preds.values()))["n"] if preds else 0
        lines.append(f"  {task} ({n} examples): " + ", ".join(
            f"{name} {p['score']:.3f}" + (f" (valid {p['valid_rate']:.2f})" if p["valid_rate"] is not None else "")
            for name, p in preds.items()))  # fmt: skip
    lines.append(f"  wrote {m['report_dir']}/{{report.html,predictions.parquet,task_predictions.parquet,metrics.json}}"
                 f"  ({m['duration_s']} s)")  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    cfg = parse_args(EvaluateConfig, argv, __doc__ or "", DEFAULT_CONFIG)
    print(format_summary(run(cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
