"""The core runs without Qt or napari, and the package import stays light."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUI_MODULES = ("napari", "qtpy", "magicgui", "superqt", "psygnal", "PyQt5", "PyQt6", "PySide2")


def _loaded_after(code: str) -> set[str]:
    script = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return {line.split(".")[0] for line in out.splitlines()}


def test_core_loads_no_gui_module():
    code = "\n".join(
        [
            "import napari_unet.core",
            "import pkgutil, importlib, napari_unet.core as c",
            "for m in pkgutil.iter_modules(c.__path__):",
            "    importlib.import_module('napari_unet.core.' + m.name)",
        ]
    )
    loaded = _loaded_after(code)
    assert "torch" in loaded or "numpy" in loaded  # the core modules really were imported
    assert not loaded & set(GUI_MODULES), sorted(loaded & set(GUI_MODULES))


def test_package_import_is_light():
    loaded = _loaded_after("import napari_unet, napari_unet.samples")
    assert "torch" not in loaded
    assert not loaded & set(GUI_MODULES)


def test_import_linter_contract_holds():
    lint = Path(sys.executable).parent / "lint-imports"
    exe = str(lint) if lint.exists() else shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is not installed: run scripts/setup.sh --dev")
    result = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # The core imports neither Qt nor the CLI; the widgets do not import the CLI.
    assert "2 kept, 0 broken" in result.stdout
