"""Instances from a model's maps: touching objects apart by seeded watershed.

A two-output model predicts the foreground and the object rims
(:func:`napari_unet.core.targets.boundary_target`).  The foreground mask is
split like this, slice by slice (:func:`split_objects`):

1. the distance of every mask pixel to the background, smoothed by a
   Gaussian of :data:`SEED_SIGMA` pixels and scaled by one minus the rim
   probability, peaks once per nucleus and dips where two nuclei meet (the
   neck between them, or a contact the rim output marks);
2. a connected part of the mask whose distance map has one peak, or none, is
   one object as it is;
3. in a part with several peaks, the seeds are the h-maxima of the distance
   map (peaks standing at least :data:`SEED_DEPTH` pixels above the saddle to
   any higher peak), and a watershed on the inverted distance grows them over
   the whole part;
4. objects under :data:`MIN_OBJECT_SIZE` pixels are specks of the foreground
   map and are dropped.

The watershed is the costly step, so a threshold slider does not repeat it:
:func:`instances_from_maps` with ``split=`` (the objects :func:`split_objects`
found at the model's threshold) keeps those objects, restricted to the mask at
the new threshold; pixels a lower threshold adds join the neighbouring object
across the lowest rim probability, and parts of the mask that hold none of
those objects become objects of their own.  At the threshold the split was
made at, the result is exactly the split's.

A three-output model also predicts each nucleus' distance to its own edge,
scaled to 1 at its centre (:func:`napari_unet.core.targets.distance_target`).
With that map, step 1 uses it, smoothed by :data:`DISTANCE_SIGMA`, in place of
the mask's shape, and the seeds must stand :data:`DISTANCE_DEPTH` above their
saddle: the network sees where one nucleus ends and the next begins even where
the mask has no neck.

A model without a rim output (or ``boundary=None``) gives the 8-connected
components of the mask, as before.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from napari_unet.core.errors import InputError
from napari_unet.core.postprocess import STRUCTURE_2D, label_objects, mask_from_proba

if TYPE_CHECKING:
    from napari_unet.core.inference import Prediction

# Chosen on development images of the DSB 2018 set, never on held-out ones
# (benchmarks/tune_instances.py, 40 development images per modality, 7
# brightfield); see benchmarks/results/default_model.md.
#: Gaussian sigma, in pixels, that smooths the distance map: one
#: peak per nucleus rather than one per bump of its outline.
SEED_SIGMA = 2.0
#: How far, in pixels of distance, a peak must rise above the saddle that joins
#: it to a higher one to seed an object of its own.
SEED_DEPTH = 1.0
#: Gaussian sigma, in pixels, that smooths a predicted distance map.
DISTANCE_SIGMA = 2.0
#: How far, in the predicted distance's units (1 at a nucleus' centre), a peak
#: must rise above its saddle to seed an object of its own.
DISTANCE_DEPTH = 0.1
#: Objects of the split smaller than this many pixels are specks of the
#: foreground map, not nuclei, and are dropped.
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
    takes the label of the one whose rim probability is lowest.  Pixels no
    label reaches stay 0.
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


def _shape_height(mask: np.ndarray, boundary: np.ndarray, sigma: float) -> np.ndarray:
    """Return the mask's distance to the background, smoothed, times one minus the rim."""
    distance = ndi.distance_transform_edt(mask).astype(np.float32)
    if sigma > 0:
        distance = ndi.gaussian_filter(distance, sigma)
    # A predicted rim (a contact) pulls the distance down to a dip.
    distance *= 1 - np.clip(boundary, 0, 1, dtype=np.float32)
    return distance


def _predicted_height(distance: np.ndarray, sigma: float) -> np.ndarray:
    """Return a three-output model's distance map, smoothed."""
    height = np.asarray(distance, dtype=np.float32)
    return ndi.gaussian_filter(height, sigma) if sigma > 0 else height.copy()


def _split_plane(mask: np.ndarray, distance: np.ndarray, depth: float) -> np.ndarray:
    """Split one 2D mask at the dips of ``distance`` (a height map, peaks at centres).

    Returns
    -------
    np.ndarray
        int32 labels, ids 1..N consecutive, 0 for background.
    """
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    parts, n_parts = ndi.label(mask, structure=STRUCTURE_2D, output=np.int32)
    if n_parts == 0:
        return parts
    distance[~mask] = 0
    # Parts whose distance map has at most one peak stay whole; count the peaks
    # (plateaus of local maxima) of each part in one vectorised pass.
    peaks = mask & (distance > 0) & (distance >= ndi.maximum_filter(distance, size=3))
    peak_ids, n_peaks = ndi.label(peaks, structure=STRUCTURE_2D)
    part_of_peak = np.zeros(n_peaks + 1, dtype=np.int64)
    part_of_peak[peak_ids[peaks]] = parts[peaks]
    several = np.bincount(part_of_peak[1:], minlength=n_parts + 1) >= 2
    if not several.any():
        return parts
    out = parts.copy()
    next_id = n_parts + 1
    boxes = ndi.find_objects(parts)
    for i in np.flatnonzero(several):
        box = boxes[i - 1]
        part = parts[box] == i
        height = np.where(part, distance[box], 0)
        seeds = h_maxima(height, depth).astype(bool) & part
        markers, k = ndi.label(seeds, structure=STRUCTURE_2D)
        if k < 2:
            continue
        grown = watershed(-height, markers, mask=part)
        view = out[box]
        view[part] = grown[part] + (next_id - 1)
        next_id += k
    # Consecutive ids: the split parts' own ids are gone.
    present = np.zeros(next_id, dtype=bool)
    present[out.ravel()] = True
    present[0] = False
    lut = np.zeros(next_id, dtype=np.int32)
    lut[present] = np.arange(1, int(present.sum()) + 1, dtype=np.int32)
    return lut[out]


def _check_maps(proba: np.ndarray, boundary: np.ndarray) -> None:
    if boundary.shape != proba.shape:
        raise InputError(
            f"the boundary map's shape {boundary.shape} differs from the probabilities' "
            f"{proba.shape}: give both maps of one prediction"
        )


def split_objects(
    mask: np.ndarray,
    boundary: np.ndarray,
    *,
    sigma: float | None = None,
    depth: float | None = None,
    distance: np.ndarray | None = None,
) -> np.ndarray:
    """Split a foreground mask into objects with a two-output model's rim map.

    Parameters
    ----------
    mask
        Foreground, ``(Y, X)`` or ``(Z, Y, X)``; pixels ``> 0`` count.
    boundary
        Rim probabilities of the same shape.
    sigma, depth
        Smoothing and seed depth: :data:`SEED_SIGMA` and :data:`SEED_DEPTH`
        by default, or with ``distance`` :data:`DISTANCE_SIGMA` and
        :data:`DISTANCE_DEPTH`.
    distance
        A three-output model's distance map of the same shape: the split
        follows it instead of the mask's shape.

    Returns
    -------
    np.ndarray
        int32 labels covering the whole mask, 0 for background; ids are
        consecutive over the whole array (slices never share an id).  No
        object is dropped here (see ``min_object_size`` of
        :func:`instances_from_maps`).
    """
    mask = np.asarray(mask) > 0
    boundary = np.asarray(boundary)
    _check_maps(mask, boundary)
    if distance is not None:
        distance = np.asarray(distance)
        _check_maps(mask, distance)
    planes = [(mask, boundary)] if mask.ndim == 2 else list(zip(mask, boundary, strict=True))
    out = np.empty(mask.shape, dtype=np.int32)
    view = out[None] if mask.ndim == 2 else out
    count = 0
    if distance is None:
        sigma = SEED_SIGMA if sigma is None else sigma
        depth = SEED_DEPTH if depth is None else depth
    else:
        sigma = DISTANCE_SIGMA if sigma is None else sigma
        depth = DISTANCE_DEPTH if depth is None else depth
    for z, (m, b) in enumerate(planes):
        if distance is None:
            height = _shape_height(m, b, sigma)
        else:
            height = _predicted_height(distance if distance.ndim == 2 else distance[z], sigma)
        labels = _split_plane(m, height, depth)
        n = int(labels.max(initial=0))
        view[z] = np.where(labels > 0, labels + count, 0)
        count += n
    return out


def with_objects(maps: Prediction, threshold: float) -> Prediction:
    """Return the prediction with its objects at ``threshold`` split once (``maps.objects``).

    A one-output prediction (no rim map) comes back as it is.  This is the
    slow part of separate labels; run it where the prediction ran (a worker),
    and the threshold slider only follows the result.
    """
    if maps.boundary is None:
        return maps
    mask = mask_from_proba(maps.proba, threshold)
    objects = split_objects(mask, maps.boundary, distance=maps.distance)
    return dataclasses.replace(maps, objects=objects)


def _follow_split(mask: np.ndarray, boundary: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Follow the objects of ``split`` onto another mask of the same maps (one 2D plane).

    Pixels of ``mask`` in an object keep its id; pixels outside every object
    join the neighbouring object across the lowest rim probability; parts of
    the mask that no object reaches become objects of their own (ids above
    ``split``'s).
    """
    labels = np.empty(mask.size + 1, dtype=np.int32)
    labels[-1] = 0
    out = labels[:-1].reshape(mask.shape)
    np.multiply(split, mask, out=out)
    todo = np.flatnonzero(mask & (split == 0))
    if not todo.size:
        return out
    if labels.size < 1 << 31:
        todo = todo.astype(np.int32)
    rim = np.empty(labels.size, dtype=np.float32)
    rim[:-1] = boundary.ravel()
    rim[-1] = np.inf
    _grow(labels, rim, todo, mask.shape)
    rest = todo[labels[todo] == 0]
    if rest.size:
        # Only the box around the unreached pixels is labelled, not the whole image.
        ys, xs = np.divmod(rest, mask.shape[1])
        box = np.s_[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        alone = np.zeros(mask.shape, dtype=bool)
        alone.ravel()[rest] = True
        extra, _ = ndi.label(alone[box], structure=STRUCTURE_2D, output=np.int32)
        region = out[box]
        new = extra > 0
        region[new] = extra[new] + int(split.max(initial=0))
    return out


def instances_from_maps(
    proba: np.ndarray,
    boundary: np.ndarray | None,
    threshold: float,
    *,
    min_size: int = 0,
    fill_holes: bool = False,
    min_object_size: int = MIN_OBJECT_SIZE,
    split: np.ndarray | None = None,
    distance: np.ndarray | None = None,
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
    min_object_size
        Objects the split leaves smaller than this are dropped (with a
        boundary map only: connected components keep ``min_size`` alone).
    split
        The objects of :func:`split_objects` on these maps at another
        threshold (a slider's reference): they are followed onto this
        threshold's mask instead of splitting it again, which is much faster.
        ``None`` splits this mask.
    distance
        A three-output model's distance map, for the split
        (:func:`split_objects`); not used with ``split``.

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
    _check_maps(proba, boundary)
    if split is None:
        objects = split_objects(mask, boundary, distance=distance)
    else:
        if split.shape != proba.shape:
            raise InputError(
                f"the split's shape {split.shape} differs from the probabilities' {proba.shape}"
            )
        objects = np.empty(mask.shape, dtype=np.int32)
        if mask.ndim == 2:
            objects[...] = _follow_split(mask > 0, boundary, split)
        else:
            for z in range(mask.shape[0]):
                objects[z] = _follow_split(mask[z] > 0, boundary[z], split[z])
    # Objects the split leaves too small are dropped; ids become consecutive
    # over the whole array, slice after slice, without sorting the pixels.
    planes = objects[None] if objects.ndim == 2 else objects
    smallest = max(int(min_size), int(min_object_size))
    luts, count = [], 0
    for plane in planes:
        sizes = np.bincount(plane.ravel())
        keep = sizes >= max(smallest, 1)
        keep[0] = False
        luts.append((keep, count))
        count += int(keep.sum())
    # napari draws uint16 labels faster than int32 (benchmarks/results/gui_threshold.md).
    out = np.empty(mask.shape, dtype=np.uint16 if count < 1 << 16 else np.int32)
    view = out[None] if mask.ndim == 2 else out
    for z, (keep, offset) in enumerate(luts):
        lut = np.zeros(keep.size, dtype=out.dtype)
        lut[keep] = np.arange(offset + 1, offset + 1 + int(keep.sum()))
        np.take(lut, planes[z], out=view[z])
    return out
