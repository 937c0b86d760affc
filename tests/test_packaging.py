"""A built wheel carries the root napari.yaml and the sample data, and napari loads them."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import json, sys
from pathlib import Path
import npe2, napari_unet
from napari_unet.samples import nuclei_sample, sample_path
pm = npe2.PluginManager.instance()
pm.discover()
mf = pm.get_manifest("napari-unet")
layers = nuclei_sample()
print(json.dumps({
    "package": str(Path(napari_unet.__file__).parent),
    "samples": [s.key for s in mf.contributions.sample_data],
    "widgets": len(mf.contributions.widgets),
    "sample_file": str(sample_path("dsb2018_nuclei.tif")),
    "sample_shape": list(layers[0][0].shape),
}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("napari_unet-*.whl")
    return path


@pytest.mark.slow
def test_wheel_contains_manifest_and_samples(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "napari_unet/napari.yaml" in names
    assert "napari_unet/sample_data/dsb2018_nuclei.tif" in names
    assert "napari_unet/sample_data/dsb2018_nuclei_mask.tif" in names
    assert "napari_unet/sample_data/SOURCE.md" in names
    manifest = zipfile.ZipFile(wheel).read("napari_unet/napari.yaml")
    assert manifest == (ROOT / "napari.yaml").read_bytes()
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "napari-unet = napari_unet:napari.yaml" in text


@pytest.mark.slow
def test_wheel_install_is_what_napari_loads(wheel, tmp_path):
    """Install the wheel into a fresh environment and let npe2 discover it there.

    The new environment sees this one's dependencies through a folder of links
    that leaves out the editable napari-unet install, so only the wheel provides it.
    """
    site = Path(sysconfig.get_paths()["purelib"])
    deps = tmp_path / "deps"
    deps.mkdir()
    for entry in site.iterdir():
        low = entry.name.lower()
        if low.startswith(("napari_unet", "_napari_unet", "__editable__", "_editable_impl")):
            continue
        if low.endswith(".pth"):
            continue
        (deps / entry.name).symlink_to(entry)
    target = tmp_path / "wheel_site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    env = dict(os.environ, PYTHONPATH=f"{target}{os.pathsep}{deps}", PYTHONNOUSERSITE="1")
    result = subprocess.run(
        [sys.executable, "-S", "-c", CHECK], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    import json

    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(info["package"]).is_relative_to(target)
    assert Path(info["sample_file"]).is_relative_to(target)
    assert info["samples"] == ["nuclei", "brightfield", "histology", "ct_nodules"]
    assert info["widgets"] == 7  # the panel and the six single steps
    assert info["sample_shape"] == [512, 512]


def test_editable_install_points_at_this_checkout():
    import napari_unet
    from napari_unet.samples import sample_path

    assert Path(napari_unet.__file__).resolve().parent == ROOT / "napari_unet"
    assert (
        sample_path("dsb2018_nuclei.tif").resolve() == ROOT / "sample_data" / "dsb2018_nuclei.tif"
    )
    assert (ROOT / "napari_unet" / "napari.yaml").resolve() == ROOT / "napari.yaml"
