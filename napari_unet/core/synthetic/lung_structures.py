"""What a synthetic CT slice's lungs hold: vessels, nodules and distractors.

The nodules are the targets; the vessel tree and the vessel cross-sections
(distractors) have the nodules' brightness and are never labelled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

if TYPE_CHECKING:
    from napari_unet.core.synthetic.ct import CTConfig

#: Largest share of a CT slice that nodules may cover (diameters shrink to fit).
MAX_NODULE_FRACTION = 0.002
#: Part-solid nodules are at least this many pixels across (a smaller halo
#: would be a pixel wide or less).
MIN_PART_SOLID_DIAMETER = 7.0
#: Nodules keep at least this many pixels between their edge and the lung's
#: edge, and distractors this many from a nodule's edge.
NODULE_MARGIN = 3
#: Solid nodules, solid cores and vessel cross-sections share this range (HU).
_SOLID_HU = (-30.0, 80.0)
#: Ground-glass halo of part-solid nodules (HU).
_GROUND_GLASS_HU = (-650.0, -450.0)


def vessel_tree_image(lung: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    """Thin branching vessels inside the lungs, as a 0..1 blending profile.

    Each lung gets a few trees that start at its medial (hilar) side and branch
    towards the periphery, thinning and dimming with each generation.
    """
    size = lung.shape[0]
    generations = 5
    canvases = [np.zeros(lung.shape, np.float32) for _ in range(generations)]
    labelled, n_lungs = ndi.label(lung)
    for region in range(1, n_lungs + 1):
        ys, xs = np.nonzero(labelled == region)
        if ys.size < 100:
            continue
        centre_x = xs.mean()
        medial = -1.0 if centre_x > size / 2 else 1.0
        for _ in range(rng.integers(5, 8)):
            # Start near the hilum: the medial third of the lung, mid-height.
            pick = np.abs(xs - (centre_x + medial * 0.5 * xs.std())) < 3
            pick &= np.abs(ys - ys.mean()) < ys.std()
            if not pick.any():
                continue
            i = rng.choice(np.flatnonzero(pick))
            direction = np.arctan2(rng.uniform(-1, 1), -medial) + rng.normal(0, 0.3)
            _grow_branch(canvases, ys[i], xs[i], direction, 60.0 * s, 0, rng)

    vessels = np.zeros(lung.shape, np.float32)
    for generation, canvas in enumerate(canvases):
        sigma = max(1.3 - 0.2 * generation, 0.55)
        # A blurred one-pixel line peaks at 1 / (sqrt(2 pi) sigma): rescale to 1.
        profile = ndi.gaussian_filter(canvas, sigma) * (np.sqrt(2 * np.pi) * sigma)
        strength = 0.95 - 0.09 * generation
        vessels = np.maximum(vessels, np.clip(profile, 0, 1) * strength)
    return vessels * lung


def _grow_branch(canvases, y, x, direction, length, generation, rng) -> None:
    """Draw one gently curving branch and recurse into two thinner children."""
    steps = max(int(length / 2), 2)
    for _ in range(steps):
        direction += rng.normal(0, 0.08)
        ny, nx = y + 2 * np.sin(direction), x + 2 * np.cos(direction)
        _draw_line(canvases[generation], y, x, ny, nx)
        y, x = ny, nx
    if generation + 1 < len(canvases):
        spread = rng.uniform(0.3, 0.7)
        for sign in (-1.0, 1.0):
            child = direction + sign * spread + rng.normal(0, 0.1)
            _grow_branch(
                canvases, y, x, child, length * rng.uniform(0.6, 0.8), generation + 1, rng
            )


def _draw_line(canvas, y0, x0, y1, x1) -> None:
    """Mark the pixels of a short segment (sub-pixel steps, clipped to the canvas)."""
    n = int(np.ceil(max(abs(y1 - y0), abs(x1 - x0)))) + 1
    ys = np.rint(np.linspace(y0, y1, n)).astype(int)
    xs = np.rint(np.linspace(x0, x1, n)).astype(int)
    h, w = canvas.shape
    keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    canvas[ys[keep], xs[keep]] = 1.0


def _window(cy: float, cx: float, half: int, size: int) -> tuple[slice, slice, np.ndarray]:
    """Square window round (cy, cx), clipped to the image, and its pixel offsets.

    Returns the two slices and ``(dy, dx)``: each pixel's offset from the centre.
    """
    y0, y1 = max(int(cy) - half, 0), min(int(cy) + half + 1, size)
    x0, x1 = max(int(cx) - half, 0), min(int(cx) + half + 1, size)
    py, px = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    return slice(y0, y1), slice(x0, x1), np.stack([py - cy, px - cx])


def _blend(image: np.ndarray, win: tuple[slice, slice], mask: np.ndarray, hu: float, sigma):
    """Paint ``hu`` over ``mask`` with a partial-volume edge (the mask stays exact)."""
    cover = ndi.gaussian_filter(mask.astype(np.float32), sigma, mode="constant")
    image[win] = image[win] * (1.0 - cover) + hu * cover


def draw_nodules(
    image: np.ndarray,
    lung: np.ndarray,
    rng: np.random.Generator,
    config: CTConfig,
    pv_sigma: float,
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Draw the slice's nodules into ``image``; return labels, solid parts, part-solid ids."""
    size = lung.shape[0]
    labels = np.zeros(lung.shape, np.int32)
    solid = np.zeros(lung.shape, bool)
    part_solid: list[int] = []
    count = 0
    if rng.random() >= config.empty_fraction:
        count = int(rng.integers(1, config.max_nodules + 1))
    if count == 0:
        return labels, solid, ()
    low, high = config.diameter_range
    diameters = rng.uniform(low, high, size=count)
    budget = MAX_NODULE_FRACTION * size * size
    area = np.pi * (diameters / 2) ** 2
    if area.sum() > 0.9 * budget:
        diameters = np.clip(diameters * np.sqrt(0.9 * budget / area.sum()), low, high)

    depth = ndi.distance_transform_edt(lung)
    placed: list[tuple[float, float, float]] = []
    for diameter in diameters:
        r = diameter / 2
        candidates = np.flatnonzero(depth.ravel() > r + NODULE_MARGIN)
        if candidates.size == 0:
            continue
        for index in rng.choice(candidates, size=min(200, candidates.size), replace=False):
            cy, cx = divmod(int(index), size)
            cy, cx = cy + rng.uniform(-0.5, 0.5), cx + rng.uniform(-0.5, 0.5)
            if all(np.hypot(cy - py, cx - px) > r + pr + 8 for py, px, pr in placed):
                break
        else:
            continue
        win_y, win_x, (dy, dx) = _window(cy, cx, int(np.ceil(r)) + 4, size)
        # Slightly lobulated outline; the label is the exact shape.
        theta = np.arctan2(dy, dx)
        outline = 1.0 + 0.06 * np.sin(3 * theta + rng.uniform(0, 2 * np.pi))
        whole = np.hypot(dy, dx) <= r * outline
        if (labels > 0).sum() + whole.sum() > budget:
            break
        label = len(placed) + 1
        core = whole
        if diameter >= MIN_PART_SOLID_DIAMETER and rng.random() < config.part_solid_fraction:
            _blend(image, (win_y, win_x), whole, rng.uniform(*_GROUND_GLASS_HU), pv_sigma)
            rc = r * rng.uniform(0.3, 0.55)
            shift = (r - rc) * rng.uniform(0.0, 0.4)
            angle = rng.uniform(0, 2 * np.pi)
            core = np.hypot(dy - shift * np.sin(angle), dx - shift * np.cos(angle)) <= rc
            core &= whole
            part_solid.append(label)
        _blend(image, (win_y, win_x), core, rng.uniform(*_SOLID_HU), pv_sigma)
        labels[win_y, win_x][whole] = label
        solid[win_y, win_x] |= core
        placed.append((cy, cx, r))
    return labels, solid, tuple(part_solid)


def draw_distractors(
    image: np.ndarray,
    lung: np.ndarray,
    nodules: np.ndarray,
    rng: np.random.Generator,
    config: CTConfig,
    pv_sigma: float,
) -> np.ndarray:
    """Draw vessel cross-sections (ellipses, branch segments) away from the nodules.

    A vessel cut obliquely shows as a bright ellipse; one running in the slice
    for a short stretch as a bright, possibly forked, segment.  Both have the
    brightness (:data:`_SOLID_HU`) and the size of the nodules; what tells them
    apart is their shape.
    """
    size = lung.shape[0]
    mask = np.zeros(lung.shape, bool)
    low, high = config.distractors
    count = int(rng.integers(low, high + 1)) if high > 0 else 0
    if count == 0:
        return mask
    # Distractors stay inside the lung and clear of the nodules (and their edge).
    allowed = lung & ~ndi.binary_dilation(nodules > 0, iterations=NODULE_MARGIN + 2)
    inner = ndi.binary_erosion(allowed, iterations=2)
    candidates = np.flatnonzero(inner)
    if candidates.size == 0:
        return mask
    drawn = 0
    for index in rng.choice(candidates, size=min(8 * count, candidates.size), replace=False):
        if drawn == count:
            break
        cy, cx = divmod(int(index), size)
        cy, cx = cy + rng.uniform(-0.5, 0.5), cx + rng.uniform(-0.5, 0.5)
        width = rng.uniform(2.5, 6.0)
        if rng.random() < 0.6:
            win_y, win_x, shape = _ellipse_distractor(cy, cx, width, rng, size)
        else:
            win_y, win_x, shape = _segment_distractor(cy, cx, width * 0.8, rng, size)
        if not shape.any() or (shape & ~allowed[win_y, win_x]).any():
            continue
        _blend(image, (win_y, win_x), shape, rng.uniform(*_SOLID_HU), pv_sigma)
        mask[win_y, win_x] |= shape
        drawn += 1
    return mask


def _ellipse_distractor(cy, cx, width, rng, size):
    """Shape an obliquely cut vessel: an ellipse ``width`` across, 1.8-3.5 times as long."""
    a, b = width * rng.uniform(1.8, 3.5) / 2, width / 2
    win_y, win_x, (dy, dx) = _window(cy, cx, int(np.ceil(a)) + 3, size)
    angle = rng.uniform(0, np.pi)
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    return win_y, win_x, (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _segment_distractor(cy, cx, width, rng, size):
    """Shape a stretch of vessel in the slice: a curved tube, forked in 40 % of cases."""
    length = rng.uniform(8.0, 24.0)
    half = int(np.ceil(length + width)) + 3
    win_y, win_x, (dy, dx) = _window(cy, cx, half, size)
    canvas = np.zeros(dy.shape, bool)
    # The tube is centred on (cy, cx); the window's centre pixel is at -offset.
    oy, ox = -float(dy[0, 0]), -float(dx[0, 0])
    direction = rng.uniform(0, 2 * np.pi)
    y, x = oy - 0.5 * length * np.sin(direction), ox - 0.5 * length * np.cos(direction)
    fork_at = rng.integers(1, 4) if rng.random() < 0.4 else -1
    for step in range(4):
        direction += rng.normal(0, 0.3)
        ny, nx = y + length / 4 * np.sin(direction), x + length / 4 * np.cos(direction)
        _draw_line(canvas, y, x, ny, nx)
        if step == fork_at:
            child = direction + rng.choice((-1.0, 1.0)) * rng.uniform(0.5, 0.9)
            reach = length * rng.uniform(0.3, 0.5)
            _draw_line(canvas, ny, nx, ny + reach * np.sin(child), nx + reach * np.cos(child))
        y, x = ny, nx
    if not canvas.any():
        return win_y, win_x, canvas
    return win_y, win_x, ndi.distance_transform_edt(~canvas) <= width / 2
