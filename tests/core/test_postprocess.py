"""Thresholding probabilities and the one-click mask corrections."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_unet.core.errors import InputError
from napari_unet.core.postprocess import (
    as_instances,
    delete_object,
    fill_holes,
    filled,
    is_binary,
    label_objects,
    mask_from_proba,
    merge_touching,
    relabel_sequential,
    remove_small,
)


def ring(shape=(12, 12), value=1, dtype=np.uint8) -> np.ndarray:
    mask = np.zeros(shape, dtype=dtype)
    mask[2:9, 2:9] = value
    mask[4:7, 4:7] = 0  # a 3x3 hole
    return mask


def test_mask_from_proba_thresholds_inclusively():
    prob = np.array([[0.1, 0.5], [0.49, 0.9]], dtype=np.float32)
    mask = mask_from_proba(prob, 0.5)
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, [[0, 1], [0, 1]])
    assert mask_from_proba(np.array([[np.nan]], np.float32), 0.0)[0, 0] == 0


def test_mask_from_proba_writes_into_out_in_place():
    rng = np.random.default_rng(0)
    prob = rng.random((64, 64), dtype=np.float32)
    for dtype in (np.uint8, np.int32, bool):
        out = np.full(prob.shape, 7, dtype=dtype)
        result = mask_from_proba(prob, 0.3, out=out)
        assert result is out
        np.testing.assert_array_equal(out, prob >= np.float32(0.3))
    with pytest.raises(InputError, match="shape"):
        mask_from_proba(prob, 0.3, out=np.zeros((3, 3), np.uint8))


def test_mask_from_proba_compares_in_the_probability_dtype():
    # float32(0.3) > 0.3 as a float64: a pixel holding float32(0.3) is on at t=0.3.
    prob = np.full((2, 2), 0.3, dtype=np.float32)
    assert mask_from_proba(prob, 0.3).all()


def test_mask_from_proba_min_size_and_fill_holes():
    prob = ring(dtype=np.float32) * 0.9
    prob[0, 11] = 0.95  # a one-pixel speck
    mask = mask_from_proba(prob, 0.5, fill_holes=True, min_size=2)
    expected = np.zeros((12, 12), np.uint8)
    expected[2:9, 2:9] = 1
    np.testing.assert_array_equal(mask, expected)
    stack = np.stack([prob, prob * 0])
    out = np.zeros(stack.shape, np.uint8)
    mask_from_proba(stack, 0.5, fill_holes=True, min_size=2, out=out)
    np.testing.assert_array_equal(out[0], expected)
    assert not out[1].any()


def test_mask_from_proba_rejects_bad_threshold():
    with pytest.raises(InputError):
        mask_from_proba(np.zeros((2, 2)), float("nan"))
    with pytest.raises(InputError):
        mask_from_proba(np.zeros((2, 2)), 0.5, min_size=-1)


def test_is_binary_and_as_instances():
    assert is_binary(np.array([[0, 255], [255, 0]], np.uint8))
    assert is_binary(np.zeros((2, 2)))
    assert is_binary(np.array([[True, False]]))
    assert not is_binary(np.array([[1, 2]]))
    assert is_binary(np.array([[-1, 3, 3]]))  # negatives are background
    labels = np.array([[0, 5, 5, 0, 9]])
    np.testing.assert_array_equal(as_instances(labels), labels)
    np.testing.assert_array_equal(as_instances(np.array([[0, 255, 0, 255]])), [[0, 1, 0, 2]])
    with pytest.raises(InputError, match="whole numbers"):
        as_instances(np.array([[0.0, 0.5, 2.0]]))


def test_label_objects_8_connected_and_unique_in_stack():
    mask = np.zeros((2, 5, 5), dtype=np.uint8)
    mask[0, 0, 0] = mask[0, 1, 1] = 1  # diagonal neighbours: one object
    mask[0, 4, 4] = 1
    mask[1, 2, 2] = 255
    labels = label_objects(mask)
    assert labels.dtype == np.int32
    assert labels[0, 0, 0] == labels[0, 1, 1] != labels[0, 4, 4]
    assert len(np.unique(labels[labels > 0])) == 3


def test_remove_small_on_mask_and_labels():
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[0:3, 0:3] = 255  # 9 px
    mask[6:8, 6:8] = 255  # 4 px
    out = remove_small(mask, 5)
    assert out.dtype == np.uint8 and set(np.unique(out)) == {0, 255}
    assert out[0:3, 0:3].all() and not out[6:8, 6:8].any()
    labels = np.zeros((10, 10), dtype=np.int32)
    labels[0:3, 0:3] = 4
    labels[3, 0:3] = 5  # touches 4 but is its own 3-px object
    out = remove_small(labels, 4)
    assert (out == 4).sum() == 9 and not (out == 5).any()
    np.testing.assert_array_equal(remove_small(labels, 0), labels)
    stack = np.stack([labels, labels])
    np.testing.assert_array_equal(remove_small(stack, 4)[1], out)


def test_fill_holes_binary_and_labels():
    filled = fill_holes(ring(value=255))
    assert filled.dtype == np.uint8 and filled[5, 5] == 255 and filled[2:9, 2:9].all()
    labels = ring(dtype=np.int32) * 3
    labels[2:9, 9:11] = 8  # a neighbour that does not enclose the hole
    out = fill_holes(labels)
    assert (out[4:7, 4:7] == 3).all()
    np.testing.assert_array_equal(out[labels > 0], labels[labels > 0])
    # An open notch is not a hole.
    notch = ring()
    notch[4:7, 2:4] = 0
    np.testing.assert_array_equal(fill_holes(notch), notch)


def test_filled_matches_binary_fill_holes():
    # One labelling of the background must fill exactly what scipy's dilation fills,
    # holes touching the border or foreground on the border included.
    rng = np.random.default_rng(0)
    for _ in range(300):
        shape = tuple(int(n) for n in rng.integers(1, 30, 2))
        mask = rng.random(shape) < rng.random()
        np.testing.assert_array_equal(filled(mask), ndi.binary_fill_holes(mask))
    # 4-connected background: a diagonal gap does not let the border in.
    diagonal = np.ones((4, 4), bool)
    diagonal[1, 1] = diagonal[2, 2] = False
    assert filled(diagonal).all()


def test_delete_object_labels_mask_and_stack():
    labels = np.zeros((8, 8), dtype=np.int32)
    labels[0:3, 0:3] = 1
    labels[0:3, 3:6] = 2
    labels[6:8, 6:8] = 1  # the same id elsewhere, not connected
    out = delete_object(labels, 1, 1)
    assert not out[0:3, 0:3].any() and (out[0:3, 3:6] == 2).all() and (out[6:8, 6:8] == 1).all()
    assert (labels[0:3, 0:3] == 1).all()  # the input is untouched
    mask = (labels > 0).astype(np.uint8)
    out = delete_object(mask, 2, 4)
    assert not out[0:3, 0:6].any() and out[6:8, 6:8].all()
    stack = np.stack([labels, labels])
    out = delete_object(stack, 0, 4, z=1)
    np.testing.assert_array_equal(out[0], labels)
    assert not (out[1] == 2).any()


def test_delete_object_bad_positions():
    labels = np.zeros((4, 4), dtype=np.int32)
    labels[0, 0] = 1
    with pytest.raises(InputError, match="no object"):
        delete_object(labels, 3, 3)
    with pytest.raises(InputError, match="outside"):
        delete_object(labels, 4, 0)
    with pytest.raises(InputError, match="outside"):
        delete_object(labels, -1, 0)
    with pytest.raises(InputError, match="slice"):
        delete_object(labels[None], 0, 0)
    with pytest.raises(InputError, match="outside"):
        delete_object(labels[None], 0, 0, z=-1)
    assert not delete_object(labels[None], 0, 0, z=0).any()


def test_merge_touching_keeps_smallest_id():
    labels = np.zeros((8, 10), dtype=np.uint16)
    labels[0:3, 0:3] = 7
    labels[0:3, 3:5] = 4
    labels[3, 5] = 9  # diagonal contact with 4
    labels[6:8, 6:8] = 12
    out = merge_touching(labels)
    assert out.dtype == np.uint16
    assert set(np.unique(out[labels > 0])) == {4, 12}
    assert (out[labels > 0] > 0).all() and not out[labels == 0].any()
    assert len(np.unique(out)) - 1 == ndi.label(labels > 0, np.ones((3, 3)))[1]


def test_relabel_sequential():
    labels = np.array([[0, 50, 50], [7, 0, 1000]])
    np.testing.assert_array_equal(relabel_sequential(labels), [[0, 2, 2], [1, 0, 3]])
