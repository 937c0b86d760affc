"""Augmentation moves image, mask and weight map together."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from skimage.draw import disk

from napari_unet.core.augment import AugmentConfig, augment, deepen_target, elastic_displacement
from napari_unet.core.targets import boundary_target

H = W = 48
GEOMETRY_ONLY = AugmentConfig(intensity=False, noise=False, elastic=False, blur=False, scale=False)


def coordinate_images():
    """Image channels hold each pixel's own (y, x); mask and weight are functions of them."""
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    image = np.stack([yy, xx])
    mask = ((yy < 10) & (xx < 30)).astype(np.uint8)  # asymmetric, so every move shows
    weight = (yy * W + xx).astype(np.float32)
    return image, mask, weight


@pytest.mark.parametrize("seed", range(12))
def test_flips_and_rotations_keep_everything_aligned(seed):
    image, mask, weight = coordinate_images()
    out_img, out_mask, out_w = augment(
        image, mask, weight, np.random.default_rng(seed), GEOMETRY_ONLY
    )
    yy, xx = out_img
    # Every output pixel carries the coordinates it came from: mask and weight must agree.
    assert np.array_equal(out_mask, ((yy < 10) & (xx < 30)).astype(np.uint8))
    assert np.array_equal(out_w, yy * W + xx)
    assert out_mask.dtype == np.uint8 and out_w.dtype == np.float32


def test_transforms_are_actually_applied():
    image, mask, weight = coordinate_images()
    moved = {
        augment(image, mask, weight, np.random.default_rng(s), GEOMETRY_ONLY)[1].tobytes()
        for s in range(20)
    }
    assert len(moved) == 8  # the 8 symmetries of the square


def test_elastic_keeps_alignment_and_mask_binary():
    image, mask, weight = coordinate_images()
    config = AugmentConfig(
        flips=False, rot90=False, intensity=False, noise=False, elastic=True, elastic_p=1.0,
        blur=False, scale=False,
    )  # fmt: skip
    out_img, out_mask, out_w = augment(image, mask, weight, np.random.default_rng(0), config)
    assert not np.allclose(out_img, image, atol=1.0)  # it really deformed
    assert set(np.unique(out_mask)) <= {0, 1}
    # Linear interpolation of a linear function is exact: the weight follows the image.
    yy, xx = out_img
    interior = np.s_[4:-4, 4:-4]  # away from mirrored borders
    assert np.allclose(out_w[interior], (yy * W + xx)[interior], atol=1e-2)
    # The nearest-neighbour mask agrees with the deformed coordinates except on its edge.
    expected = (yy < 10) & (xx < 30)
    assert np.mean(out_mask.astype(bool) == expected) > 0.97


def test_intensity_changes_only_the_image():
    image, mask, weight = coordinate_images()
    config = AugmentConfig(
        flips=False, rot90=False, elastic=False, intensity_p=1.0, noise_p=1.0, noise_std=0.1,
        blur_p=1.0, scale=False,
    )  # fmt: skip
    out_img, out_mask, out_w = augment(image / H, mask, weight, np.random.default_rng(1), config)
    assert not np.allclose(out_img, image / H)
    assert np.array_equal(out_mask, mask)
    assert np.array_equal(out_w, weight)


def test_scale_zooms_image_mask_and_weights_together():
    image, mask, weight = coordinate_images()
    config = replace(AugmentConfig.none(), scale=True, scale_p=1.0, scale_range=(2.0, 2.0))
    out_img, out_mask, out_w = augment(image, mask, weight, np.random.default_rng(0), config)
    yy, xx = out_img
    # Zoomed in twice about the centre: coordinates advance by half a pixel per pixel.
    assert np.allclose(np.diff(yy, axis=0), 0.5, atol=1e-4)
    assert np.allclose(np.diff(xx, axis=1), 0.5, atol=1e-4)
    assert np.allclose(out_w, yy * W + xx, atol=1e-2)
    expected = (yy < 10) & (xx < 30)
    assert np.mean(out_mask.astype(bool) == expected) > 0.97


def test_blur_smooths_the_image_only():
    rng = np.random.default_rng(2)
    image = rng.random((32, 32)).astype(np.float32)
    mask = (image > 0.5).astype(np.uint8)
    config = replace(
        AugmentConfig.none(), blur=True, blur_p=1.0, blur_sigma=(2.0, 2.0), blur_noise=0.0
    )
    out_img, out_mask, _ = augment(image, mask, None, np.random.default_rng(0), config)
    assert out_img.std() < 0.5 * image.std()
    assert np.array_equal(out_mask, mask)


def test_same_seed_same_result_and_shapes():
    rng = np.random.default_rng(5)
    image = rng.random((40, 40)).astype(np.float32)
    mask = (image > 0.6).astype(np.uint8)
    a = augment(image, mask, None, np.random.default_rng(3))
    b = augment(image, mask, None, np.random.default_rng(3))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[0].shape == (40, 40) and a[2] is None
    rect = augment(rng.random((30, 50)), np.zeros((30, 50), np.uint8), None, rng)
    assert rect[0].shape == (30, 50)  # no 90-degree turn of a non-square patch


def test_elastic_displacement_statistics():
    rng = np.random.default_rng(0)
    fields = np.stack([elastic_displacement((65, 65), rng, sigma=10.0) for _ in range(600)])
    assert fields.shape == (600, 2, 65, 65)
    # The 3x3 control points sit at the corners and the centre: there the field is N(0, 10).
    for y, x in [(0, 0), (32, 32), (64, 0), (32, 64)]:
        values = fields[:, :, y, x].ravel()
        assert abs(values.mean()) < 1.0
        assert 9.0 < values.std() < 11.0
    # Smooth: neighbouring pixels move almost alike (at most a fraction of a pixel apart).
    steps = np.abs(np.diff(fields, axis=-1))
    assert steps.max() < 3.0
    assert np.percentile(steps, 99) < 1.5


def _two_discs() -> np.ndarray:
    """Packed target of two discs (radii 20 and 10) with their rims (bit 1)."""
    labels = np.zeros((128, 128), np.uint8)
    labels[disk((40, 40), 20)] = 1
    labels[disk((90, 90), 10)] = 2
    return (labels > 0).astype(np.uint8) | boundary_target(labels).astype(np.uint8) * 2


@pytest.mark.parametrize("depth", [0.5, 0.8])
def test_deepen_target_gives_an_ellipsoids_cross_section(depth):
    code = _two_discs()
    out = deepen_target(code, depth)
    factor = 1.0 - depth**2  # area of the cross-section over the equator's
    expected = np.pi * (20**2 + 10**2) * factor
    assert abs(int((out & 1).sum()) - expected) < 0.05 * expected
    # The rims are redrawn around the smaller objects, inside them.
    rims = (out & 2) > 0
    assert rims.any() and not (rims & ~(out & 1).astype(bool)).any()
    assert rims.sum() < ((code & 2) > 0).sum()
    assert out.dtype == code.dtype
    # Float codes (as the patch sampler stores them) give the same target.
    assert np.array_equal(deepen_target(code.astype(np.float32), depth), out.astype(np.float32))


def test_deepen_target_keeps_an_empty_target_and_depth_zero():
    code = _two_discs()
    assert np.array_equal(deepen_target(code, 0.0), code)
    empty = np.zeros((16, 16), np.float32)
    assert np.array_equal(deepen_target(empty, 0.7), empty)


def test_depth_blurs_dims_and_shrinks_but_never_touches_unknown_pixels():
    code = _two_discs()
    image = (code & 1).astype(np.float32)
    config = replace(AugmentConfig.none(), blur=True, blur_p=1.0, blur_noise=0.0,
                     depth=True, depth_p=1.0, depth_max=0.8)  # fmt: skip
    areas = []
    for seed in range(30):
        out_img, out_code, _ = augment(image, code, None, np.random.default_rng(seed), config)
        areas.append(int((out_code & 1).sum()))
        assert out_img.max() < image.max()  # dimmer and blurred
    # Depths are drawn from [0, 0.8]: never larger, mostly smaller, never gone.
    assert all(0 < area <= (code & 1).sum() for area in areas)
    # Over depths drawn from [0, 0.8] the expected area is 1 - 0.8**2 / 3 = 0.79 of the start.
    assert 0.7 < np.mean(areas) / (code & 1).sum() < 0.93
    # A code with pseudo-labels' unknown pixels (bit 2) is left as it is.
    unknown = code | 4
    _, kept, _ = augment(image, unknown, None, np.random.default_rng(4), config)
    assert np.array_equal(kept, unknown)
