"""Instances from a model's maps: touching objects apart by seeded watershed.

A two-output model predicts the foreground and the object rims
(:func:`napari_unet.core.targets.boundary_target`).  The foreground mask at the
user's threshold is split like this, slice by slice:

1. seeds are the 4-connected parts of the mask where the rim probability is
   below ``boundary_threshold``: the interior of each object; seeds under
   :data:`MIN_SEED_SIZE` pixels are noise, not objects;
2. a connected part of the mask with one seed, or none (an object too small
   to keep an interior), is one object as it is; objects under
   :data:`MIN_OBJECT_SIZE` pixels are dropped;
3. in a part with several seeds, the seeds grow over the rest of the part one
   pixel ring at a time, each pixel joining the neighbouring seed across the
   lowest rim probability: a watershed on the rim map, in rings.

Only the pixels of split parts outside their seeds are touched in step 3, and
every step is a vectorised pass over the image, so a threshold slider can
redraw the instances live (``benchmarks/bench_threshold.py --instances``).

A model without a rim output (or ``boundary=None``) gives the 8-connected
components of the mask, as before.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_unet.core.errors import InputError
from napari_unet.core.postprocess import STRUCTURE_2D, label_objects, mask_from_proba

# Chosen on development images of the DSB 2018 set, never on held-out ones
# (benchmarks/tune_instances.py, 40 development images per modality; object F1
# of the shipped model: fluorescence 0.833, histology 0.564, brightfield 0.533,
# against 0.824, 0.554, 0.529 for connected components; 0.5 and 4 px gave 0.827,
# 0.559, 0.526).  See benchmarks/results/default_model.md.
#: Rim probability under which a mask pixel can seed an object.
BOUNDARY_THRESHOLD = 0.4
#: Seeds smaller than this many pixels are noise, not objects: they join a neighbour.
MIN_SEED_SIZE = 16
#: Objects of the split smaller than this many pixels are specks of the
#: foreground map, not nuclei, and are dropped (chosen on the same development
#: images, ``tune_instances.py --min-sizes 0 10 20 30``, with the shipped model
#: trained 40 minutes more: object F1 0.850, 0.858, 0.865, 0.865 on fluorescence,
#: 0.567, 0.620, 0.636, 0.646 on brightfield, 0.589, 0.613, 0.624, 0.626 on
#: histology; pooled Dice unchanged).
MIN_OBJECT_SIZE = 20


def _neighbours(todo: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Flat indices of the 8 neighbours of each flat index; off-image ones point past the end."""
    h, w = shape
    y, x = np.divmod(todo, w)
    out = np.empty((todo.size, 8), dtype=todo.dtype)
    k = 0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                inside = (y + dy >= 0) & (y + dy < h) & (x + dx >= 0) & (x + dx < w)
                out[:, k] = np.where(inside, todo + (dy * w + dx), h * w)
                k += 1
    return out


def _grow(out: np.ndarray, rim: np.ndarray, todo: np.ndarray, shape: tuple[int, int]) -> None:
    """Give every pixel in ``todo`` the label of a labelled neighbour, ring by ring.

    ``out`` (labels) and ``rim`` are flat, one element longer than the image:
    the extra element (label 0, rim +inf) stands for every neighbour off the
    image.  Each ring, every pixel of ``todo`` with a labelled 8-neighbour
    takes the label of the one whose rim probability is lowest: a watershed on
    the rim map whose flood advances one pixel per ring.  Pixels no label
    reaches stay 0.
    """
    around = _neighbours(todo, shape)
    while todo.size:
        labels = out[around]
        height = np.where(labels > 0, rim[around], np.inf)
        pick = labels[np.arange(todo.size), np.argmin(height, axis=1)]
        reached = pick > 0
        if not reached.any():
            return
        out[todo[reached]] = pick[reached]
        todo, around = todo[~reached], around[~reached]


def _split_plane(
    mask: np.ndarray, boundary: np.ndarray, threshold: float, min_seed_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split one 2D mask along the rims.

    Returns
    -------
    labels
        Flat int32 labels with one extra element at the end; ids are not
        consecutive.
    present
        Boolean per id: whether it occurs in ``labels`` (False for 0).
    """
    parts, n_parts = ndi.label(mask, structure=STRUCTURE_2D)
    out = np.empty(parts.size + 1, dtype=np.int32)
    out[:-1] = parts.ravel()
    out[-1] = 0
    present = np.ones(n_parts + 1, dtype=bool)
    present[0] = False
    if n_parts == 0:
        return out, present
    # 4-connected seeds: a diagonal gap in a thin predicted rim does not join two.
    seeds, n_seeds = ndi.label(mask & (boundary < threshold))
    seed_px = np.flatnonzero(seeds)
    seed_ids = seeds.ravel()[seed_px]
    # Each seed lies inside one part; count the seeds big enough to be objects.
    kept = np.bincount(seed_ids, minlength=n_seeds + 1) >= min_seed_size
    kept[0] = False
    part_of_seed = np.zeros(n_seeds + 1, dtype=np.int32)
    part_of_seed[seed_ids] = out[seed_px]
    multi = np.bincount(part_of_seed[kept], minlength=n_parts + 1) >= 2
    multi[0] = False
    if not multi.any():
        return out, present
    # Parts with one seed or none stay whole (ids 1..n_parts); in split parts
    # the kept seeds get ids above n_parts and grow over the rest of the part
    # (including seeds too small to count).
    split_px = np.flatnonzero(np.take(multi, out[:-1]))
    if out.size < 1 << 31:  # half the index traffic of the ring-by-ring growth
        split_px = split_px.astype(np.int32)
    seed_of = seeds.ravel()[split_px]
    good = kept[seed_of]
    out[split_px] = np.where(good, n_parts + seed_of, 0)
    rim = np.empty(out.size, dtype=np.float32)
    rim[:-1] = boundary.ravel()
    rim[-1] = np.inf
    _grow(out, rim, split_px[~good], mask.shape)
    present[multi] = False
    # Seed s is id n_parts + s, so seed 1 comes right after part n_parts.
    return out, np.concatenate([present, (kept & multi[part_of_seed])[1:]])


def instances_from_maps(
    proba: np.ndarray,
    boundary: np.ndarray | None,
    threshold: float,
    *,
    min_size: int = 0,
    fill_holes: bool = False,
    boundary_threshold: float = BOUNDARY_THRESHOLD,
    min_seed_size: int = MIN_SEED_SIZE,
    min_object_size: int = MIN_OBJECT_SIZE,
) -> np.ndarray:
    """Instance labels from the foreground and rim probabilities.

    Parameters
    ----------
    proba
        Foreground probabilities, ``(Y, X)`` or ``(Z, Y, X)``.
    boundary
        Rim probabilities of the same shape, or ``None`` for connected
        components of the mask.
    threshold
        Foreground threshold, as for :func:`~napari_unet.core.postprocess.mask_from_proba`.
    min_size, fill_holes
        Mask options applied to the mask before it is split; objects that the
        split leaves smaller than ``min_size`` are removed too.
    boundary_threshold
        Rim probability under which a pixel may seed an object.
    min_seed_size
        Smallest seed, in pixels, that makes an object of its own.
    min_object_size
        Objects the split leaves smaller than this are dropped (with a
        boundary map only: connected components keep ``min_size`` alone).

    Returns
    -------
    np.ndarray
        Labels, 0 for background, ids 1..N numbered consecutively over the
        whole array (slices never share an id); uint16 when N < 65536, else
        int32.  Without a boundary map, the ids are the mask's 8-connected
        components.
    """
    proba = np.asarray(proba)
    mask = mask_from_proba(proba, threshold, min_size=min_size, fill_holes=fill_holes)
    if boundary is None:
        labels = label_objects(mask)
        return labels.astype(np.uint16 if labels.max(initial=0) < 1 << 16 else np.int32)
    boundary = np.asarray(boundary)
    if boundary.shape != proba.shape:
        raise InputError(
            f"the boundary map's shape {boundary.shape} differs from the probabilities' "
            f"{proba.shape}: give both maps of one prediction"
        )
    if not 0.0 < boundary_threshold <= 1.0:
        raise InputError(f"boundary threshold must be in (0, 1], not {boundary_threshold}")
    planes = [(mask, boundary)] if mask.ndim == 2 else list(zip(mask, boundary, strict=True))
    results = []
    count = 0
    for m, b in planes:
        labels, keep = _split_plane(m > 0, b, boundary_threshold, max(1, int(min_seed_size)))
        labels = labels[:-1]
        smallest = max(int(min_size), int(min_object_size))
        if smallest > 0:
            keep &= np.bincount(labels, minlength=keep.size) >= smallest
        results.append((labels.reshape(m.shape), keep, count))
        count += int(keep.sum())
    # napari draws uint16 labels faster than int32 (benchmarks/results/gui_threshold.md).
    out = np.empty(mask.shape, dtype=np.uint16 if count < 1 << 16 else np.int32)
    view = out[None] if mask.ndim == 2 else out
    for z, (labels, keep, offset) in enumerate(results):
        # Consecutive ids over the whole array, without sorting the pixels.
        lut = np.zeros(keep.size, dtype=out.dtype)
        lut[keep] = np.arange(offset + 1, offset + 1 + int(keep.sum()))
        np.take(lut, labels, out=view[z])
    return out
