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


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run torch on one thread in tests.

    The test models are tiny and gain nothing from threads, and on a busy
    2-core machine two OpenMP threads per operation can be five times slower
    than one.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def private_home(tmp_path_factory, monkeypatch):
    """Give each test its own home folder, so nothing is written to the real one.

    The GUI saves accepted masks and models under ``~/napari-unet`` by default.
    """
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def repo_root() -> Path:
    """The repository root."""
    return ROOT
