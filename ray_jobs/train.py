"""Fine-tune a causal LM on a dataset stage's output with Ray Train → runs/<name>/ (adapter, merged, Modelfile).

    python -m ray_jobs.train --config ray_jobs/configs/train_tiny.yaml              # embedded default, CPU
    python -m ray_jobs.train --config ray_jobs/configs/train_1gpu.yaml name=qwen-plan
    ray job submit --working-dir . -- python -m ray_jobs.train --config ray_jobs/configs/train_4gpu.yaml

Ray Data reads ``datasets/<dataset>/{train,val}.parquet``, tokenizes every conversation with the *model's*
tokenizer and chat template (assistant-only labels from the dataset stage's span code), drops and counts
examples left with no trainable token, packs sequences to ``max_seq_len`` and streams the packs to each
worker (``get_dataset_shard``). ``TorchTrainer`` runs ``pipelines.train.loop.train_loop`` on N workers (DDP);
checkpoints go to ``<output_dir>/runs`` under the run name, so a rerun of a name resumes and a new name
starts fresh. At the end one task exports the best weights: the PEFT adapter with the tokenizer, a merged
model (LoRA merged into the dequantized base) and an Ollama ``Modelfile``.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from pipelines import storage
from pipelines.train.data import Tokenized, pack, single, tokenize
from ray_jobs.common import RayConfig, attach, init_ray, setup_logging
from schemas.config import Strict, load_config_lenient

logger = logging.getLogger("tfpredict.train")
DEFAULT_CONFIG = str(Path(__file__).parent / "configs" / "train_tiny.yaml")
TINY = "tiny"  # base_model value: the embedded tiny Llama on the dataset stage's tokenizer


# ---------------------------------------------------------------- config
class LoraConfig(Strict):
    r: int = Field(16, gt=0, le=256)  # vLLM serves rank <= 16 by default (--max-lora-rank raises it)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"  # every nn.Linear but the output head


class PretrainConfig(Strict):
    """Full-parameter causal-LM training of the random tiny base on the train split's text (every token of every
    conversation: Terraform files, plan JSON, reports) before the fine-tune; cached by its inputs. Off by default:
    at the embedded default's budget QLoRA on the random base learns the plan task better in the same wall time
    (benchmarks/pretrain_bench.py, README "Measured")."""

    max_steps: int = Field(0, ge=0)  # 0: fine-tune the random base
    learning_rate: float = Field(3e-3, gt=0)
    batch_size: int = Field(2, gt=0)


class TinyConfig(Strict):
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 688
    max_position_embeddings: int = 4096
    seed: int = 0
    pretrain: PretrainConfig = PretrainConfig()


class ExportConfig(Strict):
    merged: bool = True  # LoRA merged into the dequantized base, saved in compute dtype
    modelfile: bool = True  # Ollama Modelfile next to the merged model


class MlflowConfig(Strict):
    tracking_uri: str | None = None  # e.g. http://mlflow:5000; None: $MLFLOW_TRACKING_URI when set, else off
    experiment: str = "tfpredict"


class TrainConfig(Strict):
    name: str = "tiny"  # run name: rerunning a name resumes it; a new name starts fresh
    output_dir: str = "data"
    dataset: str = "default"  # datasets/<dataset>/ under output_dir
    dataset_dir: str | None = None  # or an explicit dataset directory
    tasks: list[str] | None = None  # train on these tasks only (None: every task in the dataset)
    max_examples: int | None = Field(None, gt=0)  # the first N train examples only (smoke runs, overfit checks)
    base_model: str = TINY  # HF hub id or local directory, or "tiny"
    tiny: TinyConfig = TinyConfig()
    method: Literal["qlora", "lora", "full"] = "qlora"
    loss_on: Literal["assistant", "all"] = "assistant"  # all: every token (causal-LM pretraining on the text)
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    lora: LoraConfig = LoraConfig()
    init_adapter: str | None = None  # continue from this adapter (e.g. runs/<run>/adapter; its rank and targets win)
    gradient_checkpointing: bool = True
    max_seq_len: int = Field(1024, gt=8)
    packing: bool = True
    batch_size: int = Field(4, gt=0)  # rows (packs) per micro-batch per worker
    grad_accum: int = Field(1, gt=0)
    learning_rate: float = Field(2e-4, gt=0)
    weight_decay: float = 0.0
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    max_steps: int = Field(200, gt=0)
    max_epochs: int = Field(100, gt=0)
    max_grad_norm: float = 1.0
    seed: int = 0
    eval_every: int = Field(20, gt=0)
    log_every: int = Field(5, gt=0)
    checkpoint_every: int = Field(20, gt=0)
    num_to_keep: int = Field(2, gt=0)
    early_stopping_patience: int | None = Field(None, gt=0)  # evals without improvement; None: off
    early_stopping_min_delta: float = 0.0
    num_workers: int = Field(2, gt=0)
    use_gpu: bool = False
    cpus_per_worker: float = Field(0.5, gt=0)  # fractional on CPU CI so Ray Data can still feed the workers
    cpu_threads: int | None = 1  # torch threads per CPU worker (None: torch's default)
    max_failures: int = Field(2, ge=0)  # worker-group restarts from the latest checkpoint
    export: ExportConfig = ExportConfig()
    mlflow: MlflowConfig = MlflowConfig()  # metrics and params to MLflow too (pip install 'tfpredict[tracking]')
    debug_batch: bool = False  # print one training batch with the trained tokens marked, then stop
    ray: RayConfig = RayConfig()


# ---------------------------------------------------------------- validation (before any cluster work)
def dataset_dir(cfg: TrainConfig) -> str:
    """The dataset's location (a path, made absolute, or an object store URI)."""
    d = cfg.dataset_dir or storage.join(cfg.output_dir, "datasets", cfg.dataset)
    return d if storage.is_uri(d) else str(Path(d).resolve())


def _tiny_linear_names() -> set[str]:
    return {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"}


def problems(cfg: TrainConfig, cluster: Mapping[str, float] | None = None) -> list[str]:
    """Everything wrong with ``cfg`` that can be known before training starts, all at once."""
    from pipelines.train import model as model_lib

    out: list[str] = []
    ds = dataset_dir(cfg)
    for split in ("train", "val"):
        if not storage.exists(path := storage.join(ds, f"{split}.parquet")):
            out.append(
                f"dataset: {path} does not exist; run `python -m ray_jobs.build_dataset` "
                "first, or set dataset=<name> / dataset_dir=<path>"
            )
    names: set[str] | None = None
    limit: int | None = None
    if cfg.base_model == TINY:
        tok = storage.join(cfg.output_dir, "models", "tiny", "tokenizer.json")
        if not storage.exists(tok):
            out.append(f"base_model=tiny: the tokenizer {tok} does not exist; run the build_dataset stage first")
        names, limit = _tiny_linear_names(), cfg.tiny.max_position_embeddings
    else:
        try:
            names = model_lib.linear_names(cfg.base_model)
            limit = model_lib.max_positions(cfg.base_model)
        except Exception as e:
            out.append(
                f"base_model: cannot load the config of {cfg.base_model!r} ({type(e).__name__}: {str(e)[:200]}); "
                "give a local HF model directory or a hub id reachable from here"
            )
    if names is not None and cfg.method != "full" and cfg.lora.target_modules != "all-linear":
        missing = sorted(set(cfg.lora.target_modules) - names)
        if missing:
            out.append(f"lora.target_modules: {missing} are not linear layers of the model (it has {sorted(names)})")
    if cfg.init_adapter:
        out += _init_adapter_problems(cfg)
    if limit is not None and cfg.max_seq_len > limit:
        out.append(f"max_seq_len: {cfg.max_seq_len} is over the model's limit of {limit} positions")
    if cfg.use_gpu and cluster is not None:
        gpus = cluster.get("GPU", 0)
        if cfg.num_workers > gpus:
            out.append(
                f"num_workers: {cfg.num_workers} GPU workers but the cluster has {gpus:g} GPUs; lower num_workers "
                "or add GPU nodes"
            )
    if not cfg.use_gpu and cfg.attn_implementation == "flash_attention_2":
        out.append("attn_implementation: flash_attention_2 needs use_gpu=true (CUDA); use sdpa on CPU")
    if not cfg.use_gpu and cfg.compute_dtype == "float16":
        out.append("compute_dtype: float16 needs a GPU; use float32 (or auto) on CPU")
    if mlflow_uri(cfg):
        import importlib.util

        if importlib.util.find_spec("mlflow") is None:
            out.append(
                f"mlflow: tracking to {mlflow_uri(cfg)} needs the mlflow client: pip install 'tfpredict[tracking]' "
                "(or unset mlflow.tracking_uri / MLFLOW_TRACKING_URI)"
            )
    return out


def _init_adapter_problems(cfg: TrainConfig) -> list[str]:
    ad = Path(cfg.init_adapter or "")
    if cfg.method == "full":
        return ["init_adapter: continues a LoRA adapter, so it needs method=lora or qlora (not full)"]
    if not (ad / "adapter_config.json").exists():
        return [f"init_adapter: {ad} has no adapter_config.json; give a PEFT adapter directory (runs/<run>/adapter)"]
    base = json.loads((ad / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if cfg.base_model == TINY or (
        base and Path(base).resolve() != Path(cfg.base_model).resolve() and base != cfg.base_model
    ):
        return [f"init_adapter: {ad} was trained on {base!r}, so set base_model={base} (now {cfg.base_model!r})"]
    return []


# settings a resumed run may change: how long and how often, where it logs, what it exports, the resources
RESUMABLE = frozenset({"name", "output_dir", "max_steps", "max_epochs", "eval_every", "log_every", "checkpoint_every",
                       "num_to_keep", "early_stopping_patience", "early_stopping_min_delta", "max_failures", "mlflow",
                       "export", "debug_batch", "cpu_threads", "cpus_per_worker", "ray"})  # fmt: skip


def resume_conflicts(earlier: Mapping[str, Any], now: Mapping[str, Any], name: str) -> list[str]:
    """A rerun of a name resumes it: settings that would make the checkpoints mean something else are refused."""
    keys = sorted(k for k in set(earlier) | set(now) if k not in RESUMABLE and earlier.get(k) != now.get(k))
    if not keys:
        return []
    diff = ", ".join(f"{k}: {earlier.get(k)!r} → {now.get(k)!r}" for k in keys)
    return [f"name={name}: runs/{name} was trained with other settings ({diff}); a rerun of a name resumes it, so "
            f"give the new settings a new name (name=...) or delete runs/{name}"]  # fmt: skip


def mlflow_uri(cfg: TrainConfig) -> str | None:
    import os

    return cfg.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None


def resolved(cfg: TrainConfig) -> tuple[str, str]:
    """(compute dtype, attention implementation) after ``auto``."""
    dtype = cfg.compute_dtype if cfg.compute_dtype != "auto" else ("bfloat16" if cfg.use_gpu else "float32")
    attn = cfg.attn_implementation
    if attn == "auto":
        attn = "sdpa"
        if cfg.use_gpu:
            import importlib.util

            if importlib.util.find_spec("flash_attn") is not None:
                attn = "flash_attention_2"
    return dtype, attn


# ---------------------------------------------------------------- data
class TokenizeUDF:
    """Conversations → ids and assistant-only labels with the model's tokenizer (loaded once per actor)."""

    def __init__(self, model_dir: str, max_seq_len: int, all_tokens: bool = False) -> None:
        from pipelines.dataset.tokens import load_tokenizer

        self.tok = load_tokenizer(model_dir)
        self.max_seq_len = max_seq_len
        self.all_tokens = all_tokens

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = []
        for r in batch.to_pylist():
            t = tokenize(self.tok, r["messages"], self.max_seq_len, all_tokens=self.all_tokens)
            rows.append(
                {
                    "example_id": r["example_id"],
                    "input_ids": t.input_ids,
                    "labels": t.labels,
                    "n_tokens": len(t.input_ids),
                    "n_trainable": t.n_trainable,
                }
            )
        return pa.Table.from_pylist(rows, schema=TOKENIZED)


TOKENIZED = pa.schema(
    [
        ("example_id", pa.string()),
        ("input_ids", pa.list_(pa.int32())),
        ("labels", pa.list_(pa.int32())),
        ("n_tokens", pa.int32()),
        ("n_trainable", pa.int32()),
    ]
)
PACKED = pa.schema(
    [
        ("input_ids", pa.list_(pa.int32())),
        ("labels", pa.list_(pa.int32())),
        ("position_ids", pa.list_(pa.int32())),
        ("seq_lens", pa.list_(pa.int32())),
    ]
)


def pack_udf(batch: pa.Table, max_seq_len: int, packing: bool) -> pa.Table:
    seqs = [Tokenized(r["input_ids"], r["labels"]) for r in batch.select(["input_ids", "labels"]).to_pylist()]
    packs = pack(seqs, max_seq_len) if packing else (single(s) for s in seqs)
    return pa.Table.from_pylist([p.as_row() for p in packs], schema=PACKED)


def prepare_split(path: str, model_dir: str, cfg: TrainConfig, limit: int | None = None) -> tuple[Any, dict[str, int]]:
    """One split → (materialized Ray dataset of packs, counts)."""
    import ray

    ds = ray.data.read_parquet(path, columns=["example_id", "task", "messages"])
    if cfg.tasks:
        ds = ds.filter(expr=" or ".join(f"task == '{t}'" for t in cfg.tasks))
    if limit is not None:
        ds = ds.sort("example_id").limit(limit)  # the same N on every run (a resume must see the same data)
    n_cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    tok = ds.map_batches(
        TokenizeUDF,
        fn_constructor_args=(model_dir, cfg.max_seq_len, cfg.loss_on == "all"),
        batch_format="pyarrow",
        batch_size=64,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=n_cpus),
        num_cpus=0.5,
    ).materialize()
    stats = tok.select_columns(["n_tokens", "n_trainable"]).to_pandas()
    kept = tok.filter(expr="n_trainable > 0")
    packed = kept.map_batches(
        pack_udf,
        fn_kwargs={"max_seq_len": cfg.max_seq_len, "packing": cfg.packing},
        batch_format="pyarrow",
        batch_size=512,
        num_cpus=0.5,
    ).materialize()
    counts = {
        "examples": len(stats),
        "dropped_no_trainable": int((stats["n_trainable"] == 0).sum()),
        "truncated": int((stats["n_tokens"] >= cfg.max_seq_len).sum()),
        "trainable_tokens": int(stats["n_trainable"].sum()),
        "rows": int(packed.count()),
    }
    return packed, counts


# ---------------------------------------------------------------- base model
def resolve_base(cfg: TrainConfig) -> tuple[str, dict[str, Any] | None]:
    """The base model directory or hub id, and the summary of the pretraining run that made it (None when none
    ran now). The embedded tiny model is built once (cached by tokenizer and shape), then pretrained once on the
    train split's text (cached by that base, the data and ``tiny.pretrain``; an interrupted pretraining resumes)."""
    if cfg.base_model != TINY:
        return cfg.base_model, None
    from pipelines.ids import short_hash
    from pipelines.train.model import TinyShape, build_tiny_model

    models = storage.join(cfg.output_dir if storage.is_uri(cfg.output_dir) else str(Path(cfg.output_dir).resolve()),
                          "models")  # fmt: skip
    tok_dir = storage.local(storage.join(models, "tiny"))
    shape = cfg.tiny.model_dump(exclude={"pretrain"})
    key = short_hash((Path(tok_dir) / "tokenizer.json").read_text(), json.dumps(shape, sort_keys=True))
    raw = storage.join(models, f"tiny-base-{key}")
    if not storage.exists(storage.join(raw, "config.json")):
        seed = shape.pop("seed")
        with storage.writing_dir(raw) as tmp:
            build_tiny_model(Path(tok_dir), tmp, TinyShape(**shape), seed=seed)
    p = cfg.tiny.pretrain
    if p.max_steps == 0:
        return raw, None
    train_file = storage.join(dataset_dir(cfg), "train.parquet")
    key = short_hash(key, file_digest(train_file), p.model_dump_json(), str(cfg.max_seq_len))
    out = storage.join(models, f"tiny-pretrained-{key}")
    if storage.exists(storage.join(out, "config.json")):
        return out, None
    logger.info("pretraining the tiny base on the text of %s (%d steps, cached as %s)", train_file, p.max_steps, out)
    pre = cfg.model_copy(
        update={
            "name": f"pretrain-{key}",
            "base_model": raw,
            "tasks": None,
            "max_examples": None,
            "method": "full",
            "loss_on": "all",
            "learning_rate": p.learning_rate,
            "batch_size": p.batch_size,
            "grad_accum": 1,
            "max_steps": p.max_steps,
            "eval_every": p.max_steps,  # before and after: the loss it reached, not a curve
            "checkpoint_every": max(cfg.checkpoint_every, p.max_steps // 2),
            "early_stopping_patience": None,
            "export": ExportConfig(merged=False, modelfile=False),
            "debug_batch": False,
        }
    )
    summary = run(pre)
    with storage.writing_dir(out) as tmp:
        shutil.copytree(storage.local(summary["exported"]["model"]), tmp, dirs_exist_ok=True)
    return out, summary


def file_digest(location: str) -> str:
    import hashlib

    fs, path = storage.resolve(location)
    with fs.open_input_stream(path) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# ---------------------------------------------------------------- run
def loop_config(
    cfg: TrainConfig, base: str, run_dir: str, *, total_steps: int, pad_id: int, probe_ids: list[int]
) -> dict[str, Any]:
    dtype, attn = resolved(cfg)
    lora = cfg.lora.model_dump()
    return {
        "base_model": base,
        "method": cfg.method,
        "compute_dtype": dtype,
        "attn_implementation": attn,
        "lora": lora,
        "init_adapter": str(Path(cfg.init_adapter).resolve()) if cfg.init_adapter else None,
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "batch_size": cfg.batch_size,
        "grad_accum": cfg.grad_accum,
        "learning_rate": cfg.learning_rate,
        "weight_decay": cfg.weight_decay,
        "warmup_steps": max(1, int(cfg.warmup_ratio * total_steps)),
        "total_steps": total_steps,
        "max_epochs": cfg.max_epochs,
        "max_grad_norm": cfg.max_grad_norm,
        "seed": cfg.seed,
        "eval_every": cfg.eval_every,
        "log_every": cfg.log_every,
        "checkpoint_every": cfg.checkpoint_every,
        "early_stopping_patience": cfg.early_stopping_patience,
        "early_stopping_min_delta": cfg.early_stopping_min_delta,
        "cpu_threads": cfg.cpu_threads if not cfg.use_gpu else None,
        "run_dir": run_dir,
        "pad_id": pad_id,
        "probe_ids": probe_ids,
        "mlflow": {
            "tracking_uri": mlflow_uri(cfg),
            "experiment": cfg.mlflow.experiment,
            "run_name": cfg.name,
            "params": _flat(cfg.model_dump(exclude={"ray", "mlflow", "debug_batch"})),
        },
    }


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def run(cfg: TrainConfig) -> dict[str, Any]:
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    start = time.monotonic()
    cfg.output_dir = attach(cfg.ray, cfg.output_dir)
    found = problems(cfg, ray.cluster_resources())
    runs = storage.join(cfg.output_dir, "runs")
    run_dir = storage.join(runs, cfg.name)  # on an object store: checkpoints by Ray Train, the rest synced up
    earlier = storage.read_json(storage.join(run_dir, "train_config.json"))
    if earlier is not None:
        found += resume_conflicts(earlier, cfg.model_dump(), cfg.name)
    if found:
        raise SystemExit(problem_text(found))

    base, pretrained = resolve_base(cfg)
    from pipelines.dataset.tokens import load_tokenizer

    tok = load_tokenizer(base)
    if tok.pad_token_id is None or tok.pad_token_id == tok.eos_token_id:
        logger.warning("the tokenizer's pad token is its EOS: padding is masked by position, never by id")
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    ds_dir = dataset_dir(cfg)
    train_ds, train_counts = prepare_split(storage.join(ds_dir, "train.parquet"), base, cfg, cfg.max_examples)
    val_ds, val_counts = prepare_split(storage.join(ds_dir, "val.parquet"), base, cfg)
    if train_counts["rows"] == 0:
        raise SystemExit(
            f"train: no training example with a trainable token in {storage.join(ds_dir, 'train.parquet')}"
        )
    if cfg.debug_batch:
        return {"debug_batch": debug_print(tok, train_ds, cfg, pad_id)}

    per_step = cfg.num_workers * cfg.batch_size * cfg.grad_accum
    steps_per_epoch = max(1, train_counts["rows"] // per_step)
    total_steps = min(cfg.max_steps, cfg.max_epochs * steps_per_epoch)
    storage.write_json(storage.join(run_dir, "train_config.json"), cfg.model_dump())
    storage.write_json(storage.join(run_dir, "base.json"), {"base_model": base})  # what ``base_model`` resolved to

    trainer = TorchTrainer(
        _train_loop,
        train_loop_config=loop_config(
            cfg, base, run_dir, total_steps=total_steps, pad_id=pad_id, probe_ids=probe_ids(val_ds, train_ds)
        ),
        scaling_config=ray.train.ScalingConfig(
            num_workers=cfg.num_workers,
            use_gpu=cfg.use_gpu,
            resources_per_worker={"GPU": 1, "CPU": cfg.cpus_per_worker}
            if cfg.use_gpu
            else {"CPU": cfg.cpus_per_worker},
        ),
        run_config=ray.train.RunConfig(
            name=cfg.name,
            storage_path=runs,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=cfg.num_to_keep),
            failure_config=ray.train.FailureConfig(max_failures=cfg.max_failures),
        ),
        datasets={"train": train_ds, "val": val_ds},
        dataset_config=ray.train.DataConfig(datasets_to_split="all"),
    )
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as e:
        raise SystemExit(f"train: run {cfg.name} failed after {cfg.max_failures} restart(s): {e}") from e
    final = dict(result.return_value or {})
    exported = _export_remote(cfg, base, run_dir)
    return {
        "name": cfg.name,
        "run_dir": run_dir,
        "base_model": base,
        "method": cfg.method,
        "pretrain": _pretrain_brief(pretrained),
        "data": {"train": train_counts, "val": val_counts},
        "total_steps": total_steps,
        "final": final,
        "exported": exported,
        "checkpoint": result.checkpoint.path if result.checkpoint else None,
        "duration_s": round(time.monotonic() - start, 1),
    }


def _pretrain_brief(s: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if s is None:
        return None
    f = s["final"]
    return {
        "run_dir": s["run_dir"],
        "steps": f.get("step"),
        "first_eval_loss": f.get("first_eval_loss"),
        "best_eval_loss": f.get("best_eval_loss"),
        "duration_s": s["duration_s"],
    }


def probe_ids(*datasets: Any, n: int = 64) -> list[int]:
    """The first ``n`` tokens of the first packed row: fixed inputs on which exports are checked."""
    for ds in datasets:
        rows = ds.take(1)
        if rows:
            return [int(x) for x in rows[0]["input_ids"][:n]]
    return []


def _train_loop(config: dict[str, Any]) -> dict[str, Any]:
    from pipelines.train.loop import train_loop

    return train_loop(config)


def debug_print(tok: Any, ds: Any, cfg: TrainConfig, pad_id: int) -> str:
    from pipelines.train.data import collate, debug_batch
    from pipelines.train.loop import _rows

    batch = next(iter(ds.iter_batches(batch_size=cfg.batch_size, batch_format="numpy")))
    text = debug_batch(tok, collate(_rows(batch), pad_id))
    print(text)
    return text


def _export_remote(cfg: TrainConfig, base: str, run_dir: str) -> dict[str, Any]:
    """Export on a worker-like node (the head may have no GPU and little memory)."""
    import ray

    dtype, _ = resolved(cfg)
    task = ray.remote(_export).options(num_cpus=cfg.cpus_per_worker, num_gpus=1 if cfg.use_gpu else 0, max_retries=1)
    return ray.get(
        task.remote(
            base,
            run_dir,
            method=cfg.method,
            compute_dtype=dtype,
            merged=cfg.export.merged,
            modelfile=cfg.export.modelfile,
        )
    )


def _export(base: str, run_dir: str, **kwargs: Any) -> dict[str, Any]:
    """The export task: the run directory mirrored onto this node, exported, synced back; paths as locations."""
    from pipelines.train.export import export_run
    from pipelines.train.runs import CHECKPOINTS

    local = storage.mirror(run_dir, exclude=CHECKPOINTS)
    out = export_run(storage.local(base), str(local), **kwargs)
    storage.sync_up(local, run_dir, exclude=CHECKPOINTS)
    prefix = str(local)
    return {k: run_dir + v[len(prefix) :] if isinstance(v, str) and v.startswith(prefix) else v for k, v in out.items()}


def format_summary(s: Mapping[str, Any]) -> str:
    if "debug_batch" in s:
        return ""
    f = s["final"]
    d = s["data"]
    first, best = f.get("first_eval_loss"), f.get("best_eval_loss")
    lines = [
        "",
        "train summary",
        f"  run       {s['name']} ({s['method']} on {s['base_model']})",
        *(
            [
                f"  pretrain  {p['steps']} steps on every token of the train split, eval loss "
                f"{p['first_eval_loss']:.4f} → {p['best_eval_loss']:.4f}, {p['duration_s']} s (cached for reruns)"
            ]
            if (p := s.get("pretrain"))
            else []
        ),
        f"  data      train {d['train']['examples']} examples → {d['train']['rows']} rows "
        f"({d['train']['dropped_no_trainable']} dropped: no trainable token), val {d['val']['examples']}",
        f"  steps     {f.get('step')} of {s['total_steps']}" + (" (early stop)" if f.get("stopped_early") else ""),
        f"  eval loss {first:.4f} → best {best:.4f}" if first is not None and best is not None else "  eval loss n/a",
        f"  tokens    {f.get('trained_tokens', 0):,} trained",
        f"  wrote     {s['run_dir']}: " + ", ".join(f"{k} {v}" for k, v in s["exported"].items() if isinstance(v, str)),
        f"  {s['duration_s']} s",
    ]
    return "\n".join(lines)


def problem_text(found: Sequence[str]) -> str:
    return f"train: {len(found)} config problem(s), nothing was run:\n  - " + "\n  - ".join(found)


def check(path: str | None, overrides: Sequence[str], cluster: Mapping[str, float] | None = None) -> list[str]:
    """Every problem of a config at once: unknown keys and bad values, then what they refer to (the dataset,
    the model's layers and context length, the cluster's GPUs), with the bad settings at their defaults."""
    cfg, errors = load_config_lenient(TrainConfig, path, overrides)
    return errors + (problems(cfg, cluster) if cfg is not None else [])


def cluster_resources(cfg: TrainConfig) -> dict[str, float]:
    """What the job will run on: the cluster it attaches to, else this machine (no local cluster is started
    just to validate a config)."""
    import os

    import ray

    if ray.is_initialized() or cfg.ray.address or os.environ.get("RAY_ADDRESS"):
        init_ray(cfg.ray)
        return dict(ray.cluster_resources())
    import torch

    return {"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    setup_logging()
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--config", default=DEFAULT_CONFIG, help="YAML config (default: %(default)s)")
    p.add_argument("--debug-batch", action="store_true", help="print one training batch, trained tokens marked")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. max_steps=50")
    args = p.parse_args(argv)
    overrides = [*args.overrides, *(["debug_batch=true"] if args.debug_batch else [])]
    cfg, errors = load_config_lenient(TrainConfig, args.config, overrides)
    if cfg is not None:
        errors += problems(cfg, cluster_resources(cfg))
    if errors or cfg is None:
        p.exit(2, problem_text(errors) + "\n")
    summary = run(cfg)
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
