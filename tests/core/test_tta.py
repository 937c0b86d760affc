"""Test-time augmentation: exact for the identity, equivariant over the 8 transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_unet.core.events import Progress, run_to_completion
from napari_unet.core.inference import iter_predict
from napari_unet.core.model import build_model
from napari_unet.core.tta import TRANSFORMS, iter_predict_tta


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(base_width=4, depth=2, out_channels=2).eval()


def image(shape=(40, 56), seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_the_identity_alone_is_a_plain_prediction(model):
    x = image()
    plain = run_to_completion(iter_predict(x, model, device="cpu"))
    tta = run_to_completion(iter_predict_tta(x, model, device="cpu", transforms=((0, False),)))
    np.testing.assert_allclose(tta.proba, plain.proba, atol=1e-6)
    np.testing.assert_allclose(tta.boundary, plain.boundary, atol=1e-6)
    assert np.all(tta.uncertainty < 1e-6)  # one transform: no spread


def test_eight_transforms_make_the_prediction_rotation_equivariant(model):
    x = image()
    events = []
    tta = run_to_completion(iter_predict_tta(x, model, device="cpu"), events.append)
    turned = run_to_completion(iter_predict_tta(np.rot90(x), model, device="cpu"))
    np.testing.assert_allclose(turned.proba, np.rot90(tta.proba), atol=1e-5)
    np.testing.assert_allclose(turned.uncertainty, np.rot90(tta.uncertainty), atol=1e-5)
    assert tta.proba.shape == tta.uncertainty.shape == x.shape
    assert tta.uncertainty.max() > 0 and tta.uncertainty.min() >= 0
    steps = [e for e in events if isinstance(e, Progress)]
    assert steps[-1].step == steps[-1].total and len(steps) >= len(TRANSFORMS)
    assert "transform 8/8" in steps[-1].message
    # The mean of 8 orientations is not one of them.
    plain = run_to_completion(iter_predict(x, model, device="cpu"))
    assert not np.allclose(tta.proba, plain.proba, atol=1e-4)


def test_stacks_and_colour_images_keep_their_layout(model):
    stack = np.stack([image(seed=1), image(seed=2)])
    out = run_to_completion(iter_predict_tta(stack, model, device="cpu"))
    assert out.proba.shape == stack.shape
    per_plane = run_to_completion(iter_predict_tta(stack[1], model, device="cpu"))
    np.testing.assert_allclose(out.proba[1], per_plane.proba, atol=1e-6)
    rgb = np.random.default_rng(3).integers(0, 255, (30, 44, 3), dtype=np.uint8)
    out = run_to_completion(iter_predict_tta(rgb, model, device="cpu"))
    assert out.proba.shape == out.uncertainty.shape == (30, 44)


def test_the_most_uncertain_region_is_found():
    from napari_unet.core.tta import most_uncertain_region

    u = np.zeros((3, 100, 120), np.float32)
    u[1, 60:80, 10:30] = 1.0  # the worst slice and spot
    u[2, 5:10, 5:10] = 0.5
    z, (y0, y1, x0, x1) = most_uncertain_region(u, window=20)
    assert z == 1 and (y0, y1, x0, x1) == (60, 80, 10, 30)
    z, box = most_uncertain_region(u[2], window=200)  # larger than the plane: the plane
    assert z is None and box == (0, 100, 0, 100)
    z, (y0, y1, x0, x1) = most_uncertain_region(u[1])
    assert y1 - y0 == 32 and y0 <= 60 and y1 >= 80 and x0 <= 10 and x1 >= 30
