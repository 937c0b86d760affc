"""Image layouts and the percentile normalisation the network sees.

Image layouts (the same guess napari makes):

* ``(H, W)``: one grey plane;
* ``(H, W, 3)`` or ``(H, W, 4)``: one RGB(A) plane (alpha is ignored);
* ``(Z, H, W)``: a stack of grey planes (Z or T), predicted slice by slice;
* ``(Z, H, W, 3|4)``: a stack of RGB(A) planes.

The spatial shape of an image (:func:`spatial_shape`), which its masks and
probability maps share, leaves out the colour axis: ``(H, W)`` for a grey or
colour plane, ``(Z, H, W)`` for a stack, whose every plane is ``(H, W)``
(:func:`plane_shape`).

A 1-channel model sees RGB(A) as grey (:func:`to_gray`); a 3-channel model
sees grey repeated on its three channels.  Each plane (each channel of it) is
normalised on its own with the model's percentiles (:func:`normalize`).

This module needs numpy only, not torch: the model is read through its
``norm`` and ``config.in_channels`` attributes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

from napari_unet.core.errors import InputError

if TYPE_CHECKING:
    from napari_unet.core.model import NormConfig, UNet

__all__ = [
    "GRAY_WEIGHTS",
    "is_rgb",
    "is_stack",
    "normalize",
    "plane_shape",
    "spatial_shape",
    "to_gray",
]

#: Luminance weights of ITU-R BT.709 (as in ``skimage.color.rgb2gray``).
GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)

# Percentiles of float and wide-integer planes larger than this many pixels are
# taken on a regular sub-grid of about this many pixels: at 4 Mpx the estimate
# is within a fraction of a grey level of the exact value and costs ~0.1 s.
_PERCENTILE_SAMPLE = 1 << 22
_HIST_CHUNK = 1 << 18


def is_rgb(image: np.ndarray) -> bool:
    """Whether the last axis holds RGB or RGBA colour (length 3 or 4, 3 or 4 dims)."""
    return image.ndim in (3, 4) and image.shape[-1] in (3, 4)


def is_stack(image: np.ndarray) -> bool:
    """Whether ``image`` is a stack of planes: (Z, H, W) grey or (Z, H, W, 3|4) colour."""
    image = np.asarray(image) if not hasattr(image, "ndim") else image
    return image.ndim == 4 or (image.ndim == 3 and not is_rgb(image))


def spatial_shape(image: np.ndarray, rgb: bool | None = None) -> tuple[int, ...]:
    """Shape of an image without its colour axis: the shape of its masks.

    Parameters
    ----------
    image
        Any of the layouts of this module (an image as returned by
        :func:`napari_unet.core.io.read_image`).
    rgb
        Whether the last axis holds colour samples (a napari layer's ``rgb``);
        by default :func:`is_rgb` guesses.

    Returns
    -------
    tuple of int
        ``(H, W)`` of a grey or colour plane, ``(Z, H, W)`` of a stack.
    """
    if rgb is None:
        rgb = is_rgb(image)
    return tuple(image.shape[:-1]) if rgb else tuple(image.shape)


def plane_shape(image: np.ndarray, rgb: bool | None = None) -> tuple[int, int]:
    """``(H, W)`` of each plane of ``image`` (the last two axes of :func:`spatial_shape`)."""
    h, w = spatial_shape(image, rgb)[-2:]
    return h, w


def to_gray(image: np.ndarray) -> np.ndarray:
    """Convert RGB(A) (``..., H, W, 3|4``) to float32 grey luminance; alpha is ignored.

    Grey input is returned unchanged.  Values keep their scale (0-255 stays
    0-255): the percentile normalisation that follows does not care.
    """
    image = np.asarray(image)
    if not is_rgb(image):
        return image
    out = np.zeros(spatial_shape(image, rgb=True), dtype=np.float32)
    for channel, weight in enumerate(GRAY_WEIGHTS):
        out += np.float32(weight) * image[..., channel].astype(np.float32, copy=False)
    return out


def _check_image(image: Any) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.view(np.uint8)
    if image.dtype.kind not in "uif":
        raise InputError(f"images must hold integer or float pixels, not {image.dtype}")
    if image.ndim not in (2, 3, 4) or (image.ndim == 4 and not is_rgb(image)):
        raise InputError(
            f"image shape {image.shape} is not (Y, X), (Y, X, 3|4), (Z, Y, X) or (Z, Y, X, 3|4)"
        )
    if image.size == 0:
        raise InputError(f"the image is empty (shape {image.shape})")
    return image


def _percentiles(plane: np.ndarray, p_low: float, p_high: float) -> tuple[float, float]:
    """Exact percentiles (numpy's linear method) of 8/16-bit planes, sampled for others."""
    if plane.dtype.itemsize <= 2 and plane.dtype.kind in "ui":
        offset = 0 if plane.dtype.kind == "u" else 1 << (8 * plane.dtype.itemsize - 1)
        flat = plane.reshape(-1)
        counts = np.zeros(1 << (8 * plane.dtype.itemsize), dtype=np.int64)
        # Chunks keep bincount's intp copy small on huge images.
        for i in range(0, flat.size, _HIST_CHUNK):
            chunk = flat[i : i + _HIST_CHUNK]
            if offset:
                chunk = chunk.astype(np.int32) + offset
            counts += np.bincount(chunk, minlength=counts.size)
        cum = np.cumsum(counts)
        result = []
        for p in (p_low, p_high):
            rank = p / 100.0 * (flat.size - 1)
            k = int(np.floor(rank))
            lo = int(np.searchsorted(cum, k + 1))
            hi = int(np.searchsorted(cum, min(k + 2, flat.size)))
            result.append(lo + (rank - k) * (hi - lo) - offset)
        return float(result[0]), float(result[1])
    # min and max propagate NaN and reveal inf without a full-size temporary.
    if plane.dtype.kind == "f" and not (np.isfinite(plane.min()) and np.isfinite(plane.max())):
        raise InputError("the image contains NaN or infinite pixels; replace them first")
    if plane.size > _PERCENTILE_SAMPLE:
        step = int(np.ceil(np.sqrt(plane.size / _PERCENTILE_SAMPLE)))
        plane = plane[..., ::step, ::step]
    lo, hi = np.percentile(plane, [p_low, p_high])
    return float(lo), float(hi)


def _scale(plane: np.ndarray, norm: NormConfig) -> tuple[float, float]:
    """Offset and factor mapping the plane's percentiles to 0 and 1 (factor 0 if flat)."""
    lo, hi = _percentiles(plane, norm.p_low, norm.p_high)
    factor = 1.0 / (hi - lo) if hi > lo else 0.0
    return lo, factor


def _apply(raw: np.ndarray, lo: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """``(raw - lo) * factor`` as float32, in float64 where float32 would round the input."""
    if raw.dtype.itemsize <= 2 or raw.dtype == np.float32:
        return np.subtract(raw, lo.astype(np.float32), dtype=np.float32) * factor.astype(
            np.float32
        )
    return ((raw - lo) * factor).astype(np.float32)


def _channels(image: np.ndarray, in_channels: int) -> np.ndarray:
    """One plane in the model's channel layout: (H, W) for 1 channel, (C, H, W) otherwise."""
    if in_channels == 1:
        return to_gray(image)
    if is_rgb(image):
        colour = np.moveaxis(image[..., :3], -1, 0)
    else:
        colour = np.broadcast_to(image, (3, *image.shape))
    if in_channels != 3:
        raise InputError(f"models with {in_channels} input channels are not supported; use 1 or 3")
    return colour


def _planes(image: np.ndarray) -> list[np.ndarray]:
    return list(image) if is_stack(image) else [image]


def _model_parts(model: UNet | NormConfig) -> tuple[NormConfig, int]:
    # A UNet has a config; a NormConfig is its normalisation alone (1 channel).
    # (No isinstance: the model module, and torch with it, is imported lazily.)
    config = getattr(model, "config", None)
    if config is None:
        return cast("NormConfig", model), 1
    return cast("UNet", model).norm, config.in_channels


def _normalize_plane(plane: np.ndarray, norm: NormConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel offsets and factors, shaped to broadcast over (C, H, W) or (H, W)."""
    if plane.ndim == 2:
        lo, factor = _scale(plane, norm)
        return np.array(lo), np.array(factor)
    pairs = [_scale(channel, norm) for channel in plane]
    los = np.array([p[0] for p in pairs])[:, None, None]
    factors = np.array([p[1] for p in pairs])[:, None, None]
    return los, factors


def normalize(image: np.ndarray, model: UNet | NormConfig) -> np.ndarray:
    """Compute the float32 array the network sees for ``image``.

    Each plane (each channel of it) is mapped linearly so that its ``p_low``
    percentile becomes 0 and its ``p_high`` percentile 1 (values outside are
    kept, not clipped); a constant plane becomes all zeros.  Percentiles of
    8- and 16-bit images are exact; those of float and 32/64-bit integer planes
    over 4 Mpx are taken on a regular sub-grid of about 4 Mpx.

    Parameters
    ----------
    image
        (H, W), (H, W, 3|4), (Z, H, W) or (Z, H, W, 3|4); uint, int or float.
    model
        The model (its ``norm`` and input channels) or a
        :class:`~napari_unet.core.model.NormConfig` (1 channel).

    Returns
    -------
    np.ndarray
        float32, (H, W) for a 1-channel model, (C, H, W) for a multi-channel
        one; stacks keep their leading axis.
    """
    image = _check_image(image)
    norm, in_channels = _model_parts(model)
    out = []
    for plane in _planes(image):
        plane = _channels(plane, in_channels)
        lo, factor = _normalize_plane(plane, norm)
        out.append(_apply(plane, lo, factor))
    return np.stack(out) if is_stack(image) else out[0]
