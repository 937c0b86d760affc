"""Segmentation scores: Dice, IoU, object F1, average precision and the Dice sweep.

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
from scipy.optimize import linear_sum_assignment

from napari_unet.core.errors import InputError
from napari_unet.core.postprocess import as_instances

SCORE_KEYS = ("dice", "iou", "precision", "recall", "f1", "ap50", "ap75", "ap90", "dsb")


def _check_pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise InputError(
            f"prediction shape {pred.shape} differs from ground-truth shape {truth.shape}"
        )
    return pred, truth


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
    inter, n_p, n_t = _overlap_counts(*_check_pair(pred, truth))
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
    inter, n_p, n_t = _overlap_counts(*_check_pair(pred, truth))
    union = n_p + n_t - inter
    return 1.0 if union == 0 else inter / union


def _dense_ids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (ids, area per id, number of objects) with ids small enough to bincount.

    Ids are used as they are (gaps cost only empty bins) unless they are huge
    and sparse, in which case they are renumbered.
    """
    flat = labels.ravel()
    hi = int(flat.max()) if flat.size else 0
    if hi > flat.size + 1024:  # also keeps pred_id * n_true_ids within int64
        values, flat = np.unique(flat, return_inverse=True)
        if values[0] != 0:
            flat = flat + 1
    flat = flat.astype(np.int64, copy=False)
    areas = np.bincount(flat, minlength=1)
    return flat, areas, int(np.count_nonzero(areas[1:]))


def _pair_ious(pred: np.ndarray, truth: np.ndarray):
    """IoU of every overlapping (pred, true) object pair, and the object counts.

    Returns ``(pred index, true index, IoU, n_pred, n_true)``; the index arrays
    are empty when either side has no object.
    """
    p, area_p, n_p = _dense_ids(pred)
    t, area_t, n_t = _dense_ids(truth)
    if n_p == 0 or n_t == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0), n_p, n_t
    stride = area_t.size
    # Contingency table of (pred id, true id) over all pixels, kept sparse.
    pair = p * stride + t
    if area_p.size * stride <= 1 << 24:
        table = np.bincount(pair, minlength=area_p.size * stride)
        keys = np.flatnonzero(table)
        inter = table[keys]
    else:
        keys, inter = np.unique(pair, return_counts=True)
    pi, ti = np.divmod(keys, stride)
    overlap = (pi > 0) & (ti > 0)  # pairs with the background are not objects
    pi, ti, inter = pi[overlap], ti[overlap], inter[overlap]
    ious = inter / (area_p[pi] + area_t[ti] - inter)
    return pi, ti, ious, n_p, n_t


def _matched_pairs(pred: np.ndarray, truth: np.ndarray, threshold: float) -> tuple[int, int, int]:
    """Count (true positives, predicted objects, true objects) in one image."""
    pi, ti, ious, n_p, n_t = _pair_ious(pred, truth)
    return _match_count(pi, ti, ious, threshold), n_p, n_t


def _match_count(pi: np.ndarray, ti: np.ndarray, ious: np.ndarray, threshold: float) -> int:
    """Count the one-to-one matches with IoU above ``threshold`` among the pairs."""
    ok = ious > threshold
    if threshold >= 0.5:
        # IoU > 0.5 with one object leaves less than half of the other side's
        # pixels for any other match, so every object has at most one partner.
        return int(np.count_nonzero(ok))
    # Below 0.5 an object may qualify for several partners: maximise the number
    # of matches (then their IoU) with an optimal one-to-one assignment.
    pi, ti, ious = pi[ok], ti[ok], ious[ok]
    if pi.size == 0:
        return 0
    rows, row_idx = np.unique(pi, return_inverse=True)
    cols, col_idx = np.unique(ti, return_inverse=True)
    score = np.zeros((rows.size, cols.size))
    score[row_idx, col_idx] = 1.0 + ious / 2.0
    r, c = linear_sum_assignment(score, maximize=True)
    return int(np.count_nonzero(score[r, c] > 0))


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def object_scores(
    pred: np.ndarray, truth: np.ndarray, iou_threshold: float = 0.5
) -> dict[str, float | int]:
    """Object-level precision, recall and F1 with one-to-one IoU matching.

    A predicted object and a true object match when their IoU exceeds
    ``iou_threshold`` (strictly); each object matches at most one partner.  At
    the default 0.5 and above the matching is unique; below 0.5 an optimal
    assignment maximises the number of matches.

    Parameters
    ----------
    pred, truth : np.ndarray
        Instance labels (each positive id is one object) or binary masks
        (split into 8-connected components), same shape.  A stack ``(Z, Y, X)``
        is matched slice by slice and the counts are summed.
    iou_threshold : float
        In [0, 1).

    Returns
    -------
    dict
        ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)``,
        ``f1 = 2 tp / (2 tp + fp + fn)``, and the counts ``tp``, ``fp``, ``fn``.
        A ratio with a zero denominator is 0.0, except that all three are 1.0
        when neither side has an object.
    """
    pred, truth = _check_pair(pred, truth)
    if not 0.0 <= iou_threshold < 1.0:
        raise InputError(f"IoU threshold must be in [0, 1), got {iou_threshold}")
    if pred.ndim not in (2, 3):
        raise InputError(f"masks must be 2D (Y, X) or a stack (Z, Y, X), got shape {pred.shape}")
    slices = [(pred, truth)] if pred.ndim == 2 else list(zip(pred, truth, strict=True))
    tp = n_pred = n_true = 0
    for p, t in slices:
        a, b, c = _matched_pairs(as_instances(p), as_instances(t), float(iou_threshold))
        tp, n_pred, n_true = tp + a, n_pred + b, n_true + c
    return _object_counts(tp, n_pred, n_true)


def _object_counts(tp: int, n_pred: int, n_true: int) -> dict[str, float | int]:
    """Precision, recall, F1 and the counts of :func:`object_scores` from three counts."""
    fp, fn = n_pred - tp, n_true - tp
    if n_pred == 0 and n_true == 0:
        precision = recall = f1 = 1.0
    else:
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


#: IoU thresholds of the DSB 2018 score: 0.5, 0.55, ..., 0.95.
DSB_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))
_DSB = np.asarray(DSB_THRESHOLDS)


def average_precision(
    pred: np.ndarray, truth: np.ndarray, thresholds: tuple[float, ...] = DSB_THRESHOLDS
) -> dict[float, float]:
    """Average precision ``tp / (tp + fp + fn)`` at each IoU threshold.

    This is the object score of the 2018 Data Science Bowl (and of StarDist
    and Cellpose papers): a true positive is a predicted object with IoU
    above the threshold with a true object (one-to-one; thresholds must be
    >= 0.5, where the match is unique).  The DSB score is the mean over
    :data:`DSB_THRESHOLDS` (see :func:`dsb_score`).

    Parameters
    ----------
    pred, truth : np.ndarray
        Instance labels or binary masks (8-connected components), same shape.
        A stack ``(Z, Y, X)`` is scored slice by slice and the slices are
        averaged, as the DSB averages its images.
    thresholds
        IoU thresholds in [0.5, 1).

    Returns
    -------
    dict
        Threshold -> AP; 1.0 where neither side has an object.
    """
    pred, truth = _check_pair(pred, truth)
    if pred.ndim not in (2, 3):
        raise InputError(f"masks must be 2D (Y, X) or a stack (Z, Y, X), got shape {pred.shape}")
    ts = np.asarray(thresholds, dtype=float)
    if ts.size == 0 or ts.min() < 0.5 or ts.max() >= 1.0:
        raise InputError(f"AP thresholds must lie in [0.5, 1), got {tuple(thresholds)}")
    slices = [(pred, truth)] if pred.ndim == 2 else list(zip(pred, truth, strict=True))
    total = np.zeros(ts.size)
    for p, t in slices:
        _, _, ious, n_p, n_t = _pair_ious(as_instances(p), as_instances(t))
        total += _precision_at(ious, n_p, n_t, ts)
    return {float(t): float(v / len(slices)) for t, v in zip(ts, total, strict=True)}


def _precision_at(ious: np.ndarray, n_p: int, n_t: int, ts: np.ndarray) -> np.ndarray:
    """``tp / (tp + fp + fn)`` at each threshold (all >= 0.5) of one image's pair IoUs."""
    if n_p == 0 and n_t == 0:
        return np.ones(ts.size)
    tp = (ious[None, :] > ts[:, None]).sum(axis=1)
    return tp / (n_p + n_t - tp)


def dsb_score(pred: np.ndarray, truth: np.ndarray) -> float:
    """Return the DSB 2018 score: mean :func:`average_precision` over IoU 0.5:0.05:0.95."""
    return float(np.mean(list(average_precision(pred, truth).values())))


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
    prob, truth = _check_pair(prob, truth)
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
    pred, truth = _check_pair(pred, truth)
    if not 0.0 <= iou_threshold < 1.0:
        raise InputError(f"IoU threshold must be in [0, 1), got {iou_threshold}")
    if pred.ndim not in (2, 3):
        raise InputError(f"masks must be 2D (Y, X) or a stack (Z, Y, X), got shape {pred.shape}")
    pairs = [(pred, truth)] if pred.ndim == 2 else list(zip(pred, truth, strict=True))
    rows = []
    for z, (p, t) in enumerate(pairs):
        row: dict[str, float | int] = {"slice": z, "dice": dice(p, t), "iou": iou(p, t)}
        # Objects and their overlaps once per slice, for F1 and every AP threshold.
        pi, ti, ious, n_p, n_t = _pair_ious(as_instances(p), as_instances(t))
        row.update(_object_counts(_match_count(pi, ti, ious, iou_threshold), n_p, n_t))
        ap = dict(zip(DSB_THRESHOLDS, _precision_at(ious, n_p, n_t, _DSB), strict=True))
        row.update(ap50=float(ap[0.5]), ap75=float(ap[0.75]), ap90=float(ap[0.9]))
        row["dsb"] = float(np.mean(list(ap.values())))
        rows.append(row)
    mean = {
        key: float(np.mean([row[key] for row in rows])) if rows else float("nan")
        for key in SCORE_KEYS
    }
    return rows, mean
