"""Shared test configuration.

GUI tests (marked ``gui``) use napari's ``make_napari_viewer`` fixture with a
real viewer; ``scripts/test.sh`` runs them on a virtual display (Xvfb) when the
machine has none.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """Fail GUI tests early with a clear reason when there is no display at all."""
    if not sys.platform.startswith("linux"):
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    if os.environ.get("QT_QPA_PLATFORM") not in (None, "", "xcb"):
        return
    reason = "no display: run the GUI tests with scripts/test.sh (it starts Xvfb)"
    for item in items:
        if "gui" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def repo_root() -> Path:
    """The repository root."""
    return ROOT
