"""Large test images built from the shipped sample, without importing torch."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_unet.samples import sample_path


def big_image(size: int = 2048) -> np.ndarray:
    """The nuclei sample mirrored into a size x size image."""
    tile = tifffile.imread(sample_path("dsb2018_nuclei.tif"))
    row = np.concatenate([tile, tile[:, ::-1]] * (size // (2 * tile.shape[1])), axis=1)
    rows = [row, row[::-1]] * (size // (2 * tile.shape[0]))
    return np.ascontiguousarray(np.concatenate(rows, axis=0)[:size, :size])
