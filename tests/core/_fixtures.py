"""Shared test data: touching squares, and the maps of a small network fine-tuned on them."""

from __future__ import annotations

import numpy as np
import torch

from napari_unet.core.events import run_to_completion
from napari_unet.core.inference import Prediction, iter_predict
from napari_unet.core.model import build_model
from napari_unet.core.training import fine_tune


def touching_squares(shape=(12, 16), top=2, left=2, side=6) -> np.ndarray:
    """Two ``side`` x ``side`` squares side by side, touching along a straight edge."""
    labels = np.zeros(shape, dtype=np.int32)
    labels[top : top + side, left : left + side] = 1
    labels[top : top + side, left + side : left + 2 * side] = 2
    return labels


def fine_tuned_maps(labels: np.ndarray, out_channels: int, epochs: int = 12) -> Prediction:
    """Fine-tune a small fresh network on an image of ``labels`` and predict that image."""
    rng = np.random.default_rng(0)
    image = ((labels > 0) * 180.0 + rng.normal(30, 10, labels.shape)).astype(np.float32)
    torch.manual_seed(0)
    model = build_model(base_width=8, depth=2, out_channels=out_channels)
    result = run_to_completion(
        fine_tune(model, [image], [labels], epochs=epochs, val_fraction=0.0, seed=0,
                  device="cpu", keep_start=False, lr=3e-3, patch_size=64)
    )  # fmt: skip
    return run_to_completion(iter_predict(image, result.model, device="cpu"))


def untrained_maps(out_channels: int, shape=(48, 64)) -> tuple[np.ndarray, object, Prediction]:
    """A random image, a small fresh network with ``out_channels`` outputs, and its maps."""
    torch.manual_seed(0)
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    model = build_model(base_width=4, depth=2, out_channels=out_channels)
    return image, model, run_to_completion(iter_predict(image, model, device="cpu"))
