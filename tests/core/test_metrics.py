"""Dice, IoU, object F1 and the Dice-versus-threshold sweep."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.core.errors import InputError
from napari_unet.core.metrics import dice, dice_sweep, iou, object_scores, scores_per_slice
from napari_unet.core.postprocess import mask_from_proba


def squares(*boxes, shape=(20, 20), dtype=np.int32) -> np.ndarray:
    """Instance labels with one rectangle (y0, y1, x0, x1) per id, ids 1..n."""
    labels = np.zeros(shape, dtype=dtype)
    for i, (y0, y1, x0, x1) in enumerate(boxes, start=1):
        labels[y0:y1, x0:x1] = i
    return labels


def test_both_empty_is_perfect():
    empty = np.zeros((5, 5), dtype=np.uint8)
    assert dice(empty, empty) == 1.0
    assert iou(empty, empty) == 1.0
    scores = object_scores(empty, empty)
    assert scores == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 0, "fp": 0, "fn": 0}


def test_one_side_empty_is_zero():
    empty = np.zeros((5, 5), dtype=np.uint8)
    full = np.ones((5, 5), dtype=np.uint8)
    assert dice(empty, full) == 0.0 and dice(full, empty) == 0.0
    assert iou(empty, full) == 0.0
    assert object_scores(empty, full) == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "tp": 0,
        "fp": 0,
        "fn": 1,
    }
    assert object_scores(full, empty)["fp"] == 1


def test_dice_and_iou_known_values():
    pred = np.zeros((4, 4), dtype=np.uint8)
    truth = np.zeros((4, 4), dtype=np.uint8)
    pred[:2] = 1  # 8 pixels
    truth[1:3] = 1  # 8 pixels, 4 shared
    assert dice(pred, truth) == pytest.approx(0.5)
    assert iou(pred, truth) == pytest.approx(4 / 12)


def test_encodings_agree_0_1_vs_0_255_vs_labels():
    labels = squares((2, 8, 2, 8), (10, 15, 10, 18))
    pred = squares((3, 8, 2, 9), (11, 15, 10, 17))
    for truth in (labels, (labels > 0).astype(np.uint8), np.where(labels > 0, 255, 0), labels > 0):
        assert dice(pred, truth) == pytest.approx(dice(pred > 0, labels > 0))
        assert iou(pred * 255, truth) == pytest.approx(iou(pred > 0, labels > 0))
    # 0/255 is foreground everywhere it is non-zero, never a grey value.
    assert dice(np.full((3, 3), 255, np.uint8), np.ones((3, 3), np.uint8)) == 1.0


def test_shape_mismatch_is_an_input_error():
    with pytest.raises(InputError, match="shape"):
        dice(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(InputError, match="shape"):
        object_scores(np.zeros((3, 3)), np.zeros((4, 3)))


def test_object_scores_known_configuration():
    truth = squares((0, 4, 0, 4), (0, 4, 10, 14), (10, 14, 0, 4), (10, 14, 10, 14))
    pred = np.zeros_like(truth)
    pred[0:4, 0:4] = 1  # exact match: IoU 1
    pred[0:4, 10:13] = 2  # IoU 12/16 = 0.75: match
    pred[10:14, 0:2] = 3  # IoU 8/16 = 0.5: not > 0.5, no match
    pred[17:19, 17:19] = 4  # false positive
    scores = object_scores(pred, truth)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (2, 2, 2)
    assert scores["precision"] == pytest.approx(0.5)
    assert scores["recall"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx(0.5)
    # A lower threshold matches the half-covered square as well.
    low = object_scores(pred, truth, iou_threshold=0.3)
    assert (low["tp"], low["fp"], low["fn"]) == (3, 1, 1)


def test_merged_prediction_matches_at_most_one_object():
    truth = squares((2, 8, 2, 8), (2, 8, 8, 14))  # two touching squares
    merged = (truth > 0).astype(np.uint8)  # binary: one component covering both
    scores = object_scores(merged, truth)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (0, 1, 2)
    # Each square has IoU 0.5 with the union; a 0.4 threshold allows only one match.
    low = object_scores(merged, truth, iou_threshold=0.4)
    assert (low["tp"], low["fp"], low["fn"]) == (1, 0, 1)


def test_binary_masks_are_split_into_components():
    truth = squares((1, 5, 1, 5), (10, 15, 10, 15))
    assert object_scores(truth > 0, truth)["f1"] == 1.0
    assert object_scores(np.where(truth > 0, 255, 0), truth > 0)["tp"] == 2


def test_label_ids_do_not_matter():
    truth = squares((1, 5, 1, 5), (10, 15, 10, 15), (1, 5, 12, 18))
    shuffled = np.select([truth == 1, truth == 2, truth == 3], [900, 7, 65000], 0).astype(
        np.uint16
    )
    assert object_scores(shuffled, truth)["tp"] == 3
    huge = np.where(truth > 0, truth.astype(np.int64) * 10**12, 0)
    assert object_scores(huge, truth)["tp"] == 3


def test_object_scores_on_many_random_objects_is_exact():
    rng = np.random.default_rng(0)
    truth = np.zeros((200, 200), dtype=np.int32)
    centres = [(y, x) for y in range(10, 200, 20) for x in range(10, 200, 20)]
    for i, (y, x) in enumerate(centres, start=1):
        truth[y - 5 : y + 5, x - 5 : x + 5] = i
    # Shift each object by 0..6 pixels: IoU (10 - s) / (10 + s) > 0.5 iff s <= 3.
    pred = np.zeros_like(truth)
    shifts = rng.integers(0, 7, len(centres))
    for i, ((y, x), s) in enumerate(zip(centres, shifts, strict=True), start=1):
        pred[y - 5 : y + 5, x - 5 + s : x + 5 + s] = i
    scores = object_scores(pred, truth)
    assert scores["tp"] == int((shifts <= 3).sum())
    assert scores["fp"] == scores["fn"] == int((shifts > 3).sum())


def test_object_scores_on_stack_sums_slices():
    a = squares((1, 5, 1, 5))
    b = squares((1, 5, 1, 5), (10, 15, 10, 15))
    pred = np.stack([a, a])
    truth = np.stack([a, b])
    scores = object_scores(pred, truth)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (2, 0, 1)


def test_bad_iou_threshold():
    with pytest.raises(InputError):
        object_scores(np.zeros((3, 3)), np.zeros((3, 3)), iou_threshold=1.0)


def test_dice_sweep_finds_the_constructed_best_threshold():
    truth = np.zeros((40, 40), dtype=np.uint8)
    truth[10:30, 10:30] = 1
    prob = np.full(truth.shape, 0.1, dtype=np.float32)
    prob[truth > 0] = 0.7
    prob[0:2, :] = 0.45  # false positives until the threshold passes 0.45
    prob[10:20, 10:30] = 0.3  # half the truth: only low thresholds catch it
    thresholds, dices, best_t, best_d = dice_sweep(prob, truth)
    assert thresholds.shape == dices.shape == (101,)
    # Every threshold agrees with thresholding and computing the Dice directly.
    for t, d in zip(thresholds, dices, strict=True):
        assert d == pytest.approx(dice(mask_from_proba(prob, t), truth), abs=1e-12)
    assert best_d == dices.max()
    # Dice is best between 0.11 and 0.30 (catches all truth, none of the 0.1
    # background) and the sweep picks the middle of that plateau.
    assert 0.11 <= best_t <= 0.30
    assert best_t == pytest.approx(0.2, abs=0.011)
    assert best_d == pytest.approx(2 * 400 / (400 + 400 + 80))


def test_dice_sweep_custom_unsorted_thresholds_and_float64():
    rng = np.random.default_rng(1)
    prob = rng.random((64, 64))
    truth = prob + rng.normal(0, 0.1, prob.shape) > 0.6
    thresholds = np.array([0.9, 0.2, 0.6, 0.55, 0.0, 1.0])
    t, d, best_t, best_d = dice_sweep(prob, truth, thresholds)
    np.testing.assert_array_equal(t, thresholds)
    for ti, di in zip(t, d, strict=True):
        assert di == pytest.approx(dice(prob >= ti, truth))
    assert best_d == d.max() and best_t == t[np.argmax(d)]


def test_dice_sweep_edge_cases():
    empty = np.zeros((8, 8))
    _, dices, best_t, best_d = dice_sweep(np.zeros((8, 8), np.float32), empty, [0.5, 0.7])
    np.testing.assert_array_equal(dices, [1.0, 1.0])
    assert best_d == 1.0 and best_t in (0.5, 0.7)
    with pytest.raises(InputError, match="NaN"):
        dice_sweep(np.full((2, 2), np.nan), np.zeros((2, 2)))
    with pytest.raises(InputError):
        dice_sweep(np.zeros((2, 2)), np.zeros((2, 2)), thresholds=[])


def test_dice_sweep_matches_thresholding_at_exact_edges():
    # Probabilities exactly on float32 thresholds must count as foreground.
    grid = np.linspace(0, 1, 101).astype(np.float32)
    prob = np.tile(grid, (3, 1))
    truth = prob >= np.float32(0.5)
    t, d, _, _ = dice_sweep(prob, truth)
    for ti, di in zip(t, d, strict=True):
        assert di == pytest.approx(dice(mask_from_proba(prob, ti), truth), abs=1e-12)
    assert d[50] == 1.0 and d[51] < 1.0 and d[49] < 1.0


def test_scores_per_slice_rows_and_mean():
    a = squares((1, 5, 1, 5))
    empty = np.zeros_like(a)
    pred = np.stack([a, empty, a])
    truth = np.stack([a, a, empty])
    rows, mean = scores_per_slice(pred, truth)
    assert [r["slice"] for r in rows] == [0, 1, 2]
    assert [r["dice"] for r in rows] == [1.0, 0.0, 0.0]
    assert [r["f1"] for r in rows] == [1.0, 0.0, 0.0]
    assert rows[1]["fn"] == 1 and rows[2]["fp"] == 1
    assert mean["dice"] == pytest.approx(1 / 3) and mean["iou"] == pytest.approx(1 / 3)
    assert [r["dsb"] for r in rows] == [1.0, 0.0, 0.0]
    assert mean["ap90"] == pytest.approx(1 / 3)
    rows2d, mean2d = scores_per_slice(a, a)
    assert len(rows2d) == 1 and mean2d["f1"] == 1.0
