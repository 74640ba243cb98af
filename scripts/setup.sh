#!/usr/bin/env bash
# Create .venv and install stylesearch with its test tools. Idempotent; needs only the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
# torch first and pinned: the CUDA build that also runs on CPUs and has a matching torchvision.
# Letting a resolver pick torch would pull a multi-GB build nobody asked for.
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  .venv/bin/pip install -q "torch==2.14.1" "torchvision==0.29.1"
fi
.venv/bin/pip install -q -e ".[dev,distributed]"
