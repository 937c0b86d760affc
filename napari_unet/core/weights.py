"""Border-weight maps (Ronneberger et al. 2015, eq. 2); the training targets are in targets.py.

The weight map makes the network pay attention to the thin background gaps
between neighbouring objects::

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))   background
    w(x) = w_c(x)                                                     foreground

``d1`` and ``d2`` are the Euclidean distances from ``x`` to the nearest pixel
of the nearest and of the second-nearest object (objects are distinct label
ids; a binary mask is split into 8-connected components); with fewer than two
objects the border term is 0.  ``w_c(x) = N / (2 * N_class(x))`` balances
foreground (label > 0) against background, N counting all pixels; ``w_c = 1``
everywhere when one class is absent.

How it stays fast and exact
---------------------------
The obvious implementation runs one full-image distance transform per object
(objects x pixels in time and memory).  Here the border term is dropped only
where it is provably below ``tol = 1e-4``: it is smaller than ``tol`` whenever
``d1 + d2 > R = sigma * sqrt(2 * ln(w0 / tol))``.  A pixel whose term matters
therefore lies within ``R`` of its two nearest objects, which are themselves
within ``R`` of each other.  So only objects with a neighbour within ``R``
(found from their bounding boxes with a k-d tree) get a distance transform,
and only inside a crop: their bounding box grown towards those neighbours by
``ceil(R)`` pixels.  Each crop holds its whole object, so its distances are
exact, and the two smallest distances per pixel are kept as running minima.
The work is about ``n_objects * (object size + 2R)**2`` pixels instead of
``n_objects * image size``, and the result differs from the definition by less
than ``tol`` (plus float32 rounding) for every ``w0`` and ``sigma``.  The tests
compare it with the brute force.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from napari_unet.core.errors import InputError
from napari_unet.core.postprocess import (
    as_instances,
    relabel_sequential,
)

#: Largest border term that may be dropped: far below the 1e-3 the definition is held to.
BORDER_TOLERANCE = 1e-4


def _check_labels(labels: np.ndarray) -> np.ndarray:
    a = np.asarray(labels)
    if a.ndim not in (2, 3):
        raise InputError(f"labels must be 2D (Y, X) or a stack (Z, Y, X), got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise InputError(f"labels must be numeric, got dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise InputError("labels contain NaN or infinite values")
    return a


def _class_balance_2d(fg: np.ndarray) -> np.ndarray:
    n = fg.size
    n_fg = int(np.count_nonzero(fg))
    n_bg = n - n_fg
    if n_fg == 0 or n_bg == 0:
        return np.ones(fg.shape, dtype=np.float32)
    return np.where(fg, np.float32(n / (2 * n_fg)), np.float32(n / (2 * n_bg))).astype(np.float32)


def class_balance_weights(mask: np.ndarray) -> np.ndarray:
    """Class-balancing weight ``w_c(x) = N / (2 * N_class(x))``.

    Parameters
    ----------
    mask : np.ndarray
        Binary mask or instance labels; label ``> 0`` is foreground.
        ``(Y, X)``, or a stack ``(Z, Y, X)`` where each slice is one image and
        gets its own weights.

    Returns
    -------
    np.ndarray
        float32 weights of the mask's shape.  ``N`` counts the pixels of the
        image (slice) and ``N_class`` those of the pixel's class, so both
        classes carry the same total weight ``N / 2``.  Where one class is
        absent the weight is 1 everywhere.
    """
    a = _check_labels(mask)
    fg = a > 0
    if a.ndim == 2:
        return _class_balance_2d(fg)
    return np.stack([_class_balance_2d(s) for s in fg]) if len(fg) else fg.astype(np.float32)


def border_cutoff(w0: float, sigma: float, tol: float = BORDER_TOLERANCE) -> float:
    """Distance sum beyond which the border term is below ``tol``.

    Parameters
    ----------
    w0, sigma : float
        Parameters of the border term.
    tol : float
        Largest term that may be neglected.

    Returns
    -------
    float
        ``R = sigma * sqrt(2 * ln(w0 / tol))``, so that
        ``w0 * exp(-(d1 + d2)**2 / (2 sigma**2)) < tol`` once ``d1 + d2 > R``;
        0 when ``w0 <= tol`` (the whole term is negligible).
    """
    if w0 <= tol:
        return 0.0
    return sigma * math.sqrt(2.0 * math.log(w0 / tol))


def _neighbour_pairs(boxes: np.ndarray, radius: float) -> np.ndarray:
    """Pairs (i, j), i < j, of objects whose bounding boxes are at most ``radius`` apart.

    ``boxes`` holds rows ``(y0, y1, x0, x1)`` (stops exclusive).  The box gap
    is a lower bound of the distance between two objects' pixels, so every
    pair of objects closer than ``radius`` is returned (and a few more).
    """
    n = len(boxes)
    y0, y1, x0, x1 = boxes.T.astype(np.float64)
    centres = np.column_stack([(y0 + y1) / 2, (x0 + x1) / 2])
    half = np.hypot(y1 - y0, x1 - x0) / 2
    # A k-d tree over box centres finds candidates; the few boxes much larger
    # than the rest would inflate its search radius, so they are paired with
    # everyone instead.
    limit = 2.0 * float(np.median(half)) + 1.0
    small = np.flatnonzero(half <= limit)
    candidates = []
    if small.size >= 2:
        tree = cKDTree(centres[small])
        found = tree.query_pairs(radius + 2 * limit + 2, output_type="ndarray")
        candidates.append(small[found])
    for big in np.flatnonzero(half > limit):
        others = np.setdiff1d(np.arange(n), [big])
        others = others[(half[others] <= limit) | (others > big)]
        candidates.append(np.column_stack([np.full(others.size, big), others]))
    if not candidates:
        return np.zeros((0, 2), dtype=np.intp)
    pairs = np.concatenate(candidates).astype(np.intp)
    i, j = pairs[:, 0], pairs[:, 1]
    gap_y = np.maximum(0, np.maximum(y0[i] - y1[j], y0[j] - y1[i]) + 1)
    gap_x = np.maximum(0, np.maximum(x0[i] - x1[j], x0[j] - x1[i]) + 1)
    return pairs[gap_y**2 + gap_x**2 <= radius**2]


def _border_term_2d(inst: np.ndarray, w0: float, sigma: float) -> np.ndarray:
    """Border term of eq. 2 for 2D instance labels (0 on foreground).

    A background pixel x has a term of at least the tolerance only if
    ``d1 + d2 <= R`` for its nearest objects A and B.  Then ``d1 <= R / 2``,
    ``d2 <= R`` and A, B are within R of each other.  So only objects with a
    neighbour within R need a distance transform, and object B only on a crop
    that holds the pixels within R/2 of B (where B may be nearest) and those
    within R/2 of a neighbour A and within R of B (where B may be second):
    the hull of ``box(B) +- ceil(R/2)`` and of ``(box(A) +- ceil(R/2)) &
    (box(B) +- ceil(R))`` over its neighbours A.  Each crop contains its whole
    object, so its distances are exact; a pixel left out of some crops sees a
    subset of the objects, which can only raise d1 and d2, i.e. lower a term
    that is below the tolerance anyway.
    """
    term = np.zeros(inst.shape, dtype=np.float32)
    radius = border_cutoff(w0, sigma)
    if radius == 0.0 or inst.size == 0 or inst.max() <= 0:
        return term
    if inst.max() > inst.size:
        # find_objects makes one entry per id up to the largest: compact sparse ids.
        inst = relabel_sequential(inst)
    found = ndi.find_objects(inst)
    labels = np.array([i + 1 for i, box in enumerate(found) if box is not None])
    if labels.size < 2:
        return term
    boxes = np.array(
        [(r.start, r.stop, c.start, c.stop) for r, c in (found[i - 1] for i in labels)]
    )
    pairs = _neighbour_pairs(boxes, radius)
    if pairs.size == 0:
        return term
    h, w = inst.shape
    full, half = math.ceil(radius), math.ceil(radius / 2)
    grown_full = boxes + np.array([-full, full, -full, full])
    grown_half = boxes + np.array([-half, half, -half, half])
    crops = grown_half.copy()
    for b, a in (pairs.T, pairs.T[::-1]):  # b: object whose crop grows, a: its neighbour
        lo_y = np.maximum(grown_full[b, 0], grown_half[a, 0])
        hi_y = np.minimum(grown_full[b, 1], grown_half[a, 1])
        lo_x = np.maximum(grown_full[b, 2], grown_half[a, 2])
        hi_x = np.minimum(grown_full[b, 3], grown_half[a, 3])
        overlap = (lo_y < hi_y) & (lo_x < hi_x)
        b, lo_y, hi_y, lo_x, hi_x = (v[overlap] for v in (b, lo_y, hi_y, lo_x, hi_x))
        np.minimum.at(crops[:, 0], b, lo_y)
        np.maximum.at(crops[:, 1], b, hi_y)
        np.minimum.at(crops[:, 2], b, lo_x)
        np.maximum.at(crops[:, 3], b, hi_x)
    np.clip(crops[:, :2], 0, h, out=crops[:, :2])
    np.clip(crops[:, 2:], 0, w, out=crops[:, 2:])
    # Running nearest and second-nearest *squared* distances (exact integers;
    # the order of two distances is that of their squares); "far" = not in any crop.
    dtype = np.int32 if h * h + w * w < 2**31 - 1 else np.int64
    far = np.iinfo(dtype).max
    d1 = np.full(inst.shape, far, dtype=dtype)
    d2 = np.full(inst.shape, far, dtype=dtype)
    todo = np.unique(pairs)
    for label, (y0, y1, x0, x1) in zip(labels[todo].tolist(), crops[todo].tolist(), strict=True):
        # Feature transform only: the squared distance follows from the nearest
        # object pixel's coordinates, cheaper than scipy's float64 distances.
        nearest = ndi.distance_transform_edt(
            inst[y0:y1, x0:x1] != label, return_distances=False, return_indices=True
        ).astype(dtype, copy=False)
        dy = nearest[0] - np.arange(y1 - y0, dtype=dtype)[:, None]
        dx = nearest[1] - np.arange(x1 - x0, dtype=dtype)[None, :]
        np.multiply(dy, dy, out=dy)
        dist_sq = np.multiply(dx, dx, out=dx)
        dist_sq += dy
        near, second = d1[y0:y1, x0:x1], d2[y0:y1, x0:x1]
        runner_up = np.maximum(near, dist_sq)
        np.minimum(near, dist_sq, out=near)
        np.minimum(second, runner_up, out=second)
    # A term needs d1 + d2 <= R, so d2 <= R: skip every other pixel.
    candidates = (inst == 0) & (d2 <= radius * radius)
    s = np.sqrt(d1[candidates], dtype=np.float64) + np.sqrt(d2[candidates], dtype=np.float64)
    term[candidates] = w0 * np.exp(-(s * s) / (2.0 * sigma * sigma))
    return term


def border_weight_map(labels: np.ndarray, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """Weight map of Ronneberger et al. (2015), eq. 2.

    ``w = w_c + w0 * exp(-(d1 + d2)**2 / (2 sigma**2))`` on background pixels
    and ``w = w_c`` on foreground pixels; see the module docstring for the
    exact definition and for how it avoids one distance transform per object.

    Parameters
    ----------
    labels : np.ndarray
        Instance labels (each positive id is one object, even if it is not
        connected) or a binary mask (0/1, 0/255 or bool; split into 8-connected
        components).  ``(Y, X)``, or a stack ``(Z, Y, X)`` processed slice by
        slice (``w_c`` and the objects per slice).
    w0 : float
        Weight of the border term (paper: 10).
    sigma : float
        Width of the border term in pixels (paper: about 5).

    Returns
    -------
    np.ndarray
        float32 weights of the labels' shape, within 1e-4 of the definition.

    Raises
    ------
    InputError
        For labels that are not 2D/3D numeric arrays, a negative or non-finite
        ``w0``, or a ``sigma`` that is not positive.

    Notes
    -----
    Touching objects of an instance mask share a border with no background
    between them, so the border term has nowhere to act.  To train as in the
    paper, separate them first: ``border_weight_map(np.where(training_target(
    labels), labels, 0))`` puts the large weights on the separation gaps (or
    use :func:`target_and_weights`).
    """
    a = _check_labels(labels)
    if not (math.isfinite(w0) and w0 >= 0):
        raise InputError(f"w0 must be a finite number >= 0, got {w0!r}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise InputError(f"sigma must be a finite number > 0, got {sigma!r}")
    inst = as_instances(a)
    weights = class_balance_weights(a)
    if a.ndim == 2:
        weights += _border_term_2d(inst, float(w0), float(sigma))
    else:
        for z in range(a.shape[0]):
            weights[z] += _border_term_2d(inst[z], float(w0), float(sigma))
    return weights
