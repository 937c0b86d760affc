"""Correct masks widget: one-click fixes, shared undo, Accept into the training set."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from napari.utils._proxies import ReadOnlyWrapper
from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks

from napari_unet.core.metrics import dice
from napari_unet.gui.correct_widget import ALL_SLICES, CorrectMasksWidget
from napari_unet.gui.session import PredictionRecord, get_session

pytestmark = pytest.mark.gui


def instance_labels():
    labels = np.zeros((48, 48), dtype=np.int32)
    labels[4:14, 4:14] = 1  # square with a hole
    labels[8:10, 8:10] = 0
    labels[20:30, 20:26] = 2  # touches 3
    labels[20:30, 26:32] = 3
    labels[40:42, 40:42] = 4  # 4 px speck
    return labels


def setup(viewer, labels=None, tmp_path=None):
    labels = instance_labels() if labels is None else labels
    viewer.add_image(np.random.default_rng(0).random(labels.shape, dtype=np.float32), name="img")
    viewer.add_labels(labels.copy(), name="img mask")
    widget = CorrectMasksWidget(viewer)
    if tmp_path is not None:
        widget.folder_edit.setText(str(tmp_path / "training"))
    return widget, viewer.layers["img mask"]


def test_targets_follow_layers(make_napari_viewer):
    viewer = make_napari_viewer()
    widget, layer = setup(viewer)
    assert widget.mask_combo.layer() is layer
    assert widget.image_combo.currentText() == "img"
    viewer.add_labels(np.zeros((48, 48), np.uint8), name="other")
    assert widget.mask_combo.findText("other") >= 0
    viewer.layers.remove("other")
    assert widget.mask_combo.findText("other") < 0


def test_delete_fill_remove_merge(make_napari_viewer):
    viewer = make_napari_viewer()
    widget, layer = setup(viewer)
    data = layer.data

    assert widget.fill_holes()
    assert (data[8:10, 8:10] == 1).all()
    assert widget.remove_small()  # default 20 px removes the 4 px speck only
    assert not (data == 4).any() and (data == 1).any()
    assert widget.merge_touching()
    assert set(np.unique(data[20:30, 20:32])) == {2}
    assert widget.delete_at(25, 30)
    assert not (data == 2).any() and (data == 1).sum() == 100
    assert layer.data is data  # edited in place, no new layer
    assert len(viewer.layers) == 2


def test_undo_walks_back_actions_and_brush_in_order(make_napari_viewer):
    viewer = make_napari_viewer()
    widget, layer = setup(viewer)
    original = layer.data.copy()
    widget.fill_holes()
    after_fill = layer.data.copy()
    layer.paint((40, 10), 5)  # napari's own brush in between
    after_paint = layer.data.copy()
    widget.delete_at(5, 5)
    assert not (layer.data == 1).any()

    widget.undo()
    np.testing.assert_array_equal(layer.data, after_paint)
    widget.undo()
    np.testing.assert_array_equal(layer.data, after_fill)
    widget.undo()
    np.testing.assert_array_equal(layer.data, original)


def test_actions_on_a_binary_mask_and_errors(make_napari_viewer, messages):
    viewer = make_napari_viewer()
    binary = (instance_labels() > 0).astype(np.uint8)
    widget, layer = setup(viewer, binary)
    assert widget.delete_at(25, 21)  # the touching pair is one component in a binary mask
    assert layer.data[20:30, 20:32].sum() == 0
    assert not widget.delete_at(0, 0)
    assert any("no object" in m for m in messages)
    assert not widget.merge_touching()
    assert any("nothing to change" in m for m in messages)


def test_click_to_delete_mode(make_napari_viewer, MouseEvent):
    viewer = make_napari_viewer()
    widget, layer = setup(viewer)
    widget.delete_button.setChecked(True)
    assert viewer.layers.selection.active is layer
    assert str(layer.mode) == "pan_zoom"
    for kind in ("mouse_press", "mouse_release"):
        event = ReadOnlyWrapper(
            MouseEvent(type=kind, position=(25, 22), dims_point=(0, 0), button=1)
        )
        (mouse_press_callbacks if kind == "mouse_press" else mouse_release_callbacks)(layer, event)
    assert not (layer.data == 2).any() and (layer.data == 3).any()

    layer.mode = "paint"  # picking the brush ends click-to-delete
    assert not widget.delete_button.isChecked()
    assert widget._on_click not in layer.mouse_drag_callbacks


def test_accept_saves_pair_counts_and_effort(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    widget, layer = setup(viewer, tmp_path=tmp_path)
    session = get_session(viewer)
    model_mask = instance_labels()
    session.add_prediction(
        PredictionRecord(
            image_layer="img",
            prob_layer="img probability",
            mask_layer="img mask",
            prob=np.zeros((48, 48), np.float32),
            model_mask=model_mask.copy(),
        )
    )
    counts: list[int] = []
    session.training_set_changed.connect(counts.append)
    widget.delete_at(5, 5)
    assert session.predictions["img mask"].corrected

    pairs = widget.accept()
    assert len(pairs) == 1 and counts == [1]
    assert widget.count_label.text() == "Training set: 1 pair"
    pair = session.training_set[0]
    np.testing.assert_array_equal(pair.mask, layer.data)
    # The instances stay instances: the touching objects 2 and 3 keep the
    # separation border (and rims) that fine-tuning trains on.
    from napari_unet.core.targets import separation_border

    assert set(np.unique(pair.mask)) == {0, 2, 3, 4}
    assert separation_border(pair.mask)[20:30, 25:27].all()
    expected = dice(model_mask, layer.data)
    assert 0 < expected < 1 and pair.effort_dice == pytest.approx(expected)
    folder = tmp_path / "training"
    np.testing.assert_array_equal(tifffile.imread(folder / "img_mask.tif"), layer.data)
    np.testing.assert_array_equal(tifffile.imread(folder / "img.tif"), viewer.layers["img"].data)
    meta = json.loads((folder / "img.json").read_text())
    assert meta["effort_dice"] == pytest.approx(expected, abs=1e-6)
    assert not list(folder.glob("*.tmp"))

    # Accepting the same image again replaces its pair rather than adding one.
    widget.accept()
    assert len(session.training_set) == 1 and counts == [1, 1]

    # The saved folder loads back with its masks paired.
    from napari_unet.core.io import pair_images_and_masks

    assert pair_images_and_masks(folder) == [(folder / "img.tif", folder / "img_mask.tif")]


def test_accept_stack_per_slice(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    stack = np.stack([instance_labels(), np.zeros((48, 48), np.int32), instance_labels()])
    widget, layer = setup(viewer, stack, tmp_path=tmp_path)
    viewer.dims.set_current_step(0, 2)
    pairs = widget.accept()
    assert [p.name for p in pairs] == ["img z002"]
    widget.scope_combo.setCurrentText(ALL_SLICES)
    pairs = widget.accept()
    assert [p.name for p in pairs] == ["img z000", "img z001", "img z002"]
    assert len(get_session(viewer).training_set) == 3
    assert pairs[1].mask.shape == (48, 48) and pairs[1].image.shape == (48, 48)
    assert (tmp_path / "training" / "img_z001_mask.tif").is_file()
    # Delete on a stack acts on the slice on screen only.
    viewer.dims.set_current_step(0, 2)
    assert widget.delete_at(5, 5)
    assert (layer.data[0] == 1).any() and not (layer.data[2] == 1).any()


def test_accept_errors(make_napari_viewer, messages):
    viewer = make_napari_viewer()
    widget = CorrectMasksWidget(viewer)
    assert widget.accept() == []
    assert any("no mask layer" in m for m in messages)
    viewer.add_image(np.zeros((30, 30), np.float32), name="small")
    viewer.add_labels(np.zeros((48, 48), np.uint8), name="small mask")
    assert widget.accept() == []
    assert any("pick the matching image" in m for m in messages)
    assert get_session(viewer).training_set == []


def test_segment_correct_accept_loop(make_napari_viewer, qtbot, tmp_path):
    from napari_unet.core.model import build_model, save_model
    from napari_unet.gui.segment_widget import SegmentWidget

    viewer = make_napari_viewer()
    yy, xx = np.mgrid[:64, :64]
    image = ((yy - 32) ** 2 + (xx - 32) ** 2 < 200).astype(np.float32) * 100
    viewer.add_image(image, name="cells")
    segment = SegmentWidget(viewer)
    assert segment.model_choice.load_file(
        save_model(build_model(base_width=4, depth=2), tmp_path / "tiny.pt")
    )
    segment.device_combo.setCurrentIndex(segment.device_combo.findData("cpu"))
    segment.run()
    # The widget drops its worker when it has finished: no signal to miss.
    qtbot.waitUntil(lambda: segment.worker is None, timeout=60_000)
    session = get_session(viewer)
    record = session.predictions["cells mask"]
    segment.threshold_slider.setValue(float(np.median(record.prob)))
    qtbot.waitUntil(lambda: segment.pending_updates == 0, timeout=2_000)
    model_output = viewer.layers["cells mask"].data.copy()

    correct = CorrectMasksWidget(viewer)
    correct.folder_edit.setText(str(tmp_path / "training"))
    correct.mask_combo.set_layer("cells mask")
    assert correct.image_combo.currentText() == "cells"
    layer = viewer.layers["cells mask"]
    ys, xs = np.nonzero(layer.data)
    assert correct.delete_at(ys[0], xs[0])
    assert record.corrected
    np.testing.assert_array_equal(record.model_mask, model_output)
    (pair,) = correct.accept()
    assert pair.effort_dice == pytest.approx(dice(model_output, layer.data))
    assert pair.effort_dice < 1.0

    # The accepted mask is never rewritten by the slider.
    accepted = layer.data.copy()
    segment.threshold_slider.setValue(0.9)
    qtbot.waitUntil(lambda: segment.pending_updates == 0, timeout=2_000)
    np.testing.assert_array_equal(layer.data, accepted)
    assert "cells mask [2]" in viewer.layers

    # Accepting an untouched mask records zero correction effort (Dice 1).
    correct.mask_combo.set_layer("cells mask [2]")
    (pair,) = correct.accept()
    assert pair.effort_dice == pytest.approx(1.0)
    assert session.predictions["cells mask [2]"].corrected


def test_mask_box_follows_the_masks_segment_makes(make_napari_viewer, qtbot, tmp_path, MouseEvent):
    """Issue 9: the Mask box started on the ground truth and stayed there after Segment."""
    from napari_unet.core.model import build_model, save_model

    viewer = make_napari_viewer()
    yy, xx = np.mgrid[:64, :64]
    disks = ((yy - 20) ** 2 + (xx - 20) ** 2 < 80) | ((yy - 44) ** 2 + (xx - 44) ** 2 < 80)
    viewer.add_image(disks.astype(np.float32) * 100, name="cells")
    truth = viewer.add_labels(disks.astype(np.uint8), name="cells ground truth")
    viewer.add_image(disks.T.astype(np.float32) * 100, name="other")
    _, segment = viewer.window.add_plugin_dock_widget("napari-unet", "Segment")
    _, correct = viewer.window.add_plugin_dock_widget("napari-unet", "Correct masks")
    assert segment.model_choice.load_file(
        save_model(build_model(base_width=4, depth=2).eval(), tmp_path / "tiny.pt")
    )
    segment.device_combo.setCurrentIndex(segment.device_combo.findData("cpu"))

    def run(image):
        segment.image_combo.set_layer(image)
        segment.run()
        # The widget drops its worker when it has finished: no signal to miss.
        qtbot.waitUntil(lambda: segment.worker is None, timeout=60_000)

    assert correct.mask_combo.currentText() == "cells ground truth"  # the only mask yet
    run("cells")
    assert correct.mask_combo.currentText() == "cells mask"
    assert correct.image_combo.currentText() == "cells"
    session = get_session(viewer)
    segment.threshold_slider.setValue(float(np.median(session.predictions["cells mask"].prob)))
    qtbot.waitUntil(lambda: segment.pending_updates == 0, timeout=2_000)

    # Click to delete acts on Segment's mask, never on the ground truth.
    mask = viewer.layers["cells mask"]
    ys, xs = np.nonzero(mask.data)
    y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    before, truth_before = mask.data.copy(), truth.data.copy()
    correct.delete_button.setChecked(True)
    assert viewer.layers.selection.active.name == "cells mask"
    for kind, callbacks in (
        ("mouse_press", mouse_press_callbacks),
        ("mouse_release", mouse_release_callbacks),
    ):
        event = ReadOnlyWrapper(
            MouseEvent(type=kind, position=(y, x), dims_point=(0, 0), button=1)
        )
        callbacks(mask, event)
    assert mask.data[y, x] == 0 and (mask.data != before).any()
    np.testing.assert_array_equal(truth.data, truth_before)
    correct.delete_button.setChecked(False)

    # The slider on a corrected mask makes a new mask layer: it is followed.
    segment.image_combo.set_layer("cells")
    segment.threshold_slider.setValue(0.5)
    qtbot.waitUntil(lambda: segment.pending_updates == 0, timeout=2_000)
    assert (
        "cells mask [2]" in viewer.layers and correct.mask_combo.currentText() == "cells mask [2]"
    )
    # A layer picked by hand stays picked while the slider rewrites the same mask ...
    correct.mask_combo.set_layer("cells ground truth")
    segment.threshold_slider.setValue(0.6)
    qtbot.waitUntil(lambda: segment.pending_updates == 0, timeout=2_000)
    assert "cells mask [3]" not in viewer.layers
    assert correct.mask_combo.currentText() == "cells ground truth"
    # ... and the next prediction is followed again.
    run("other")
    assert correct.mask_combo.currentText() == "other mask"
    assert correct.image_combo.currentText() == "other"

    # Opened later, the widget starts on the newest prediction, not the first Labels layer.
    assert CorrectMasksWidget(viewer).mask_combo.currentText() == "other mask"
