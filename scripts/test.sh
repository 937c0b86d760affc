#!/usr/bin/env bash
# Run the whole test suite: ruff (lint and format), the import contract, then pytest (GUI
# tests on a virtual display when there is no real one).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check napari_unet tests benchmarks scripts
.venv/bin/ruff format --check --quiet napari_unet tests benchmarks scripts
.venv/bin/lint-imports
if [ -n "${DISPLAY:-}" ] || [ "$(uname)" = Darwin ]; then
  exec .venv/bin/python -m pytest "$@"
fi
exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest "$@"
