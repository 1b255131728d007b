"""Does pretraining the tiny base pay for itself? Pretrain + QLoRA vs QLoRA on the raw base, same wall time.

    .venv/bin/python benchmarks/pretrain_bench.py [--output-dir data] [--pretrain-steps 100] [--steps 60]

Both arms run the real train stage (Ray Train, 2 CPU workers, the default train_tiny settings) on a copy of the
dataset stage's output in ``<output-dir>/bench-pretrain`` (delete it to measure again), so nothing cached is reused:
- A: ``tiny.pretrain.max_steps`` full-parameter causal-LM steps on every token of the train split, then
  ``--steps`` QLoRA steps;
- B: QLoRA on the random base for as many steps as fit in A's whole wall time (A's QLoRA seconds per step).
Then each fine-tuned adapter is scored on the *plan-prediction* val examples: assistant-token loss and
next-token accuracy (teacher forcing), and greedy decoding from the prompt: how often the model ends its answer
by itself (EOS / end of turn) within twice the reference length. Lower loss is better; the winner is printed
last. Needs the dataset stage's output (``make pipeline``, or ``python -m ray_jobs.pipeline train_enabled=false``).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from pipelines.train.data import collate, single, token_losses, tokenize  # noqa: E402
from pipelines.train.export import load_trained  # noqa: E402
from ray_jobs import train  # noqa: E402
from schemas.config import load_config  # noqa: E402


def score(base: str, adapter: str, examples: list[dict[str, Any]], max_len: int) -> dict[str, float]:
    """Assistant-token loss and accuracy on ``examples``, and the share that stop by themselves under greedy."""
    from pipelines.dataset.tokens import load_tokenizer

    tok = load_tokenizer(adapter)
    model = load_trained(base, adapter, "qlora")
    loss = tokens = correct = 0.0
    stopped = 0
    stops = {tok.eos_token_id, tok.convert_tokens_to_ids("<|eot_id|>")} - {None}
    with torch.no_grad():
        for r in examples:
            t = tokenize(tok, r["messages"], max_len)
            batch = collate([single(t).as_row()], tok.pad_token_id)
            s, n, c = token_losses(model(input_ids=batch["input_ids"]).logits, batch["labels"])
            loss, tokens, correct = loss + float(s), tokens + float(n), correct + float(c)
            prompt = tok.apply_chat_template(r["messages"][:-1], add_generation_prompt=True, return_tensors="pt")
            prompt = prompt["input_ids"] if isinstance(prompt, dict) or hasattr(prompt, "keys") else prompt
            n_ref = t.n_trainable
            out = model.generate(
                input_ids=prompt, max_new_tokens=2 * n_ref, do_sample=False, eos_token_id=sorted(stops),
                pad_token_id=tok.pad_token_id,
            )  # fmt: skip
            stopped += int(any(int(x) in stops for x in out[0, prompt.size(1) :]))
    return {"loss": loss / tokens, "token_accuracy": correct / tokens, "stops_by_itself": stopped / len(examples)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output-dir", default=str(ROOT / "data"), help="holds datasets/default and models/tiny")
    p.add_argument("--pretrain-steps", type=int, default=None, help="default: train_tiny.yaml's")
    p.add_argument("--steps", type=int, default=None, help="QLoRA steps of arm A (default: train_tiny.yaml's)")
    p.add_argument("--n-eval", type=int, default=12, help="plan-prediction val examples to score")
    args = p.parse_args()
    src = Path(args.output_dir)
    if not (src / "datasets" / "default" / "val.parquet").exists():
        sys.exit(f"{src}/datasets/default does not exist: run `make pipeline` (or the build_dataset stage) first")
    out = src / "bench-pretrain"  # kept: a rerun resumes both finished runs and only scores again
    if not (out / "models" / "tiny").exists():
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(src / "datasets" / "default", out / "datasets" / "default")
        shutil.copytree(src / "models" / "tiny", out / "models" / "tiny")
    cfg = load_config(train.TrainConfig, train.DEFAULT_CONFIG, [f"output_dir={out}", "export.merged=false"])
    if args.pretrain_steps is not None:
        cfg.tiny.pretrain.max_steps = args.pretrain_steps
    if args.steps is not None:
        cfg.max_steps = args.steps
    cfg.early_stopping_patience = None
    timings = out / "timings.json"  # the first run's wall times (a rerun finds both runs finished)
    a = train.run(cfg.model_copy(update={"name": "pretrained"}))
    if a["pretrain"] is not None:
        timings.write_text(json.dumps({"A": a["duration_s"], "pretrain": a["pretrain"]["duration_s"]}))
    t = json.loads(timings.read_text())
    t_pre, t_ft = t["pretrain"], t["A"] - t["pretrain"]
    b_steps = math.ceil(cfg.max_steps * t["A"] / t_ft)
    raw_tiny = cfg.tiny.model_copy(update={"pretrain": cfg.tiny.pretrain.model_copy(update={"max_steps": 0})})
    b = train.run(cfg.model_copy(update={"name": "raw", "tiny": raw_tiny, "max_steps": b_steps}))
    if "B" not in t:
        timings.write_text(json.dumps(t | {"B": b["duration_s"]}))
    t = json.loads(timings.read_text())
    val = [r for r in pq.read_table(out / "datasets" / "default" / "val.parquet").to_pylist()
           if r["task"] == "plan_prediction"][: args.n_eval]  # fmt: skip
    scores = {
        name: score(s["base_model"], s["exported"]["adapter"], val, cfg.max_seq_len)
        for name, s in (("A pretrain+qlora", a), ("B qlora on raw", b))
    }
    print(f"A: pretrain {cfg.tiny.pretrain.max_steps} steps {t_pre:.0f} s + QLoRA {cfg.max_steps} steps {t_ft:.0f} s "
          f"= {t['A']:.0f} s; B: QLoRA {b_steps} steps on the raw base, {t['B']:.0f} s")  # fmt: skip
    for name, s in scores.items():
        print(f"{name:18s} plan-prediction val ({len(val)}): loss {s['loss']:.3f}, token accuracy "
              f"{s['token_accuracy']:.1%}, stops by itself {s['stops_by_itself']:.0%}")  # fmt: skip
    print(json.dumps({"seconds": t, "scores": scores}))
    best = min(scores, key=lambda k: scores[k]["loss"])
    print(f"better within the same time: {best} (loss {scores['B qlora on raw']['loss']:.3f} raw vs "
          f"{scores['A pretrain+qlora']['loss']:.3f} pretrained)")  # fmt: skip


if __name__ == "__main__":
    main()
