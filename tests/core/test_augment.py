"""Augmentation moves image, mask and weight map together."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from napari_unet.core.augment import AugmentConfig, augment, elastic_displacement

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
