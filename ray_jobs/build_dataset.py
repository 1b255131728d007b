"""Build a chat fine-tuning dataset from DevOps tasks → datasets/<name>/ (OpenAI JSONL, Parquet, Harmony).

    python -m ray_jobs.build_dataset --config ray_jobs/configs/build_dataset.yaml [key=value ...]
    python -m ray_jobs.build_dataset tasks='{plan_prediction: 1.0, terminal_report: 0.5}'
    ray job submit --working-dir . -- python -m ray_jobs.build_dataset --config ray_jobs/configs/build_dataset.yaml

One Ray Data pipeline: task sources → examples (one task per block of source rows) → validation,
tokenization with the base model's chat template and MinHash signatures (parallel) → on the driver:
exact and near-duplicate removal, leak-free grouped splits, mixture weights → files written atomically.
Every source row yields its examples or one ``dropped`` row with a reason; the same inputs give
byte-identical files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import field_validator

from pipelines import storage
from pipelines.collect import secrets
from pipelines.dataset import dedup as dedup_lib
from pipelines.dataset import split as split_lib
from pipelines.dataset.example import SCRUBBED_KEY, SkipSource
from pipelines.dataset.formats import dumps_line, harmony_record, openai_record, render_harmony
from pipelines.dataset.tasks import imported, plan_prediction, records, rego_policy, terminal_report
from pipelines.dataset.tokens import build_tiny_tokenizer, count_tokens, load_tokenizer, tokenizer_fingerprint
from pipelines.dataset.validate import check_example
from ray_jobs.common import RayConfig, attach, parse_args, setup_logging
from schemas.config import Strict
from schemas.tables import EXAMPLES, SPLITS, conform

logger = logging.getLogger("tfpredict.build_dataset")
DEFAULT_CONFIG = str(Path(__file__).parent / "configs" / "build_dataset.yaml")

# the tasks a config can name, chosen from an explicit dict
TASKS: dict[str, ModuleType] = {m.NAME: m for m in (plan_prediction, rego_policy, terminal_report, records, imported)}

# each task's config section (aliases: the section names below shadow the modules inside the class body)
PlanPredictionConfig = plan_prediction.Config
RegoPolicyConfig = rego_policy.Config
TerminalReportConfig = terminal_report.Config
RecordsConfig = records.Config
ImportedConfig = imported.Config


# ---------------------------------------------------------------- config
class LengthConfig(Strict):
    max_tokens: int = 8192  # whole rendered conversation, with the chat template
    over_limit: Literal["drop", "truncate", "fail"] = "drop"  # truncate: keep, training cuts at max_tokens


class DedupConfig(Strict):
    near_threshold: float = 0.9  # estimated Jaccard of word shingles; 1.0 turns near-dup detection off
    near_mode: Literal["group", "drop"] = "group"  # group: keep, but a cluster never straddles splits
    num_perm: int = 128
    shingle: int = 5


class SplitConfig(Strict):
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1
    salt: str = "tfpredict"  # changing it reshuffles every assignment (of groups not made sticky)
    sticky: bool = True  # groups assigned by an earlier build of this dataset keep their split
    min_groups: int = 5  # a stratum with this many components always gets val and test components
    top_up_below: int = 50  # ... and, with fewer than this many, at least its share of them (rounded down)


class ExportConfig(Strict):
    harmony: bool = True  # harmony/{split}.jsonl and the rendered harmony/{split}.txt


class BuildDatasetConfig(Strict):
    name: str = "default"
    output_dir: str = "data"  # writes <output_dir>/datasets/<name>/
    # the base model's tokenizer (HF directory or hub id); None: the embedded tiny tokenizer at
    # <output_dir>/models/tiny, trained on the collected Terraform corpus when missing
    tokenizer: str | None = None
    tiny_vocab_size: int = 4096
    tasks: dict[str, float] = {"plan_prediction": 1.0}  # task → mixture weight (train split copies)
    plan_prediction: PlanPredictionConfig = PlanPredictionConfig()
    rego_policy: RegoPolicyConfig = RegoPolicyConfig()
    terminal_report: TerminalReportConfig = TerminalReportConfig()
    records: RecordsConfig = RecordsConfig()
    imported: ImportedConfig = ImportedConfig()
    length: LengthConfig = LengthConfig()
    dedup: DedupConfig = DedupConfig()
    split: SplitConfig = SplitConfig()
    export: ExportConfig = ExportConfig()
    batch_size: int = 64  # examples per tokenization batch
    ray: RayConfig = RayConfig()

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, v: dict[str, float]) -> dict[str, float]:
        bad = sorted(set(v) - set(TASKS))
        if bad:
            raise ValueError(f"unknown tasks {bad}; choose from {sorted(TASKS)}")
        if not v:
            raise ValueError(f"name at least one task (e.g. tasks={{plan_prediction: 1.0}}) of {sorted(TASKS)}")
        if any(w <= 0 for w in v.values()):
            raise ValueError("task weights must be > 0 (remove a task to leave it out)")
        return v


# ---------------------------------------------------------------- UDFs (run on Ray workers)
def _drop(task: str, source_id: str, stage: str, reason: str, detail: str) -> dict[str, Any]:
    detail = secrets.scrub_text(detail, "detail")[0] if detail else detail  # before the cut: a cut secret may pass
    return {
        "kind": "drop",
        "task": task,
        "source_id": source_id,
        "example_id": None,
        "stage": stage,
        "reason": reason,
        "detail": detail[:500],
        "example": None,
    }


def examples_udf(row: dict[str, Any], configs: Mapping[str, Strict]) -> list[dict[str, Any]]:
    """One source row → its examples, or one drop row (never raises: a bug must not lose a source)."""
    task, source = row["task"], json.loads(row["source"])
    try:
        made = TASKS[task].examples(source, configs[task])
    except SkipSource as e:
        return [_drop(task, row["source_id"], "source", e.reason, str(e))]
    except Exception as e:
        trace = secrets.scrub_text(traceback.format_exc(), "traceback")[0]  # may quote the source's text
        logger.error("task %s failed on %s:\n%s", task, row["source_id"], trace)
        return [_drop(task, row["source_id"], "source", "internal", f"{type(e).__name__}: {e}")]
    if not made:
        return [_drop(task, row["source_id"], "source", "no_examples", "the task produced no example")]
    if any(SCRUBBED_KEY not in ex for ex in made):  # every example is scrubbed in make_example: never bypass it
        detail = f"task {task} built an example without pipelines.dataset.example.make_example (not scrubbed)"
        return [_drop(task, row["source_id"], "source", "internal", detail)]
    return [
        {
            **_drop(task, row["source_id"], "", "", ""),
            "kind": "example",
            "example_id": ex["example_id"],
            "example": json.dumps(ex),
        }
        for ex in made
    ]


_TOKENIZERS: dict[str, Any] = {}


def prepare_udf(batch: pa.Table, tokenizer: str, length: LengthConfig, dedup: DedupConfig) -> pa.Table:
    """Validate, count tokens (chat template, assistant-only spans) and sign (MinHash) each example."""
    tok = _TOKENIZERS.get(tokenizer) or _TOKENIZERS.setdefault(tokenizer, load_tokenizer(tokenizer))
    rows = batch.to_pylist()
    for r in rows:
        r.update(n_tokens=0, n_trainable=0, truncated=False, content_hash=None, minhash=None, secret_kinds=None)
        if r["kind"] != "example":
            continue
        ex = json.loads(r["example"])
        r.update({k: ex[k] for k in ("group", "provider", "subtask", "complexity_bucket")})
        r["secret_kinds"] = json.dumps(ex[SCRUBBED_KEY], sort_keys=True)
        problems = check_example({"messages": ex["messages"]})
        if problems:
            r.update(kind="drop", stage="validate", reason=problems[0][0], detail="; ".join(p[1] for p in problems))
            continue
        count = count_tokens(tok, ex["messages"])
        r.update(n_tokens=count.n_tokens, n_trainable=count.n_trainable)
        if count.n_tokens > length.max_tokens:
            if length.over_limit != "truncate":
                detail = f"{count.n_tokens} tokens > length.max_tokens={length.max_tokens}"
                r.update(kind="drop", stage="length", reason="too_long", detail=detail)
                continue
            r.update(truncated=True, n_trainable=count.trainable_within(length.max_tokens))
        if r["n_trainable"] == 0:
            detail = f"no assistant tokens within length.max_tokens={length.max_tokens}"
            r.update(kind="drop", stage="length", reason="no_trainable_tokens", detail=detail)
            continue
        r["content_hash"] = dedup_lib.content_hash(ex["messages"])
        if dedup.near_threshold < 1:
            r["minhash"] = dedup_lib.minhash_signature(ex["messages"], dedup.num_perm, dedup.shingle).tolist()
    return pa.Table.from_pylist(rows, schema=PREPARED)


PREPARED = pa.schema(
    [
        ("kind", pa.string()),
        ("task", pa.string()),
        ("source_id", pa.string()),
        ("example_id", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("example", pa.string()),
        # the example's metadata the driver needs (it never sees ``example`` itself)
        ("group", pa.string()),
        ("provider", pa.string()),
        ("subtask", pa.string()),
        ("complexity_bucket", pa.string()),
        ("n_tokens", pa.int32()),
        ("n_trainable", pa.int32()),
        ("truncated", pa.bool_()),
        ("content_hash", pa.string()),
        ("minhash", pa.list_(pa.uint32())),
        ("secret_kinds", pa.string()),  # JSON {kind: count} of what make_example scrubbed from the example
    ]
)


# ---------------------------------------------------------------- driver
def resolve_tokenizer(cfg: BuildDatasetConfig) -> str:
    """The configured tokenizer, or the embedded tiny one (built once from the collected corpus)."""
    if cfg.tokenizer:
        load_tokenizer(cfg.tokenizer)  # fail early, with the reason, before any work is scheduled
        return cfg.tokenizer
    tiny = storage.join(cfg.output_dir, "models", "tiny")
    if not storage.exists(storage.join(tiny, "tokenizer.json")):
        texts = _corpus_texts(str(cfg.plan_prediction.plans_path))
        if not texts:
            raise SystemExit(
                f"no tokenizer: set tokenizer=<HF dir or hub id>, or run the collect stage first so that the "
                f"embedded tiny tokenizer can be trained on {cfg.plan_prediction.plans_path}"
            )
        logger.info("training the embedded tiny tokenizer (vocab %d) on %d texts", cfg.tiny_vocab_size, len(texts))
        with storage.writing_dir(tiny) as tmp:
            build_tiny_tokenizer(texts, tmp, cfg.tiny_vocab_size)
    return tiny


def _corpus_texts(plans_path: str) -> list[str]:
    if not storage.exists(plans_path):
        return []
    t = pq.read_table(plans_path, columns=["workspace_id", "files", "resource_changes", "plan_status"])
    texts = []
    for r in sorted(t.to_pylist(), key=lambda r: r["workspace_id"]):
        texts += [f["content"] for f in r["files"]]
        if r["plan_status"] == "ok":
            texts.append(plan_prediction.canonical_prediction(r["resource_changes"]))
    return [*texts, plan_prediction.SYSTEM_PROMPT, plan_prediction.SYSTEM_PROMPT_CHANGE]


def _source_items(cfg: BuildDatasetConfig) -> list[dict[str, str]]:
    """Every task's source rows, each keyed by (task, source_id); ids must be unique within a task."""
    items = []
    for name in sorted(cfg.tasks):
        rows = TASKS[name].sources(getattr(cfg, name))
        logger.info("task %s: %d source rows", name, len(rows))
        ids = [
            str(row.get("workspace_id") or row.get("source_id") or row.get("id") or f"{name}:{i}")
            for i, row in enumerate(rows)
        ]
        dup = [k for k, n in Counter(ids).items() if n > 1]
        if dup:
            raise ValueError(f"task {name}: source ids must be unique, repeated: {dup[:5]}")
        items += [
            {"task": name, "source_id": sid, "source": json.dumps(row, default=str)}
            for sid, row in zip(ids, rows, strict=True)
        ]
    return items


def run(cfg: BuildDatasetConfig) -> dict[str, Any]:
    import ray

    start = time.monotonic()
    cfg.output_dir = attach(cfg.ray, cfg.output_dir)
    plans = cfg.plan_prediction.plans_path or storage.join(cfg.output_dir, "plans.parquet")
    cfg.plan_prediction.plans_path = plans if storage.is_uri(plans) else str(Path(plans).resolve())
    if "plan_prediction" in cfg.tasks and not storage.exists(cfg.plan_prediction.plans_path):
        raise SystemExit(
            f"plan_prediction: {cfg.plan_prediction.plans_path} does not exist; run `python -m ray_jobs.collect` "
            "first or set plan_prediction.plans_path"
        )
    tokenizer = resolve_tokenizer(cfg)
    cfg.plan_prediction.tokenizer = tokenizer
    items = _source_items(cfg)
    if not items:
        raise SystemExit(f"no source rows for tasks {sorted(cfg.tasks)}: check their source settings")

    n_cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    configs = {name: getattr(cfg, name) for name in cfg.tasks}
    prepared = (
        ray.data.from_items(items, override_num_blocks=min(len(items), 4 * n_cpus))
        .flat_map(examples_udf, fn_kwargs={"configs": configs})
        .map_batches(
            prepare_udf,
            batch_size=cfg.batch_size,
            batch_format="pyarrow",
            fn_kwargs={"tokenizer": tokenizer, "length": cfg.length, "dedup": cfg.dedup},
        )
        .materialize()
    )
    refs = prepared.drop_columns(["example"]).to_arrow_refs()  # the driver gets metadata, never the examples
    meta = pa.concat_tables(ray.get(refs)) if refs else PREPARED.empty_table().drop_columns(["example"])
    built = time.monotonic() - start
    rows = _meta_rows(meta)
    seen, expected = {(r["task"], r["source_id"]) for r in rows}, {(i["task"], i["source_id"]) for i in items}
    if seen != expected:  # every source row yields its examples or a drop: never publish a dataset that lost one
        raise RuntimeError(f"{len(expected - seen)} source row(s) lost, e.g. {sorted(expected - seen)[:5]}")
    summary = finish(cfg, rows, prepared, tokenizer, len(items))
    summary["timings"] = {"examples_and_tokens_s": round(built, 2), "total_s": round(time.monotonic() - start, 2)}
    return summary


def _meta_rows(meta: pa.Table) -> list[dict[str, Any]]:
    """Metadata rows; MinHash signatures stay numpy views of one buffer (not lists of Python ints)."""
    sigs: list[Any] = []
    for chunk in meta.column("minhash").chunks:
        values, offsets, valid = chunk.values.to_numpy(), chunk.offsets.to_numpy(), chunk.is_valid().to_numpy(False)
        sigs += [values[offsets[i] : offsets[i + 1]] if valid[i] else None for i in range(len(chunk))]
    rows = meta.drop_columns(["minhash"]).to_pylist()
    for r, sig in zip(rows, sigs, strict=True):
        r["minhash"] = sig
    return rows


def finish(
    cfg: BuildDatasetConfig, rows: list[dict[str, Any]], prepared: Any, tokenizer: str, n_sources: int
) -> dict[str, Any]:
    """Driver side: dedup, split, leakage check on metadata; then every file of the dataset, atomically."""
    drops = [r for r in rows if r["kind"] == "drop"]
    too_long = [r for r in drops if r["reason"] == "too_long"]
    if cfg.length.over_limit == "fail" and too_long:
        listed = "\n  ".join(f"{r['task']} {r['source_id']}: {r['detail']}" for r in too_long[:20])
        raise SystemExit(f"{len(too_long)} example(s) over length.max_tokens (length.over_limit=fail):\n  {listed}")
    # sorted by id, then source: which of two identical examples is kept never depends on task timing
    examples = sorted((r for r in rows if r["kind"] == "example"), key=lambda r: (r["example_id"], r["source_id"]))
    # the same example from two source rows (e.g. a file set in two commits) is one example
    # a dropped duplicate's group joins the kept one's component (a fork's copy keeps its upstream's split)
    unique: dict[str, dict[str, Any]] = {}
    links: list[tuple[str, str]] = []
    for r in examples:
        if r["example_id"] in unique:
            drops.append({**r, "kind": "drop", "stage": "dedup", "reason": "exact_duplicate", "detail": "same id"})
            links.append((unique[r["example_id"]]["group"], r["group"]))
        else:
            unique[r["example_id"]] = r
    examples = list(unique.values())
    dd = dedup_lib.deduplicate(examples, cfg.dedup.near_threshold, cfg.dedup.num_perm, cfg.dedup.near_mode)
    kept = []
    for r in examples:
        if r["example_id"] in dd.dropped:
            reason, _, detail = dd.dropped[r["example_id"]].partition(": ")
            drops.append({**r, "kind": "drop", "stage": "dedup", "reason": reason, "detail": detail})
            links.append((unique[detail.removeprefix("of ")]["group"], r["group"]))
        else:
            r["cluster"] = dd.cluster[r["example_id"]]
            r["stratum"] = f"{r['task']}/{r['provider']}"
            kept.append(r)
    ratios = {s: getattr(cfg.split, s) for s in SPLITS}
    out = storage.join(cfg.output_dir, "datasets", cfg.name)
    comp = split_lib.components(kept, links)
    previous = _previous_splits(out) if cfg.split.sticky else {}
    split = split_lib.assign(
        kept,
        ratios,
        cfg.split.salt,
        previous=previous,
        min_groups=cfg.split.min_groups,
        top_up_below=cfg.split.top_up_below,
        links=links,
    )
    leaks = split_lib.leakage(kept, split)
    if leaks:  # a bug guard: the assignment above cannot produce this, and the job must not publish it
        raise split_lib.LeakageError(f"{len(leaks)} group(s)/cluster(s) span splits: {leaks[:10]}")
    for r in kept:
        r["split"], r["component"] = split[r["example_id"]], comp[r["example_id"]]

    with storage.writing_dir(out) as tmp:
        (tmp / "harmony").mkdir()
        written = write_splits(cfg, prepared, kept, tmp)
        dropped_rows = sorted(
            (_dropped_row(r) for r in drops), key=lambda d: (d["task"], d["source_id"], d["example_id"] or "")
        )
        pq.write_table(conform(dropped_rows, "dropped"), tmp / "dropped.parquet")
        stats = build_stats(cfg, kept, drops, dd, written=written, tokenizer=tokenizer, n_sources=n_sources)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
        (tmp / "README.md").write_text(dataset_card(cfg, stats))
    keys = ("examples", "dropped", "dedup", "jsonl_lines", "secrets_scrubbed")
    return {"output_dir": str(out), **{k: stats[k] for k in keys}}


# ---------------------------------------------------------------- writing (workers render, the driver streams)
RENDERED = pa.schema(
    [*EXAMPLES, ("openai_line", pa.string()), ("harmony_line", pa.string()), ("harmony_text", pa.string())]
)
PARQUET_ROW_GROUP = 4096  # fixed row groups: the same rows always give the same bytes
_ASSIGNMENTS: dict[str, dict[str, tuple[str, str, str]]] = {}


def render_udf(batch: pa.Table, assignment: Any, harmony: bool) -> pa.Table:
    """Kept examples → their final Parquet row and their JSONL / Harmony lines (rendered in parallel)."""
    import ray

    key = assignment.hex()
    table = _ASSIGNMENTS.get(key) or _ASSIGNMENTS.setdefault(key, ray.get(assignment))
    out = []
    for r in batch.to_pylist():
        where = table.get(f"{r['example_id']}\0{r['source_id']}") if r["kind"] == "example" else None
        if where is None:
            continue
        ex = json.loads(r["example"])
        split, cluster, component = where
        msgs = [{"role": m["role"], "content": m.get("content"), "weight": m.get("weight")} for m in ex["messages"]]
        out.append(
            {
                **{k: ex[k] for k in ("example_id", "task", "subtask", "group", "source_id", "repo_id", "provider")},
                "complexity_bucket": ex["complexity_bucket"],
                "labels": ex["labels"],
                "split": split,
                "cluster": cluster,
                "component": component,
                "n_tokens": r["n_tokens"],
                "n_trainable": r["n_trainable"],
                "truncated": r["truncated"],
                "messages": msgs,
                "openai_line": dumps_line(openai_record(ex["messages"])),
                "harmony_line": dumps_line(harmony_record(ex["messages"])) if harmony else None,
                "harmony_text": render_harmony(ex["messages"]) if harmony else None,
            }
        )
    return pa.Table.from_pylist(out, schema=RENDERED)


def write_splits(cfg: BuildDatasetConfig, prepared: Any, kept: list[dict[str, Any]], tmp: Path) -> dict[str, int]:
    """Stream the kept examples, sorted by (split, example_id), into every split's files; → JSONL line counts.

    Train lines repeat by task weight; Parquet holds each example once, in fixed-size row groups.
    """
    import ray

    assignment = {f"{r['example_id']}\0{r['source_id']}": (r["split"], r["cluster"], r["component"]) for r in kept}
    lines = dict.fromkeys(SPLITS, 0)
    pending: dict[str, list[pa.Table]] = {s: [] for s in SPLITS}
    with contextlib.ExitStack() as stack:

        def text_file(path: Path) -> Any:
            return stack.enter_context(open(path, "w", encoding="utf-8", newline="\n"))

        names = ["{}.jsonl", *(["harmony/{}.jsonl", "harmony/{}.txt"] if cfg.export.harmony else [])]
        files = {s: [text_file(tmp / n.format(s)) for n in names] for s in SPLITS}
        writers = {s: stack.enter_context(pq.ParquetWriter(tmp / f"{s}.parquet", EXAMPLES)) for s in SPLITS}

        def flush(s: str, final: bool = False) -> None:
            rows = pa.concat_tables(pending[s]) if pending[s] else EXAMPLES.empty_table()
            while rows.num_rows >= PARQUET_ROW_GROUP or (final and rows.num_rows):
                writers[s].write_table(rows.slice(0, PARQUET_ROW_GROUP).combine_chunks())  # pages by content only
                rows = rows.slice(PARQUET_ROW_GROUP)
            pending[s] = [rows] if rows.num_rows else []

        if kept:
            ref = ray.put(assignment)
            ds = prepared.map_batches(
                render_udf, batch_format="pyarrow", fn_kwargs={"assignment": ref, "harmony": cfg.export.harmony}
            ).sort(["split", "example_id"])
            for batch in ds.iter_batches(batch_format="pyarrow", batch_size=PARQUET_ROW_GROUP):
                for s in SPLITS:
                    part = batch.filter(pc.equal(batch.column("split"), s))
                    if not part.num_rows:
                        continue
                    pending[s].append(part.select(EXAMPLES.names).cast(EXAMPLES))
                    flush(s)
                    text = part.select(["example_id", "task", "openai_line", "harmony_line", "harmony_text"])
                    for r in text.to_pylist():
                        copies = _copies(r, cfg) if s == "train" else 1
                        lines[s] += copies
                        for f, key in zip(files[s], ("openai_line", "harmony_line", "harmony_text"), strict=False):
                            f.write((r[key] + "\n") * copies)
        for s in SPLITS:
            flush(s, final=True)
    return lines


def _copies(r: Mapping[str, Any], cfg: BuildDatasetConfig) -> int:
    """Train copies by task weight: floor(w), plus one more for a hash-chosen fraction of the examples."""
    w = cfg.tasks[r["task"]]
    return math.floor(w) + int(split_lib.bucket(f"{cfg.split.salt}:weight", r["example_id"]) < w - math.floor(w))


def _previous_splits(out: str) -> dict[str, str]:
    """group → split of an earlier build of this dataset (empty when there is none)."""
    found: dict[str, str] = {}
    for s in SPLITS:
        if storage.exists(path := storage.join(out, f"{s}.parquet")):
            for g in pq.read_table(path, columns=["group"]).column("group").to_pylist():
                found[g] = s
    return found


def _dropped_row(r: Mapping[str, Any]) -> dict[str, Any]:
    return {k: r.get(k) for k in ("task", "source_id", "example_id", "stage", "reason", "detail")}


# ---------------------------------------------------------------- stats and card
def _dist(values: Sequence[int]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    v = sorted(values)
    pick = lambda q: v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))]  # noqa: E731 - nearest rank
    return {
        "n": len(v),
        "min": v[0],
        "p50": pick(0.5),
        "p90": pick(0.9),
        "p99": pick(0.99),
        "max": v[-1],
        "mean": round(sum(v) / len(v), 1),
        "total": sum(v),
    }


def _histogram(values: Sequence[int], max_tokens: int, bins: int = 8) -> dict[str, int]:
    edges = [round(max_tokens * (i + 1) / bins) for i in range(bins)]
    out = {f"<={e}": 0 for e in edges}
    out[f">{max_tokens}"] = 0
    for x in values:
        key = next((f"<={e}" for e in edges if x <= e), f">{max_tokens}")
        out[key] += 1
    return out


def _secrets_upstream(cfg: BuildDatasetConfig, kept: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    ids = {r["source_id"] for r in kept if r["task"] == "plan_prediction"}
    if not ids:
        return {"workspaces": 0, "secrets": 0, "by_kind": {}}
    t = pq.read_table(str(cfg.plan_prediction.plans_path), columns=["workspace_id", "secrets_found", "secret_kinds"])
    kinds: Counter[str] = Counter()
    total = 0
    for r in t.to_pylist():
        if r["workspace_id"] in ids:
            total += r["secrets_found"] or 0
            kinds.update({k["kind"]: k["count"] for k in r["secret_kinds"] or []})
    return {"workspaces": len(ids), "secrets": total, "by_kind": dict(sorted(kinds.items()))}


def _secrets_scrubbed(kept: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Secrets replaced in the written examples (each once, not per train copy), by kind and by task."""
    by_kind: Counter[str] = Counter()
    by_task: Counter[str] = Counter()
    for r in kept:
        kinds = json.loads(r.get("secret_kinds") or "{}")
        by_kind.update(kinds)
        by_task[r["task"]] += sum(kinds.values())
    return {
        "total": sum(by_kind.values()),
        "by_kind": dict(sorted(by_kind.items())),
        "by_task": {t: n for t, n in sorted(by_task.items()) if n},
        "rules_version": secrets.SCRUBBER_RULES_VERSION,
    }


def build_stats(
    cfg: BuildDatasetConfig,
    kept: Sequence[Mapping[str, Any]],
    drops: Sequence[Mapping[str, Any]],
    dd: dedup_lib.DedupResult,
    *,
    written: Mapping[str, int],
    tokenizer: str,
    n_sources: int,
) -> dict[str, Any]:
    def count(key: Any) -> dict[str, dict[str, int]]:
        by: dict[str, Counter[str]] = defaultdict(Counter)
        for r in kept:
            by[key(r)][r["split"]] += 1
        return {k: dict(sorted(by[k].items())) for k in sorted(by)}

    strata: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SPLITS, 0))
    groups: dict[str, set[str]] = {s: set() for s in SPLITS}
    for r in kept:
        strata[f"{r['task']}/{r['provider'] or '-'}"][r["split"]] += 1
        groups[r["split"]].add(r["component"])
    return {
        "name": cfg.name,
        "tokenizer": {"path": tokenizer, "fingerprint": tokenizer_fingerprint(tokenizer)},
        "tasks": dict(sorted(cfg.tasks.items())),
        "sources": n_sources,
        "examples": {
            "total": len(kept),
            "by_split": {s: sum(1 for r in kept if r["split"] == s) for s in SPLITS},
            "by_task": count(lambda r: r["task"]),
            "by_subtask": count(lambda r: f"{r['task']}/{r['subtask'] or '-'}"),
            "by_provider": count(lambda r: r["provider"] or "-"),
            "by_complexity": count(lambda r: r["complexity_bucket"] or "-"),
            "by_stratum": {k: strata[k] for k in sorted(strata)},
        },
        "jsonl_lines": dict(written),
        "tokens": {
            "max_tokens": cfg.length.max_tokens,
            "over_limit": cfg.length.over_limit,
            "truncated": sum(1 for r in kept if r["truncated"]),
            **{s: _dist([r["n_tokens"] for r in kept if r["split"] == s]) for s in SPLITS},
            "trainable": _dist([r["n_trainable"] for r in kept]),
            "histogram": _histogram([r["n_tokens"] for r in kept], cfg.length.max_tokens),
        },
        "dropped": {
            "total": len(drops),
            "by_reason": dict(sorted(Counter(f"{d['stage']}:{d['reason']}" for d in drops).items())),
            "by_task": dict(sorted(Counter(d["task"] for d in drops).items())),
        },
        "dedup": {
            "exact_dropped": sum(1 for d in drops if d["reason"] == "exact_duplicate"),
            "near_threshold": cfg.dedup.near_threshold,
            "near_mode": cfg.dedup.near_mode,
            "near_pairs": dd.near_pairs,
            "near_clusters": dd.clusters,
            "near_dropped": dd.near_dropped,
            "largest_cluster": dd.largest_cluster,
        },
        "splits": {
            "ratios": {s: getattr(cfg.split, s) for s in SPLITS},
            "salt": cfg.split.salt,
            "components": {s: len(groups[s]) for s in SPLITS},
            "leakage": [],
        },
        "secrets_scrubbed_upstream": _secrets_upstream(cfg, kept),
        "secrets_scrubbed": _secrets_scrubbed(kept),
    }


def dataset_card(cfg: BuildDatasetConfig, stats: Mapping[str, Any]) -> str:
    ex, tok, dd, sc = stats["examples"], stats["tokens"], stats["dedup"], stats["secrets_scrubbed"]
    table = lambda d: "\n".join(  # noqa: E731
        f"| {k} | " + " | ".join(str(v.get(s, 0)) for s in SPLITS) + " |" for k, v in d.items()
    )
    head = "| | " + " | ".join(SPLITS) + " |\n|---|" + "---|" * len(SPLITS)
    hist = "\n".join(f"    {k:>8} {v:>6} {'#' * min(60, v)}" for k, v in tok["histogram"].items())
    per_split = ", ".join(f"{s}: p50 {tok[s].get('p50', '-')}, max {tok[s].get('max', '-')}" for s in SPLITS)
    reasons = "\n".join(f"- `{k}`: {v}" for k, v in stats["dropped"]["by_reason"].items()) or "- none"
    return f"""# Dataset `{cfg.name}`

Chat fine-tuning data built by tfpredict (`python -m ray_jobs.build_dataset`). Tasks and mixture weights:
{", ".join(f"`{k}` × {v}" for k, v in stats["tasks"].items())}.

## Files
- `train.jsonl`, `val.jsonl`, `test.jsonl`: OpenAI chat format (`{{"messages": [...]}}`, one per line); loads
  in OpenAI fine-tuning, Axolotl (`type: chat_template`), TRL `SFTTrainer` and LLaMA-Factory. The train file
  repeats examples by task weight (lines: {", ".join(f"{k} {v}" for k, v in stats["jsonl_lines"].items())}).
- `train.parquet`, `val.parquet`, `test.parquet`: the same examples (once each) with metadata: task, group,
  near-duplicate cluster, provider, complexity, token counts (schema `EXAMPLES` in `schemas/tables.py`).
- `harmony/`: the same in Harmony (gpt-oss) JSONL and rendered text.
- `dropped.parquet`: every source row or example left out, with its stage and reason.
- `stats.json`: everything below, machine-readable.

## Examples ({ex["total"]})
By task:

{head}
{table(ex["by_task"])}

By stratum (task/provider):

{head}
{table(ex["by_stratum"])}

By complexity:

{head}
{table(ex["by_complexity"])}

## Tokens
Tokenizer `{stats["tokenizer"]["path"]}` (fingerprint `{stats["tokenizer"]["fingerprint"]}`), counted with its
chat template; trainable = assistant tokens incl. end of turn. Cap {tok["max_tokens"]} ({tok["over_limit"]} when
over; {tok["truncated"]} truncated).
Per split: {per_split}.

{hist}

## Quality
- Dropped: {stats["dropped"]["total"]}
{reasons}
- Deduplication: {dd["exact_dropped"]} exact duplicates dropped; near-duplicates (Jaccard ≥
  {dd["near_threshold"]}, mode `{dd["near_mode"]}`): {dd["near_pairs"]} pairs in {dd["near_clusters"]} clusters
  (largest {dd["largest_cluster"]}), {dd["near_dropped"]} dropped.
- Splits: grouped (a repository, query, scenario or record group and every near-duplicate cluster stay in one
  split), assigned by hash of the group key with salt `{stats["splits"]["salt"]}` (stable as data grows); ratios
  {stats["splits"]["ratios"]}; components per split {stats["splits"]["components"]}; leakage check passed.
- Secrets scrubbed upstream in the source workspaces: {stats["secrets_scrubbed_upstream"]["secrets"]}.
- Secrets scrubbed from the examples' messages and metadata (rules v{sc["rules_version"]}): {sc["total"]}
  {_kinds_text(sc["by_kind"])}.
"""


def _kinds_text(by_kind: Mapping[str, int]) -> str:
    return "(" + ", ".join(f"{k} {v}" for k, v in by_kind.items()) + ")" if by_kind else "(none)"


def format_summary(s: Mapping[str, Any]) -> str:
    ex = s["examples"]
    lines = [
        "",
        "build_dataset summary",
        f"  examples  {ex['total']:>6}  {ex['by_split']}",
        f"  by task   {ex['by_task']}",
        f"  dropped   {s['dropped']['total']:>6}  {s['dropped']['by_reason']}",
        f"  secrets   {s['secrets_scrubbed']['total']:>6}  {s['secrets_scrubbed']['by_kind']}",
        f"  dedup     exact {s['dedup']['exact_dropped']}, near pairs {s['dedup']['near_pairs']} "
        f"in {s['dedup']['near_clusters']} clusters",
        f"  {s['timings']['total_s']} s",
        f"  wrote {s['output_dir']}/{{train,val,test}}.jsonl (+ .parquet, harmony/, stats.json, README.md)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    cfg = parse_args(BuildDatasetConfig, argv, __doc__ or "", DEFAULT_CONFIG)
    print(format_summary(run(cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
