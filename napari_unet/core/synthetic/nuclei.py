"""Synthetic fluorescence images of cell nuclei (see :mod:`napari_unet.core.synthetic`)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def nuclei_image(
    seed: int,
    size: int = 256,
    *,
    radius: float | None = None,
    contrast: float | None = None,
    blur: float | None = None,
    density: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate a synthetic fluorescence image of cell nuclei with instance labels.

    Parameters
    ----------
    seed
        Random seed; the same seed and arguments always give the same image.
    size
        Height and width in pixels.
    radius
        Mean nucleus radius in pixels (the DSB 2018 sample's is about 12);
        drawn from 7-14 when None.
    contrast
        Mean nucleus signal over the background, in grey values of an 8-bit-like
        range (the DSB 2018 sample's is about 45); drawn from 20-90 when None.
    blur
        Standard deviation of the Gaussian point-spread function in pixels;
        drawn from 0.7-2.0 when None.
    density
        Target share of the image covered by nuclei; drawn from 0.12-0.30 when None.

    Returns
    -------
    image : np.ndarray
        uint16 (size, size).
    labels : np.ndarray
        int32 (size, size) instance labels 1..n; touching nuclei share a border.
    """
    rng = np.random.default_rng(seed)
    radius = rng.uniform(7.0, 14.0) if radius is None else float(radius)
    contrast = rng.uniform(20.0, 90.0) if contrast is None else float(contrast)
    blur = rng.uniform(0.7, 2.0) if blur is None else float(blur)
    density = rng.uniform(0.12, 0.30) if density is None else float(density)

    n_target = int(round(density * size * size / (np.pi * radius**2 * 1.25)))
    centers: list[tuple[float, float, float]] = []
    for _ in range(n_target * 20):
        if len(centers) >= n_target:
            break
        r = radius * rng.uniform(0.75, 1.25)
        y, x = rng.uniform(-r / 2, size + r / 2, 2)
        # Most nuclei keep a gap; about a quarter may touch a neighbour.
        spacing = rng.uniform(0.8, 0.95) if rng.random() < 0.25 else rng.uniform(1.05, 1.4)
        if all(np.hypot(y - cy, x - cx) >= (r + cr) * spacing for cy, cx, cr in centers):
            centers.append((y, x, r))

    labels = np.zeros((size, size), np.int32)
    nearest = np.full((size, size), np.inf, np.float32)
    signal = np.zeros((size, size), np.float32)
    for label, (y, x, r) in enumerate(centers, start=1):
        elongation = rng.uniform(1.0, 1.6)
        angle = rng.uniform(0, np.pi)
        bright = contrast * rng.lognormal(0.0, 0.35)
        if rng.random() < 0.04:  # a small, very bright mitotic nucleus
            r, bright = r * 0.6, bright * 3.0
        a, b = r * np.sqrt(elongation), r / np.sqrt(elongation)
        ext = int(np.ceil(a)) + 2
        y0, y1 = max(int(y) - ext, 0), min(int(y) + ext + 1, size)
        x0, x1 = max(int(x) - ext, 0), min(int(x) + ext + 1, size)
        if y0 >= y1 or x0 >= x1:
            continue
        py, px = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dy, dx = py - y, px - x
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        theta = np.arctan2(v, u)
        wobble = 1.0 + 0.06 * np.sin(2 * theta + rng.uniform(0, 2 * np.pi))
        wobble += 0.04 * np.sin(3 * theta + rng.uniform(0, 2 * np.pi))
        q = ((u / a) ** 2 + (v / b) ** 2) / wobble**2
        # A pixel claimed by two nuclei goes to the one it lies deeper in:
        # touching nuclei then share a border with no background between them.
        win = (q <= 1.0) & (q < nearest[y0:y1, x0:x1])
        labels[y0:y1, x0:x1][win] = label
        nearest[y0:y1, x0:x1][win] = q[win]
        profile = bright * (1.0 - 0.25 * q)
        signal[y0:y1, x0:x1][win] = profile[win]

    labels = _relabel(labels)
    texture = ndi.gaussian_filter(rng.normal(0, 1, (size, size)).astype(np.float32), 2.0)
    signal *= 1.0 + 0.6 * texture / max(float(texture.std()), 1e-6) * 0.25
    background = rng.uniform(8, 30)
    gy, gx = rng.normal(0, 4, 2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    image = ndi.gaussian_filter(signal, blur) + background + gy * yy + gx * xx
    image += rng.normal(0, 1, image.shape) * np.sqrt(np.clip(image, 1, None)) * 0.6
    image += rng.normal(0, rng.uniform(1.5, 4.0), image.shape)
    return np.clip(np.round(image), 0, 65535).astype(np.uint16), labels


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 1..n in order of appearance, dropping empty ones."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    lut = np.zeros(int(labels.max()) + 1, np.int32)
    lut[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
    return lut[labels]
