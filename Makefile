# The README's two commands. Both create .venv on first use (scripts/setup.sh, idempotent).
export HF_HUB_OFFLINE := 1
export MLFLOW_DISABLE_TELEMETRY := true
export RAY_USAGE_STATS_ENABLED := 0
PY := .venv/bin/python

.PHONY: setup ablate test lint
setup:
	bash scripts/setup.sh

ablate: setup  ## the main job: the DDA ablation (paper Table 5) on the embedded synthetic data
	$(PY) experiments/ablate_dda.py $(ARGS)

test: setup lint  ## the whole default test suite (slow tests: make test PYTEST_ARGS="-m slow")
	bash scripts/install-browser.sh
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	cd platform && ../.venv/bin/lint-imports --config ../pyproject.toml --no-cache
