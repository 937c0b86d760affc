"""Segment's test-time augmentation and Correct's "go to the most uncertain region"."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image

from napari_unet.core.checkpoint import load_model, save_model
from napari_unet.core.events import run_to_completion
from napari_unet.core.model import build_model
from napari_unet.core.tta import iter_predict_tta, most_uncertain_region
from napari_unet.gui.correct_widget import CorrectMasksWidget
from napari_unet.gui.segment_widget import SegmentWidget
from napari_unet.gui.session import get_session

pytestmark = pytest.mark.gui


def blobs(shape=(3, 64, 72), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    image = rng.normal(20, 5, shape).astype(np.float32)
    for cy, cx in [(16, 16), (40, 44), (20, 50)]:
        image[..., (yy - cy) ** 2 + (xx - cx) ** 2 < 36] += 100
    return image


def test_tta_adds_an_uncertainty_layer_and_correct_goes_to_its_peak(
    make_napari_viewer, qtbot, tmp_path, messages
):
    path = save_model(build_model(base_width=4, depth=2, out_channels=2).eval(), tmp_path / "m.pt")
    viewer = make_napari_viewer()
    image = blobs()
    viewer.add_image(image, name="cells")
    correct = CorrectMasksWidget(viewer)
    assert correct.go_to_uncertain() is None  # nothing yet: says how to get one
    assert any("Test-time augmentation" in m for m in messages)

    segment = SegmentWidget(viewer)
    assert segment.model_choice.load_file(path)
    segment.device_combo.setCurrentIndex(segment.device_combo.findData("cpu"))
    segment.tta_check.setChecked(True)
    segment.run()
    qtbot.waitUntil(lambda: segment.worker is None, timeout=120_000)

    layer = viewer.layers["cells uncertainty"]
    assert isinstance(layer, Image) and not layer.visible
    expected = run_to_completion(iter_predict_tta(image, load_model(path), device="cpu"))
    np.testing.assert_allclose(layer.data, expected.uncertainty, atol=1e-6)
    record = get_session(viewer).predictions["cells mask"]
    np.testing.assert_allclose(record.prob, expected.proba, atol=1e-6)
    assert "uncertainty in 'cells uncertainty'" in segment.status.text()

    correct.image_combo.set_layer("cells")
    z, box = correct.go_to_uncertain()
    assert (z, box) == most_uncertain_region(expected.uncertainty)
    assert viewer.dims.current_step[0] == z
    y0, y1, x0, x1 = box
    assert tuple(viewer.camera.center[-2:]) == pytest.approx(((y0 + y1) / 2, (x0 + x1) / 2))
    assert layer.visible
