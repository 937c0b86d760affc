"""Overlap-tile geometry: where tiles go, how they read mirrored borders, how they blend.

A 2D plane is covered by a regular grid of equal tiles.  Along each axis the
grid is laid out by :func:`axis_layout`:

* the axis is reflect-padded, centred, to the network's size multiple (the
  padding is virtual: tiles read mirrored pixels on the fly), so both image
  borders see a mirrored continuation of the image;
* an axis that fits in one tile gets a single tile;
* a longer axis gets the fewest tiles of at most ``tile`` pixels that overlap
  by at least ``overlap`` pixels, start on multiples of the size multiple,
  spread evenly from border to border and are shrunk to the smallest length
  that still covers the axis, so little work is spent on overlap.

This is the overlap-tile strategy of Ronneberger et al. (2015).  Near a tile
edge inside the image the network's "same" zero padding changes its output,
up to its receptive radius (:func:`napari_unet.core.model.receptive_radius`)
into the tile; that band, the *margin*, is cropped.  In each overlap of ``s``
pixels both tiles give weight 0 to their outer ``min(margin, s / 2)`` pixels,
the middle ``s - 2 * min(margin, s / 2)`` pixels are blended with a raised-cosine
(Hann) ramp, and the rest of a tile has weight 1.  Each axis' windows are
divided by their sum over all tiles, so the separable 2D weights of all tiles
add up to exactly 1 at every pixel: outputs are accumulated into one array with
no weight map and no final division, and no seam is left.

Tiles start on multiples of the network's size multiple because a U-Net's 2x2
pooling makes it equivariant only to such shifts.  With tiles on that grid and
overlaps of at least twice the receptive radius, every pixel that gets weight
is at least the radius away from every tile edge inside the image, so the
tiled output equals one whole-image pass to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_unet.core.errors import InputError


@dataclass(frozen=True)
class AxisLayout:
    """Tiles along one axis of length ``length``.

    Attributes
    ----------
    length
        Number of pixels of the image along this axis.
    tile
        Length of every tile (a multiple of the size multiple).
    starts
        First pixel of each tile, in image coordinates; negative or running
        past ``length`` only for a single padded tile.
    weights
        One normalised 1D blending window per tile (float32, ``tile`` long);
        summed over tiles they are 1 on every pixel of the image.
    """

    length: int
    tile: int
    starts: tuple[int, ...]
    weights: tuple[np.ndarray, ...]

    @property
    def count(self) -> int:
        """Number of tiles."""
        return len(self.starts)


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value`` (and >= ``multiple``)."""
    return max(multiple, -(-value // multiple) * multiple)


def check_tiling(tile_size: int, overlap: int, multiple: int) -> tuple[int, int]:
    """Validate tile size and overlap; return the tile size rounded up to ``multiple``."""
    if int(tile_size) != tile_size or tile_size < 1:
        raise InputError(f"tile size must be a positive integer, not {tile_size!r}")
    if int(overlap) != overlap or overlap < 0:
        raise InputError(f"tile overlap must be a non-negative integer, not {overlap!r}")
    tile = round_up(int(tile_size), multiple)
    if 2 * overlap >= tile:
        raise InputError(
            f"tile overlap {overlap} must be less than half the tile size {tile}; "
            "use a smaller overlap or a larger tile"
        )
    return tile, int(overlap)


def _ramp(length: int, margin: float) -> np.ndarray:
    """Blending weights over an overlap of ``length`` pixels, rising from 0 to 1.

    The outer ``min(margin, length / 2)`` pixels are 0: there the network's
    "same" zero padding at the tile edge reaches into the output, so those
    pixels are taken from the neighbour alone.  The middle rises as sin^2 and
    the rest is 1.  The neighbour's mirrored ramp falls over the same pixels
    and the two sum to exactly 1 (the raised cosine's partition of unity); when
    no middle is left the ramp is a step at the centre (0.5 on a centre pixel).
    """
    cut = min(float(margin), length / 2)
    rise = length - 2 * cut
    position = np.arange(length, dtype=np.float64) + 0.5 - cut
    if rise <= 0:
        return np.where(position > 0, 1.0, np.where(position < 0, 0.0, 0.5))
    return np.sin(0.5 * np.pi * np.clip(position / rise, 0.0, 1.0)) ** 2


def _count(padded: int, size: int, overlap: int, multiple: int) -> int:
    """Tiles of ``size`` needed to cover ``padded`` with steps that are size multiples."""
    if size >= padded:
        return 1
    step = (size - overlap) // multiple * multiple
    return 1 + -(-(padded - size) // step) if step > 0 else 1 << 62


def axis_layout(
    length: int, tile: int, overlap: int, multiple: int, margin: float = 0
) -> AxisLayout:
    """Lay out tiles along one axis.

    The axis is first (virtually) reflect-padded, centred, to a multiple of
    ``multiple``; tiles then start at multiples of ``multiple`` in that padded
    frame.  A U-Net's 2x2 pooling makes it equivariant only to shifts by its
    size multiple, so this grid keeps every tile's output identical to the
    same pixels of one whole-image pass, away from the tile edges.

    Parameters
    ----------
    length
        Image length along the axis (>= 1).
    tile
        Largest tile length, a multiple of ``multiple``.
    overlap
        Smallest overlap between neighbouring tiles, in pixels.
    multiple
        The network's size multiple.
    margin
        Pixels at each tile edge inside the image that get weight 0 (at most
        half of each overlap): the network's receptive radius makes the tiles
        reproduce one whole-image pass.  0 blends across the whole overlap.

    Returns
    -------
    AxisLayout
    """
    padded = round_up(length, multiple)
    offset = -((padded - length) // 2)
    count = _count(padded, tile, overlap, multiple)
    if count == 1:
        ones = np.ones(padded, dtype=np.float32)
        return AxisLayout(length, padded, (offset,), (ones,))
    # The shortest tile with which as few tiles still overlap enough: less
    # padding and fewer wasted pixels for lengths just over a tile multiple.
    size = next(
        s
        for s in range(multiple, tile + 1, multiple)
        if _count(padded, s, overlap, multiple) <= count
    )
    span = (padded - size) // multiple
    starts = [offset + multiple * ((i * span) // (count - 1)) for i in range(count)]
    raw = []
    for i, start in enumerate(starts):
        window = np.ones(size, dtype=np.float64)
        if i > 0:
            shared = starts[i - 1] + size - start
            window[:shared] = np.minimum(window[:shared], _ramp(shared, margin))
        if i < count - 1:
            shared = start + size - starts[i + 1]
            fall = _ramp(shared, margin)[::-1]
            window[size - shared :] = np.minimum(window[size - shared :], fall)
        raw.append(window)
    total = np.zeros(padded, dtype=np.float64)
    for start, window in zip(starts, raw, strict=True):
        total[start - offset : start - offset + size] += window
    weights = tuple(
        (window / total[start - offset : start - offset + size]).astype(np.float32)
        for start, window in zip(starts, raw, strict=True)
    )
    return AxisLayout(length, size, tuple(starts), weights)


def reflect_indices(start: int, stop: int, length: int) -> np.ndarray:
    """Fold the indices ``start..stop-1`` into ``[0, length)`` by mirror reflection.

    The reflection does not repeat the edge pixel (numpy's ``"reflect"`` mode)
    and is applied as often as needed, so a pad wider than the image works
    too; an axis of length 1 repeats its only pixel.
    """
    index = np.arange(start, stop)
    if length == 1:
        return np.zeros_like(index)
    period = 2 * (length - 1)
    index = np.mod(index, period)
    return np.where(index >= length, period - index, index)


def read_tile(plane: np.ndarray, y0: int, x0: int, th: int, tw: int) -> np.ndarray:
    """Read the tile at ``(y0, x0)`` of size ``(th, tw)`` from the last two axes of ``plane``.

    Parts of the tile outside the plane are mirrored from inside it, so only the
    tile itself is ever materialised (no padded copy of the whole image).
    """
    h, w = plane.shape[-2:]
    if y0 >= 0 and x0 >= 0 and y0 + th <= h and x0 + tw <= w:
        return plane[..., y0 : y0 + th, x0 : x0 + tw]
    rows = reflect_indices(y0, y0 + th, h)
    cols = reflect_indices(x0, x0 + tw, w)
    return plane[..., rows[:, None], cols[None, :]]


def crop_span(start: int, size: int, length: int) -> tuple[slice, slice]:
    """Return the image slice a tile covers and the matching slice inside the tile."""
    lo, hi = max(start, 0), min(start + size, length)
    return slice(lo, hi), slice(lo - start, hi - start)
