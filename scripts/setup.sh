#!/usr/bin/env bash
# Set up napari-unet in a virtual environment inside the checkout (.venv).
#
#   bash scripts/setup.sh          # the plugin, PyQt5, torch
#   bash scripts/setup.sh --dev    # ... plus the test tools (pytest, pytest-qt, npe2, ...)
#
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    *) echo "error: unknown option $arg (use --dev)" >&2; exit 2 ;;
  esac
done

# 1. System libraries that Qt and napari's OpenGL canvas need without a desktop
#    (Xvfb virtual display, Mesa GL, xkbcommon-x11 and the xcb libraries).
if command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1; then
  packages=(xvfb xauth libgl1 libegl1 libgl1-mesa-dri libglib2.0-0 libfontconfig1 libdbus-1-3
            libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
            libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0)
  missing=()
  for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "installing system packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
fi

# 2. The virtual environment.
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)

# 3. PyTorch, pinned, installed before the plugin so pip never picks a build for us.
#    - NVIDIA GPU (nvidia-smi lists one): PyPI's Linux wheel, which bundles CUDA.
#    - macOS: PyPI's wheel, which supports Apple MPS.
#    - otherwise: the same pin; pip takes a local CPU wheel when one is configured
#      (find-links), and TORCH_INDEX_URL, if set, names a CPU-only index to use
#      instead of PyPI's CUDA-bundling wheel.
torch_version=${TORCH_VERSION:-2.13.0}
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "NVIDIA GPU found: installing torch==$torch_version with CUDA"
    "${pip[@]}" "torch==$torch_version"
  elif [ -n "${TORCH_INDEX_URL:-}" ]; then
    echo "installing torch==$torch_version from $TORCH_INDEX_URL"
    "${pip[@]}" "torch==$torch_version" --index-url "$TORCH_INDEX_URL"
  else
    echo "installing torch==$torch_version"
    "${pip[@]}" "torch==$torch_version"
  fi
fi

# 4. The plugin itself (editable), with the Qt binding chosen for it.
extras="pyqt5"
((dev)) && extras="pyqt5,testing"
"${pip[@]}" -e ".[$extras]"
.venv/bin/python -c "import torch; print('torch', torch.__version__, '| CUDA:', torch.cuda.is_available())"
