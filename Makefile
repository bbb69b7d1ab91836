# slotcast: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export OPENBLAS_NUM_THREADS ?= 1
export SLOTCAST_STATE_DIR ?= $(CURDIR)/.slotcast
# Every CLI and server process imports Feast, MLflow and dask: let Python keep their bytecode.
unexport PYTHONDONTWRITEBYTECODE

# Bootstrap uv with pip when it is not on PATH.
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")

.PHONY: help uv sync demo test test-fast lint fmt bench clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

uv: ## install uv with pip if it is missing
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
	@command -v $(UV) >/dev/null 2>&1 || { echo "uv not found after install; add ~/.local/bin to PATH"; exit 1; }

sync: uv ## create .venv from the committed uv.lock
	$(UV) sync --frozen --python 3.11

demo: sync ## run the main job on the embedded defaults (simulated world, SQLite, local MLflow)
	$(UV) run --frozen slotcast pipeline demo

test: sync ## run the whole test suite (starts redis-server itself)
	$(UV) run --frozen pytest -q -p no:cacheprovider --durations=15

test-fast: sync ## the suite without slow and integration tests
	$(UV) run --frozen pytest -q -m "not slow and not integration"

lint: sync ## ruff check, ruff format --check, mypy
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy models features serving training pipelines

fmt: sync ## format the code
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

bench: sync ## run the benchmarks (writes figures under benchmarks/out)
	$(UV) run --frozen python -m benchmarks.run_all

clean: ## remove the state directory (data, features, MLflow store, logs)
	rm -rf "$(SLOTCAST_STATE_DIR)"
