"""Patch sampling: foreground share, ROI, small images, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.core.errors import InputError
from napari_unet.core.sampling import PatchSampler

P = 16


def coordinate_image(h: int, w: int) -> np.ndarray:
    """Channel 0 holds each pixel's row, channel 1 its column."""
    return np.stack(np.mgrid[:h, :w]).astype(np.float32)


def tiny_target(h: int = 128, w: int = 128) -> np.ndarray:
    target = np.zeros((h, w), np.uint8)
    target[h // 2 : h // 2 + 3, 20:23] = 1  # 9 pixels, 0.05 % of a 128 x 128 image
    return target


def centres(batch) -> np.ndarray:
    """Original (y, x) of each patch's centre pixel, read off the coordinate channels."""
    return batch.images[:, :, P // 2, P // 2].astype(int)


def test_foreground_share_and_uniform_baseline():
    image = coordinate_image(128, 128)
    target = tiny_target()
    rng = np.random.default_rng(0)
    biased = PatchSampler([image], [target], patch_size=P, foreground_fraction=0.5)
    batch = biased.batch(400, rng)
    share = batch.foreground.mean()
    assert 0.42 < share < 0.58
    hits = batch.targets[:, 0, P // 2, P // 2] > 0
    assert hits[batch.foreground].all()  # foreground patches are centred on it
    assert hits[~batch.foreground].mean() < 0.05  # uniform ones almost never are
    uniform = PatchSampler([image], [target], patch_size=P, foreground_fraction=0.0)
    batch = uniform.batch(400, rng)
    assert not batch.foreground.any()
    assert (batch.targets.reshape(400, -1).max(1) > 0).mean() < 0.1


def test_fractional_share_has_the_right_expectation_for_batch_size_one():
    sampler = PatchSampler(
        [coordinate_image(64, 64)], [tiny_target(64, 64)], patch_size=P, foreground_fraction=0.3
    )
    rng = np.random.default_rng(1)
    flags = [sampler.batch(1, rng).foreground[0] for _ in range(600)]
    assert 0.24 < np.mean(flags) < 0.36


def test_roi_restricts_patch_centres():
    image = coordinate_image(96, 96)
    target = np.zeros((96, 96), np.uint8)
    target[10:20, 10:20] = 1  # inside the ROI
    target[80:90, 80:90] = 1  # outside it
    roi = np.zeros((96, 96), bool)
    roi[:, :48] = True
    sampler = PatchSampler([image], [target], rois=[roi], patch_size=P, foreground_fraction=0.5)
    batch = sampler.batch(300, np.random.default_rng(2))
    yx = centres(batch)
    assert (yx[:, 1] < 48).all()
    fg = yx[batch.foreground]
    assert ((fg >= 10) & (fg < 20)).all()  # only foreground inside the ROI is a centre


def test_images_smaller_than_the_patch_are_mirrored():
    image = coordinate_image(5, 7)
    target = np.zeros((5, 7), np.uint8)
    target[2, 3] = 1
    weight = np.full((5, 7), 2.5, np.float32)
    sampler = PatchSampler([image], [target], [weight], patch_size=P)
    batch = sampler.batch(20, np.random.default_rng(3))
    assert batch.images.shape == (20, 2, P, P)
    assert batch.weights.shape == (20, 1, P, P) and np.all(batch.weights == 2.5)
    ys, xs = batch.images[:, 0], batch.images[:, 1]
    assert ys.min() >= 0 and ys.max() <= 4 and xs.min() >= 0 and xs.max() <= 6
    # Mirroring keeps the target on the mirrored image content.
    assert np.array_equal(batch.targets[:, 0] > 0, (ys == 2) & (xs == 3))


def test_one_pixel_image():
    sampler = PatchSampler(
        [np.ones((1, 1), np.float32)], [np.ones((1, 1), np.uint8)], patch_size=8
    )
    batch = sampler.batch(2, np.random.default_rng(0))
    assert batch.images.shape == (2, 1, 8, 8) and np.all(batch.targets == 1)


def test_uniform_patches_cover_images_by_area():
    small, large = coordinate_image(32, 32), coordinate_image(96, 96)
    sampler = PatchSampler(
        [small, large],
        [np.zeros((32, 32)), np.zeros((96, 96))],
        patch_size=P,
        foreground_fraction=0.5,
    )
    yx = centres(sampler.batch(1000, np.random.default_rng(4)))
    from_large = (yx >= 32).any(axis=1)
    # The large image has 9x the area; about 90 % of centres fall in it (most of them beyond 32).
    assert from_large.mean() > 0.75


def test_same_seed_same_patches():
    image, target = coordinate_image(64, 64), tiny_target(64, 64)
    sampler = PatchSampler([image], [target], patch_size=P)
    a = sampler.batch(8, np.random.default_rng(7))
    b = sampler.batch(8, np.random.default_rng(7))
    assert np.array_equal(a.images, b.images) and np.array_equal(a.targets, b.targets)
    assert a.weights is None


def test_bad_inputs():
    image = coordinate_image(16, 16)
    with pytest.raises(InputError, match="no training images"):
        PatchSampler([], [])
    with pytest.raises(InputError, match="shape"):
        PatchSampler([image], [np.zeros((15, 16))])
    with pytest.raises(InputError, match="ROI"):
        PatchSampler([image], [np.zeros((16, 16))], rois=[np.zeros((16, 16))])
    with pytest.raises(InputError, match="foreground_fraction"):
        PatchSampler([image], [np.zeros((16, 16))], foreground_fraction=1.5)
