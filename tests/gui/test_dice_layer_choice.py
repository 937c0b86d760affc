"""Dice vs ground truth: which layers its boxes start on and follow, and the same-layer guard."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.core.metrics import dice
from napari_unet.core.model import build_model, save_model
from napari_unet.gui.session import get_session

pytestmark = pytest.mark.gui


def disks(shape=(64, 64)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - 20) ** 2 + (xx - 20) ** 2 < 80) | ((yy - 44) ** 2 + (xx - 44) ** 2 < 80)


def dock_segment(viewer, tmp_path):
    _, segment = viewer.window.add_plugin_dock_widget("napari-unet", "Segment")
    assert segment.model_choice.load_file(
        save_model(build_model(base_width=4, depth=2).eval(), tmp_path / "tiny.pt")
    )
    segment.device_combo.setCurrentIndex(segment.device_combo.findData("cpu"))
    return segment


def run(qtbot, segment):
    segment.run()
    # The widget drops its worker when it has finished: no signal to miss.
    qtbot.waitUntil(lambda: segment.worker is None, timeout=60_000)


def settle(qtbot, widget):
    """Let the debounced automatic computation run."""
    qtbot.waitUntil(lambda: not widget._timer.isActive(), timeout=5_000)


def test_docked_before_segment_shows_a_hint_then_follows_the_prediction(
    make_napari_viewer, qtbot, tmp_path, messages
):
    """Issue 9: it started on the raw image and said "Error: 'nuclei' is not a probability map"."""
    viewer = make_napari_viewer()
    truth = disks().astype(np.int32)
    viewer.add_image(truth.astype(np.float32) * 100 + 5, name="nuclei")  # float, but raw
    viewer.add_labels(truth, name="nuclei ground truth")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", "Dice vs ground truth")
    assert widget.truth_combo.currentText() == "nuclei ground truth"
    assert widget.pred_combo.currentText() == ""
    settle(qtbot, widget)
    assert widget.error == ""
    assert "Error" not in widget.status.text() and "run Segment" in widget.status.text()
    assert not messages

    segment = dock_segment(viewer, tmp_path)
    run(qtbot, segment)
    assert widget.pred_combo.currentText() == "nuclei mask"
    assert widget.truth_combo.currentText() == "nuclei ground truth"
    settle(qtbot, widget)
    assert widget.error == ""
    mask = np.asarray(viewer.layers["nuclei mask"].data)
    assert widget.rows[0]["dice"] == pytest.approx(dice(mask, truth))
    assert widget.status.text().startswith("'nuclei mask' vs 'nuclei ground truth': mean Dice")

    # A mask chosen by hand stays while the slider rewrites the same mask.
    viewer.add_labels(truth.copy(), name="my mask")
    widget.pred_combo.set_layer("my mask")
    segment.threshold_slider.setValue(0.6)
    qtbot.waitUntil(lambda: segment.pending_updates == 0, timeout=2_000)
    assert widget.pred_combo.currentText() == "my mask"


def test_segment_mask_alone_is_not_taken_for_ground_truth(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(disks().astype(np.float32) * 100, name="cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", "Dice vs ground truth")
    settle(qtbot, widget)
    assert widget.error == "" and "run Segment" in widget.status.text()
    run(qtbot, dock_segment(viewer, tmp_path))
    assert widget.pred_combo.currentText() == "cells mask"
    assert widget.truth_combo.currentText() == ""
    settle(qtbot, widget)
    assert widget.error == "" and "ground-truth" in widget.status.text()

    # The ground truth arrives: it is chosen and the scores follow.
    count = widget.computations
    viewer.add_labels(disks().astype(np.uint8), name="cells ground truth")
    assert widget.truth_combo.currentText() == "cells ground truth"
    assert widget.pred_combo.currentText() == "cells mask"
    qtbot.waitUntil(lambda: widget.computations > count, timeout=5_000)
    assert widget.error == ""


def test_the_same_layer_twice_is_refused_through_napari_proxies(make_napari_viewer, messages):
    """Issue 9: the ``is`` test missed napari's proxies and showed "mean Dice 1.000"."""
    viewer = make_napari_viewer()
    viewer.add_labels(disks().astype(np.uint8), name="cells ground truth")
    viewer.add_labels(disks().astype(np.uint8), name="cells mask")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", "Dice vs ground truth")
    widget.pred_combo.set_layer("cells ground truth")
    widget.truth_combo.set_layer("cells ground truth")
    # Docked, each lookup gives a new proxy of the same layer.
    assert widget.pred_combo.layer() is not widget.truth_combo.layer()
    assert not widget.compute()
    assert "'cells ground truth' is chosen as both the prediction and the ground truth" in (
        widget.error
    )
    assert "mean Dice" not in widget.status.text() and widget.rows == [] and widget.mean is None
    assert any("both the prediction and the ground truth" in m for m in messages)
    assert all("\n" not in m for m in messages)

    widget.pred_combo.set_layer("cells mask")
    assert widget.compute() and widget.mean["dice"] == pytest.approx(1.0)
    assert get_session(viewer) is widget.session
