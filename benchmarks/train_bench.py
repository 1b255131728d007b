"""Trained tokens per second: our packing vs the pad-to-max recipe of reference design 004; QLoRA vs bf16 LoRA memory.

    .venv/bin/python benchmarks/train_bench.py [--dataset data/datasets/default] [--steps 6] [--max-len 2048]

Same model (the embedded tiny Llama, QLoRA 4-bit nf4 + LoRA r=16 on all linear layers, fp32 compute on CPU),
same examples in the same order, same number of optimizer steps of 4 rows x ``max-len`` tokens:
- pad-to-max (004): one conversation per row, truncated and padded to ``max-len`` (``padding="max_length"``);
- ours: conversations packed into rows of up to ``max-len`` tokens (block-diagonal 4-D mask, reset positions).
"Trained tokens" are the real (non-pad) tokens a step learns from: every token in 004's recipe (it trains on the
prompt too), so the comparison counts the same kind of token on both sides: non-pad tokens per second.
Then memory of QLoRA vs bf16 LoRA on a ~110M-parameter Llama (a fresh process each: weight bytes, peak RSS after
loading and after one step of 2 x 512 tokens). The ratio is printed last. Needs the dataset stage's output
(`make pipeline`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from pipelines.train.data import IGNORE, Tokenized, collate, pack, single, token_losses, tokenize  # noqa: E402
from pipelines.train.model import TinyShape, build_tiny_model, load_model  # noqa: E402

ROWS = 4


def rows_for(seqs: list[Tokenized], packed: bool, max_len: int, n_rows: int) -> list[dict]:
    rows = [p.as_row() for p in (pack(seqs, max_len) if packed else (single(s) for s in seqs))]
    return rows[:n_rows]


def timed_steps(model_dir: str, rows: list[dict], pad_id: int, max_len: int) -> tuple[float, int]:
    torch.manual_seed(0)
    model = load_model(model_dir, "qlora", torch.device("cpu"), gradient_checkpointing=True)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    real = 0
    # one warm-up step (first-call allocations, kernel selection), not timed
    batches = [rows[i : i + ROWS] for i in range(0, len(rows), ROWS)]
    for k, b in enumerate([batches[0], *batches]):
        if k == 1:
            start = time.perf_counter()
        inputs = collate(b, pad_id, pad_to=max_len)
        logits = model(**{n: v for n, v in inputs.items() if n != "labels"}).logits
        s, n, _ = token_losses(logits, inputs["labels"])
        (s / n.clamp(min=1)).backward()
        opt.step()
        opt.zero_grad()
        if k >= 1:
            real += sum(len(r["input_ids"]) for r in b)
    return time.perf_counter() - start, real


def memory_child(method: str, model_dir: str) -> dict[str, float]:
    """A fresh process loads ``model_dir`` for ``method`` (bf16 compute on both sides) and takes one training
    step: weight bytes, and peak RSS above the process's RSS after imports (MiB)."""
    code = f"""
import json, sys, torch, transformers, peft, bitsandbytes; sys.path.insert(0, {str(ROOT)!r})
from pipelines.train.model import load_model
def rss():  # this process's peak RSS (VmHWM; ru_maxrss would carry the parent's peak across exec)
    line = next(x for x in open("/proc/self/status") if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
base = rss()
m = load_model({model_dir!r}, {method!r}, torch.device("cpu"), compute_dtype="bfloat16")
weights = sum(p.numel() * p.element_size() for p in m.parameters()) / 2**20
loaded = rss() - base
ids = torch.randint(0, 1000, (2, 512))
m(input_ids=ids, labels=ids).loss.backward()
print(json.dumps({{"weights_mib": weights, "after_load_mib": loaded, "peak_mib": rss() - base}}))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default=str(ROOT / "data" / "datasets" / "default"))
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--max-len", type=int, default=2048)
    args = p.parse_args()
    ds = Path(args.dataset)
    if not (ds / "train.parquet").exists():
        sys.exit(f"{ds / 'train.parquet'} does not exist: run `make pipeline` (or the build_dataset stage) first")
    torch.set_num_threads(2)
    tok_dir = ds.parents[1] / "models" / "tiny"
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(build_tiny_model(tok_dir, Path(tmp) / "tiny", TinyShape()))
        tok = AutoTokenizer.from_pretrained(model_dir)
        examples = sorted(pq.read_table(ds / "train.parquet").to_pylist(), key=lambda r: r["example_id"])
        seqs = [tokenize(tok, r["messages"], args.max_len) for r in examples]
        seqs = [s for s in seqs if s.n_trainable > 0]
        n_rows = args.steps * ROWS
        lengths = sorted(len(s.input_ids) for s in seqs)
        print(f"{len(seqs)} examples, tokens per example: median {lengths[len(lengths) // 2]}, max {lengths[-1]}")
        results = {}
        for name, packed in (("pad-to-max (004)", False), ("packed (ours)", True)):
            rows = rows_for(seqs, packed, args.max_len, n_rows)
            if len(rows) < n_rows:
                sys.exit(f"only {len(rows)} rows for {name}; lower --steps")
            secs, real = timed_steps(model_dir, rows, tok.pad_token_id, args.max_len)
            trained = sum(1 for r in rows for t in r["labels"][1:] if t != IGNORE)
            results[name] = real / secs
            print(f"{name:18s} {args.steps} steps x {ROWS} rows x {args.max_len}: {secs:6.1f} s, {real:7d} real tokens "
                  f"({real / (n_rows * args.max_len):5.1%} of the batch), {real / secs:7.0f} tokens/s; "
                  f"assistant tokens {trained}")  # fmt: skip

        big = build_tiny_model(
            tok_dir,
            Path(tmp) / "mid",
            TinyShape(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=4,
                      intermediate_size=2048, max_position_embeddings=2048),
        )  # fmt: skip
        mem = {m: memory_child(m, str(big)) for m in ("qlora", "lora")}
        for m, v in mem.items():
            print(
                f"memory of a ~110M Llama, {m:5s} (bf16 compute): weights {v['weights_mib']:6.0f} MiB, peak RSS "
                f"over imports after load {v['after_load_mib']:6.0f} MiB, after one step {v['peak_mib']:6.0f} MiB"
            )
    ratio = results["packed (ours)"] / results["pad-to-max (004)"]
    print(json.dumps({"tokens_per_s": results, "memory_mib": mem}))
    print(f"packed / pad-to-max non-pad tokens per second: {ratio:.2f}x (target >= 3x)")


if __name__ == "__main__":
    main()
