#!/usr/bin/env bash
# Every check CI runs (after `bash scripts/setup.sh --dev`):
# the library matches the notebooks, notebooks are clean, README matches index.ipynb,
# then pytest: every notebook through nbdev_test, the unit/parity tests, the docs build and browser test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

echo "== nbdev_export leaves no diff"
nbdev_export
if [ -n "$(git status --porcelain -- mosaiclab)" ]; then
  git status --porcelain -- mosaiclab; git --no-pager diff --stat -- mosaiclab
  echo "FAIL: mosaiclab/ does not match the notebooks (run nbdev_export and commit)"; exit 1
fi

echo "== nbdev_clean leaves no diff"
nbdev_clean
if [ -n "$(git status --porcelain -- '*.ipynb')" ]; then
  git status --porcelain -- '*.ipynb'
  echo "FAIL: notebooks are not clean (run nbdev_clean and commit)"; exit 1
fi

echo "== pytest"
$PY -m pytest tests/ -q -rs "$@"
