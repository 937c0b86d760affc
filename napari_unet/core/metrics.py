"""Segmentation scores: Dice, IoU, the Dice sweep and the per-slice table.

The object scores (F1, average precision, the DSB score) live in
:mod:`napari_unet.core.object_metrics` and are re-exported here.

Conventions, shared with the rest of the core:

- A pixel is foreground when its value is ``> 0`` on both sides, so binary
  0/1, 0/255, boolean masks and instance labels can be compared freely.  A
  probability map must be thresholded first (see
  :func:`~napari_unet.core.postprocess.mask_from_proba` or :func:`dice_sweep`).
- When neither side has any foreground (or any object), the two agree
  perfectly and every score is 1.0.
- Stacks ``(Z, Y, X)`` are slices of 2D images: objects never connect across
  slices, and :func:`scores_per_slice` gives one row per slice.
"""

from __future__ import annotations

import numpy as np

from napari_unet.core.errors import InputError
from napari_unet.core.object_metrics import (
    DSB_THRESHOLDS,
    average_precision,
    check_pair,
    dsb_score,
    object_row,
    object_scores,
    slice_pairs,
)

SCORE_KEYS = ("dice", "iou", "precision", "recall", "f1", "ap50", "ap75", "ap90", "dsb")


def _overlap_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    p, t = pred > 0, truth > 0
    return int(np.count_nonzero(p & t)), int(np.count_nonzero(p)), int(np.count_nonzero(t))


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient ``2 |P & T| / (|P| + |T|)`` of two masks.

    Parameters
    ----------
    pred, truth : np.ndarray
        Masks or labels of the same shape; label ``> 0`` is foreground.

    Returns
    -------
    float
        Dice in [0, 1]; 1.0 when both masks are empty.
    """
    inter, n_p, n_t = _overlap_counts(*check_pair(pred, truth))
    return 1.0 if n_p + n_t == 0 else 2.0 * inter / (n_p + n_t)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union (Jaccard index) ``|P & T| / |P | T|`` of two masks.

    Parameters
    ----------
    pred, truth : np.ndarray
        Masks or labels of the same shape; label ``> 0`` is foreground.

    Returns
    -------
    float
        IoU in [0, 1]; 1.0 when both masks are empty.
    """
    inter, n_p, n_t = _overlap_counts(*check_pair(pred, truth))
    union = n_p + n_t - inter
    return 1.0 if union == 0 else inter / union


def _count_passed(sorted_t: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each value, the number of sorted thresholds ``t`` with ``t <= value``.

    Equal to ``np.searchsorted(sorted_t, values, side="right")``.  For evenly
    spaced thresholds (the usual 0.00..1.00 grid) the index is guessed by
    arithmetic and then corrected by exact comparisons, several times faster
    than a binary search per pixel.
    """
    k = sorted_t.size
    step = (float(sorted_t[-1]) - float(sorted_t[0])) / (k - 1) if k > 1 else 0.0
    even = step > 0 and np.allclose(
        sorted_t, sorted_t[0] + step * np.arange(k), rtol=0, atol=0.01 * step
    )
    if not even:
        return np.searchsorted(sorted_t, values, side="right")
    scaled = (values - sorted_t.dtype.type(sorted_t[0])) * sorted_t.dtype.type(1.0 / step)
    np.clip(scaled, -1.0, float(k), out=scaled)
    guess = scaled.astype(np.int64)  # truncation toward 0; fixed below
    guess += 1
    np.clip(guess, 0, k, out=guess)
    below = np.concatenate([[-np.inf], sorted_t]).astype(sorted_t.dtype)  # threshold j-1
    above = np.concatenate([sorted_t, [np.inf]]).astype(sorted_t.dtype)  # threshold j
    for _ in range(8):
        down = values < below[guess]
        up = (values >= above[guess]) & (guess < k)  # +inf passes every threshold
        if not (down.any() or up.any()):
            return guess
        guess -= down
        guess += up
    return np.searchsorted(sorted_t, values, side="right")


def dice_sweep(
    prob: np.ndarray, truth: np.ndarray, thresholds: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Dice of ``prob >= t`` against the truth for many thresholds at once.

    One pass bins every pixel by the number of thresholds it reaches
    (``searchsorted``), then cumulative sums give, for every threshold, the
    predicted and the correctly predicted pixel counts: the cost is one sweep
    over the image, not one per threshold.  Thresholds are compared in
    ``prob``'s dtype, exactly like
    :func:`~napari_unet.core.postprocess.mask_from_proba`.

    Parameters
    ----------
    prob : np.ndarray
        Probabilities (any shape, e.g. a stack); NaN is not allowed.
    truth : np.ndarray
        Ground truth of the same shape; label ``> 0`` is foreground.
    thresholds : np.ndarray, optional
        1D thresholds in any order; default ``0.00, 0.01, ..., 1.00``.

    Returns
    -------
    thresholds : np.ndarray
        float64 thresholds, as given.
    dices : np.ndarray
        float64 Dice for each threshold (1.0 where both masks are empty).
    best_threshold : float
        Threshold with the highest Dice.  When several consecutive thresholds
        (in increasing order) tie, the middle one of the first such run is
        chosen, the most robust choice for a slider.
    best_dice : float
        The Dice at ``best_threshold``.
    """
    prob, truth = check_pair(prob, truth)
    if thresholds is None:
        thresholds = np.linspace(0.0, 1.0, 101)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.ndim != 1 or thresholds.size == 0 or not np.all(np.isfinite(thresholds)):
        raise InputError("thresholds must be a non-empty 1D list of finite numbers")
    if prob.dtype.kind not in "biuf":
        raise InputError(f"probabilities must be numeric, got dtype {prob.dtype}")
    if prob.dtype.kind == "f" and np.isnan(prob).any():
        raise InputError("the probability map contains NaN values")
    order = np.argsort(thresholds, kind="stable")
    cmp_dtype = prob.dtype if prob.dtype.kind == "f" else np.float64
    sorted_t = thresholds[order].astype(cmp_dtype)
    # Number of thresholds t with t <= p, i.e. that the pixel passes.
    passed = _count_passed(sorted_t, prob.ravel())
    k = sorted_t.size
    fg = truth.ravel() > 0
    # One bincount for both histograms: foreground pixels go to the upper half.
    hist = np.bincount(passed + (k + 1) * fg, minlength=2 * (k + 1))
    hist_fg = hist[k + 1 :]
    hist_all = hist[: k + 1] + hist_fg
    # Pixels reaching threshold j are those that passed more than j thresholds.
    n_pred = np.cumsum(hist_all[::-1])[::-1][1:]
    n_hit = np.cumsum(hist_fg[::-1])[::-1][1:]
    n_true = int(np.count_nonzero(fg))
    denom = n_pred + n_true
    sorted_dice = np.where(denom > 0, 2.0 * n_hit / np.maximum(denom, 1), 1.0)
    best = int(np.argmax(sorted_dice))
    end = best
    while end + 1 < k and sorted_dice[end + 1] == sorted_dice[best]:
        end += 1
    best = (best + end) // 2
    dices = np.empty(k)
    dices[order] = sorted_dice
    return thresholds, dices, float(thresholds[order][best]), float(sorted_dice[best])


def scores_per_slice(
    pred: np.ndarray, truth: np.ndarray, iou_threshold: float = 0.5
) -> tuple[list[dict[str, float | int]], dict[str, float]]:
    """Dice, IoU and object scores for each slice of a stack, and their means.

    Parameters
    ----------
    pred, truth : np.ndarray
        Masks or labels of the same shape, ``(Y, X)`` (one row) or
        ``(Z, Y, X)`` (one row per slice).
    iou_threshold : float
        Matching threshold for the object scores (see :func:`object_scores`).

    Returns
    -------
    rows : list of dict
        One dict per slice with ``slice``, ``dice``, ``iou``, ``precision``,
        ``recall``, ``f1``, ``tp``, ``fp``, ``fn``, the average precision
        ``ap50``, ``ap75``, ``ap90`` (at IoU 0.5, 0.75, 0.9) and ``dsb`` (the
        DSB 2018 score, see :func:`average_precision`).
    mean : dict
        The mean of every key of :data:`SCORE_KEYS` over the slices (each
        slice counts equally).
    """
    pairs = slice_pairs(pred, truth, iou_threshold)
    rows = []
    for z, (p, t) in enumerate(pairs):
        row: dict[str, float | int] = {"slice": z, "dice": dice(p, t), "iou": iou(p, t)}
        row.update(object_row(p, t, iou_threshold))
        rows.append(row)
    mean = {
        key: float(np.mean([row[key] for row in rows])) if rows else float("nan")
        for key in SCORE_KEYS
    }
    return rows, mean


__all__ = [
    "DSB_THRESHOLDS",
    "SCORE_KEYS",
    "average_precision",
    "dice",
    "dice_sweep",
    "dsb_score",
    "iou",
    "object_scores",
    "scores_per_slice",
]
