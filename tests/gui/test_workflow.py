"""The whole loop in a real viewer, through the plugin's own docked widgets.

Open the sample, Segment, move the threshold, edit the mask, Accept, Fine-tune
(tiny model, few steps), predict again, read the Dice table and show the
border-weight map.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_unet.core.metrics import dice
from napari_unet.core.model import build_model, save_model
from napari_unet.core.weights import border_weight_map
from napari_unet.gui.demo import open_demo
from napari_unet.gui.session import get_session

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_whole_loop(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    panel = open_demo(viewer)  # the sample and the panel, as the main job shows them
    session = get_session(viewer)
    steps = panel.steps  # the one "napari U-Net" panel holds every step
    segment = steps["segment"]
    correct = steps["correct"]
    finetune = steps["finetune"]
    weightmap = steps["weightmap"]
    dice_widget = steps["dice"]
    # All widgets share the one session of this viewer.
    assert all(get_session(w.viewer) is session for w in (segment, finetune))

    # A tiny model keeps the test fast; the loop is the same with the shipped one.
    torch.manual_seed(0)
    tiny = save_model(build_model(base_width=4, depth=2).eval(), tmp_path / "tiny.pt")
    assert segment.model_choice.load_file(tiny)
    segment.device_combo.setCurrentIndex(segment.device_combo.findData("cpu"))
    segment.image_combo.set_layer("nuclei")

    # 1. Segment.
    worker = segment.run()
    assert worker is not None
    qtbot.waitUntil(lambda: segment.worker is None, timeout=120_000)
    mask_layer = viewer.layers["nuclei mask"]
    record = session.predictions["nuclei mask"]
    n_layers = len(viewer.layers)

    # 2. Move the threshold: the same layer is rewritten from the cached probabilities.
    t = float(np.quantile(record.prob, 0.6))
    segment.threshold_slider.setValue(t)
    qtbot.waitUntil(lambda: segment.pending_updates == 0, timeout=5_000)
    t = segment.threshold_slider.value()
    assert viewer.layers["nuclei mask"] is mask_layer and len(viewer.layers) == n_layers
    np.testing.assert_array_equal(mask_layer.data > 0, record.prob >= np.float32(t))
    assert session.threshold == pytest.approx(t)

    # 3. Correct by hand: a brush stroke, and an object deleted with the Correct widget.
    truth = viewer.layers["nuclei ground truth"].data
    correct.mask_combo.set_layer("nuclei mask")
    correct.image_combo.set_layer("nuclei")
    mask_layer.brush_size = 9
    mask_layer.paint((100, 100), 1, refresh=True)
    y, x = np.argwhere(mask_layer.data > 0)[len(np.argwhere(mask_layer.data > 0)) // 2]
    assert correct.delete_at(float(y), float(x))
    assert mask_layer.data[y, x] == 0
    assert record.corrected
    # ... and the rest of a thorough correction: the person's mask is the ground truth.
    mask_layer.data = (truth > 0).astype(mask_layer.data.dtype)
    corrected = mask_layer.data.copy()

    # 4. Accept: stored in the session and on disk at once, with the correction effort.
    correct.folder_edit.setText(str(tmp_path / "accepted"))
    pairs = correct.accept()
    assert len(pairs) == 1 and len(session.training_set) == 1
    pair = session.training_set[0]
    np.testing.assert_array_equal(pair.mask > 0, corrected > 0)
    assert 0.0 <= pair.effort_dice < 1.0  # the person changed the model's mask
    assert session.training_dir == tmp_path / "accepted"
    saved = sorted(p.name for p in session.training_dir.iterdir())
    assert any(name.endswith("_mask.tif") for name in saved)
    meta = json.loads(next(session.training_dir.glob("*.json")).read_text())
    assert meta["effort_dice"] == pytest.approx(pair.effort_dice)

    # 5. Fine-tune from the accepted pair; the new model becomes the session's model
    #    and the image is predicted again without touching the corrected mask.
    before = _weights(session.model)
    old_model = session.model
    finetune.epochs_spin.setValue(3)
    finetune.patch_spin.setValue(64)
    finetune.lr_spin.setValue(0.01)
    finetune.image_combo.set_layer("nuclei")
    assert finetune.start() is not None
    qtbot.waitUntil(
        lambda: finetune.worker is None and finetune.repredictor.worker is None, timeout=300_000
    )
    assert session.model is not old_model
    after = session.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert len(finetune.plot.curve("train loss")[0]) == 3
    np.testing.assert_array_equal(viewer.layers["nuclei mask"].data, corrected)
    new_masks = [layer.name for layer in viewer.layers if layer.name.startswith("nuclei mask [")]
    assert new_masks, "the new prediction goes to a new layer, the corrected mask stays"
    assert np.isfinite(finetune.dice_before) and np.isfinite(finetune.dice_after)

    # 6. Dice against the ground truth, in the table.
    new_mask = viewer.layers[new_masks[-1]]
    dice_widget.pred_combo.set_layer(new_mask.name)
    dice_widget.truth_combo.set_layer("nuclei ground truth")
    assert dice_widget.compute(notify=False)
    text = [dice_widget.table.item(0, c).text() for c in range(dice_widget.table.columnCount())]
    assert f"{dice(new_mask.data, truth):.3f}" in text

    # 7. The border-weight map of the ground truth.
    weightmap.labels_combo.set_layer("nuclei ground truth")
    weightmap.show_weight_map()
    name = weightmap.weight_layer_name("nuclei ground truth")
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=60_000)
    np.testing.assert_allclose(viewer.layers[name].data, border_weight_map(truth), atol=1e-5)
