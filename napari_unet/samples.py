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


def ct_nodules_sample() -> list[tuple]:
    """Synthetic CT-like slice with small nodules, its lung mask and its ground truth."""
    from napari_unet.core.synthetic import ct_slice

    image, lung, nodules = ct_slice(seed=2015)
    return [
        (image, {"name": "CT slice", "colormap": "gray"}, "image"),
        (
            lung.astype(np.uint8),
            {"name": "lung mask", "opacity": 0.25, "visible": False},
            "labels",
        ),
        (nodules.astype(np.int32), {"name": "nodules ground truth", "opacity": 0.6}, "labels"),
    ]
