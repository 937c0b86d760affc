"""Fine-tune's "Also learn from the slices I have not corrected", in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cells import cells

from napari_unet.core.model import build_model
from napari_unet.gui.finetune_widget import FineTuneWidget
from napari_unet.gui.session import TrainingPair, get_session, pair_name

pytestmark = pytest.mark.gui


def test_unaccepted_slices_of_a_stack_are_pseudo_labelled(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    session = get_session(viewer)
    session.training_dir = tmp_path / "training-set"
    session.device = "cpu"
    torch.manual_seed(0)
    session.set_model(build_model(base_width=4, depth=2).eval(), "tiny")
    planes = [cells(seed, 48, 3) for seed in range(4)]
    stack = np.stack([p[0] for p in planes])
    viewer.add_image(stack, name="stack")
    viewer.add_image(cells(9, 48, 3)[0], name="single")  # a 2D image has no slices to add
    session.accept_pairs(
        TrainingPair(name=pair_name("stack", z), image=stack[z], mask=planes[z][1]) for z in (0, 2)
    )
    widget = FineTuneWidget(viewer)
    widget.patch_spin.setValue(32)
    widget.epochs_spin.setValue(1)
    widget.replay_check.setChecked(False)
    widget.repredict_check.setChecked(False)

    assert not widget.pseudo_check.isChecked()  # off unless asked for
    assert widget.pseudo_check.unlabelled(session.training_set) is None
    widget.pseudo_check.setChecked(True)
    slices = widget.pseudo_check.unlabelled(session.training_set)
    assert slices is not None and len(slices) == 2
    np.testing.assert_array_equal(slices[0], stack[1])
    np.testing.assert_array_equal(slices[1], stack[3])

    assert widget.start() is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    run = widget.result.model.history[-1]
    assert run["pseudo_labels"]["planes"] == 2
    assert widget.notice.startswith("pseudo-labels: 2 unlabelled images")  # said in the panel
    assert run["pseudo_labels"]["confident"] + run["pseudo_labels"]["ignored"] == 2 * 48 * 48
    # The validation set holds the accepted slices only.
    split = widget.result.model.extra["validation_split"]["images"]
    assert len(split) == 2


def test_without_accepted_slices_nothing_is_added(make_napari_viewer):
    viewer = make_napari_viewer()
    session = get_session(viewer)
    viewer.add_image(np.zeros((3, 16, 16), np.float32), name="stack")
    session.accept_pairs(
        [TrainingPair(name="other", image=np.zeros((16, 16)), mask=np.zeros((16, 16)))]
    )
    widget = FineTuneWidget(viewer)
    widget.pseudo_check.setChecked(True)
    assert widget.pseudo_check.unlabelled(session.training_set) is None
