#!/usr/bin/env bash
# Set up a fresh machine for tfpredict, idempotently:
#   1. a virtualenv in .venv (Python >= 3.11)
#   2. torch: the CPU wheel when the machine has no NVIDIA GPU (else pip's default CUDA build)
#   3. the project with its [dev] extra
#   4. terraform (when none is on PATH) and the offline provider mirror
# Usage: scripts/setup.sh            (PYTHON=python3.12 scripts/setup.sh to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "tfpredict needs Python >= 3.11"'
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

if ! "$PY" -c 'import torch' 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    pip_install "torch==$TORCH_VERSION"
  # no GPU: take the CPU build, from the PyTorch CPU index when it answers, else whatever pip finds
  # (a local wheel, or PyPI's default build)
  elif "$PY" - "$TORCH_CPU_INDEX" <<'PYEOF' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/torch/", timeout=5)
PYEOF
  then
    pip_install "torch==$TORCH_VERSION" --index-url "$TORCH_CPU_INDEX"
  else
    pip_install "torch==$TORCH_VERSION"
  fi
fi

stamp="$VENV/.tfpredict-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  pip_install -e ".[dev]"
  touch "$stamp"
fi

# terraform + provider mirror (per node; see pipelines/terraform/install.py)
"$PY" -m pipelines.terraform.install
