"""Object scores: matching objects by IoU, object F1, average precision and the DSB score.

Objects are the instances of a label image, or the 8-connected components of
a binary mask (:func:`~napari_unet.core.postprocess.as_instances`).  A
predicted and a true object match when their IoU reaches the threshold; the
matching is one-to-one (Hungarian on the IoUs) for every threshold.  When
neither side has any object, every score is 1.0, as in
:mod:`napari_unet.core.metrics`, which re-exports these functions.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from napari_unet.core.errors import InputError
from napari_unet.core.postprocess import as_instances


def check_pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as numpy arrays, after checking that their shapes agree."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise InputError(
            f"prediction shape {pred.shape} differs from ground-truth shape {truth.shape}"
        )
    return pred, truth


def slice_pairs(
    pred: np.ndarray, truth: np.ndarray, iou_threshold: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Check a prediction, its truth and an IoU threshold; return their 2D slices paired.

    Raises
    ------
    InputError
        Shapes that differ, an array that is neither 2D nor a stack, or an IoU
        threshold outside [0, 1).
    """
    pred, truth = check_pair(pred, truth)
    if not 0.0 <= iou_threshold < 1.0:
        raise InputError(f"IoU threshold must be in [0, 1), got {iou_threshold}")
    if pred.ndim not in (2, 3):
        raise InputError(f"masks must be 2D (Y, X) or a stack (Z, Y, X), got shape {pred.shape}")
    return [(pred, truth)] if pred.ndim == 2 else list(zip(pred, truth, strict=True))


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
    slices = slice_pairs(pred, truth, iou_threshold)
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
    pred, truth = check_pair(pred, truth)
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


def object_row(
    pred: np.ndarray, truth: np.ndarray, iou_threshold: float
) -> dict[str, float | int]:
    """Object F1 counts and the average precisions of one 2D slice, matched once.

    The objects and their IoUs are computed once and serve the F1 at
    ``iou_threshold`` and the AP at every threshold of :data:`DSB_THRESHOLDS`.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``, ``tp``, ``fp``, ``fn`` (as
        :func:`object_scores`), ``ap50``, ``ap75``, ``ap90`` and ``dsb`` (as
        :func:`average_precision` and :func:`dsb_score`).
    """
    pi, ti, ious, n_p, n_t = _pair_ious(as_instances(pred), as_instances(truth))
    row: dict[str, float | int] = dict(
        _object_counts(_match_count(pi, ti, ious, iou_threshold), n_p, n_t)
    )
    ap = dict(zip(DSB_THRESHOLDS, _precision_at(ious, n_p, n_t, _DSB), strict=True))
    row.update(ap50=float(ap[0.5]), ap75=float(ap[0.75]), ap90=float(ap[0.9]))
    row["dsb"] = float(np.mean(list(ap.values())))
    return row
