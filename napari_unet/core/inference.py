"""Normalisation and seamless tiled prediction of images, RGB images and stacks.

Image layouts (the same guess napari makes):

* ``(H, W)``: one grey plane;
* ``(H, W, 3)`` or ``(H, W, 4)``: one RGB(A) plane (alpha is ignored);
* ``(Z, H, W)``: a stack of grey planes (Z or T), predicted slice by slice;
* ``(Z, H, W, 3|4)``: a stack of RGB(A) planes.

A 1-channel model sees RGB(A) as grey (:func:`to_gray`); a 3-channel model
sees grey repeated on its three channels.  Each plane (each channel of it) is
normalised on its own with the model's percentiles.

Prediction tiles each plane (:mod:`napari_unet.core.tiling`), normalises each
tile as it is read, runs batches of tiles through the network and accumulates
the blended probabilities into one float32 array: memory stays at about the
input plus the float32 output, whatever the image size.  By default the tiles
overlap by twice the network's receptive radius and each crops that radius at
its inner edges, so the tiled result is one whole-image pass, to float
rounding, for every image and every tile size.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from napari_unet.core.errors import InputError
from napari_unet.core.events import Notice, Progress, run_to_completion
from napari_unet.core.model import (
    NormConfig,
    UNet,
    UNetConfig,
    autocast,
    fuse_for_inference,
    prepare_for_device,
    receptive_radius,
    resolve_device,
)
from napari_unet.core.tiling import axis_layout, check_tiling, crop_span, read_tile, round_up

#: Luminance weights of ITU-R BT.709 (as in ``skimage.color.rgb2gray``).
GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)

# Percentiles of float and wide-integer planes larger than this many pixels are
# taken on a regular sub-grid of about this many pixels: at 4 Mpx the estimate
# is within a fraction of a grey level of the exact value and costs ~0.1 s.
_PERCENTILE_SAMPLE = 1 << 22
_HIST_CHUNK = 1 << 18


def smallest_tile_size(config: UNetConfig) -> int:
    """Smallest tile edge prediction uses with the network's own overlap.

    Tiles overlap by twice the receptive radius ``r`` (both crop ``r`` at their
    inner edges), so a tile of ``T`` pixels keeps a core of ``T - 2r``; from
    ``4r`` up the core is at least half the tile and a plane costs at most
    about 4x one whole-image pass (2048x2048 with the default model: 3.6x at
    432 px, 1.5x at 1024 px).  Smaller requests are raised to this size.

    Parameters
    ----------
    config
        The architecture.

    Returns
    -------
    int
        The first multiple of ``2 ** depth`` above ``4 * receptive_radius(config)``
        (432 for the default depth 4).
    """
    # One pixel more than 4r: the overlap (2r) must stay under half the tile.
    return round_up(4 * receptive_radius(config) + 1, 2**config.depth)


#: Tiling defaults, measured in benchmarks/results/predict.md.  With the
#: default model (receptive radius 107 px) tiles overlap by 2 x 107 px, so the
#: tile size trades overlap work against memory: 1024-px tiles cover a
#: 2048x2048 image with 3 x 3 tiles of 832 px, 1.5x the pixels of one pass
#: (512-px tiles: 2.9x), and both cost the same CPU time per pixel computed.
#: That keeps prediction ~2-2.9x faster than MONAI's sliding window on a 2-core CPU.
DEFAULT_TILE_SIZE = 1024
#: Smallest tile size for the default architecture (the GUI's spin box minimum).
MIN_TILE_SIZE = smallest_tile_size(UNetConfig())
#: Pixels per forward pass when no batch size is given: 4 tiles of 512 px or one
#: of 1024 px, 0.5-2 s per batch on a 2-core CPU, so cancel stays quick.
DEFAULT_BATCH_PIXELS = 4 * 512 * 512


def is_rgb(image: np.ndarray) -> bool:
    """Whether the last axis holds RGB or RGBA colour (length 3 or 4, 3 or 4 dims)."""
    return image.ndim in (3, 4) and image.shape[-1] in (3, 4)


def is_stack(image: np.ndarray) -> bool:
    """Whether ``image`` is a stack of planes: (Z, H, W) grey or (Z, H, W, 3|4) colour."""
    image = np.asarray(image) if not hasattr(image, "ndim") else image
    return image.ndim == 4 or (image.ndim == 3 and not is_rgb(image))


def to_gray(image: np.ndarray) -> np.ndarray:
    """Convert RGB(A) (``..., H, W, 3|4``) to float32 grey luminance; alpha is ignored.

    Grey input is returned unchanged.  Values keep their scale (0-255 stays
    0-255): the percentile normalisation that follows does not care.
    """
    image = np.asarray(image)
    if not is_rgb(image):
        return image
    out = np.zeros(image.shape[:-1], dtype=np.float32)
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
    if isinstance(model, NormConfig):
        return model, 1
    return model.norm, model.config.in_channels


def _normalize_plane(plane: np.ndarray, norm: NormConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel offsets and factors, shaped to broadcast over (C, H, W) or (H, W)."""
    if plane.ndim == 2:
        lo, factor = _scale(plane, norm)
        return np.array(lo), np.array(factor)
    pairs = [_scale(channel, norm) for channel in plane]
    lo = np.array([p[0] for p in pairs])[:, None, None]
    factor = np.array([p[1] for p in pairs])[:, None, None]
    return lo, factor


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
        The model (its ``norm`` and input channels) or a :class:`NormConfig`
        (1 channel).

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


def _predict_plane(
    net: torch.nn.Module,
    plane: np.ndarray,
    norm: NormConfig,
    device: torch.device,
    tile: int,
    overlap: int,
    margin: int,
    batch_size: int | None,
    out: np.ndarray,
) -> Generator[int, None, None]:
    """Predict one plane into ``out`` (H, W); yield the number of tiles after each batch."""
    lo, factor = _normalize_plane(plane, norm)
    h, w = plane.shape[-2:]
    rows = axis_layout(h, tile, overlap, net.size_multiple, margin)
    cols = axis_layout(w, tile, overlap, net.size_multiple, margin)
    grid = [(i, j) for i in range(rows.count) for j in range(cols.count)]
    if batch_size is None:
        batch_size = max(1, DEFAULT_BATCH_PIXELS // (rows.tile * cols.tile))
    channels_last = device.type in ("cuda", "cpu")
    for first in range(0, len(grid), batch_size):
        chunk = grid[first : first + batch_size]
        batch = np.empty((len(chunk), net.config.in_channels, rows.tile, cols.tile), np.float32)
        for k, (i, j) in enumerate(chunk):
            raw = read_tile(plane, rows.starts[i], cols.starts[j], rows.tile, cols.tile)
            batch[k] = _apply(raw, lo, factor)
        x = torch.from_numpy(batch).to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        # Grad and autocast modes are entered per batch, never across a yield,
        # so they cannot leak into the code that drives this generator.
        with torch.inference_mode(), autocast(device):
            prob = torch.sigmoid(net(x)[:, 0].float()).cpu().numpy()
        for k, (i, j) in enumerate(chunk):
            ys, ty = crop_span(rows.starts[i], rows.tile, h)
            xs, tx = crop_span(cols.starts[j], cols.tile, w)
            weight = rows.weights[i][ty, None] * cols.weights[j][None, tx]
            out[ys, xs] += prob[k][ty, tx] * weight
        yield len(chunk)


def _tile_count(shape: tuple[int, int], tile: int, overlap: int, multiple: int) -> int:
    rows = axis_layout(shape[0], tile, overlap, multiple)
    cols = axis_layout(shape[1], tile, overlap, multiple)
    return rows.count * cols.count


def iter_predict_proba(
    image: np.ndarray,
    model: UNet,
    *,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int | None = None,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
) -> Generator[Progress | Notice, None, np.ndarray]:
    """Predict foreground probabilities tile by tile, yielding progress.

    Parameters
    ----------
    image
        (H, W), (H, W, 3|4), (Z, H, W) or (Z, H, W, 3|4); any size from 1x1 up.
    model
        The network; it is not modified: prediction runs an evaluation copy with
        batch norm folded into the convolutions, in channels-last memory layout,
        on ``device``.
    tile_size
        Largest tile edge in pixels (rounded up to ``model.size_multiple``).
        Planes that fit in one tile run in a single pass.  With the default
        overlap, sizes under :func:`smallest_tile_size` (432 px for the default
        architecture) are raised to it, with a :class:`Notice`.
    overlap
        Smallest overlap between neighbouring tiles.  Each tile gives weight 0
        to the outer ``receptive_radius(model.config)`` pixels of an overlap (at
        most half of it) and the rest is blended with a raised-cosine window.
        ``None`` (the default) overlaps by twice the receptive radius (214 px
        for depth 4): the result then equals one whole-image pass to float
        rounding.  A smaller overlap is faster but leaves differences near the
        tile edges.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.  CUDA runs in mixed
        precision with channels-last memory.
    batch_size
        Tiles per forward pass; ``None`` (the default) fits about
        ``DEFAULT_BATCH_PIXELS`` (1 Mpx) in each.

    Yields
    ------
    Progress
        After each batch: tiles done and total over all slices.  Closing the
        generator between batches cancels the prediction.
    Notice
        First, when the tile size was raised.

    Returns
    -------
    np.ndarray
        float32 probabilities of the image's spatial shape: (H, W), or (Z, H, W)
        for stacks.
    """
    image = _check_image(image)
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise InputError(f"batch size must be a positive integer, not {batch_size!r}")
    target = resolve_device(device)
    planes = _planes(image)
    spatial = planes[0].shape[:2]
    margin = receptive_radius(model.config)
    requested = tile_size
    asked, _ = check_tiling(tile_size, 0, model.size_multiple)
    raised = False
    if overlap is None:
        overlap = 2 * margin
        smallest = smallest_tile_size(model.config)
        raised = asked < smallest and max(spatial) > asked
        tile_size = max(asked, smallest)
    tile, overlap = check_tiling(tile_size, overlap, model.size_multiple)
    if raised:
        yield Notice(
            f"tile size {int(requested)} px raised to {tile} px: tiles overlap by twice this "
            f"network's receptive radius ({margin} px) and smaller ones would spend most "
            "of their work on the overlap"
        )
    total = len(planes) * _tile_count(spatial, tile, overlap, model.size_multiple)
    net = prepare_for_device(fuse_for_inference(model), target)
    if target.type == "cpu":
        # oneDNN's channels-last convolutions run ~1.6x faster here than NCHW
        # (benchmarks/results/predict.md); CUDA gets channels-last from prepare_for_device.
        net.to(memory_format=torch.channels_last)
    out = np.zeros((len(planes), *spatial), dtype=np.float32)
    done = 0
    for z, plane in enumerate(planes):
        plane = _channels(plane, model.config.in_channels)
        for n in _predict_plane(
            net, plane, model.norm, target, tile, overlap, margin, batch_size, out[z]
        ):
            done += n
            message = f"tile {done}/{total}"
            if len(planes) > 1:
                message = f"slice {z + 1}/{len(planes)}, {message}"
            yield Progress(done, total, message)
    return out if is_stack(image) else out[0]


def predict_proba(
    image: np.ndarray,
    model: UNet,
    *,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int | None = None,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
) -> np.ndarray:
    """Foreground probabilities of ``image``; see :func:`iter_predict_proba`.

    Returns
    -------
    np.ndarray
        float32 probabilities of the image's spatial shape.
    """
    return run_to_completion(
        iter_predict_proba(
            image,
            model,
            tile_size=tile_size,
            overlap=overlap,
            device=device,
            batch_size=batch_size,
        )
    )
