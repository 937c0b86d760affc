"""The fixed validation split and the data preparation of fine-tuning."""

from __future__ import annotations

import numpy as np
import torch

from napari_unet.core.model import build_model
from napari_unet.core.validation import (
    WHOLE_IMAGE_MIN,
    assign_split,
    image_key,
    prepare_data,
    strip_box,
)


def keys_and_shapes(n: int, size: int = 32):
    rng = np.random.default_rng(n)
    images = [rng.integers(0, 255, (size, size), dtype=np.uint8) for _ in range(n)]
    return [image_key(im) for im in images], [im.shape for im in images], images


def test_image_key_depends_on_content_shape_and_dtype():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert image_key(a) == image_key(a.copy())
    assert image_key(a) != image_key(a.reshape(4, 3))
    assert image_key(a) != image_key(a.astype(np.uint16))
    b = a.copy()
    b[0, 0] = 1
    assert image_key(a) != image_key(b)
    assert image_key(a[:, ::-1]) == image_key(np.ascontiguousarray(a[:, ::-1]))


def test_few_images_get_a_strip_each_deterministically():
    keys, shapes, _ = keys_and_shapes(2, size=100)
    split = assign_split(keys, shapes, 0.2)
    assert split == assign_split(keys, shapes, 0.2)
    for entry in split["images"].values():
        y0, y1, x0, x1 = entry["box"]
        assert entry["role"] == "strip"
        assert (y1 - y0) * (x1 - x0) == 20 * 100  # 20 % of the image
        assert y0 == 0 or y1 == 100 or x0 == 0 or x1 == 100  # along an edge


def test_many_images_hold_out_whole_images():
    keys, shapes, _ = keys_and_shapes(40)
    split = assign_split(keys, shapes, 0.25)
    roles = [split["images"][k]["role"] for k in keys]
    assert set(roles) == {"train", "val"}
    assert 4 <= roles.count("val") <= 18  # about a quarter


def test_at_least_one_validation_image():
    keys, shapes, _ = keys_and_shapes(WHOLE_IMAGE_MIN)
    for fraction in (0.2, 0.3):
        roles = [assign_split(keys, shapes, fraction)["images"][k]["role"] for k in keys]
        assert "val" in roles and "train" in roles


def test_stored_assignments_win_and_are_kept():
    keys, shapes, _ = keys_and_shapes(3)
    first = assign_split(keys[:2], shapes[:2], 0.2)
    later = assign_split(keys, shapes, 0.5, stored=first)
    for k in keys[:2]:
        assert later["images"][k] == first["images"][k]
    assert later["val_fraction"] == 0.2
    # Images that are not passed in stay in the stored split.
    assert assign_split(keys[2:], shapes[2:], 0.2, stored=later)["images"].keys() == set(keys)
    # No validation asked: nothing is added.
    assert assign_split(keys, shapes, 0.0)["images"] == {}


def test_strip_box_edge_cases():
    assert strip_box((1, 1), 0.2, "top") is None
    assert strip_box((1, 10), 0.2, "top") == [0, 1, 0, 2]  # falls back to a side
    assert strip_box((3, 3), 0.01, "bottom") == [2, 3, 0, 3]  # at least one row
    assert strip_box((2, 2), 0.9, "right") == [0, 2, 1, 2]  # at least one left to train


def test_prepare_data_never_trains_on_the_strip():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 1000, (60, 80)).astype(np.uint16)
    labels = (rng.random((60, 80)) > 0.8).astype(np.int32)
    model = build_model(base_width=4, depth=2)
    data = prepare_data([image], [labels], None, model, val_fraction=0.25, weighting="border")
    (entry,) = data.split["images"].values()
    y0, y1, x0, x1 = entry["box"]
    (train,) = data.train_images
    assert data.val.pixels == (y1 - y0) * (x1 - x0)
    assert data.train_pixels + data.val.pixels == image.size
    assert train.shape[1:] == data.train_targets[0].shape == data.train_weights[0].shape
    # The training crop is the image minus the strip (normalisation is per image).
    full = prepare_data([image], [labels], None, model, val_fraction=0.0).train_images[0]
    rows = (
        slice(y1, 60)
        if y0 == 0 and y1 < 60
        else slice(0, y0)
        if y1 == 60 and y0 > 0
        else slice(0, 60)
    )
    cols = (
        slice(x1, 80)
        if x0 == 0 and x1 < 80
        else slice(0, x0)
        if x1 == 80 and x0 > 0
        else slice(0, 80)
    )
    assert np.array_equal(train, full[:, rows, cols])
    assert 0.0 <= data.val.dice(model, torch.device("cpu")) <= 1.0


def test_weightings():
    labels = np.zeros((40, 40), np.int32)
    labels[5:15, 5:15] = 1
    labels[5:15, 17:27] = 2  # two objects 2 px apart: a strong border term
    image = (labels > 0).astype(np.float32)
    model = build_model(base_width=4, depth=2)
    common = {"val_fraction": 0.0}
    paper = prepare_data([image], [labels], None, model, weighting="paper", **common)
    border = prepare_data([image], [labels], None, model, weighting="border", **common)
    none = prepare_data([image], [labels], None, model, weighting="none", **common)
    assert none.train_weights is None
    w_paper, w_border = paper.train_weights[0], border.train_weights[0]
    fg = labels > 0
    assert np.allclose(w_border[fg], 1.0)  # no class balance on the foreground
    assert w_paper[fg].min() > 1.5  # class balance: foreground is the rarer class
    gap = (10, 16)
    assert w_border[gap] > 5 and w_paper[gap] > 5  # the border term between the two
