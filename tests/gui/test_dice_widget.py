"""Dice vs ground truth widget: table, threshold curve, live updates, errors."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.core.metrics import (
    average_precision,
    dice,
    dice_sweep,
    dsb_score,
    iou,
    object_scores,
)
from napari_unet.core.postprocess import mask_from_proba
from napari_unet.gui.dice_widget import DiceWidget
from napari_unet.gui.segment_widget import SegmentWidget
from napari_unet.gui.session import PredictionRecord, get_session

pytestmark = pytest.mark.gui


def scene(seed=0, shape=(64, 64)):
    """Ground-truth labels, a probability map that roughly agrees, and a mask from it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    truth = np.zeros(shape, np.int32)
    prob = rng.uniform(0.0, 0.3, shape).astype(np.float32)
    for i, (cy, cx, r) in enumerate([(16, 16, 7), (40, 44, 9), (20, 48, 5), (50, 12, 6)], 1):
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        truth[disk] = i
        grown = (yy - cy) ** 2 + (xx - cx) ** 2 < (r + 2) ** 2
        prob[grown] = rng.uniform(0.35, 0.65, grown.sum())
        prob[disk] = rng.uniform(0.6, 1.0, disk.sum())
    return truth, prob


def wait_computed(qtbot, widget, count):
    qtbot.waitUntil(lambda: widget.computations > count, timeout=5_000)


def table_values(widget):
    return [
        [widget.table.item(r, c).text() for c in range(widget.table.columnCount())]
        for r in range(widget.table.rowCount())
    ]


def test_table_equals_core_scores_and_follows_mask_edits(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    truth, prob = scene()
    mask = mask_from_proba(prob, 0.5)
    viewer.add_image(prob * 100, name="cells")
    viewer.add_labels(truth, name="cells ground truth")
    mask_layer = viewer.add_labels(mask.copy(), name="cells mask")
    widget = DiceWidget(viewer)
    assert widget.truth_combo.currentText() == "cells ground truth"
    widget.pred_combo.set_layer("cells mask")
    assert widget.compute()
    assert widget.error == ""
    (row,) = widget.rows
    assert row["dice"] == pytest.approx(dice(mask, truth))
    assert row["iou"] == pytest.approx(iou(mask, truth))
    assert row["f1"] == pytest.approx(object_scores(mask, truth)["f1"])
    ap = average_precision(mask, truth)
    assert row["ap75"] == pytest.approx(ap[0.75])
    assert row["dsb"] == pytest.approx(dsb_score(mask, truth))
    assert table_values(widget) == [
        [
            "image",
            f"{dice(mask, truth):.3f}",
            f"{iou(mask, truth):.3f}",
            f"{object_scores(mask, truth)['f1']:.3f}",
            f"{ap[0.5]:.3f}",
            f"{ap[0.75]:.3f}",
            f"{ap[0.9]:.3f}",
            f"{dsb_score(mask, truth):.3f}",
        ]
    ]
    # A plain mask carries no probabilities: no curve, no best threshold.
    assert widget.sweep is None and not widget.best_button.isEnabled()

    # A paint stroke on the mask updates the table (debounced).
    count = widget.computations
    mask_layer.brush_size = 9
    mask_layer.paint((5, 58), 1)  # a false positive in the background
    wait_computed(qtbot, widget, count)
    edited = np.asarray(mask_layer.data)
    assert widget.rows[0]["dice"] == pytest.approx(dice(edited, truth))
    assert widget.rows[0]["dice"] != pytest.approx(dice(mask, truth))

    # Replacing the data (as the Correct widget's actions do) updates it too.
    count = widget.computations
    mask_layer.data = truth > 0
    wait_computed(qtbot, widget, count)
    assert widget.rows[0]["dice"] == pytest.approx(1.0)


def test_probability_prediction_follows_threshold_and_best_button(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    truth, prob = scene(seed=1)
    viewer.add_labels(truth, name="cells ground truth")
    viewer.add_image(prob, name="cells probability")
    segment = SegmentWidget(viewer)  # its slider follows the session threshold
    widget = DiceWidget(viewer)
    session = get_session(viewer)
    assert widget.pred_combo.currentText() == "cells probability"
    assert widget.compute()
    assert widget.rows[0]["dice"] == pytest.approx(dice(mask_from_proba(prob, 0.5), truth))

    count = widget.computations
    session.set_threshold(0.8)
    wait_computed(qtbot, widget, count)
    assert widget.rows[0]["dice"] == pytest.approx(dice(mask_from_proba(prob, 0.8), truth))
    assert widget.plot.marker_x("current") == pytest.approx(0.8)

    thresholds, dices, best_t, best_d = dice_sweep(prob, truth)
    assert widget.sweep[2] == pytest.approx(best_t) and widget.sweep[3] == pytest.approx(best_d)
    xs, ys = widget.plot.curve("Dice")
    np.testing.assert_allclose(xs, thresholds)
    np.testing.assert_allclose(ys, dices)
    assert widget.plot.marker_x("best") == pytest.approx(best_t)
    assert widget.plot.marker_y("best") == pytest.approx(best_d)
    assert 0.35 < best_t < 0.65  # the grown rims sit at 0.35-0.65

    assert widget.best_button.isEnabled()
    count = widget.computations
    assert widget.use_best_threshold() == pytest.approx(best_t)
    assert session.threshold == pytest.approx(best_t)
    assert segment.threshold_slider.value() == pytest.approx(best_t, abs=1e-3)
    wait_computed(qtbot, widget, count)
    assert widget.rows[0]["dice"] == pytest.approx(best_d)


def test_cached_probabilities_of_a_mask_give_the_curve(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    truth, prob = scene(seed=2)
    viewer.add_image(prob, name="cells probability")
    viewer.add_labels(truth, name="cells ground truth")
    viewer.add_labels(mask_from_proba(prob, 0.5), name="cells mask")
    session = get_session(viewer)
    session.add_prediction(
        PredictionRecord(
            image_layer="cells", prob_layer="cells probability", mask_layer="cells mask", prob=prob
        )
    )
    widget = DiceWidget(viewer)
    widget.pred_combo.set_layer("cells mask")
    assert widget.compute()
    assert widget.sweep is not None
    assert widget.sweep[2] == pytest.approx(dice_sweep(prob, truth)[2])

    # Segment announcing a rewrite of this mask refreshes the table.
    count = widget.computations
    viewer.layers["cells mask"].data = mask_from_proba(prob, 0.9)
    session.update_prediction(session.predictions["cells mask"])
    wait_computed(qtbot, widget, count)
    assert widget.rows[0]["dice"] == pytest.approx(dice(mask_from_proba(prob, 0.9), truth))


def test_stack_rows_per_slice_and_mean(make_napari_viewer):
    viewer = make_napari_viewer()
    truths, probs = zip(*(scene(seed=s) for s in range(3)), strict=True)
    truth, prob = np.stack(truths), np.stack(probs)
    pred = mask_from_proba(prob, 0.5)
    pred[2] = 0  # one slice missed entirely
    viewer.add_labels(truth, name="stack ground truth")
    viewer.add_labels(pred, name="stack mask")
    widget = DiceWidget(viewer)
    widget.pred_combo.set_layer("stack mask")
    assert widget.compute()
    table = table_values(widget)
    assert [line[0] for line in table] == ["0", "1", "2", "mean"]
    per_slice = [dice(pred[z], truth[z]) for z in range(3)]
    assert [float(line[1]) for line in table[:3]] == pytest.approx(per_slice, abs=5e-4)
    assert float(table[3][1]) == pytest.approx(np.mean(per_slice), abs=5e-4)
    assert widget.rows[2]["dice"] == 0.0 and widget.rows[2]["f1"] == 0.0


def test_errors_no_layer_and_shape_mismatch(make_napari_viewer, messages):
    viewer = make_napari_viewer()
    widget = DiceWidget(viewer)
    assert not widget.compute()
    assert "choose a prediction layer" in widget.error
    assert any("choose a prediction layer" in m for m in messages)

    truth, prob = scene()
    viewer.add_labels(truth[:32], name="crop ground truth")
    viewer.add_labels(mask_from_proba(prob, 0.5), name="cells mask")
    widget.pred_combo.set_layer("cells mask")
    widget.truth_combo.set_layer("crop ground truth")
    assert not widget.compute()
    assert "shape (32, 64)" in widget.error and "(64, 64)" in widget.error
    assert "\n" not in widget.error
    assert widget.table.rowCount() == 0
    assert widget.error in widget.status.text()

    # A raw image is not a probability map.
    viewer.add_image((prob * 255).astype(np.uint8), name="raw")
    widget.pred_combo.set_layer("raw")
    widget.truth_combo.set_layer("cells mask")
    assert not widget.compute()
    assert "not a probability map" in widget.error


def test_stack_mean_is_pinned_and_current_slice_follows_the_viewer(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    truths, probs = zip(*(scene(seed=s) for s in range(12)), strict=True)
    truth, prob = np.stack(truths), np.stack(probs)
    pred = mask_from_proba(prob, 0.5)
    viewer.add_labels(truth, name="stack ground truth")
    viewer.add_labels(pred, name="stack mask")
    widget = DiceWidget(viewer)
    widget.table.setMaximumHeight(90)  # a compact panel: a few rows in view
    widget.show()
    qtbot.waitExposed(widget)
    widget.pred_combo.set_layer("stack mask")
    assert widget.compute()
    # The mean has its own line under the table, in view whatever the table shows.
    assert widget.mean_label.isVisible()
    assert f"Dice {widget.mean['dice']:.3f}" in widget.mean_label.text()
    assert "12 slices" in widget.mean_label.text()

    def highlighted():
        from qtpy.QtCore import Qt

        return [
            r
            for r in range(widget.table.rowCount())
            if widget.table.item(r, 0).background().style() != Qt.BrushStyle.NoBrush
        ]

    assert widget.current_row == viewer.dims.current_step[0]
    assert highlighted() == [widget.current_row]
    viewer.dims.set_current_step(0, 9)
    assert widget.current_row == 9 and highlighted() == [9]
    # Scrolled into view in the short table.
    rect = widget.table.visualItemRect(widget.table.item(9, 0))
    assert widget.table.viewport().rect().contains(rect.center())
    viewer.dims.set_current_step(0, 2)
    assert widget.current_row == 2 and highlighted() == [2]
    # A new computation (a mask edit) keeps the highlight on the viewer's slice.
    count = widget.computations
    viewer.layers["stack mask"].data = mask_from_proba(prob, 0.6)
    wait_computed(qtbot, widget, count)
    assert highlighted() == [2]


def test_no_mean_line_for_one_image(make_napari_viewer):
    viewer = make_napari_viewer()
    truth, prob = scene()
    viewer.add_labels(truth, name="cells ground truth")
    viewer.add_labels(mask_from_proba(prob, 0.5), name="cells mask")
    widget = DiceWidget(viewer)
    widget.pred_combo.set_layer("cells mask")
    assert widget.compute()
    assert not widget.mean_label.isVisible() and widget.current_row is None
