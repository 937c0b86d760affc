"""The core type-checks cleanly with mypy (configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_core_type_checks():
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e .[testing])")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "napari_unet/core"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
