"""Synthetic images with exact ground truth: CT-like slices with small nodules, and nuclei.

Two generators, both deterministic for a given seed and cheap enough to run from
napari's sample menu (well under a second for a 512x512 slice).  Only numpy and
scipy are used here, never torch.

CT-like slices (:func:`ct_slice`, :func:`ct_phantom`)
    The small-target case, hard on purpose.  A 512x512 axial slice in
    Hounsfield-like units (float32; air about -1000, lung -900 to -790, fat
    about -100, soft tissue about +40, bone +300 to +900): a body ellipse holds
    two lung fields, a spine and ribs.  About half of the slices hold no nodule;
    the others hold one or two, 3-14 px across, solid or part-solid (a
    ground-glass halo round a solid core), so nodules cover a few hundredths of
    a percent of all pixels.  The lungs also hold thin branching vessels and,
    as distractors, vessel cross-sections: elongated bright ellipses and short
    branch segments with the brightness and size of the nodules, never
    labelled.  Lung density, noise level and noise grain vary from slice to
    slice.  A network trained on uniform patches with plain cross-entropy
    learns to predict "background" everywhere; one that only learns "small and
    bright" marks every vessel.  The lung mask is returned as a region of
    interest.  :class:`CTConfig` sets what a slice may hold (its defaults are
    the hard case).

Fluorescence nuclei (:func:`nuclei_image`)
    Elliptical nuclei with varied brightness and texture, some touching (they
    share a border with no background between them, as in the DSB 2018 masks),
    blurred by a Gaussian point-spread function, with shot and read noise.  Used
    with the shipped DSB 2018 sample to train the default model; the appearance
    (size, contrast, blur, density) is drawn from the seed unless given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

#: Largest share of a CT slice that nodules may cover (diameters shrink to fit).
MAX_NODULE_FRACTION = 0.002
#: Part-solid nodules are at least this many pixels across (a smaller halo
#: would be a pixel wide or less).
MIN_PART_SOLID_DIAMETER = 7.0
#: Nodules keep at least this many pixels between their edge and the lung's
#: edge, and distractors this many from a nodule's edge.
NODULE_MARGIN = 3

_AIR, _FAT, _TISSUE, _BONE = -1000.0, -100.0, 40.0, 700.0
#: Solid nodules, solid cores and vessel cross-sections share this range (HU).
_SOLID_HU = (-30.0, 80.0)
#: Ground-glass halo of part-solid nodules (HU).
_GROUND_GLASS_HU = (-650.0, -450.0)


@dataclass(frozen=True)
class CTConfig:
    """What a synthetic CT slice may hold; the defaults are the hard case.

    Attributes
    ----------
    empty_fraction
        Probability that a slice holds no nodule.
    max_nodules
        Most nodules on a slice that has any (it has 1 to ``max_nodules``,
        equally likely).
    diameter_range
        Nodule diameters in pixels, halo included.
    part_solid_fraction
        Probability that a nodule at least :data:`MIN_PART_SOLID_DIAMETER`
        across is part-solid rather than solid.
    distractors
        Range (both ends included) of the number of vessel cross-sections per
        slice; ``(0, 0)`` for none.
    """

    empty_fraction: float = 0.5
    max_nodules: int = 2
    diameter_range: tuple[float, float] = (3.0, 14.0)
    part_solid_fraction: float = 0.4
    distractors: tuple[int, int] = (14, 30)

    def __post_init__(self) -> None:
        if not 0.0 <= self.empty_fraction <= 1.0:
            raise ValueError(f"empty_fraction must be in [0, 1], got {self.empty_fraction}")
        if self.max_nodules < 1:
            raise ValueError(f"max_nodules must be at least 1, got {self.max_nodules}")
        low, high = self.diameter_range
        if not 2.0 <= low <= high <= 40.0:
            raise ValueError(f"diameter_range must lie within 2-40 px, got {self.diameter_range}")
        if not 0.0 <= self.part_solid_fraction <= 1.0:
            raise ValueError(
                f"part_solid_fraction must be in [0, 1], got {self.part_solid_fraction}"
            )
        if not 0 <= self.distractors[0] <= self.distractors[1]:
            raise ValueError(f"distractors must be a range (low, high), got {self.distractors}")


@dataclass(frozen=True)
class CTPhantom:
    """One synthetic CT slice with everything that was drawn into it.

    Attributes
    ----------
    image
        float32 (size, size) in Hounsfield-like units.
    lung
        bool (size, size), both lung fields (a region of interest).
    nodules
        int32 (size, size), 0 for background and 1..n for the n nodules.  A
        part-solid nodule's label covers the whole nodule, its ground-glass
        halo included: its total size is what a reader measures, and the halo
        is what tells it from a vessel.
    solid
        bool (size, size), the solid part of every nodule (all of a solid
        nodule, the core of a part-solid one).
    part_solid
        Labels of the part-solid nodules.
    distractors
        bool (size, size), the vessel cross-sections (elongated ellipses and
        branch segments); no nodule label lies on or next to them.
    """

    image: np.ndarray
    lung: np.ndarray
    nodules: np.ndarray
    solid: np.ndarray
    part_solid: tuple[int, ...]
    distractors: np.ndarray


def ct_phantom(seed: int, size: int = 512, config: CTConfig | None = None) -> CTPhantom:
    """Generate one CT-like axial slice and keep the parts it was made of.

    Parameters
    ----------
    seed
        Random seed; the same seed and config always give the same slice.
    size
        Height and width in pixels (the anatomy scales with it; nodule and
        distractor sizes do not).
    config
        What the slice may hold; the default :class:`CTConfig` is the hard case.

    Returns
    -------
    CTPhantom
        The image, the lung mask, the nodule labels and the masks of the solid
        parts and of the distractors.

    Raises
    ------
    ValueError
        If ``size`` is under 64 pixels.
    """
    if size < 64:
        raise ValueError(f"size must be at least 64 pixels, got {size}")
    config = CTConfig() if config is None else config
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    s = size / 512.0
    cy, cx = size * (0.5 + rng.uniform(-0.02, 0.02)), size * (0.5 + rng.uniform(-0.02, 0.02))
    # Scanner and patient differ from slice to slice: lung density, its
    # dependent gradient, partial-volume blur, noise level and grain.
    lung_base = rng.uniform(-900.0, -790.0)
    gradient = rng.uniform(20.0, 100.0)
    pv_sigma = rng.uniform(0.5, 0.8)
    noise_sd, noise_grain = rng.uniform(10.0, 45.0), rng.uniform(0.5, 1.2)

    image = np.full((size, size), _AIR, np.float32)
    body_ax, body_ay = size * rng.uniform(0.40, 0.45), size * rng.uniform(0.30, 0.34)
    body = _ellipse(yy, xx, cy, cx, body_ay, body_ax)
    image[body <= 1.0] = _FAT + rng.normal(0, 10)
    fat_thickness = rng.uniform(0.04, 0.08)
    image[body <= (1.0 - fat_thickness) ** 2] = _TISSUE + rng.normal(0, 8)

    _draw_bones(image, yy, xx, rng, cy, cx, body_ay, body_ax, fat_thickness)

    lung = np.zeros((size, size), bool)
    for side in (-1.0, 1.0):
        lung |= _lung_field(yy, xx, rng, cy, cx, side, body_ay, body_ax)
    # Dependent (posterior) lung is denser: a gentle vertical gradient.
    lung_hu = lung_base + gradient * (yy - cy) / body_ay
    image[lung] = lung_hu[lung]

    vessels = _vessel_tree_image(lung, rng, s)
    image += (vessels * (_TISSUE - lung_hu)).astype(np.float32) * lung

    nodules, solid, part_solid = _draw_nodules(image, lung, rng, config, pv_sigma)
    distractors = _draw_distractors(image, lung, nodules, rng, config, pv_sigma)

    noise = ndi.gaussian_filter(rng.normal(0, 1, (size, size)).astype(np.float32), noise_grain)
    image += noise * (noise_sd / noise.std())
    return CTPhantom(image.astype(np.float32), lung, nodules, solid, part_solid, distractors)


def ct_slice(
    seed: int, size: int = 512, config: CTConfig | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generate one CT-like axial slice with small lung nodules.

    Parameters
    ----------
    seed
        Random seed; the same seed and config always give the same slice.
    size
        Height and width in pixels (the anatomy scales with it; nodule sizes
        do not).
    config
        What the slice may hold; the default :class:`CTConfig` is the hard case.

    Returns
    -------
    image : np.ndarray
        float32 (size, size) in Hounsfield-like units.
    lung_mask : np.ndarray
        bool (size, size), both lung fields (a region of interest for training).
    nodule_labels : np.ndarray
        int32 (size, size), 0 for background and 1..n for the n nodules (with
        the defaults: none on about half of the slices, otherwise 1 or 2, each
        3-14 px across, halo included).  Every nodule lies inside
        ``lung_mask``; all together cover at most 0.2 % of the slice.
    """
    phantom = ct_phantom(seed, size, config)
    return phantom.image, phantom.lung, phantom.nodules


def ct_dataset(
    n: int, seed: int, size: int = 512, config: CTConfig | None = None
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Generate ``n`` CT-like slices with seeds ``seed, seed + 1, ..., seed + n - 1``.

    Parameters
    ----------
    n
        Number of slices.
    seed
        Seed of the first slice; disjoint seed ranges give disjoint data sets.
    size
        Height and width of each slice.
    config
        What each slice may hold (default: the hard case).

    Returns
    -------
    images, lung_masks, nodule_labels : list of np.ndarray
        Three lists of length ``n``, as returned by :func:`ct_slice`.
    """
    images, lungs, labels = [], [], []
    for i in range(n):
        image, lung, nodules = ct_slice(seed + i, size, config)
        images.append(image)
        lungs.append(lung)
        labels.append(nodules)
    return images, lungs, labels


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


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ay: float, ax: float):
    """Squared normalised elliptical radius (<= 1 inside the ellipse)."""
    return ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2


def _lung_field(yy, xx, rng, cy, cx, side, body_ay, body_ax) -> np.ndarray:
    """One lung: a wobbly ellipse with a medial notch for the heart on the left."""
    ly = cy - body_ay * rng.uniform(0.0, 0.1)
    lx = cx + side * body_ax * rng.uniform(0.42, 0.50)
    ay, ax = body_ay * rng.uniform(0.62, 0.72), body_ax * rng.uniform(0.30, 0.36)
    theta = np.arctan2(yy - ly, xx - lx)
    wobble = 1.0
    for k in (2, 3, 4):
        wobble = wobble + rng.uniform(0.0, 0.05) * np.sin(k * theta + rng.uniform(0, 2 * np.pi))
    field = _ellipse(yy, xx, ly, lx, ay, ax) <= wobble**2
    if side > 0:  # the patient's left lung sits on the image's right
        heart = _ellipse(yy, xx, cy + body_ay * 0.25, cx + body_ax * 0.1, ay * 0.45, ax * 0.7)
        field &= heart > 1.0
    return field


def _draw_bones(image, yy, xx, rng, cy, cx, body_ay, body_ax, fat_thickness) -> None:
    """Spine and ribs: bright structures outside the lungs."""
    sy = cy + body_ay * rng.uniform(0.62, 0.70)
    spine = _ellipse(yy, xx, sy, cx, body_ay * 0.16, body_ax * 0.11)
    image[spine <= 1.0] = _BONE * 0.45 + rng.normal(0, 30)
    image[(spine <= 1.0) & (spine > 0.7)] = _BONE + rng.normal(0, 40)
    inner = 1.0 - fat_thickness - 0.05
    for angle in np.linspace(0, 2 * np.pi, rng.integers(10, 15), endpoint=False):
        angle += rng.normal(0, 0.08)
        if np.sin(angle) > 0.75:  # no ribs right next to the spine
            continue
        ry = cy + inner * body_ay * np.sin(angle)
        rx = cx + inner * body_ax * np.cos(angle)
        rib = _ellipse(yy, xx, ry, rx, body_ay * 0.035, body_ax * 0.03)
        image[rib <= 1.0] = _BONE + rng.normal(0, 60)


def _vessel_tree_image(lung: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
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


def _draw_nodules(image, lung, rng, config: CTConfig, pv_sigma: float):
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


def _draw_distractors(image, lung, nodules, rng, config: CTConfig, pv_sigma: float):
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


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 1..n in order of appearance, dropping empty ones."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    lut = np.zeros(int(labels.max()) + 1, np.int32)
    lut[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
    return lut[labels]
