# tfpredict: the two commands (README) and a few helpers. Every target sets the machine up first.
PY := .venv/bin/python
ARGS ?=

.PHONY: setup pipeline test lint bench

setup:
	scripts/setup.sh

pipeline: setup  ## set up, then run every stage on the embedded default
	$(PY) -m ray_jobs.pipeline $(ARGS)

test: setup  ## set up, then run the whole test suite (CPU-only, real terraform/git/Ray)
	$(PY) -m pytest $(ARGS)

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

bench: setup
	$(PY) benchmarks/collect_bench.py
	$(PY) benchmarks/dataset_bench.py
	$(PY) benchmarks/train_bench.py
	$(PY) benchmarks/eval_bench.py
	$(PY) benchmarks/serve_bench.py
