#!/usr/bin/env bash
# Create .venv in the repo root and install the project with every pinned dependency.
# Idempotent: a second run only checks that everything is installed (seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
fi
EXTRA="${DISTILLCAPS_EXTRA:-cpu}"   # cpu -> faiss-cpu, gpu -> faiss-gpu
echo "[setup] installing distillcaps[$EXTRA,dev] (first run downloads ~3 GB: torch is a CUDA build)"
.venv/bin/uv pip install --quiet --python .venv/bin/python \
    --override requirements/overrides.txt -e ".[$EXTRA,dev]"
echo "[setup] done: $(.venv/bin/python -c 'import torch, ray, mlflow, transformers; print(f"torch {torch.__version__}, ray {ray.__version__}, mlflow {mlflow.__version__}, transformers {transformers.__version__}")')"
