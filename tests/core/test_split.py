"""The fixed validation split: image keys, whole images, bands and strips."""

from __future__ import annotations

import numpy as np

from napari_unet.core.split import WHOLE_IMAGE_MIN, assign_split, image_key, strip_box


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


def test_whole_images_are_stratified_by_foreground():
    # Half the slices empty: the validation set still gets foreground images.
    rng = np.random.default_rng(3)
    images, masks = [], []
    for i in range(12):
        mask = np.zeros((32, 32), np.int32)
        if i % 2:
            mask[10:14, 10:14] = 1
        images.append(rng.random((32, 32)).astype(np.float32) + i)
        masks.append(mask)
    keys = [image_key(i) for i in images]
    split = assign_split(keys, [m.shape for m in masks], 0.25, masks=masks)
    roles = {k: split["images"][k]["role"] for k in keys}
    val_fg = [roles[k] == "val" for k, m in zip(keys, masks, strict=True) if m.any()]
    val_empty = [roles[k] == "val" for k, m in zip(keys, masks, strict=True) if not m.any()]
    assert sum(val_fg) == round(0.25 * 6) and sum(val_empty) == round(0.25 * 6)


def test_lone_foreground_image_gives_up_a_band():
    images = [np.full((32, 32), i, np.float32) for i in range(6)]
    masks = [np.zeros((32, 32), np.int32) for _ in range(6)]
    masks[4][5:9, 5:9] = 1
    masks[4][20:24, 20:24] = 2
    keys = [image_key(i) for i in images]
    split = assign_split(keys, [m.shape for m in masks], 0.2, masks=masks)
    assert split["images"][keys[4]]["role"] == "strip"
