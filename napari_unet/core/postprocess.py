"""From probabilities to masks, and the one-click mask corrections.

Everything here follows one convention: a pixel is foreground when its value is
``> 0``, whether the array is a boolean mask, a 0/1 or 0/255 mask, or instance
labels.  An array is *binary* when it holds at most one distinct positive value
(see :func:`is_binary`); binary masks are split into objects by 8-connected
components, instance labels keep their ids.

Stacks ``(Z, Y, X)`` (or ``(T, Y, X)``) are processed slice by slice, like the
2D network that produced them: objects, holes and touching are 2D notions, so
nothing connects across slices.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi

from napari_unet.core.errors import InputError

# 8-connectivity in 2D: diagonal neighbours belong to the same object, which is
# how napari's fill tool and skimage.measure.label (default) see objects too.
STRUCTURE_2D = np.ones((3, 3), dtype=bool)


def _as_array(a: np.ndarray, name: str = "mask") -> np.ndarray:
    a = np.asarray(a)
    if a.ndim not in (2, 3):
        raise InputError(f"{name} must be 2D (Y, X) or a stack (Z, Y, X), got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise InputError(f"{name} must be numeric, got dtype {a.dtype}")
    return a


def _per_slice(func: Callable[[np.ndarray], np.ndarray], a: np.ndarray, dtype=None) -> np.ndarray:
    """Apply a 2D function to a 2D array or to each slice of a 3D stack."""
    if a.ndim == 2:
        return func(a)
    out = np.empty(a.shape, dtype=dtype or a.dtype)
    for z in range(a.shape[0]):
        out[z] = func(a[z])
    return out


def filled(fg: np.ndarray) -> np.ndarray:
    """Return a 2D boolean mask with its holes filled, as ``ndi.binary_fill_holes`` does.

    A hole is a 4-connected background region that does not touch the image
    border.  One labelling of the background finds them all: 0.20 s against
    ``binary_fill_holes``' 0.74 s on a 4096x4096 mask, and it holds the
    interpreter lock only briefly, so a worker running it leaves the event
    loop free (benchmarks/results/gui_threshold.md).
    """
    background, n = ndi.label(~fg)
    touches = np.zeros(n + 1, dtype=bool)
    for edge in (background[0], background[-1], background[:, 0], background[:, -1]):
        touches[edge] = True
    touches[0] = False  # label 0 is the foreground itself: kept
    return ~touches[background]


def is_binary(mask: np.ndarray) -> bool:
    """Tell whether an array is a binary mask rather than instance labels.

    Parameters
    ----------
    mask : np.ndarray
        Boolean, integer or float array.

    Returns
    -------
    bool
        True for boolean arrays and for arrays whose positive values are all
        equal (0/1, 0/255, or an empty mask); False when at least two distinct
        positive values (instance ids) occur.
    """
    a = np.asarray(mask)
    if a.dtype == bool or a.size == 0:
        return True
    hi = a.max()
    if hi <= 0:
        return True
    return not np.any((a > 0) & (a != hi))


def label_objects(mask: np.ndarray) -> np.ndarray:
    """Label the 8-connected components of the foreground.

    Parameters
    ----------
    mask : np.ndarray
        ``(Y, X)`` or ``(Z, Y, X)``; pixels ``> 0`` are foreground.  Instance
        ids in the input are ignored: touching objects become one component.

    Returns
    -------
    np.ndarray
        int32 labels, 0 for background and 1..n for the components.  In a
        stack each slice is labelled on its own and ids continue from one
        slice to the next, so every id is unique in the stack.
    """
    a = _as_array(mask)
    fg = a > 0
    if a.ndim == 2:
        labels, _ = ndi.label(fg, structure=STRUCTURE_2D, output=np.int32)
        return labels
    labels = np.zeros(a.shape, dtype=np.int32)
    offset = 0
    for z in range(a.shape[0]):
        n = ndi.label(fg[z], structure=STRUCTURE_2D, output=labels[z])
        labels[z][labels[z] > 0] += offset
        offset += n
    return labels


def as_instances(labels_or_mask: np.ndarray) -> np.ndarray:
    """Return instance labels: ids as they are, or components of a binary mask.

    Parameters
    ----------
    labels_or_mask : np.ndarray
        Instance labels, or a binary mask (see :func:`is_binary`).  Values
        ``<= 0`` are background.

    Returns
    -------
    np.ndarray
        Integer labels with background 0.  Instance labels are returned with
        their own ids (negative values set to 0); a binary mask is labelled
        with :func:`label_objects` (8-connected, slice by slice).
    """
    a = _as_array(labels_or_mask)
    if is_binary(a):
        return label_objects(a)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise InputError("instance labels must be whole numbers; threshold the map first")
        a = a.astype(np.int64)
    if a.min() < 0:
        a = np.where(a > 0, a, 0)
    return a


def mask_from_proba(
    prob: np.ndarray,
    threshold: float,
    *,
    min_size: int = 0,
    fill_holes: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Threshold a probability map into a 0/1 mask (the live-threshold path).

    With ``min_size=0`` and ``fill_holes=False`` this is one vectorised
    ``np.greater_equal(prob, threshold, out=out)``: no array is allocated when
    ``out`` is given, so a slider can rewrite a Labels layer's data in place.

    Parameters
    ----------
    prob : np.ndarray
        Probabilities, ``(Y, X)`` or ``(Z, Y, X)``.  NaN is never foreground.
    threshold : float
        A pixel is foreground when ``prob >= threshold``.  The threshold is
        compared in ``prob``'s own dtype, exactly as :func:`~napari_unet.core.
        metrics.dice_sweep` does, so the two agree pixel for pixel.
    min_size : int
        Remove 8-connected objects with fewer pixels than this (per slice).
    fill_holes : bool
        Fill background regions that are enclosed by foreground (per slice),
        before removing small objects.
    out : np.ndarray, optional
        Array of ``prob``'s shape to write into (uint8, bool or any integer
        dtype, e.g. a Labels layer's data).

    Returns
    -------
    np.ndarray
        ``out`` if given, else a new uint8 array; 1 is foreground, 0 background.
    """
    prob = np.asarray(prob)
    t = float(threshold)
    if not np.isfinite(t):
        raise InputError(f"threshold must be a finite number, got {threshold!r}")
    if min_size < 0:
        raise InputError(f"minimum object size must be >= 0, got {min_size}")
    if out is None:
        out = np.empty(prob.shape, dtype=np.uint8)
    elif out.shape != prob.shape:
        raise InputError(f"output shape {out.shape} differs from probability shape {prob.shape}")
    t_cast = prob.dtype.type(t) if prob.dtype.kind == "f" else t
    np.greater_equal(prob, t_cast, out=out)
    if fill_holes:
        out[...] = _per_slice(filled, out > 0, dtype=bool)
    if min_size > 0:
        out[...] = remove_small(out > 0, min_size)
    return out


def _id_areas(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map integer ids to dense indices; return (index per pixel, area per index)."""
    hi = int(flat.max()) if flat.size else 0
    if hi <= 4 * flat.size + 1024:
        return flat, np.bincount(flat, minlength=hi + 1)
    # Sparse huge ids (e.g. hashes in uint32): compact them first.
    values, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    if values[0] != 0:  # keep index 0 for the background
        inverse = inverse + 1
        counts = np.concatenate([[0], counts])
    return inverse.reshape(flat.shape), counts


def remove_small(labels_or_mask: np.ndarray, min_size: int) -> np.ndarray:
    """Remove objects with fewer than ``min_size`` pixels.

    Parameters
    ----------
    labels_or_mask : np.ndarray
        Instance labels (each id is one object) or a binary mask (each
        8-connected component is one object).  Stacks are processed per slice:
        an object's size is its area in that slice.
    min_size : int
        Objects with ``area < min_size`` become background.

    Returns
    -------
    np.ndarray
        A new array of the input's dtype and values, with small objects set to 0.
    """
    a = _as_array(labels_or_mask)
    if min_size < 0:
        raise InputError(f"minimum object size must be >= 0, got {min_size}")
    binary = is_binary(a)

    def one(s: np.ndarray) -> np.ndarray:
        if binary:
            ids, _ = ndi.label(s > 0, structure=STRUCTURE_2D)
        else:
            ids = np.where(s > 0, s, 0).astype(np.int64, copy=False)
        index, areas = _id_areas(ids.ravel())
        small = areas < min_size
        small[0] = False
        return np.where(small[index].reshape(s.shape), np.zeros((), s.dtype), s)

    return _per_slice(one, a)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill holes: background regions not connected to the image border.

    Background connectivity is 4 (the complement of 8-connected objects).

    Parameters
    ----------
    mask : np.ndarray
        Binary mask or instance labels, ``(Y, X)`` or ``(Z, Y, X)`` (per slice).

    Returns
    -------
    np.ndarray
        A new array of the input's dtype.  In a binary mask holes take the
        mask's foreground value; in instance labels each hole pixel takes the id
        of the nearest object (so a hole inside one nucleus joins that nucleus,
        and a gap enclosed by several touching objects is shared between them).
    """
    a = _as_array(mask)
    binary = is_binary(a)

    def one(s: np.ndarray) -> np.ndarray:
        fg = s > 0
        holes = filled(fg) & ~fg
        if not holes.any():
            return s.copy()
        out = s.copy()
        if binary:
            out[holes] = s.max() if s.dtype != bool else True
            return out
        _, (iy, ix) = ndi.distance_transform_edt(~fg, return_indices=True)
        out[holes] = s[iy[holes], ix[holes]]
        return out

    return _per_slice(one, a)


def delete_object(labels: np.ndarray, y: float, x: float, *, z: float | None = None) -> np.ndarray:
    """Delete the object under a pixel.

    The object is the 8-connected region of pixels that carry the same value
    as ``labels[y, x]``: one nucleus of an instance mask, or one connected
    component of a binary mask.

    Parameters
    ----------
    labels : np.ndarray
        Instance labels or binary mask, ``(Y, X)`` or ``(Z, Y, X)``.
    y, x : float
        Pixel coordinates (row, column), e.g. the cursor position in data
        coordinates; rounded to the nearest pixel.
    z : float, optional
        Slice index (rounded); required for a stack, where only that slice
        changes.

    Returns
    -------
    np.ndarray
        A copy with the object set to 0.

    Raises
    ------
    InputError
        If the pixel is outside the image or on background.
    """
    a = _as_array(labels, "labels")
    if a.ndim == 3 and z is None:
        raise InputError("the labels are a stack: give the slice index z as well")
    # napari's pixel i spans [i - 0.5, i + 0.5): round cursor positions.
    y, x = round(float(y)), round(float(x))
    plane_index = () if a.ndim == 2 or z is None else (round(float(z)),)
    position = (*plane_index, y, x)
    if not all(0 <= i < n for i, n in zip(position, a.shape, strict=True)):
        raise InputError(f"position {position} is outside the image of shape {a.shape}")
    plane = a[plane_index]
    value = plane[y, x]
    if not value > 0:
        raise InputError(f"no object at ({y}, {x}): click inside an object to delete it")
    components, _ = ndi.label(plane == value, structure=STRUCTURE_2D)
    out = a.copy()
    out[plane_index][components == components[y, x]] = 0
    return out


def merge_touching(labels: np.ndarray) -> np.ndarray:
    """Give every group of touching objects one id.

    Objects touch when they are 8-connected through foreground pixels; each
    group keeps the smallest id among its members, so unchanged objects keep
    their colours in napari.  Stacks are processed per slice.

    Parameters
    ----------
    labels : np.ndarray
        Instance labels (a binary mask is returned unchanged, as a copy).

    Returns
    -------
    np.ndarray
        New labels of the input's dtype.
    """
    a = _as_array(labels, "labels")

    def one(s: np.ndarray) -> np.ndarray:
        components, n = ndi.label(s > 0, structure=STRUCTURE_2D)
        if n == 0:
            return s.copy()
        fg = components > 0
        smallest = np.full(n + 1, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(smallest, components[fg], s[fg].astype(np.int64))
        out = np.zeros_like(s)
        out[fg] = smallest[components[fg]].astype(s.dtype)
        return out

    return _per_slice(one, a)


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Renumber instance ids to 1..n in increasing order of the old ids.

    Parameters
    ----------
    labels : np.ndarray
        Instance labels (any integer dtype, any shape); values ``<= 0`` become 0.

    Returns
    -------
    np.ndarray
        int32 labels with the same objects and ids 1..n.
    """
    a = np.asarray(labels)
    values, inverse = np.unique(np.where(a > 0, a, 0), return_inverse=True)
    if values.size and values[0] != 0:
        inverse = inverse + 1
    return inverse.reshape(a.shape).astype(np.int32)
