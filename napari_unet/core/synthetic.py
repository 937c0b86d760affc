"""Synthetic images with exact ground truth: CT-like slices with small nodules, and nuclei.

Two generators, both deterministic for a given seed and cheap enough to run from
napari's sample menu (well under a second for a 512x512 slice).  Only numpy and
scipy are used here, never torch.

CT-like slices (:func:`ct_slice`)
    The small-target case: a 512x512 axial slice in Hounsfield-like units
    (float32; air about -1000, lung about -850, fat about -100, soft tissue about
    +40, bone +300 to +900).  A body ellipse holds two lung fields, a spine and
    ribs; thin bright branching vessels run through the lungs as distractors;
    zero to three round nodules under 20 px across sit inside the lungs.  The
    nodules cover less than 0.1 % of the slice, so a network trained with uniform
    patches and plain cross-entropy learns to predict "background" everywhere.
    The lung mask is returned as a region of interest.

Fluorescence nuclei (:func:`nuclei_image`)
    Elliptical nuclei with varied brightness and texture, some touching (they
    share a border with no background between them, as in the DSB 2018 masks),
    blurred by a Gaussian point-spread function, with shot and read noise.  Used
    with the shipped DSB 2018 sample to train the default model; the appearance
    (size, contrast, blur, density) is drawn from the seed unless given.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: Largest share of a CT slice that nodules may cover.
MAX_NODULE_FRACTION = 0.001
#: Nodule diameters in pixels (before the foreground budget shrinks them).
NODULE_DIAMETER_RANGE = (4.0, 18.0)

_AIR, _LUNG, _FAT, _TISSUE, _BONE = -1000.0, -860.0, -100.0, 40.0, 700.0


def ct_slice(seed: int, size: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generate one CT-like axial slice with small lung nodules.

    Parameters
    ----------
    seed
        Random seed; the same seed always gives the same slice.
    size
        Height and width in pixels (the anatomy scales with it; nodule sizes do
        not, since the target is "under 20 px across").

    Returns
    -------
    image : np.ndarray
        float32 (size, size) in Hounsfield-like units.
    lung_mask : np.ndarray
        bool (size, size), both lung fields (a region of interest for training).
    nodule_labels : np.ndarray
        int32 (size, size), 0 for background and 1..n for the n nodules (0 to 3).
        Every nodule lies inside ``lung_mask``, is under 20 px across, and all
        nodules together cover less than 0.1 % of the slice.
    """
    if size < 64:
        raise ValueError(f"size must be at least 64 pixels, got {size}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    s = size / 512.0
    cy, cx = size * (0.5 + rng.uniform(-0.02, 0.02)), size * (0.5 + rng.uniform(-0.02, 0.02))

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
    lung_hu = _LUNG + rng.normal(0, 15) + 60.0 * (yy - cy) / body_ay
    image[lung] = lung_hu[lung]

    vessels = _vessel_tree_image(lung, rng, s)
    image += (vessels * (_TISSUE - lung_hu)).astype(np.float32) * lung

    nodules = _place_nodules(lung, rng, size)
    if nodules.any():
        # Partial-volume edge: the disks are blurred slightly for the image only;
        # the ground truth keeps the exact disks.
        cover = ndi.gaussian_filter((nodules > 0).astype(np.float32), 0.6)
        nodule_hu = np.zeros_like(image)
        for label in range(1, int(nodules.max()) + 1):
            nodule_hu[ndi.binary_dilation(nodules == label, iterations=2)] = rng.uniform(-10, 70)
        image = image * (1 - cover) + nodule_hu * cover

    # Scanner noise: slightly correlated (reconstruction kernel), 15-25 HU.
    noise = ndi.gaussian_filter(rng.normal(0, 1, (size, size)).astype(np.float32), 0.7)
    image += noise * (rng.uniform(15, 25) / noise.std())
    return image.astype(np.float32), lung, nodules


def ct_dataset(
    n: int, seed: int, size: int = 512
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

    Returns
    -------
    images, lung_masks, nodule_labels : list of np.ndarray
        Three lists of length ``n``, as returned by :func:`ct_slice`.
    """
    images, lungs, labels = [], [], []
    for i in range(n):
        image, lung, nodules = ct_slice(seed + i, size)
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
    size = canvases[0].shape[0]
    steps = max(int(length / 2), 2)
    for _ in range(steps):
        direction += rng.normal(0, 0.08)
        ny, nx = y + 2 * np.sin(direction), x + 2 * np.cos(direction)
        _draw_line(canvases[generation], y, x, ny, nx, size)
        y, x = ny, nx
    if generation + 1 < len(canvases):
        spread = rng.uniform(0.3, 0.7)
        for sign in (-1.0, 1.0):
            child = direction + sign * spread + rng.normal(0, 0.1)
            _grow_branch(
                canvases, y, x, child, length * rng.uniform(0.6, 0.8), generation + 1, rng
            )


def _draw_line(canvas, y0, x0, y1, x1, size) -> None:
    """Mark the pixels of a short segment (sub-pixel steps, clipped to the image)."""
    n = int(np.ceil(max(abs(y1 - y0), abs(x1 - x0)))) + 1
    ys = np.rint(np.linspace(y0, y1, n)).astype(int)
    xs = np.rint(np.linspace(x0, x1, n)).astype(int)
    keep = (ys >= 0) & (ys < size) & (xs >= 0) & (xs < size)
    canvas[ys[keep], xs[keep]] = 1.0


def _place_nodules(lung: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Draw 0-3 round nodules inside the lungs within the foreground budget."""
    labels = np.zeros(lung.shape, np.int32)
    count = int(rng.choice(4, p=[0.15, 0.35, 0.30, 0.20]))
    if count == 0:
        return labels
    diameters = rng.uniform(*NODULE_DIAMETER_RANGE, size=count)
    budget = MAX_NODULE_FRACTION * size * size
    area = np.pi * (diameters / 2) ** 2
    if area.sum() > 0.9 * budget:
        diameters *= np.sqrt(0.9 * budget / area.sum())
    diameters = np.clip(diameters, NODULE_DIAMETER_RANGE[0], NODULE_DIAMETER_RANGE[1])

    depth = ndi.distance_transform_edt(lung)
    yy, xx = np.mgrid[0:size, 0:size]
    placed: list[tuple[float, float, float]] = []
    for diameter in diameters:
        r = diameter / 2
        candidates = np.flatnonzero(depth.ravel() > r + 3)
        rng.shuffle(candidates)
        for index in candidates[:200]:
            cy, cx = divmod(int(index), size)
            cy, cx = cy + rng.uniform(-0.5, 0.5), cx + rng.uniform(-0.5, 0.5)
            if all(np.hypot(cy - py, cx - px) > r + pr + 4 for py, px, pr in placed):
                break
        else:
            continue
        y0, y1 = int(cy - r) - 1, int(cy + r) + 2
        x0, x1 = int(cx - r) - 1, int(cx + r) + 2
        disk = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2 <= r * r
        if (labels > 0).sum() + disk.sum() >= budget:
            break
        labels[y0:y1, x0:x1][disk] = len(placed) + 1
        placed.append((cy, cx, r))
    return labels


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 1..n in order of appearance, dropping empty ones."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    lut = np.zeros(int(labels.max()) + 1, np.int32)
    lut[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
    return lut[labels]
