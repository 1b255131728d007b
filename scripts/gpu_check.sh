#!/usr/bin/env bash
# GPU check, one command (< 8 minutes on a GPU machine): set up, build the embedded default dataset, then train
# the embedded tiny model with bf16, packing and DDP over every GPU present; print tokens/s, peak GPU memory and
# eval loss.
#   scripts/gpu_check.sh              # on a machine with NVIDIA GPUs
#   scripts/gpu_check.sh --dry-run    # the same steps on CPU (2 workers, fp32, a few steps): checks the script
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${GPU_CHECK_OUT:-data/gpu-check}
DRY=${1:-}

make setup
export RAY_AUTH_MODE=disabled
if [[ ! -f "$OUT/datasets/default/train.parquet" ]]; then
  .venv/bin/python -m ray_jobs.pipeline "output_dir=$OUT" train_enabled=false
fi
if [[ "$DRY" == "--dry-run" ]]; then
  ARGS=(use_gpu=false num_workers=2 compute_dtype=float32 cpus_per_worker=0.5 max_steps=4 eval_every=2
        checkpoint_every=2 export.merged=false)
else
  N=$(nvidia-smi -L | wc -l)
  [[ "$N" -ge 1 ]] || { echo "gpu_check: no NVIDIA GPU found (nvidia-smi -L); use --dry-run on CPU" >&2; exit 1; }
  ARGS=(use_gpu=true "num_workers=$N" compute_dtype=bfloat16 cpus_per_worker=2 max_steps=300 eval_every=50
        checkpoint_every=100 batch_size=4)
fi
NAME="gpu-check-$(date +%s)"
.venv/bin/python -m ray_jobs.train --config ray_jobs/configs/train_tiny.yaml "output_dir=$OUT" "name=$NAME" "${ARGS[@]}"
.venv/bin/python - "$OUT/runs/$NAME/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
tps = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r]
mem = [r["gpu_mem_gb"] for r in rows if "gpu_mem_gb" in r]
evals = [r["eval_loss"] for r in rows if "eval_loss" in r]
print("gpu_check: trained tokens/s (all workers) median %.0f, max %.0f" % (sorted(tps)[len(tps) // 2], max(tps)))
print("gpu_check: peak GPU memory per worker %s" % (f"{max(mem):.2f} GiB" if mem else "n/a (CPU)"))
print("gpu_check: eval loss %.4f -> %.4f (best %.4f)" % (evals[0], evals[-1], min(evals)))
PY
