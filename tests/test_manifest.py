"""The npe2 manifest: valid, at the repository root, and what napari loads."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import npe2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "napari.yaml"


def _python_names() -> list[str]:
    data = yaml.safe_load(MANIFEST.read_text())
    return [c["python_name"] for c in data["contributions"]["commands"]]


def test_manifest_validates():
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == "napari-unet"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "npe2"), "validate", "napari-unet"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


@pytest.mark.parametrize("python_name", _python_names())
def test_every_python_name_imports(python_name):
    module_name, attr = python_name.split(":")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attr))


def test_installed_plugin_uses_the_root_manifest():
    """The manifest napari discovers for the installed package is the root napari.yaml."""
    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-unet")
    root = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.contributions.commands == root.contributions.commands
    keys = [s.key for s in manifest.contributions.sample_data]
    assert keys == ["nuclei", "brightfield", "histology", "ct_nodules"]
    # The panel first: the Plugins menu lists it at the top.
    assert [w.display_name for w in manifest.contributions.widgets] == [
        "napari U-Net",
        "Load images",
        "Segment",
        "Correct masks",
        "Fine-tune",
        "Border weight map",
        "Dice vs ground truth",
    ]
