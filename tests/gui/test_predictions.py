"""The one path a prediction takes into layers, whoever asked for it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qtpy.QtWidgets import QWidget

from napari_unet.core.inference import predict_proba
from napari_unet.core.model import build_model
from napari_unet.gui._repredict import Repredictor
from napari_unet.gui.predictions import MaskSettings, MaskTracker, PredictionRecord
from napari_unet.gui.session import get_session

pytestmark = pytest.mark.gui


def tiny(seed):
    torch.manual_seed(seed)
    return build_model(base_width=4, depth=2).eval()


def test_prediction_after_fine_tune_keeps_a_mask_edited_outside_the_paint_history(
    make_napari_viewer, qtbot, messages
):
    viewer = make_napari_viewer()
    session = get_session(viewer)
    session.set_device("cpu")
    image = np.random.default_rng(0).normal(50, 10, (48, 48)).astype(np.float32)
    old_model, new_model = tiny(0), tiny(1)
    viewer.add_image(image, name="cells")
    prob = predict_proba(image, old_model, device="cpu")
    viewer.add_image(prob, name="cells probability")
    settings = MaskSettings(threshold=float(np.median(prob)))
    layer = viewer.add_labels(settings.render(prob), name="cells mask")
    record = PredictionRecord("cells", "cells probability", "cells mask", prob, settings=settings)
    MaskTracker(session, layer, record)
    session.add_prediction(record)
    added: list[str] = []
    session.prediction_added.connect(added.append)

    # An edit straight into the array: no paint event, so not marked corrected yet.
    layer.data[:10, :10] = 1
    layer.data[30:, 30:] = 0
    edited = layer.data.copy()
    assert not record.corrected

    done: list[tuple] = []
    owner = QWidget()  # docked: its window is napari's, held in the turns of the adds
    viewer.window.add_dock_widget(owner)
    repredictor = Repredictor(viewer, session, lambda *args: done.append(args), owner)
    repredictor.start("cells", old_model, new_model)
    qtbot.waitUntil(lambda: bool(done) and repredictor.worker is None, timeout=60_000)
    assert owner.window() is not owner and owner.window().updatesEnabled()  # released

    assert viewer.layers["cells mask"] is layer
    np.testing.assert_array_equal(layer.data, edited)  # the edit is kept
    assert record.corrected
    assert added == ["cells mask [2]"] and done[0][3] == "cells mask [2]"
    new_prob = predict_proba(image, new_model, device="cpu")
    np.testing.assert_allclose(viewer.layers["cells probability"].data, new_prob, atol=1e-6)
    expected = MaskSettings(threshold=session.threshold).render(new_prob)
    np.testing.assert_array_equal(viewer.layers["cells mask [2]"].data, expected)
    assert viewer.layers["cells mask [2]"].visible  # added hidden, shown in the next turn
    assert session.predictions["cells mask [2]"].prob is viewer.layers["cells probability"].data
    assert any("'cells mask' holds corrections and is kept" in m for m in messages)


def test_session_api_owns_its_containers(make_napari_viewer):
    viewer = make_napari_viewer()
    session = get_session(viewer)
    prob = np.zeros((8, 8), np.float32)
    layer = viewer.add_labels(np.zeros((8, 8), np.uint8), name="a mask")
    record = PredictionRecord("a", "a probability", "a mask", prob)
    MaskTracker(session, layer, record)
    added, changed = [], []
    session.prediction_added.connect(added.append)
    session.prediction_changed.connect(changed.append)
    session.add_prediction(record)
    session.update_prediction(record)
    assert added == ["a mask"] and changed == ["a mask"]
    with pytest.raises(TypeError):
        session.predictions["b"] = record  # read-only: widgets call the session

    layer.name = "renamed"
    assert list(session.predictions) == ["renamed"] and record.mask_layer == "renamed"
    viewer.layers.remove(layer)  # a deleted mask frees its record
    assert not session.predictions
    assert not hasattr(session, "history")


def test_a_shown_prediction_selects_its_mask_only_after_the_adds(make_napari_viewer):
    from napari_unet.core.inference import Prediction
    from napari_unet.gui._turns import HOLD_PAINT
    from napari_unet.gui.predictions import showing_prediction

    viewer = make_napari_viewer()
    session = get_session(viewer)
    image = viewer.add_image(np.zeros((40, 40), np.float32), name="cells")
    prob = np.zeros((40, 40), np.float32)
    prob[10:20, 10:20] = 0.9
    steps = showing_prediction(
        viewer, session, "cells", Prediction(prob), MaskSettings(threshold=0.5), {}, "Segment"
    )
    # Each add leaves the selection alone (napari would select the new layer in
    # the add itself, a further 11-17 ms of that turn).
    assert next(steps) is HOLD_PAINT
    assert "cells probability" in viewer.layers and viewer.layers.selection.active is image
    next(steps)  # the probability shown
    assert viewer.layers["cells probability"].visible
    assert next(steps) is HOLD_PAINT
    mask = viewer.layers["cells mask"]
    assert not mask.visible and viewer.layers.selection.active is image
    next(steps)  # the mask shown, not yet selected
    assert mask.visible and viewer.layers.selection.active is image
    with pytest.raises(StopIteration) as done:
        next(steps)
    assert viewer.layers.selection.active is mask and set(viewer.layers.selection) == {mask}
    assert done.value.value.mask_layer is mask
    np.testing.assert_array_equal(mask.data, prob >= 0.5)
