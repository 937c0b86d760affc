"""Segment with several model files: an ensemble, its spread as the uncertainty layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from napari.layers import Image
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication, QDialogButtonBox, QFileDialog

from napari_unet.core.checkpoint import load_model, save_model
from napari_unet.core.inference import predict_proba
from napari_unet.core.model import build_model
from napari_unet.gui._model_choice import FROM_FILE
from napari_unet.gui.session import get_session

pytestmark = pytest.mark.gui


def blobs(shape=(64, 72), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = rng.normal(20, 5, shape).astype(np.float32)
    for cy, cx in [(16, 16), (40, 44), (20, 50)]:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] += 100
    return image


def tiny_models(tmp_path, n=3):
    paths = []
    for k in range(n):
        torch.manual_seed(k)
        model = build_model(base_width=4, depth=2, out_channels=2).eval()
        model.threshold = 0.3 + 0.1 * k
        paths.append(save_model(model, tmp_path / f"m{k}.pt"))
    return paths


def choose_files_in_dialog(combo, paths):
    """Pick "from file..." and select ``paths`` in the real open dialog, then Open."""
    seen = []

    def answer(tries=0):
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QFileDialog):
            if tries < 200:
                QTimer.singleShot(50, lambda: answer(tries + 1))
            return
        seen.append(dialog)
        dialog.setDirectory(str(paths[0].parent))
        dialog.selectFile(" ".join(f'"{p.name}"' for p in paths))
        dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.Open).click()

    QTimer.singleShot(0, answer)
    index = combo.findData(FROM_FILE)
    combo.setCurrentIndex(index)
    combo.activated.emit(index)
    assert seen, "the file dialog never opened"


def test_several_files_segment_as_an_ensemble_with_its_spread(make_napari_viewer, qtbot, tmp_path):
    paths = tiny_models(tmp_path)
    viewer = make_napari_viewer()
    image = blobs()
    viewer.add_image(image, name="cells")
    _, segment = viewer.window.add_plugin_dock_widget("napari-unet", "Segment")
    session = get_session(viewer)
    in_use = session.get_model()
    choice = segment.model_choice
    choose_files_in_dialog(choice.combo, paths)
    assert choice.combo.currentText() == "ensemble of 3: m0.pt, m1.pt, m2.pt"
    assert choice.combo.itemData(choice.combo.currentIndex(), 3).count("\n") == 2  # tooltip

    segment.device_combo.setCurrentIndex(segment.device_combo.findData("cpu"))
    segment.run()
    # The widget drops its worker when it has finished: no signal to miss.
    qtbot.waitUntil(lambda: segment.worker is None, timeout=120_000)

    # Every model ran: the probabilities are their mean, the uncertainty their spread.
    probs = np.stack([predict_proba(image, load_model(p), device="cpu") for p in paths])
    record = session.predictions["cells mask"]
    np.testing.assert_allclose(record.prob, probs.mean(axis=0), atol=1e-5)
    layer = viewer.layers["cells uncertainty"]
    assert isinstance(layer, Image) and not layer.visible
    np.testing.assert_allclose(layer.data, probs.std(axis=0), atol=1e-5)
    assert float(layer.data.max()) > 1e-3  # the models differ
    assert segment.threshold_slider.value() == pytest.approx(0.4)  # mean of 0.3, 0.4, 0.5
    assert "uncertainty in 'cells uncertainty'" in segment.status.text()
    # An ensemble is not one network to fine-tune: the session keeps its model.
    assert session.model is in_use


def test_a_bad_file_among_several_leaves_the_box_as_it_was(
    make_napari_viewer, qtbot, tmp_path, messages
):
    paths = tiny_models(tmp_path, n=2)
    junk = tmp_path / "notes.pt"
    junk.write_bytes(b"a quick note\n")
    viewer = make_napari_viewer()
    _, segment = viewer.window.add_plugin_dock_widget("napari-unet", "Segment")
    choice = segment.model_choice
    assert choice.load_file(paths[0])
    in_use = choice.model()

    choose_files_in_dialog(choice.combo, [paths[1], junk])
    errors = [m for m in messages if "notes.pt" in m]
    assert len(errors) == 1 and errors[0].startswith("Segment: ") and "\n" not in errors[0]
    assert "unchanged" in errors[0]
    assert choice.combo.currentText() == "file: m0.pt"
    assert not any("ensemble" in choice.combo.itemText(i) for i in range(choice.combo.count()))
    assert choice.model() is in_use
