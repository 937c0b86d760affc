"""A three-output model: each object's scaled distance to its edge, and the split it seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _fixtures import fine_tuned_maps, touching_squares, untrained_maps

from napari_unet.core.events import run_to_completion
from napari_unet.core.inference import Prediction, iter_predict
from napari_unet.core.instances import instances_from_maps, split_objects, with_objects
from napari_unet.core.losses import get_loss
from napari_unet.core.model import build_model
from napari_unet.core.targets import (
    DISTANCE_LEVELS,
    DISTANCE_SHIFT,
    IGNORE_RIM_BIT,
    distance_target,
)
from napari_unet.core.training import training_loss
from napari_unet.core.tta import iter_predict_tta
from napari_unet.core.validation import prepare_data


def _squares(shape=(40, 60)) -> np.ndarray:
    """Two 16x16 squares side by side, touching along a straight edge (no neck)."""
    return touching_squares(shape, top=12, left=10, side=16)


def test_distance_target_peaks_once_per_object_and_falls_to_every_edge():
    labels = _squares()
    levels = distance_target(labels)
    assert levels.dtype == np.uint8 and levels.max() == DISTANCE_LEVELS
    assert (levels[labels == 0] == 0).all() and (levels[labels > 0] >= 1).all()
    for i in (1, 2):
        assert levels[labels == i].max() == DISTANCE_LEVELS  # each object its own centre
    # At the contact both sides are at the lowest level, as at the outline.
    lowest = levels[labels > 0].min()
    assert levels[20, 25] == levels[20, 26] == levels[12, 18] == lowest < levels[20, 20]
    # Scaled to the object: a square twice the size has the same profile.
    big = np.zeros((80, 80), np.int32)
    big[8:40, 8:40] = 1
    small = distance_target(big[::2, ::2])
    np.testing.assert_allclose(distance_target(big)[::2, ::2], small, atol=2)
    # A binary mask's components are its objects; stacks go plane by plane.
    stack = np.stack([labels > 0, np.zeros_like(labels, bool)])
    out = distance_target(stack)
    np.testing.assert_array_equal(out[0], distance_target(labels > 0))
    assert not out[1].any()


def test_three_output_targets_pack_the_distance_and_the_loss_uses_it():
    labels = _squares()
    image = (labels > 0) * 200.0 + 20.0
    two = prepare_data([image], [labels], None, build_model(depth=2, base_width=4, out_channels=2),
                       val_fraction=0.0)  # fmt: skip
    three = prepare_data([image], [labels], None, build_model(depth=2, base_width=4,
                         out_channels=3), val_fraction=0.0)  # fmt: skip
    code, code2 = three.train_targets[0], two.train_targets[0]
    np.testing.assert_array_equal(code & ((1 << DISTANCE_SHIFT) - 1), code2)
    np.testing.assert_array_equal(code >> DISTANCE_SHIFT, distance_target(labels))

    loss = get_loss("default")
    target = torch.from_numpy(code[None, None].astype(np.float32))
    logits = torch.zeros((1, 3) + code.shape, requires_grad=True)
    value = training_loss(loss, logits, target, None)
    base = training_loss(loss, logits[:, :2], target, None)
    assert float(value) > float(base)  # the distance term adds to the two outputs' loss
    value.backward()
    assert logits.grad[0, 2].abs().sum() > 0
    # Pixels whose rim is unknown (pseudo-labels) leave the distance out too.
    unknown = target + IGNORE_RIM_BIT
    assert float(training_loss(loss, logits, unknown, None)) == pytest.approx(
        float(training_loss(loss, logits[:, :1], unknown, None))
    )


def test_a_predicted_distance_map_parts_objects_the_mask_shape_cannot():
    labels = _squares()
    mask = labels > 0
    no_rim = np.zeros(mask.shape, np.float32)
    # A rectangle has no neck: the shape alone keeps it whole ...
    assert split_objects(mask, no_rim).max() == 1
    # ... the distance of each object to its own edge has two peaks.
    distance = distance_target(labels).astype(np.float32) / DISTANCE_LEVELS
    parts = split_objects(mask, no_rim, distance=distance)
    assert parts.max() == 2
    for i in (1, 2):
        assert np.mean(parts[labels == i] == np.bincount(parts[labels == i]).argmax()) > 0.9
    # with_objects and instances_from_maps take the map from the prediction.
    maps = with_objects(Prediction(mask.astype(np.float32), no_rim, distance=distance), 0.5)
    np.testing.assert_array_equal(maps.objects, parts)
    objects = instances_from_maps(mask.astype(np.float32), no_rim, 0.5, distance=distance)
    assert objects.max() == 2
    # Stacks: plane by plane.
    stack = split_objects(np.stack([mask, mask]), np.stack([no_rim] * 2),
                          distance=np.stack([distance] * 2))  # fmt: skip
    assert stack.max() == 4


def test_three_output_models_predict_the_distance_and_tta_averages_it():
    image, model, maps = untrained_maps(out_channels=3)
    assert maps.distance.shape == maps.boundary.shape == image.shape
    assert 0 <= maps.distance.min() and maps.distance.max() <= 1
    assert not np.allclose(maps.distance, maps.boundary)
    tta = run_to_completion(iter_predict_tta(image, model, device="cpu"))
    assert tta.distance.shape == image.shape and not np.array_equal(tta.distance, maps.distance)
    two = build_model(base_width=4, depth=2, out_channels=2)
    assert run_to_completion(iter_predict(image, two, device="cpu")).distance is None


def test_fine_tuning_a_three_output_model_learns_centres_apart():
    maps = fine_tuned_maps(_squares(shape=(64, 96)), out_channels=3)
    labels = _squares(shape=(64, 96))
    levels = distance_target(labels)
    centres = levels == DISTANCE_LEVELS
    edges = (labels > 0) & (levels <= 2)
    assert maps.distance[centres].mean() > maps.distance[edges].mean() + 0.1
