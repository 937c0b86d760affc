"""Test-time augmentation: predict the 8 flips and 90-degree rotations, average, and spread.

Each transform of the image (the dihedral group of the square: 4 rotations,
each with and without a mirror) is predicted with the same seamless tiling as
:func:`~napari_unet.core.inference.iter_predict`, mapped back, and averaged.
The per-pixel standard deviation of the foreground probability across the
transforms is an uncertainty map: where the network's answer depends on the
orientation it saw, it is unsure (MONAI Label ranks images for correction the
same way).  It costs 8 predictions.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch

from napari_unet.core.defaults import DEFAULT_TILE_SIZE
from napari_unet.core.errors import InputError
from napari_unet.core.events import Notice, Progress, relay
from napari_unet.core.images import is_rgb
from napari_unet.core.inference import Prediction, iter_predict
from napari_unet.core.model import UNet

#: (quarter turns, mirror) of the 8 transforms; the first is the identity.
TRANSFORMS = tuple((k, flip) for flip in (False, True) for k in range(4))


@dataclass(frozen=True)
class TTAPrediction(Prediction):
    """A :class:`~napari_unet.core.inference.Prediction` averaged over transforms.

    Attributes
    ----------
    uncertainty
        float32 standard deviation of the foreground probability across the
        transforms, of the probabilities' shape (0 where they all agree).
    """

    uncertainty: np.ndarray | None = None


def _spatial_axes(image: np.ndarray) -> tuple[int, int]:
    """Axes of height and width: the last two, or the two before a colour axis."""
    return (image.ndim - 3, image.ndim - 2) if is_rgb(image) else (image.ndim - 2, image.ndim - 1)


def _forward(array: np.ndarray, k: int, flip: bool, axes: tuple[int, int]) -> np.ndarray:
    out = np.flip(array, axis=axes[1]) if flip else array
    return np.ascontiguousarray(np.rot90(out, k, axes=axes))


def _backward(array: np.ndarray, k: int, flip: bool) -> np.ndarray:
    axes = (array.ndim - 2, array.ndim - 1)
    out = np.rot90(array, -k, axes=axes)
    return np.flip(out, axis=axes[1]) if flip else out


def iter_predict_tta(
    image: np.ndarray,
    model: UNet,
    *,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int | None = None,
    device: str | torch.device = "auto",
    transforms: tuple[tuple[int, bool], ...] = TRANSFORMS,
) -> Generator[Progress | Notice, None, TTAPrediction]:
    """Predict ``image`` under each transform, map back and average.

    Parameters
    ----------
    image, model, tile_size, overlap, device
        As for :func:`~napari_unet.core.inference.iter_predict`.
    transforms
        ``(quarter turns, mirror)`` pairs; all 8 by default.

    Yields
    ------
    Progress
        Tiles done over all transforms.
    Notice
        Once, as the first prediction gives it (for example a raised tile size).

    Returns
    -------
    TTAPrediction
        Mean foreground and rim probabilities and the foreground's spread.
    """
    image = np.asarray(image)
    axes = _spatial_axes(image)
    done_before = 0
    mean: np.ndarray | None = None
    squares: np.ndarray | None = None
    sum_b: np.ndarray | None = None
    sum_d: np.ndarray | None = None
    notices: set[str] = set()
    for index, (k, flip) in enumerate(transforms):
        gen = iter_predict(
            _forward(image, k, flip, axes),
            model,
            tile_size=tile_size,
            overlap=overlap,
            device=device,
        )
        part_total = [0]

        def overall(
            event: Progress, index: int = index, before: int = done_before, seen: list = part_total
        ) -> Progress:
            seen[0] = event.total
            return Progress(
                before + event.step,
                event.total * len(transforms),
                f"transform {index + 1}/{len(transforms)}, {event.message}",
            )

        maps = yield from relay(gen, notices, overall)
        done_before += part_total[0]
        # Welford's running mean and sum of squared deviations: stable in float32.
        p = _backward(maps.proba, k, flip).astype(np.float32)
        if mean is None:
            mean, squares = p.copy(), np.zeros_like(p)
        else:
            delta = p - mean
            mean += delta / (index + 1)
            squares += delta * (p - mean)
        if maps.boundary is not None:
            b = _backward(maps.boundary, k, flip).astype(np.float32)
            sum_b = b if sum_b is None else sum_b + b
        if maps.distance is not None:
            d = _backward(maps.distance, k, flip).astype(np.float32)
            sum_d = d if sum_d is None else sum_d + d
    if mean is None or squares is None:
        raise InputError("give at least one transform")
    n = len(transforms)
    spread = np.sqrt(np.maximum(squares / n, 0.0))
    boundary = None if sum_b is None else (sum_b / n).astype(np.float32)
    distance = None if sum_d is None else (sum_d / n).astype(np.float32)
    return TTAPrediction(mean, boundary, spread.astype(np.float32), distance=distance)


def most_uncertain_region(
    uncertainty: np.ndarray, window: int | None = None
) -> tuple[int | None, tuple[int, int, int, int]]:
    """Where a person's correction helps most: the slice and window of highest uncertainty.

    Parameters
    ----------
    uncertainty
        ``(H, W)`` or ``(Z, H, W)`` map, such as :attr:`TTAPrediction.uncertainty`.
    window
        Side of the square window in pixels; by default a quarter of the
        plane's shorter side, at least 32 (the whole plane if smaller).

    Returns
    -------
    slice, box
        The slice with the highest mean uncertainty (``None`` for a 2D map) and
        ``(y0, y1, x0, x1)`` of the window with the highest mean uncertainty in it.
    """
    from scipy import ndimage as ndi

    u = np.asarray(uncertainty, dtype=np.float32)
    if u.ndim not in (2, 3) or u.size == 0:
        raise InputError(f"an uncertainty map is (Y, X) or (Z, Y, X), not shape {u.shape}")
    z = None
    if u.ndim == 3:
        z = int(np.argmax(u.reshape(u.shape[0], -1).mean(axis=1)))
        u = u[z]
    h, w = u.shape
    side = max(32, min(h, w) // 4) if window is None else int(window)
    side = max(1, min(side, h, w))
    mean = ndi.uniform_filter(u, size=side, mode="constant")
    # Centres whose window lies inside the plane.
    lo, hi = side // 2, side - side // 2
    inner = mean[lo : h - hi + 1, lo : w - hi + 1]
    cy, cx = np.unravel_index(int(np.argmax(inner)), inner.shape)
    y0, x0 = int(cy), int(cx)
    return z, (y0, y0 + side, x0, x0 + side)
