"""The border-weight map against a brute-force reading of eq. 2, and training targets."""

from __future__ import annotations

import numpy as np
import pytest
from _fixtures import touching_squares
from scipy import ndimage as ndi

from napari_unet.core.errors import InputError
from napari_unet.core.targets import separation_border, target_and_weights, training_target
from napari_unet.core.weights import (
    border_cutoff,
    border_weight_map,
    class_balance_weights,
)


def brute_force_weights(labels: np.ndarray, w0: float, sigma: float) -> np.ndarray:
    """Eq. 2 straight from the definition: one full distance transform per object."""
    labels = np.asarray(labels)
    fg = labels > 0
    values = np.unique(labels[fg])
    if values.size == 1 or labels.dtype == bool:
        objects, _ = ndi.label(fg, structure=np.ones((3, 3)))
        values = np.unique(objects[fg])
    else:
        objects = labels
    n = labels.size
    n_fg = fg.sum()
    if n_fg in (0, n):
        w = np.ones(labels.shape)
    else:
        w = np.where(fg, n / (2.0 * n_fg), n / (2.0 * (n - n_fg)))
    if values.size >= 2:
        dist = np.sort(np.stack([ndi.distance_transform_edt(objects != v) for v in values]), 0)
        term = w0 * np.exp(-((dist[0] + dist[1]) ** 2) / (2 * sigma**2))
        w = w + np.where(fg, 0.0, term)
    return w


def random_instances(rng: np.random.Generator, shape, n: int, touching: bool) -> np.ndarray:
    """Random rectangles and disks; later ones may overwrite (touch) earlier ones."""
    labels = np.zeros(shape, dtype=np.int32)
    yy, xx = np.indices(shape)
    for i in range(1, n + 1):
        cy, cx = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        r = rng.integers(2, 9)
        if rng.random() < 0.5:
            shape_mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        else:
            shape_mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= rng.integers(1, 6))
        if not touching:
            grown = ndi.binary_dilation(labels > 0, iterations=2)
            if (shape_mask & grown).any():
                continue
        labels[shape_mask] = i
    return labels


CASES = [
    # (seed, shape, objects, touching, w0, sigma)
    (0, (48, 64), 8, False, 10.0, 5.0),
    (1, (64, 48), 12, True, 10.0, 5.0),
    (2, (40, 40), 6, True, 3.7, 2.3),
    (3, (50, 70), 10, False, 25.0, 9.0),
    (4, (33, 47), 9, True, 0.5, 1.0),
    (5, (60, 60), 15, True, 100.0, 0.7),
]


@pytest.mark.parametrize(("seed", "shape", "n", "touching", "w0", "sigma"), CASES)
def test_instance_labels_match_brute_force(seed, shape, n, touching, w0, sigma):
    labels = random_instances(np.random.default_rng(seed), shape, n, touching)
    assert len(np.unique(labels)) > 3
    got = border_weight_map(labels, w0=w0, sigma=sigma)
    assert got.dtype == np.float32 and got.shape == labels.shape
    np.testing.assert_allclose(got, brute_force_weights(labels, w0, sigma), rtol=0, atol=1e-3)


@pytest.mark.parametrize("value", [1, 255, True])
def test_binary_mask_uses_connected_components(value):
    labels = random_instances(np.random.default_rng(7), (56, 56), 10, touching=False)
    mask = np.where(labels > 0, value, 0).astype(bool if value is True else np.uint8)
    got = border_weight_map(mask, w0=10, sigma=5)
    np.testing.assert_allclose(got, brute_force_weights(mask, 10, 5), rtol=0, atol=1e-3)
    # Components of the binary mask are the same objects as the instances.
    np.testing.assert_allclose(got, border_weight_map(labels), atol=1e-6)


def test_objects_far_apart_and_large_sigma():
    # Objects farther apart than the cut-off radius, and a sigma so large that
    # the crop around each object covers the whole image.
    labels = np.zeros((40, 120), dtype=np.uint16)
    labels[5:10, 5:10] = 3
    labels[30:35, 100:110] = 9
    labels[18:22, 55:60] = 4
    for w0, sigma in [(10.0, 5.0), (10.0, 40.0), (2.0, 3.0)]:
        np.testing.assert_allclose(
            border_weight_map(labels, w0, sigma),
            brute_force_weights(labels, w0, sigma),
            rtol=0,
            atol=1e-3,
        )


def test_large_object_among_small_ones():
    # A large, non-convex object (a ring around a blob, like a lung with
    # nodules) makes the neighbour search pair it with everything.
    yy, xx = np.indices((90, 90))
    r = np.hypot(yy - 45, xx - 45)
    labels = np.where((r > 30) & (r < 36), 1, 0).astype(np.int32)
    labels[(r < 6)] = 2
    labels[10:13, 40:44] = 3  # outside the ring
    labels[44:46, 70:72] = 4  # inside the ring, near its wall
    labels[80:83, 5:8] = 5
    labels[0:90:30, 88:90] = 6  # one id in three separate pieces
    for w0, sigma in [(10.0, 5.0), (7.0, 3.0)]:
        np.testing.assert_allclose(
            border_weight_map(labels, w0, sigma),
            brute_force_weights(labels, w0, sigma),
            rtol=0,
            atol=1e-3,
        )


def test_many_objects_of_mixed_sizes():
    rng = np.random.default_rng(21)
    labels = random_instances(rng, (120, 120), 40, touching=True)
    labels[60:100, 10:50][labels[60:100, 10:50] == 0] = 99  # one big object
    np.testing.assert_allclose(
        border_weight_map(labels), brute_force_weights(labels, 10, 5), rtol=0, atol=1e-3
    )


def test_zero_objects_one_object_two_objects():
    empty = np.zeros((20, 30), dtype=np.uint8)
    np.testing.assert_array_equal(border_weight_map(empty), np.ones((20, 30), np.float32))

    one = empty.copy()
    one[5:10, 5:15] = 1
    w = border_weight_map(one)
    n, n_fg = one.size, one.sum()
    # No border term with a single object: only the class balance remains.
    np.testing.assert_allclose(w[one > 0], n / (2 * n_fg), rtol=1e-6)
    np.testing.assert_allclose(w[one == 0], n / (2 * (n - n_fg)), rtol=1e-6)

    two = one.copy()
    two[5:10, 17:25] = 2  # one-pixel gap, columns 15 and 16
    w2 = border_weight_map(two, w0=10, sigma=5)
    gap = w2[7, 15] - n / (2 * (n - two.astype(bool).sum()))
    # Gap pixel at column 15: d1 = 1 (to column 14), d2 = 2 (to column 17).
    assert gap == pytest.approx(10 * np.exp(-9 / 50), abs=1e-5)
    np.testing.assert_allclose(w2, brute_force_weights(two, 10, 5), rtol=0, atol=1e-3)


def test_all_foreground_and_single_pixel():
    full = np.full((8, 8), 4, dtype=np.int32)
    np.testing.assert_array_equal(border_weight_map(full), np.ones((8, 8), np.float32))
    np.testing.assert_array_equal(border_weight_map(np.zeros((1, 1))), [[1.0]])


def test_huge_sparse_ids():
    labels = np.zeros((30, 30), dtype=np.uint32)
    labels[3:8, 3:8] = 4_000_000_000
    labels[3:8, 12:16] = 17
    labels[20:25, 5:9] = 3_999_999_999
    np.testing.assert_allclose(
        border_weight_map(labels), brute_force_weights(labels, 10, 5), rtol=0, atol=1e-3
    )


def test_stack_is_weighted_slice_by_slice():
    rng = np.random.default_rng(11)
    stack = np.stack([random_instances(rng, (40, 40), 6, touching=True) for _ in range(3)])
    stack[1] = 0
    got = border_weight_map(stack, w0=8, sigma=4)
    assert got.shape == stack.shape
    for z in range(3):
        np.testing.assert_allclose(got[z], brute_force_weights(stack[z], 8, 4), atol=1e-3)


def test_cutoff_radius_bounds_the_dropped_term():
    for w0, sigma in [(10, 5), (1, 1), (1000, 0.3)]:
        r = border_cutoff(w0, sigma)
        assert w0 * np.exp(-(r**2) / (2 * sigma**2)) == pytest.approx(1e-4, rel=1e-9)
    assert border_cutoff(1e-5, 5) == 0.0


def test_zero_w0_leaves_class_balance():
    labels = random_instances(np.random.default_rng(3), (30, 30), 6, touching=True)
    np.testing.assert_allclose(border_weight_map(labels, w0=0.0), class_balance_weights(labels))


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [({"w0": -1.0}, "w0"), ({"sigma": 0.0}, "sigma"), ({"w0": float("nan")}, "w0")],
)
def test_bad_parameters_raise_one_line_error(kwargs, bad):
    with pytest.raises(InputError, match=bad) as info:
        border_weight_map(np.zeros((5, 5)), **kwargs)
    assert "\n" not in str(info.value)


def test_bad_labels_raise():
    with pytest.raises(InputError):
        border_weight_map(np.zeros(5))
    with pytest.raises(InputError):
        border_weight_map(np.array([[0.0, np.nan]]))


def test_class_balance_weights_sum_equally():
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[:2] = 255
    w = class_balance_weights(mask)
    assert w.dtype == np.float32
    assert w[mask > 0].sum() == pytest.approx(50.0)
    assert w[mask == 0].sum() == pytest.approx(50.0)
    np.testing.assert_array_equal(class_balance_weights(np.zeros((3, 3))), np.ones((3, 3)))


def two_touching_squares() -> np.ndarray:
    return touching_squares()


def test_separation_border_between_touching_squares():
    labels = two_touching_squares()
    border = separation_border(labels)
    expected = np.zeros_like(border)
    expected[2:8, 7:9] = True  # the columns where the squares meet, both sides
    np.testing.assert_array_equal(border, expected)


def test_separation_border_diagonal_contact_and_binary():
    labels = np.zeros((6, 6), dtype=np.int32)
    labels[1:3, 1:3] = 5
    labels[3:5, 3:5] = 7  # touches only at one corner
    border = separation_border(labels)
    assert border.sum() == 2 and border[2, 2] and border[3, 3]
    assert not separation_border(labels > 0).any()
    huge = np.where(labels > 0, labels.astype(np.uint64) + np.uint64(2**63), 0).astype(np.uint64)
    np.testing.assert_array_equal(separation_border(huge), border)
    assert not separation_border(np.zeros((4, 4))).any()


def test_training_target_separates_touching_objects():
    labels = two_touching_squares()
    target = training_target(labels)
    assert target.dtype == np.uint8 and set(np.unique(target)) == {0, 1}
    assert target.sum() == (labels > 0).sum() - 12
    _, n = ndi.label(target, structure=np.ones((3, 3)))
    assert n == 2  # the two objects are no longer 8-connected
    np.testing.assert_array_equal(training_target(labels, separate=False), labels > 0)


def test_training_target_on_random_crowd_keeps_objects_apart():
    labels = random_instances(np.random.default_rng(5), (64, 64), 20, touching=True)
    target = training_target(labels)
    kept = np.where(target > 0, labels, 0)
    # No pixel of one object is 8-adjacent to a pixel of another in the target.
    assert not separation_border(kept).any()


def test_target_and_weights_puts_weight_in_the_gap():
    labels = two_touching_squares()
    target, weights = target_and_weights(labels, w0=10, sigma=5)
    np.testing.assert_array_equal(target, training_target(labels))
    gap = weights[4, 7] - weights[0, 0]
    assert gap > 5.0  # a 2-pixel gap between objects: d1 + d2 is at most 3
    np.testing.assert_allclose(
        weights, brute_force_weights(np.where(target > 0, labels, 0), 10, 5), atol=1e-3
    )
