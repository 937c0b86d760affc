"""Fine-tune's "Start from" and "Architecture": a new network of the chosen architecture."""

from __future__ import annotations

import pytest
import torch
from _cells import cells

from napari_unet.core.model import build_model
from napari_unet.gui.finetune_widget import FineTuneWidget
from napari_unet.gui.session import TrainingPair, get_session

pytestmark = pytest.mark.gui


def _widget(viewer, tmp_path, start):
    session = get_session(viewer)
    session.training_dir = tmp_path / "training-set"
    session.device = "cpu"
    session.set_model(start, "tiny")
    for seed in range(2):
        image, labels = cells(seed)
        session.training_set.append(TrainingPair(name=f"img{seed}", image=image, mask=labels))
    widget = FineTuneWidget(viewer)
    widget.patch_spin.setValue(32)
    widget.epochs_spin.setValue(1)
    widget.replay_check.setChecked(False)
    widget.repredict_check.setChecked(False)
    return session, widget


def test_architecture_shows_the_current_model_until_a_new_network_is_chosen(
    make_napari_viewer, tmp_path
):
    viewer = make_napari_viewer()
    torch.manual_seed(0)
    session, widget = _widget(viewer, tmp_path, build_model(arch="unet3p", depth=2, base_width=4))
    option = widget.form.arch_option
    assert not option.new_network() and not option.arch_combo.isEnabled()
    assert option.arch() == "unet3p" and option.arch_combo.currentText() == "U-Net 3+"
    assert widget.settings().keep_start
    session.set_model(build_model(depth=2, base_width=4), "plain")
    assert option.arch() == "unet"  # follows the session's model
    option.start_combo.setCurrentIndex(option.start_combo.findData("new"))
    assert option.arch_combo.isEnabled() and not widget.settings().keep_start


def test_training_a_new_network_uses_the_chosen_architecture(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    torch.manual_seed(0)
    start = build_model(depth=2, base_width=4, out_channels=2).eval()
    session, widget = _widget(viewer, tmp_path, start)
    option = widget.form.arch_option
    option.start_combo.setCurrentIndex(option.start_combo.findData("new"))
    option.arch_combo.setCurrentIndex(option.arch_combo.findData("unetpp"))
    assert widget.start() is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    result = widget.result
    assert result is not None and result.best_epoch == 1  # from scratch: epoch 1 replaces it
    model = session.model
    assert model is result.model and type(model).__name__ == "UNetPlusPlus"
    # Shaped like the model it replaces; and the box now shows it, disabled again
    # once "the current model" is chosen.
    assert (model.config.depth, model.config.base_width, model.config.out_channels) == (2, 4, 2)
    option.start_combo.setCurrentIndex(option.start_combo.findData("current"))
    assert option.arch() == "unetpp" and not option.arch_combo.isEnabled()
