"""Requests per second and latency: our Serve app (dynamic batching) vs a one-request-at-a-time FastAPI server.

    .venv/bin/python benchmarks/serve_bench.py [--output-dir data] [--requests 128] [--clients 16] [--max-tokens 64]

Same model (the embedded tiny base, untrained: every answer runs the whole token budget, so both sides do the
same work), same prompts, same greedy decoding, same load: ``--clients`` threads sending ``--requests`` chat
requests over loopback HTTP, each waiting for its answer. Two workloads, each on both servers:
- chat: short questions (~40 prompt tokens), where a step costs little and batching shares it;
- plan: the default dataset's plan-prediction prompts (1,200-2,200 tokens), where prefill and attention over
  the long cache dominate, compute-bound on a CPU.
- baseline: the reference design's server (../shared/reference/001_*): FastAPI + uvicorn in one process, the model
  loaded once, ``generate`` on one request at a time (a lock around it), all the machine's threads;
- ours: ``serve.app`` on a private local Ray cluster, one model replica holding all the machine's CPUs, requests
  batched by ``@serve.batch`` (``--batch-size``, ``--batch-wait-s``).
Answers are compared between the two (batched left-padded greedy must write what one-at-a-time greedy writes).
Prints requests/s and p50/p95 latency of each, then the throughput ratio last (target: >= 3x at 16 clients,
p95 no worse).
Needs the dataset stage's output (``make pipeline``, or ``python -m ray_jobs.pipeline train_enabled=false``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASELINE = """
import sys, threading, torch
from fastapi import FastAPI
import uvicorn
sys.path.insert(0, {root!r})
from pipelines.evaluate.generate import Generator, GenParams
from pipelines.dataset.tokens import load_tokenizer
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained({model!r}).eval()
gen = Generator(model, load_tokenizer({model!r}))
app = FastAPI()
lock = threading.Lock()

@app.post("/v1/chat/completions")
def chat(body: dict) -> dict:
    with lock:  # one request at a time, as the reference server runs
        ids = gen.render(body["messages"])
        with torch.no_grad():
            x = torch.tensor([ids])
            out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=body["max_tokens"],
                                 do_sample=False, eos_token_id=gen.stops, pad_token_id=gen.pad)[0, len(ids):].tolist()
    end = next((k for k, t in enumerate(out) if t in gen.stops), len(out))
    return {{"choices": [{{"message": {{"content": gen.tok.decode(out[:end], skip_special_tokens=True)}}}}]}}

uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout: float = 300) -> None:
    import requests

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            requests.post(url, json={"model": "base", "max_tokens": 1,
                                     "messages": [{"role": "user", "content": "hi"}]}, timeout=60)  # fmt: skip
            return
        except requests.RequestException:
            time.sleep(1)
    raise SystemExit(f"{url} did not come up in {timeout} s")


Messages = list[dict[str, str]]
Run = tuple[float, list[float], list[str]]  # wall time, latencies, answers


def load(url: str, prompts: list[Messages], clients: int, max_tokens: int) -> Run:
    import requests

    def one(msgs: list[dict[str, str]]) -> tuple[float, str]:
        t0 = time.perf_counter()
        r = requests.post(url, json={"model": "base", "messages": msgs, "max_tokens": max_tokens, "temperature": 0},
                          timeout=600)  # fmt: skip
        r.raise_for_status()
        return time.perf_counter() - t0, r.json()["choices"][0]["message"]["content"]

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        out = list(pool.map(one, prompts))
    return time.perf_counter() - t0, [t for t, _ in out], [a for _, a in out]


def run_workloads(port: int, workloads: dict[str, list[Messages]], clients: int, max_tokens: int) -> dict[str, Run]:
    """Each workload's load against the server on ``port``, once it answers."""
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    wait_up(url)
    return {w: load(url, ps, clients, max_tokens) for w, ps in workloads.items()}


def report(name: str, wall: float, lat: list[float], n: int) -> float:
    q = statistics.quantiles(lat, n=100)
    print(f"  {name:<28} {n / wall:6.2f} req/s   p50 {statistics.median(lat):6.2f} s   p95 {q[94]:6.2f} s")
    return n / wall


def main() -> None:
    import pyarrow.parquet as pq

    from ray_jobs.train import TrainConfig, resolve_base

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output-dir", default="data")
    ap.add_argument("--requests", type=int, default=128)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--batch-wait-s", type=float, default=0.05)
    args = ap.parse_args()
    out = Path(args.output_dir).resolve()
    ds = out / "datasets" / "default"
    if not (ds / "train.parquet").exists():
        sys.exit(f"needs {ds}: run `python -m ray_jobs.pipeline train_enabled=false` first")
    base, _ = resolve_base(TrainConfig(output_dir=str(out)))
    rows = [r for s in ("train", "val", "test") for r in pq.read_table(ds / f"{s}.parquet").to_pylist()
            if r["task"] == "plan_prediction"]  # fmt: skip
    rows = sorted(rows, key=lambda r: r["example_id"])
    prompts = [[{"role": m["role"], "content": m["content"]} for m in r["messages"][:-1]] for r in rows]
    prompts = (prompts * (args.requests // max(1, len(prompts)) + 1))[: args.requests]
    n, cpus = len(prompts), os.cpu_count() or 1
    print(f"{n} chat requests ({len(rows)} distinct plan prompts), {args.clients} clients, {args.max_tokens} new "
          f"tokens each, model {base}, {cpus} CPUs")  # fmt: skip

    chat = [[{"role": "user", "content": f"What does terraform plan do for module number {i}? Explain briefly."}]
            for i in range(n)]  # fmt: skip
    workloads = {"chat": chat, "plan": prompts}
    port = free_port()
    script = BASELINE.format(root=str(ROOT), model=str(base), port=port)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        base_runs = run_workloads(port, workloads, args.clients, args.max_tokens)
    finally:
        proc.terminate()
        proc.wait(30)

    import ray
    from ray import serve

    from serve.app import build_app
    from serve.config import AppArgs

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.pop("TFPREDICT_API_KEY", None)
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
    app = AppArgs(base_model=str(base), model_num_cpus=cpus, autoscaling={"min_replicas": 1, "max_replicas": 1},
                  batching={"max_batch_size": args.batch_size, "batch_wait_timeout_s": args.batch_wait_s},
                  max_ongoing_requests=max(args.batch_size, args.clients),
                  limits={"max_tokens": args.max_tokens})  # fmt: skip
    try:
        serve.run(build_app(app), name="bench", route_prefix="/")
        ours = run_workloads(port, workloads, args.clients, args.max_tokens)
    finally:
        serve.shutdown()
        ray.shutdown()
    ratios = {}
    for w in workloads:
        (wall_b, lat_b, ans_b), (wall_s, lat_s, ans_s) = base_runs[w], ours[w]
        print(f"{w}:")
        rps_b = report("one at a time (FastAPI)", wall_b, lat_b, n)
        rps_s = report(f"Serve, batches of {args.batch_size}", wall_s, lat_s, n)
        same = sum(a == b for a, b in zip(ans_b, ans_s, strict=True))
        p95_b, p95_s = statistics.quantiles(lat_b, n=100)[94], statistics.quantiles(lat_s, n=100)[94]
        print(f"  identical answers: {same}/{n}; p95 latency, Serve / one at a time: {p95_s / p95_b:.2f}")
        ratios[w] = rps_s / rps_b
    print("speedup (requests/s, Serve with batching / one at a time): "
          + ", ".join(f"{w} {r:.2f}x" for w, r in ratios.items()))  # fmt: skip


if __name__ == "__main__":
    main()
