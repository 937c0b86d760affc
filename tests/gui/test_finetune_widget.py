"""Fine-tune widget: training in a worker, live plot, Stop, autosave, re-prediction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _cells import cells

from napari_unet.core.inference import predict_proba
from napari_unet.core.metrics import dice
from napari_unet.core.model import build_model, load_model
from napari_unet.core.postprocess import mask_from_proba
from napari_unet.gui.finetune_widget import FineTuneWidget
from napari_unet.gui.session import PredictionRecord, TrainingPair, get_session

pytestmark = pytest.mark.gui


def states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def setup(viewer, tmp_path, n_pairs=2):
    session = get_session(viewer)
    session.training_dir = tmp_path / "training-set"
    session.device = "cpu"
    torch.manual_seed(0)
    start = build_model(base_width=4, depth=2).eval()
    session.set_model(start, "tiny")
    for seed in range(n_pairs):
        image, labels = cells(seed)
        session.training_set.append(TrainingPair(name=f"img{seed}", image=image, mask=labels))
    widget = FineTuneWidget(viewer)
    widget.patch_spin.setValue(32)
    widget.lr_spin.setValue(0.01)
    widget.val_spin.setValue(0.25)
    return session, start, widget


def wait_idle(qtbot, widget, timeout=120_000):
    qtbot.waitUntil(
        lambda: widget.worker is None and widget.repredictor.worker is None, timeout=timeout
    )


def test_fine_tune_changes_model_plots_saves_and_predicts_again(
    make_napari_viewer, qtbot, tmp_path
):
    viewer = make_napari_viewer()
    session, start, widget = setup(viewer, tmp_path)
    image, truth = cells(7)
    viewer.add_image(image, name="cells")
    viewer.add_labels(truth, name="cells ground truth")
    # A prediction of the starting model, not corrected: it is rewritten in place.
    old_prob = predict_proba(image, start, device="cpu")
    prob_layer = viewer.add_image(old_prob, name="cells probability")
    mask_layer = viewer.add_labels(mask_from_proba(old_prob, 0.5), name="cells mask")
    session.add_prediction(PredictionRecord("cells", "cells probability", "cells mask", old_prob))
    widget.image_combo.set_layer("cells probability")
    widget._guess_image()  # a probability layer is never the image to predict
    assert widget.image_combo.currentText() == "cells"
    assert "2 accepted pairs" in widget.count_label.text()
    widget.epochs_spin.setValue(3)

    worker = widget.start()
    assert worker is not None and session.busy
    assert not widget.start_button.isEnabled() and widget.stop_button.isEnabled()
    # napari's "in progress" animation is slowed while training, then restored.
    assert widget._spinners and all(m.speed() == 10 for m, _ in widget._spinners)
    movies = [m for m, _ in widget._spinners]
    wait_idle(qtbot, widget)
    assert not session.busy and widget.start_button.isEnabled()
    assert all(m.speed() == 100 for m in movies)

    result = widget.result
    assert result is not None and result.stop_reason == "epochs"
    # "Keep what the default model knows" is on: the shipped replay set was mixed in.
    assert widget.replay_check.isChecked()
    run = result.model.history[-1]
    assert run["replay_images"] == 16 and run["replay_fraction"] > 0
    assert session.model is result.model and session.model is not start
    assert session.model_label.startswith("fine-tuned")
    assert not states_equal(session.model, start)  # training moved the weights

    epochs, losses = widget.plot.curve("train loss")
    assert epochs == [1.0, 2.0, 3.0] and all(math.isfinite(v) for v in losses)
    assert len(widget.plot.curve("validation Dice")[0]) == 3

    # The autosaved file holds the session's new model.
    assert widget.saved_path.exists() and widget.saved_path.parent.parent == session.training_dir
    assert states_equal(load_model(widget.saved_path), session.model)

    # The chosen image was predicted again with the new model and scored.
    prob = predict_proba(image, session.model, device="cpu")
    np.testing.assert_allclose(prob_layer.data, prob, atol=1e-5)
    expected = mask_from_proba(prob, session.threshold)
    np.testing.assert_array_equal(mask_layer.data, expected)
    assert viewer.layers["cells mask"] is mask_layer and "cells mask [2]" not in viewer.layers
    assert session.predictions["cells mask"].prob is prob_layer.data
    old = mask_from_proba(predict_proba(image, start, device="cpu"), session.threshold)
    assert widget.dice_before == pytest.approx(dice(old, truth))
    assert widget.dice_after == pytest.approx(dice(expected, truth))
    assert "'cells ground truth'" in widget.dice_label.text()


def test_stop_keeps_best_weights(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    session, start, widget = setup(viewer, tmp_path)
    widget.repredict_check.setChecked(False)
    widget.epochs_spin.setValue(200)
    worker = widget.start()
    assert worker is not None
    qtbot.waitUntil(lambda: len(widget.plot.curve("train loss")[0]) >= 2, timeout=120_000)
    widget.stop_button.click()
    assert not widget.stop_button.isEnabled()
    wait_idle(qtbot, widget)

    result = widget.result
    assert result is not None and result.stop_reason == "stopped" and result.stopped_early
    assert len(result.history) < 200
    assert session.model is result.model
    # The returned weights are the best epoch's, the ones saved when it ended.
    dices = widget.plot.curve("validation Dice")[1]
    assert result.best_dice == pytest.approx(max([result.initial_dice, *dices]))
    assert states_equal(load_model(widget.saved_path), result.model)


def test_abandoned_run_leaves_saved_model_whole(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    session, start, widget = setup(viewer, tmp_path)
    widget.epochs_spin.setValue(200)
    widget.start()
    # The file holds the starting weights from the start, then each new best epoch.
    assert states_equal(load_model(widget.saved_path), start)
    qtbot.waitUntil(lambda: widget.plot.marker_x("best") is not None, timeout=120_000)
    widget.abort()  # what closing napari does: no result comes back
    wait_idle(qtbot, widget)
    assert widget.result is None and session.model is start and not session.busy
    saved = load_model(widget.saved_path)
    assert not states_equal(saved, start)
    assert [p.name for p in widget.saved_path.parent.iterdir()] == [widget.saved_path.name]


def test_corrected_mask_is_never_overwritten(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    session, start, widget = setup(viewer, tmp_path, n_pairs=1)
    image, truth = cells(0)
    viewer.add_image(image, name="img0")
    prob = predict_proba(image, start, device="cpu")
    viewer.add_image(prob, name="img0 probability")
    corrected = (truth > 0).astype(np.uint8)
    viewer.add_labels(corrected.copy(), name="img0 mask")
    session.add_prediction(
        PredictionRecord(
            "img0", "img0 probability", "img0 mask", prob, model_mask=None, corrected=True
        )
    )
    widget.image_combo.set_layer("img0")
    widget.epochs_spin.setValue(1)
    widget.val_spin.setValue(0.0)
    widget.start()
    wait_idle(qtbot, widget)
    assert session.model_label == "fine-tuned (1 pair)"
    np.testing.assert_array_equal(viewer.layers["img0 mask"].data, corrected)
    new_mask = viewer.layers["img0 mask [2]"].data
    prob = predict_proba(image, session.model, device="cpu")
    np.testing.assert_array_equal(new_mask, mask_from_proba(prob, session.threshold))
    assert session.predictions["img0 mask [2]"].prob is viewer.layers["img0 probability"].data
    # No ground-truth layer: the accepted mask (training data) is the reference.
    assert "accepted mask" in widget.dice_label.text()
    assert widget.dice_after == pytest.approx(dice(new_mask, truth))


def test_empty_training_set_is_a_clear_error(make_napari_viewer, messages):
    viewer = make_napari_viewer()
    widget = FineTuneWidget(viewer)
    assert "empty" in widget.count_label.text()
    assert widget.start() is None
    assert widget.worker is None and not get_session(viewer).busy
    assert any("training set is empty" in m and "\n" not in m for m in messages)


def test_save_to_writes_a_loadable_model(make_napari_viewer, tmp_path, messages):
    viewer = make_napari_viewer()
    session, start, widget = setup(viewer, tmp_path, n_pairs=0)
    written = widget.save_to(tmp_path / "mine")
    assert written == tmp_path / "mine.pt"
    assert states_equal(load_model(written), start)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert widget.save_to(blocker / "x.pt") is None
    assert any(m.startswith("Save model: cannot write") for m in messages)


def test_prediction_again_keeps_segment_options_and_is_not_a_correction(
    make_napari_viewer, qtbot, tmp_path
):
    from napari_unet.gui.predictions import MaskSettings, check_content

    viewer = make_napari_viewer()
    session, start, widget = setup(viewer, tmp_path)
    image, _ = cells(7)
    viewer.add_image(image, name="cells")
    old_prob = predict_proba(image, start, device="cpu")
    viewer.add_image(old_prob, name="cells probability")
    made_with = MaskSettings(threshold=0.5, min_size=12, fill_holes=True)
    mask_layer = viewer.add_labels(made_with.render(old_prob), name="cells mask")
    record = PredictionRecord("cells", "cells probability", "cells mask", old_prob)
    record.settings = made_with
    session.add_prediction(record)
    session.set_threshold(0.45)
    widget.image_combo.set_layer("cells")
    widget.epochs_spin.setValue(2)
    assert widget.start() is not None
    wait_idle(qtbot, widget)

    # Rewritten in place with Segment's options at the session's threshold ...
    assert viewer.layers["cells mask"] is mask_layer and "cells mask [2]" not in viewer.layers
    expected = MaskSettings(threshold=0.45, min_size=12, fill_holes=True)
    np.testing.assert_array_equal(mask_layer.data, expected.render(record.prob))
    assert record.settings == expected
    # ... so the next Segment run does not take the new mask for a person's correction.
    assert not check_content(record, mask_layer)


def test_time_budget_alone_runs_until_spent_and_says_why(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    session, _, widget = setup(viewer, tmp_path)
    widget.repredict_check.setChecked(False)
    widget.val_spin.setValue(0.0)  # no validation: nothing can end it before the budget
    widget.epochs_spin.setValue(0)
    assert widget.epochs_spin.text() == "until the time budget is used"
    widget.minutes_spin.setValue(0.1)  # 6 s
    roi = np.zeros((64, 64), np.uint8)
    roi[:, :40] = 1
    viewer.add_labels(roi, name="roi")
    widget.roi_check.setChecked(True)
    widget.roi_combo.set_layer("roi")
    rois = widget.roi_arrays(list(session.training_set))
    assert len(rois) == 2 and all(np.array_equal(r, roi > 0) for r in rois)
    assert widget.settings().epochs is None
    assert widget.start() is not None
    wait_idle(qtbot, widget)
    result = widget.result
    assert result.stop_reason == "time_budget" and result.history[-1]["elapsed_s"] >= 4.5
    text = widget.status.text()
    assert text.startswith("Done, time budget of 6 s used: kept epoch ")
    assert "(lowest training loss)" in text


def test_neither_epochs_nor_budget_is_refused(make_napari_viewer, tmp_path, messages):
    viewer = make_napari_viewer()
    _, _, widget = setup(viewer, tmp_path)
    widget.epochs_spin.setValue(0)
    widget.minutes_spin.setValue(0)
    assert widget.start() is None
    assert messages and "set a number of epochs or a time budget" in messages[-1]


def test_a_run_that_keeps_the_starting_weights_says_so_and_what_to_do(
    make_napari_viewer, qtbot, tmp_path
):
    """Issue 9: such a run still named the model "fine-tuned (1 pairs, ...)"."""
    viewer = make_napari_viewer()
    session, _, widget = setup(viewer, tmp_path, n_pairs=0)
    # A start no epoch can beat: it marks every pixel, and every pixel is foreground.
    perfect = build_model(base_width=4, depth=2).eval()
    with torch.no_grad():
        perfect.outc.conv.weight.zero_()
        perfect.outc.conv.bias.fill_(20.0)
    session.set_model(perfect, "my model")
    image, _ = cells(0)
    session.training_set.append(TrainingPair("img0", image, np.ones(image.shape, np.uint8)))
    widget._show_count()
    assert widget.count_label.text() == "Training set: 1 accepted pair"
    viewer.add_image(image, name="img0")
    widget.epochs_spin.setValue(2)
    widget.lr_spin.setValue(1e-4)
    assert widget.start() is not None
    assert widget.status.text() == "Fine-tuning on 1 pair..."
    wait_idle(qtbot, widget)

    result = widget.result
    assert result.best_epoch == 0 and len(result.history) == 2
    text = widget.status.text()
    assert "no epoch beat the starting model on validation" in text
    assert "correct more images or train longer" in text
    # The session keeps its model and its name; nothing was predicted again.
    assert session.model is perfect and session.model_label == "my model"
    assert "img0 mask" not in viewer.layers
    assert states_equal(load_model(widget.saved_path), perfect)
    # Dice stayed at 1: the axis shows the values, not 0 to 1.
    assert widget.plot.curve("validation Dice")[1] == [1.0, 1.0]
    low, high = widget.plot.right_range()
    assert 0.95 < low < 1.0 and high == 1.0


def test_validation_dice_axis_zooms_to_close_values(make_napari_viewer, qtbot, tmp_path):
    from napari_unet.core.events import EpochEnd

    viewer = make_napari_viewer()
    _, _, widget = setup(viewer, tmp_path)
    assert widget.plot.right_range() == (0.0, 1.0)  # nothing to show yet
    for epoch, dice_value in ((1, 0.967), (2, 0.972)):
        widget._on_event(
            EpochEnd(
                epoch, 2, 0.1 / epoch, dice_value, 0.972, 2, 1.0 * epoch, 1e-3, 1.0, epoch / 2
            )
        )
    assert widget.plot.curve("validation Dice")[1] == [0.967, 0.972]
    low, high = widget.plot.right_range()
    assert low < 0.967 < 0.972 < high and high - low <= 0.02
    labels = widget.plot.right_ticks()
    assert len(set(labels)) == len(labels) >= 3
    assert all(len(label.split(".")[1]) == 3 for label in labels)  # 0.964, 0.966, ...
    assert not widget.plot.grab().toImage().isNull()  # paints the zoomed axis


def test_closing_napari_in_the_first_epoch_leaves_a_loadable_model(
    make_napari_viewer, qtbot, tmp_path
):
    """Issue 9: closing during the first epoch left only an empty models/ folder."""
    viewer = make_napari_viewer()
    session, start, widget = setup(viewer, tmp_path)
    viewer.window.add_dock_widget(widget, name="Fine-tune")
    widget.epochs_spin.setValue(200)
    worker = widget.start()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        # A closing napari ends the process, and the training thread with it,
        # at any moment: from now on a whole model must be on disk.
        viewer.close()
        folder = session.training_dir / "models"
        assert [p.name for p in folder.iterdir()] == [widget.saved_path.name]
        assert states_equal(load_model(widget.saved_path), start)
    # The closed widget stopped the run; the file is still whole and alone.
    assert [p.name for p in folder.iterdir()] == [widget.saved_path.name]
    assert len(load_model(widget.saved_path).history) >= 1


def test_a_folder_that_cannot_be_written_is_refused_and_left_clean(
    make_napari_viewer, tmp_path, messages
):
    viewer = make_napari_viewer()
    session, _, widget = setup(viewer, tmp_path)
    blocker = tmp_path / "training-set"
    blocker.write_text("a file where the folder should be")
    assert widget.start() is None
    assert any(m.startswith("Fine-tune: cannot write to") for m in messages)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["training-set"]
    # Settings refused before anything is written leave no folder either.
    blocker.unlink()
    widget.epochs_spin.setValue(0)
    widget.minutes_spin.setValue(0)
    assert widget.start() is None
    assert not blocker.exists()


def test_planes_off_focus_follow_the_training_set(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    session, _, widget = setup(viewer, tmp_path)
    # 2D pairs: the defocus keeps the masks.
    assert not widget.augment_checks["depth"].value
    assert not widget.settings().augment.depth
    # A slice of a stack: the defocus also teaches the planes off focus.
    image, labels = cells(5)
    session.accept_pairs([TrainingPair(name="stack z004", image=image, mask=labels, z=4)])
    assert widget.augment_checks["depth"].value
    assert widget.settings().augment.depth
