"""Sample data for napari's File > Open Sample menu.

Only numpy and tifffile are imported here, never torch: opening a sample must
stay fast.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np


def sample_path(name: str) -> Path:
    """Return the path of a file in the shipped ``sample_data`` folder.

    Works from a source checkout (where ``napari_unet/sample_data`` links to
    the repository's ``sample_data/``) and from an installed wheel (where the
    folder is copied into the package).
    """
    path = Path(str(files("napari_unet") / "sample_data" / name))
    if not path.exists():
        raise FileNotFoundError(f"sample file {name!r} is missing from {path.parent}")
    return path


def nuclei_sample() -> list[tuple]:
    """DSB 2018 fluorescence nuclei image and its instance ground truth."""
    import tifffile

    image = tifffile.imread(sample_path("dsb2018_nuclei.tif"))
    truth = tifffile.imread(sample_path("dsb2018_nuclei_mask.tif")).astype(np.int32)
    return [
        (image, {"name": "nuclei", "colormap": "gray"}, "image"),
        (truth, {"name": "nuclei ground truth", "opacity": 0.5, "visible": False}, "labels"),
    ]


def _dsb_pair(stem: str, name: str, rgb: bool = False) -> list[tuple]:
    import tifffile

    image = tifffile.imread(sample_path(f"{stem}.tif"))
    truth = tifffile.imread(sample_path(f"{stem}_mask.tif")).astype(np.int32)
    kwargs = {"name": name, "rgb": True} if rgb else {"name": name, "colormap": "gray"}
    return [
        (image, kwargs, "image"),
        (truth, {"name": f"{name} ground truth", "opacity": 0.5, "visible": False}, "labels"),
    ]


def brightfield_sample() -> list[tuple]:
    """DSB 2018 brightfield image (dark nuclei on a bright background) and its ground truth."""
    return _dsb_pair("dsb2018_brightfield", "brightfield nuclei")


def histology_sample() -> list[tuple]:
    """DSB 2018 H&E-stained tissue image (RGB) and its instance ground truth."""
    return _dsb_pair("dsb2018_histology", "H&E nuclei", rgb=True)


def ct_nodules_sample() -> list[tuple]:
    """Synthetic CT-like slice with small nodules, its lung mask and its ground truth."""
    from napari_unet.core.synthetic import ct_slice

    # A slice with two nodules, one of them part-solid (about half of the
    # generator's slices hold none).
    image, lung, nodules = ct_slice(seed=2024)
    return [
        (image, {"name": "CT slice", "colormap": "gray"}, "image"),
        (
            lung.astype(np.uint8),
            {"name": "lung mask", "opacity": 0.25, "visible": False},
            "labels",
        ),
        (nodules.astype(np.int32), {"name": "nodules ground truth", "opacity": 0.6}, "labels"),
    ]
