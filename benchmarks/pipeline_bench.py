"""The README's first command on a fresh clone in a fresh virtual environment: wall time per stage, and the
fine-tuned model's F1 beside the untrained base's (target: under 15 minutes on 2 cores, fine-tuned above base).

    python benchmarks/pipeline_bench.py                  # clones this checkout's HEAD into a temp dir
    python benchmarks/pipeline_bench.py --keep /tmp/pb   # keep the clone (data/ holds every artifact)

``make setup`` runs first on the clone (a new .venv: torch, the project; terraform and the provider mirror are
found or built under $TFPREDICT_HOME as on any machine), then ``make pipeline`` (its setup step is then a no-op
check of a few seconds) on the embedded default. The stage times are the pipeline's own (its ``stages`` summary
line); the F1 is the test split's micro F1 from ``data/reports/default/metrics.json``, schema-constrained decoding.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_MIN = 15.0


def timed(cmd: list[str], cwd: Path, log: Path) -> tuple[float, str]:
    t0 = time.monotonic()
    with open(log, "w") as f:
        r = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, text=True, check=False)
    out = log.read_text()
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}); last lines of {log}:\n{out[-3000:]}")
    return time.monotonic() - t0, out


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    p.add_argument("--keep", type=Path, help="clone here and keep it (default: a temp dir, removed)")
    args = p.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="tfpredict-bench-"))
    clone = root / "tfpredict"
    try:
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True,
                              check=True)  # fmt: skip
        setup_s, _ = timed(["make", "setup"], clone, root / "setup.log")
        pipeline_s, out = timed(["make", "pipeline"], clone, root / "pipeline.log")
        line = next((x for x in out.splitlines() if x.strip().startswith("stages ")), "")
        stages = {m[0]: float(m[1]) for m in re.findall(r"(\w+) ran in (\d+) s", line)}
        metrics = json.loads((clone / "data" / "reports" / "default" / "metrics.json").read_text())
        f1 = {n: p["micro_f1"] for n, p in metrics["predictors"].items()}
        total = setup_s + pipeline_s
        print(f"\npipeline_bench: a fresh clone of {head.stdout.strip()} in a fresh venv, `make pipeline`")
        print(f"  {'setup (new .venv)':24s} {setup_s:7.0f} s")
        for name, s in stages.items():
            print(f"  {name:24s} {s:7.0f} s")
        rest = pipeline_s - sum(stages.values())
        print(f"  {'rest (Ray start, setup check)':24s} {rest:7.0f} s")
        verdict = "met" if total / 60 < TARGET_MIN else "missed"
        print(f"  {'total':24s} {total:7.0f} s = {total / 60:.1f} min (target < {TARGET_MIN:g} min: {verdict})")
        tuned, base = f1.get("fine-tuned (constrained)"), f1.get("base (constrained)")
        print(f"  test micro F1 on {metrics['n_examples']} plans: " + ", ".join(f"{n} {v:.3f}" for n, v in f1.items()))
        if tuned is not None and base is not None:
            print(f"  fine-tuned {tuned:.3f} vs untrained base {base:.3f}: {'above' if tuned > base else 'NOT above'}")
        return 0
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
