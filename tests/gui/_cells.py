"""Small synthetic training images for the Fine-tune tests: bright discs on noise."""

from __future__ import annotations

import numpy as np


def cells(seed: int, size: int = 64, count: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """An image of ``count`` bright discs (radius 5) on noise, and their instance labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = rng.normal(20, 4, (size, size)).astype(np.float32)
    labels = np.zeros((size, size), np.int32)
    for i in range(1, count + 1):
        cy, cx = rng.integers(8, size - 8, 2)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 < 25
        image[disk] += 80
        labels[disk] = i
    return image, labels
