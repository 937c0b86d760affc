#!/usr/bin/env bash
# Open napari with the "napari U-Net" panel docked and the sample image loaded
# (on PyQt6 when it is installed and QT_API is unset: napari deprecates PyQt5, and
# on PyQt5 its notice goes to the console, not over the canvas).
# Without a display it runs on a virtual one (Xvfb), saves a screenshot and prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ] || [ "$(uname)" = Darwin ]; then
  exec .venv/bin/python -m napari_unet.gui.demo "$@"
fi
exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m napari_unet.gui.demo --headless "$@"
