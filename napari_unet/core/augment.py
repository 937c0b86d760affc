"""Data augmentation applied alike to an image patch, its mask and its weight map.

Geometric transforms (flips, 90-degree rotations, elastic deformation) move
the image, the mask and the weight map together; intensity transforms (gamma,
brightness, contrast, noise) touch the image only.  Everything is numpy/scipy
on patches of a few hundred pixels, cheap next to a training step.

The elastic deformation follows Ronneberger et al. (2015): random
displacement vectors on a coarse 3 x 3 grid, drawn from a Gaussian with 10 px
standard deviation, interpolated bicubically to a smooth per-pixel field.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_unet.core.augment_config import AugmentConfig  # noqa: F401 (public here too)


def elastic_displacement(
    shape: tuple[int, int], rng: np.random.Generator, sigma: float = 10.0, grid: int = 3
) -> np.ndarray:
    """Draw a smooth random displacement field.

    Parameters
    ----------
    shape
        (H, W) of the field.
    rng
        Random generator.
    sigma
        Standard deviation of the control-point displacements in pixels.
    grid
        Control points per axis; they span the patch corner to corner.

    Returns
    -------
    np.ndarray
        float32 (2, H, W): displacement along y and along x for every pixel.
    """
    coarse = rng.normal(0.0, sigma, size=(2, grid, grid))
    h, w = shape
    # Bicubic (order 3) zoom with aligned corners (grid_mode=False): the
    # control points sit at the patch corners and centre, and the field
    # between them is smooth.
    zoom = (h / grid, w / grid)
    field = [ndi.zoom(c, zoom, order=3, mode="nearest", grid_mode=False) for c in coarse]
    return np.stack(field).astype(np.float32)


def _warp(array: np.ndarray, coords: np.ndarray, order: int) -> np.ndarray:
    """Resample a 2D array at ``coords`` (2, H, W) with mirrored borders."""
    return ndi.map_coordinates(array, coords, order=order, mode="mirror", prefilter=False)


def augment(
    image: np.ndarray,
    mask: np.ndarray,
    weight: np.ndarray | None,
    rng: np.random.Generator,
    config: AugmentConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Apply one random augmentation to an image patch, its mask and its weights.

    Parameters
    ----------
    image
        (H, W) or (C, H, W) float image (normalised).
    mask
        (H, W) target (0/1); resampled with nearest neighbour, so it stays 0/1.
    weight
        (H, W) weight map or ``None``; resampled linearly.
    rng
        Random generator; the same generator state gives the same result.
    config
        Which augmentations to apply; ``AugmentConfig()`` by default.

    Returns
    -------
    tuple
        ``(image, mask, weight)`` with the input shapes and dtypes (image
        float32), contiguous.
    """
    config = AugmentConfig() if config is None else config
    img = np.asarray(image, dtype=np.float32)
    squeeze = img.ndim == 2
    if squeeze:
        img = img[None]
    msk = np.asarray(mask)
    wgt = None if weight is None else np.asarray(weight, dtype=np.float32)
    mask_dtype = msk.dtype

    def geometric(fn):
        nonlocal img, msk, wgt
        img = fn(img)
        msk = fn(msk)
        wgt = None if wgt is None else fn(wgt)

    if config.flips:
        if rng.random() < 0.5:
            geometric(lambda a: a[..., ::-1, :])
        if rng.random() < 0.5:
            geometric(lambda a: a[..., :, ::-1])
    if config.rot90 and img.shape[-1] == img.shape[-2]:
        k = int(rng.integers(4))
        if k:
            geometric(lambda a: np.rot90(a, k, axes=(-2, -1)))

    deform = config.elastic and rng.random() < config.elastic_p
    zoom = 1.0
    if config.scale and rng.random() < config.scale_p:
        zoom = float(np.exp(rng.uniform(*np.log(config.scale_range))))
    if deform or zoom != 1.0:
        h, w = img.shape[-2:]
        yy, xx = np.meshgrid(
            np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij"
        )
        # Zooming by z reads the patch at 1/z steps about its centre (mirrored
        # beyond the patch when zooming out).
        cy, cx = (h - 1) / 2, (w - 1) / 2
        coords = np.stack([cy + (yy - cy) / zoom, cx + (xx - cx) / zoom])
        if deform:
            coords += elastic_displacement((h, w), rng, config.elastic_sigma, config.elastic_grid)
        img = np.stack([_warp(c, coords, 1) for c in img])
        msk = _warp(np.ascontiguousarray(msk), coords, 0)
        if wgt is not None:
            wgt = _warp(np.ascontiguousarray(wgt), coords, 1)

    img = np.ascontiguousarray(img, dtype=np.float32)
    if config.blur and rng.random() < config.blur_p:
        sigma = rng.uniform(*config.blur_sigma)
        if config.depth and rng.random() < config.depth_p and _deepenable(msk):
            t = rng.uniform(0.0, config.depth_max)
            lo, hi = config.blur_sigma
            sigma = lo + (hi - lo) * t / max(config.depth_max, 1e-9)
            msk = deepen_target(msk, t)
            img = img * (1.0 - 0.6 * t**2)
        img = np.stack([ndi.gaussian_filter(c, sigma, mode="mirror") for c in img])
        if config.blur_noise > 0:
            std = rng.uniform(0.0, config.blur_noise)
            img = img + rng.normal(0.0, std, size=img.shape).astype(np.float32)
    if config.intensity and rng.random() < config.intensity_p:
        img = _intensity(img, rng, config)
    if config.noise and rng.random() < config.noise_p:
        std = rng.uniform(0.0, config.noise_std)
        img = img + rng.normal(0.0, std, size=img.shape).astype(np.float32)

    if squeeze:
        img = img[0]
    msk = np.ascontiguousarray(msk, dtype=mask_dtype)
    wgt = None if wgt is None else np.ascontiguousarray(wgt, dtype=np.float32)
    return np.ascontiguousarray(img, dtype=np.float32), msk, wgt


def _deepenable(code: np.ndarray) -> bool:
    """Whether :func:`deepen_target` may shrink ``code``: foreground and rims only, no unknowns."""
    return code.size > 0 and float(code.max()) < 4


def deepen_target(code: np.ndarray, depth: float) -> np.ndarray:
    """Shrink every object of a target to its cross-section at relative depth ``depth``.

    Each object (8-connected component of the foreground bit, which the
    separation borders keep apart) is eroded by ``R * (1 - sqrt(1 - depth**2))``
    pixels, ``R`` its largest distance to the background: a disc of radius
    ``R`` becomes the ellipsoid's cross-section of radius ``R * sqrt(1 -
    depth**2)``, and small objects go first.  When the target carries rims
    (bit 1), they are redrawn around the shrunk objects.

    Parameters
    ----------
    code : np.ndarray
        (H, W) packed target, integer or float of whole values (patches are
        float32): bit 0 the foreground, bit 1 the rims.
    depth : float
        Relative depth in [0, 1): 0 keeps the target.

    Returns
    -------
    np.ndarray
        The shrunk target, of the same dtype.
    """
    bits = code.astype(np.uint8)
    fg = (bits & 1).astype(bool)
    if depth <= 0 or not fg.any():
        return code
    objects, n = ndi.label(fg, structure=np.ones((3, 3), dtype=bool))
    distance = ndi.distance_transform_edt(fg)
    radius = np.zeros(n + 1)
    radius[1:] = ndi.maximum(distance, objects, index=np.arange(1, n + 1))
    # A pixel's distance runs from 1 on the outline, half a pixel inside the
    # true edge, so the shrink is measured from there.
    shrink = (radius[objects] - 0.5) * (1.0 - np.sqrt(1.0 - depth**2))
    keep = distance - 0.5 > shrink
    out = keep.astype(np.uint8)
    if (bits & 2).any():
        inner = ndi.binary_erosion(keep, np.ones((3, 3), dtype=bool), border_value=1)
        out |= (keep & ~inner).astype(np.uint8) * 2
    return out.astype(code.dtype)


def _intensity(img: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Random gamma, contrast and brightness, keeping the patch's value range sensible."""
    lo, hi = float(img.min()), float(img.max())
    if hi > lo:
        # Gamma acts on [0, 1], so rescale to the patch's own range and back.
        gamma = np.exp(rng.uniform(*np.log(config.gamma_range)))
        unit = (img - lo) / (hi - lo)
        img = lo + (hi - lo) * unit**gamma
    contrast = rng.uniform(*config.contrast_range)
    mean = float(img.mean())
    img = (img - mean) * contrast + mean
    img = img + rng.uniform(-config.brightness, config.brightness)
    return img.astype(np.float32)
