"""Seamless tiled prediction of images, RGB images and stacks.

Images come in the layouts of :mod:`napari_unet.core.images` ((H, W),
(H, W, 3|4), (Z, H, W), (Z, H, W, 3|4)); stacks are predicted slice by slice
and each plane is normalised as :func:`~napari_unet.core.images.normalize` does.

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
from dataclasses import dataclass, field

import numpy as np
import torch

from napari_unet.core.defaults import DEFAULT_TILE_SIZE, MIN_TILE_SIZE  # noqa: F401 (public here too)
from napari_unet.core.devices import autocast, prepare_for_device, resolve_device
from napari_unet.core.errors import InputError
from napari_unet.core.events import Notice, Progress, run_to_completion
from napari_unet.core.images import (
    _apply,
    _channels,
    _check_image,
    _normalize_plane,
    _planes,
    is_stack,
    plane_shape,
)
from napari_unet.core.model import (
    NormConfig,
    UNet,
    UNetConfig,
    fuse_for_inference,
    receptive_radius,
)
from napari_unet.core.tiling import axis_layout, check_tiling, crop_span, read_tile, round_up

# isort: split
# Image layout and normalisation moved to napari_unet.core.images; these names
# stay importable from here for the widgets, the benchmarks and older scripts.
from napari_unet.core.images import (  # noqa: F401
    GRAY_WEIGHTS,
    is_rgb,
    normalize,
    to_gray,
)


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


#: Pixels per forward pass when no batch size is given: 4 tiles of 512 px or one
#: of 1024 px, 0.5-2 s per batch on a 2-core CPU, so cancel stays quick.
DEFAULT_BATCH_PIXELS = 4 * 512 * 512


def _predict_plane(
    net: UNet,
    plane: np.ndarray,
    norm: NormConfig,
    device: torch.device,
    tile: int,
    overlap: int,
    margin: int,
    batch_size: int | None,
    out: np.ndarray,
) -> Generator[int, None, None]:
    """Predict one plane into ``out`` (C, H, W); yield the number of tiles after each batch."""
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
            prob = torch.sigmoid(net(x)[:, : out.shape[0]].float()).cpu().numpy()
        for k, (i, j) in enumerate(chunk):
            ys, ty = crop_span(rows.starts[i], rows.tile, h)
            xs, tx = crop_span(cols.starts[j], cols.tile, w)
            weight = rows.weights[i][ty, None] * cols.weights[j][None, tx]
            for c in range(out.shape[0]):
                out[c, ys, xs] += prob[k, c][ty, tx] * weight
        yield len(chunk)


def _tile_count(shape: tuple[int, int], tile: int, overlap: int, multiple: int) -> int:
    rows = axis_layout(shape[0], tile, overlap, multiple)
    cols = axis_layout(shape[1], tile, overlap, multiple)
    return rows.count * cols.count


def _iter_predict(
    image: np.ndarray,
    model: UNet,
    *,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int | None = None,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    outputs: int = 1,
) -> Generator[Progress | Notice, None, np.ndarray]:
    """Predict the first ``outputs`` probability maps tile by tile, yielding progress.

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
        After each batch: ``step``/``total`` count the tiles over all slices;
        the message counts them per slice (``"slice 17/20, tile 2/4"``).
        Closing the generator between batches cancels the prediction.
    Notice
        First, when the tile size was raised.

    Returns
    -------
    np.ndarray
        float32 probabilities, (outputs, H, W), or (outputs, Z, H, W) for stacks.
    """
    image = _check_image(image)
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise InputError(f"batch size must be a positive integer, not {batch_size!r}")
    target = resolve_device(device)
    planes = _planes(image)
    spatial = plane_shape(image)
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
    per_plane = _tile_count(spatial, tile, overlap, model.size_multiple)
    total = len(planes) * per_plane
    net = prepare_for_device(fuse_for_inference(model), target)
    if target.type == "cpu":
        # oneDNN's channels-last convolutions run ~1.6x faster here than NCHW
        # (benchmarks/results/predict.md); CUDA gets channels-last from prepare_for_device.
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack it
    out = np.zeros((outputs, len(planes), *spatial), dtype=np.float32)
    done = 0
    for z, plane in enumerate(planes):
        plane = _channels(plane, model.config.in_channels)
        in_plane = 0
        for n in _predict_plane(
            net, plane, model.norm, target, tile, overlap, margin, batch_size, out[:, z]
        ):
            done += n
            in_plane += n
            # step/total count over the whole stack (a progress bar); the
            # message counts the tiles of this slice, which a person can follow.
            message = f"tile {in_plane}/{per_plane}"
            if len(planes) > 1:
                message = f"slice {z + 1}/{len(planes)}, {message}"
            yield Progress(done, total, message)
    return out if is_stack(image) else out[:, 0]


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

    Parameters, events and tiling are described at :func:`_iter_predict`.

    Returns
    -------
    np.ndarray
        float32 probabilities of the image's spatial shape: (H, W), or (Z, H, W)
        for stacks.
    """
    out = yield from _iter_predict(
        image, model, tile_size=tile_size, overlap=overlap, device=device, batch_size=batch_size
    )
    return out[0]


@dataclass(frozen=True)
class Prediction:
    """A model's probability maps of one image or stack.

    Attributes
    ----------
    proba
        float32 foreground probabilities, (H, W) or (Z, H, W).
    boundary
        float32 probabilities of the object rims (the second output of a
        two-output model, see :func:`napari_unet.core.targets.boundary_target`),
        or ``None`` for a one-output model.
    distance
        float32 scaled distance of each object pixel to its object's edge (the
        third output, :func:`napari_unet.core.targets.distance_target`), or
        ``None`` for a model with fewer outputs.
    objects
        int32 objects of the mask at the model's threshold, split once
        (:func:`napari_unet.core.instances.with_objects`), for a threshold
        slider to follow; ``None`` until then, and for one-output models.
    """

    proba: np.ndarray
    boundary: np.ndarray | None = None
    distance: np.ndarray | None = field(default=None, kw_only=True)
    objects: np.ndarray | None = field(default=None, kw_only=True)


def iter_predict(
    image: np.ndarray,
    model: UNet,
    *,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int | None = None,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
) -> Generator[Progress | Notice, None, Prediction]:
    """Predict every map the model has (foreground, and boundary and distance if it has them).

    Parameters, events and tiling are described at :func:`_iter_predict`; the
    boundary map costs no extra forward pass, only its float32 output.

    Returns
    -------
    Prediction
    """
    outputs = min(model.config.out_channels, 3)
    out = yield from _iter_predict(
        image,
        model,
        tile_size=tile_size,
        overlap=overlap,
        device=device,
        batch_size=batch_size,
        outputs=outputs,
    )
    return Prediction(
        out[0], out[1] if outputs > 1 else None, distance=out[2] if outputs > 2 else None
    )


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
