"""The per-worker Ray Train loop: DDP over N workers (GPU or CPU), accumulation, warmup + cosine,
evaluation, early stopping, checkpoints with everything needed to resume, metrics.

Loss: the sum of token cross-entropies of an optimizer step divided by the trainable tokens of that step on
*all* workers (counted before the forward passes and all-reduced), so every trained token weighs the same
however sequences were packed, split into micro-batches or spread over workers.

A checkpoint holds the trainable weights (the LoRA adapter, or the whole model for full fine-tuning), the
optimizer, the scheduler, the step, the data position (epoch, batches consumed in it), the early-stopping
state and the RNG states. A restarted worker group (``FailureConfig``) or a rerun of the same run name
continues from the latest one; a run that had finished returns at once.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines import storage
from pipelines.train.data import collate, token_losses
from pipelines.train.model import LoraSettings, load_model
from pipelines.train.runs import CHECKPOINTS

logger = logging.getLogger(__name__)
STATE = "trainer_state.pt"
PROBE = "best_probe.pt"  # logits of the best weights on probe inputs: a reloaded export must reproduce them
WEIGHTS = "weights"  # adapter directory (LoRA) or model directory (full), inside a checkpoint


def _rows(batch: Mapping[str, Any]) -> list[dict[str, list[int]]]:
    n = len(batch["input_ids"])
    keys = ("input_ids", "labels", "position_ids", "seq_lens")
    return [{k: [int(x) for x in batch[k][i]] for k in keys} for i in range(n)]


def _all_reduce(values: list[float], device: torch.device) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(t)
    return t.tolist()


def _unwrap(model: Any) -> Any:
    return model.module if hasattr(model, "module") else model


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_weights(model: Any, method: str, where: Path) -> None:
    m = _unwrap(model)
    if method == "full":
        m.save_pretrained(str(where), safe_serialization=True)
    else:
        m.save_pretrained(str(where))  # PEFT: adapter_config.json + adapter_model.safetensors only


def _load_weights(model: Any, method: str, where: Path) -> None:
    m = _unwrap(model)
    if method == "full":
        from safetensors.torch import load_file

        state: dict[str, torch.Tensor] = {}
        for f in sorted(where.glob("*.safetensors")):
            state |= load_file(str(f))
        m.load_state_dict(state, strict=False)
    else:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(m, load_file(str(where / "adapter_model.safetensors")))


def _save_probe(model: Any, cfg: Mapping[str, Any], device: torch.device, path: Path) -> None:
    ids = cfg.get("probe_ids")
    if not ids:
        return
    m = _unwrap(model)
    m.eval()
    with torch.no_grad():
        logits = m(input_ids=torch.tensor([ids], device=device)).logits.float().cpu()
    m.train()
    torch.save({"input_ids": torch.tensor([ids]), "logits": logits}, path)


def _cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)


class MetricsLog:
    """``metrics.jsonl`` (one object per line, appended), TensorBoard event files and, when ``mlflow`` names a
    tracking URI, an MLflow run (its id kept in the run directory, so a resumed run continues the same MLflow
    run); rank 0 only."""

    def __init__(self, run_dir: Path, enabled: bool, mlflow: Mapping[str, Any] | None = None) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb: Any = None
        self.mlflow: Any = None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            from tensorboardX import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:  # pragma: no cover - tensorboardX ships with ray[train]
            logger.warning("tensorboardX is not installed: metrics go to metrics.jsonl only")
        if mlflow and mlflow.get("tracking_uri"):
            self.mlflow = _mlflow_run(run_dir, mlflow)

    def write(self, step: int, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **values}, sort_keys=True) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)
            self.tb.flush()
        if self.mlflow is not None:
            client, run_id = self.mlflow
            client.log_batch(run_id, metrics=[_mlflow_metric(k, v, step) for k, v in values.items()])

    def close(self, status: str = "FINISHED") -> None:
        if self.tb is not None:
            self.tb.close()
        if self.mlflow is not None:
            client, run_id = self.mlflow
            client.set_terminated(run_id, status=status)


def _peak_rss_gb() -> float:
    """This worker process's peak resident memory (VmHWM), GiB; 0 where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            line = next(x for x in f if x.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0.0
    return int(line.split()[1]) / 2**20


def _mlflow_run(run_dir: Path, conf: Mapping[str, Any]) -> tuple[Any, str]:
    """(client, run id): the MLflow run of this training run, created on its first start. A ``file:`` tracking
    URI names MLflow's file store, which MLflow 3 keeps behind MLFLOW_ALLOW_FILE_STORE: asked for by name, allowed."""
    import os

    from mlflow.tracking import MlflowClient

    if str(conf["tracking_uri"]).startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

    client = MlflowClient(tracking_uri=conf["tracking_uri"])
    id_file = run_dir / "mlflow_run_id"
    if id_file.exists():
        run_id = id_file.read_text().strip()
        client.update_run(run_id, status="RUNNING")
        return client, run_id
    exp = client.get_experiment_by_name(conf["experiment"])
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(conf["experiment"])
    run = client.create_run(exp_id, run_name=conf["run_name"], tags={"tfpredict.run_dir": str(run_dir)})
    params = [_mlflow_param(k, v) for k, v in sorted(conf.get("params", {}).items())]
    client.log_batch(run.info.run_id, params=params)
    id_file.write_text(run.info.run_id)
    return client, run.info.run_id


def _mlflow_metric(key: str, value: float, step: int) -> Any:
    import time

    from mlflow.entities import Metric

    return Metric(key, float(value), int(time.time() * 1000), step)


def _mlflow_param(key: str, value: Any) -> Any:
    from mlflow.entities import Param

    return Param(key, str(value)[:6000])


def evaluate(model: Any, shard: Any, cfg: Mapping[str, Any], device: torch.device, pad_id: int) -> dict[str, float]:
    """Loss per trainable token and assistant-token accuracy over this worker's val shard, summed over workers."""
    model.eval()
    loss_sum, n_tok, n_ok = 0.0, 0.0, 0.0
    with torch.no_grad():
        for batch in shard.iter_batches(batch_size=cfg["batch_size"], batch_format="numpy"):
            inputs = _to(_collate(_rows(batch), pad_id, cfg), device, cfg)
            logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
            s, n, c = token_losses(logits, inputs["labels"])
            loss_sum, n_tok, n_ok = loss_sum + float(s), n_tok + float(n), n_ok + float(c)
    loss_sum, n_tok, n_ok = _all_reduce([loss_sum, n_tok, n_ok], device)
    model.train()
    return {
        "eval_loss": loss_sum / max(n_tok, 1.0),
        "eval_token_accuracy": n_ok / max(n_tok, 1.0),
        "eval_tokens": n_tok,
    }


def _collate(rows: list[dict[str, Any]], pad_id: int, cfg: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Flash-attention 2 (GPU): one flattened row, boundaries from position_ids (varlen); else the 4-D mask."""
    if cfg["attn_implementation"] == "flash_attention_2":
        return collate(rows, pad_id, flatten=True)
    return collate(rows, pad_id, dtype=_mask_dtype(cfg))


def _mask_dtype(cfg: Mapping[str, Any]) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg["compute_dtype"]]


def _to(inputs: dict[str, torch.Tensor], device: torch.device, cfg: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in inputs.items()}


def _micro_batches(shard: Any, cfg: Mapping[str, Any], skip: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(index in epoch, rows) of one epoch of this worker's shard, the first ``skip`` batches left out."""
    for i, batch in enumerate(shard.iter_batches(batch_size=cfg["batch_size"], batch_format="numpy")):
        if i >= skip:
            yield i, _rows(batch)


def train_loop(cfg: dict[str, Any]) -> dict[str, Any]:
    """The function every Ray Train worker runs (``TorchTrainer(train_loop, train_loop_config=cfg)``)."""
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    seed = int(cfg["seed"])
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    torch.manual_seed(seed)
    if device.type == "cpu" and cfg.get("cpu_threads"):
        torch.set_num_threads(int(cfg["cpu_threads"]))
    run_loc = cfg["run_dir"]  # a path, or an object store URI: rank 0 writes a node-local mirror and syncs it up
    run_dir = storage.mirror(run_loc, exclude=CHECKPOINTS) if rank == 0 else Path(tempfile.gettempdir())
    log = MetricsLog(run_dir, rank == 0, cfg.get("mlflow"))
    method = cfg["method"]

    def sync_run_dir() -> None:
        if rank == 0:
            storage.sync_up(run_dir, run_loc, exclude=CHECKPOINTS)

    model = load_model(
        storage.local(cfg["base_model"]),
        method,
        device,
        compute_dtype=cfg["compute_dtype"],
        lora=LoraSettings(**cfg["lora"]),
        gradient_checkpointing=cfg["gradient_checkpointing"],
        attn_implementation=cfg["attn_implementation"],
        init_adapter=storage.local(cfg["init_adapter"]) if cfg.get("init_adapter") else None,
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"])
    total_steps = int(cfg["total_steps"])
    scheduler = _cosine(optimizer, int(cfg["warmup_steps"]), total_steps)
    if world > 1:
        model = ray.train.torch.prepare_model(
            model, move_to_device=False, parallel_strategy_kwargs={"find_unused_parameters": False}
        )
    pad_id = int(cfg["pad_id"])

    state: dict[str, Any] = {
        "step": 0,
        "epoch": 0,
        "batch_in_epoch": 0,
        "best_eval_loss": None,
        "bad_evals": 0,
        "stopped_early": False,
        "trained_tokens": 0,
        "first_eval_loss": None,
    }
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            saved = torch.load(Path(d) / STATE, weights_only=False)
            _load_weights(model, method, Path(d) / WEIGHTS)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        _set_rng_state(saved["rng"][min(rank, len(saved["rng"]) - 1)])
        state = saved["state"]
        log.write(state["step"], {"resumed": 1.0})
        logger.info(
            "rank %d resumed at step %d (epoch %d, batch %d)",
            rank,
            state["step"],
            state["epoch"],
            state["batch_in_epoch"],
        )

    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val")
    accum = int(cfg["grad_accum"])

    def done() -> bool:
        return state["step"] >= total_steps or state["stopped_early"]

    def report(metrics: dict[str, float], with_checkpoint: bool) -> None:
        if not with_checkpoint:
            ray.train.report(metrics)
            return
        # every rank's RNG state, gathered to rank 0, so each resumes exactly where it was
        rng = [None] * world
        if world > 1:
            torch.distributed.all_gather_object(rng, _rng_state())
        else:
            rng = [_rng_state()]
        if rank != 0:
            ray.train.report(metrics)
            return
        sync_run_dir()  # the run's files up to this step are stored before the checkpoint that resumes from them
        with tempfile.TemporaryDirectory(prefix="tfpredict-ckpt-") as d:
            _save_weights(model, method, Path(d) / WEIGHTS)
            torch.save(
                {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": rng,
                    "state": dict(state),
                },
                Path(d) / STATE,
            )
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))

    def eval_and_maybe_stop() -> dict[str, float]:
        ev = evaluate(model, val_shard, cfg, device, pad_id)
        if state["first_eval_loss"] is None:
            state["first_eval_loss"] = ev["eval_loss"]
        best = state["best_eval_loss"]
        if best is None or ev["eval_loss"] < best - float(cfg["early_stopping_min_delta"]):
            state["best_eval_loss"], state["bad_evals"] = ev["eval_loss"], 0
            if rank == 0:
                best_dir = run_dir / "best"
                tmp = run_dir / f".best.tmp-{os.getpid()}"
                shutil.rmtree(tmp, ignore_errors=True)
                _save_weights(model, method, tmp)
                shutil.rmtree(best_dir, ignore_errors=True)
                tmp.rename(best_dir)
                _save_probe(model, cfg, device, run_dir / PROBE)
        else:
            state["bad_evals"] += 1
            patience = cfg.get("early_stopping_patience")
            if patience and state["bad_evals"] >= patience:
                state["stopped_early"] = True
                logger.info(
                    "early stopping at step %d: eval loss did not improve for %d evals", state["step"], patience
                )
        return ev

    if state["step"] == 0 and not checkpoint:
        ev = eval_and_maybe_stop()
        log.write(0, ev)

    model.train()
    t_last, tok_since = time.monotonic(), 0
    while not done() and state["epoch"] < int(cfg["max_epochs"]):
        batches = _micro_batches(train_shard, cfg, state["batch_in_epoch"])
        exhausted = False
        while not done():
            group: list[list[dict[str, Any]]] = []
            for _ in range(accum):
                nxt = next(batches, None)
                if nxt is None:
                    exhausted = True
                    break
                group.append(nxt[1])
            # every worker must take the same number of optimizer steps: stop the epoch when any ran dry
            counts = [sum(1 for r in rows for t in r["labels"][1:] if t != -100) for rows in group]
            local_tokens = float(sum(counts))
            global_tokens, n_short = _all_reduce([local_tokens, float(exhausted)], device)
            if n_short > 0:
                for _ in batches:  # finish this epoch of the shard on every worker together
                    pass
                break
            if global_tokens == 0:
                raise RuntimeError(
                    f"an optimizer step at step {state['step']} has no trainable token on any worker: every label is "
                    "masked (check the dataset's assistant turns and max_seq_len)"
                )
            step_loss = 0.0
            for i, rows in enumerate(group):
                inputs = _to(_collate(rows, pad_id, cfg), device, cfg)
                sync = i == len(group) - 1 or world == 1
                ctx_mgr = nullcontext() if sync or not hasattr(model, "no_sync") else model.no_sync()
                with ctx_mgr:
                    logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
                    s, _, _ = token_losses(logits, inputs["labels"])
                    step_loss += float(s.detach())
                    (s * world / global_tokens).backward()  # DDP averages over workers: undo it
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, float(cfg["max_grad_norm"])))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            state["batch_in_epoch"] += len(group)
            state["trained_tokens"] += int(global_tokens)
            tok_since += int(global_tokens)
            metrics: dict[str, float] = {}
            if state["step"] % int(cfg["log_every"]) == 0 or done():
                now = time.monotonic()
                metrics |= {
                    "loss": step_loss / max(local_tokens, 1.0),
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": grad_norm,
                    "tokens_per_s": tok_since / max(now - t_last, 1e-9),
                    "epoch": float(state["epoch"]),
                }
                if device.type == "cuda":
                    metrics["gpu_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
                else:
                    metrics["peak_rss_gb"] = _peak_rss_gb()
                t_last, tok_since = now, 0
            want_eval = state["step"] % int(cfg["eval_every"]) == 0 or state["step"] >= total_steps
            if want_eval:
                metrics |= eval_and_maybe_stop()
            if metrics:
                log.write(state["step"], metrics)
            want_ckpt = state["step"] % int(cfg["checkpoint_every"]) == 0 or done()
            if want_ckpt or want_eval:
                report({"step": float(state["step"]), **metrics}, with_checkpoint=want_ckpt)
        if not done():
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
    if not state["stopped_early"] and state["step"] < total_steps:
        report({"step": float(state["step"])}, with_checkpoint=True)  # data ran out before max_steps
    log.close()
    sync_run_dir()
    return {
        k: state[k] for k in ("step", "epoch", "best_eval_loss", "first_eval_loss", "stopped_early", "trained_tokens")
    }
