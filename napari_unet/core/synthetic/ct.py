"""CT-like axial slices with small lung nodules (see :mod:`napari_unet.core.synthetic`).

This module draws the anatomy (body, fat, bones, lung fields) and puts a
slice together; the vessels, nodules and distractors inside the lungs come
from :mod:`napari_unet.core.synthetic.lung_structures`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_unet.core.synthetic.lung_structures import (
    draw_distractors,
    draw_nodules,
    vessel_tree_image,
)

_AIR, _FAT, _TISSUE, _BONE = -1000.0, -100.0, 40.0, 700.0


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

    vessels = vessel_tree_image(lung, rng, s)
    image += (vessels * (_TISSUE - lung_hu)).astype(np.float32) * lung

    nodules, solid, part_solid = draw_nodules(image, lung, rng, config, pv_sigma)
    distractors = draw_distractors(image, lung, nodules, rng, config, pv_sigma)

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
