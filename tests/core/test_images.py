"""Image layouts and the percentile normalisation the network sees."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.core import inference
from napari_unet.core.errors import InputError
from napari_unet.core.images import (
    GRAY_WEIGHTS,
    is_rgb,
    is_stack,
    normalize,
    plane_shape,
    spatial_shape,
    to_gray,
)
from napari_unet.core.model import NormConfig, build_model


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int8, np.int16])
def test_integer_percentiles_are_exact(dtype):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(3)
    image = rng.integers(info.min, info.max, size=(37, 53), endpoint=True).astype(dtype)
    norm = NormConfig(p_low=1.0, p_high=99.8)
    lo, hi = np.percentile(image, [1.0, 99.8])
    expected = ((image.astype(np.float64) - lo) / (hi - lo)).astype(np.float32)
    out = normalize(image, norm)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint32, np.int64])
def test_wide_and_float_types(dtype):
    rng = np.random.default_rng(4)
    image = (rng.normal(0, 1000, size=(40, 30)) + 5000).astype(dtype)
    out = normalize(image, NormConfig())
    lo, hi = np.percentile(image.astype(np.float64), [1.0, 99.8])
    np.testing.assert_allclose(out, (image - lo) / (hi - lo), atol=1e-4)
    assert out.dtype == np.float32


def test_percentiles_map_to_zero_and_one():
    image = np.arange(1000, dtype=np.uint16).reshape(20, 50)
    out = normalize(image, NormConfig(p_low=10, p_high=90))
    assert np.isclose(np.percentile(out, 10), 0, atol=1e-6)
    assert np.isclose(np.percentile(out, 90), 1, atol=1e-6)
    assert out.min() < 0 and out.max() > 1  # not clipped


@pytest.mark.parametrize("value,dtype", [(0, np.uint8), (7, np.uint16), (-3.5, np.float32)])
def test_constant_images_become_zeros(value, dtype):
    out = normalize(np.full((9, 11), value, dtype=dtype), NormConfig())
    assert np.array_equal(out, np.zeros((9, 11), np.float32))


def test_bool_image_is_accepted():
    image = np.zeros((10, 10), bool)
    image[3:7, 3:7] = True
    out = normalize(image, NormConfig(p_low=0, p_high=100))
    assert out.max() == 1 and out.min() == 0


def test_large_float_image_uses_a_close_percentile_estimate():
    rng = np.random.default_rng(5)
    image = rng.gamma(2.0, 100.0, size=(2100, 2100)).astype(np.float32)
    out = normalize(image, NormConfig())
    lo, hi = np.percentile(image, [1.0, 99.8])
    exact = (image - lo) / (hi - lo)
    assert np.abs(out - exact).max() < 0.02


def test_stack_is_normalised_per_slice():
    stack = np.stack([np.arange(100).reshape(10, 10), 1000 + 10 * np.arange(100).reshape(10, 10)])
    out = normalize(stack.astype(np.uint16), NormConfig(p_low=0, p_high=100))
    assert out.shape == (2, 10, 10)
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)


def test_rgb_becomes_grey_for_a_one_channel_model():
    rgb = np.zeros((5, 6, 3), np.uint8)
    rgb[..., 1] = np.arange(6, dtype=np.uint8) * 40
    model = build_model(depth=1, base_width=2)
    out = normalize(rgb, model)
    assert out.shape == (5, 6)
    grey = to_gray(rgb)
    assert grey.shape == (5, 6) and grey.dtype == np.float32
    np.testing.assert_allclose(grey[0], 0.7154 * rgb[0, :, 1], rtol=1e-5)
    rgba = np.concatenate([rgb, np.full((5, 6, 1), 255, np.uint8)], axis=-1)
    np.testing.assert_array_equal(to_gray(rgba), grey)  # alpha ignored


def test_three_channel_model_normalises_each_channel():
    rgb = np.random.default_rng(0).integers(0, 255, (8, 9, 3)).astype(np.uint8)
    rgb[..., 2] *= 0
    model = build_model(depth=1, base_width=2, in_channels=3)
    out = normalize(rgb, model)
    assert out.shape == (3, 8, 9)
    for c in range(2):
        np.testing.assert_allclose(out[c], normalize(rgb[..., c], model.norm), atol=1e-6)
    assert not out[2].any()
    grey = normalize(rgb[..., 0], model)
    assert grey.shape == (3, 8, 9) and np.array_equal(grey[0], grey[2])


def test_nan_image_is_an_input_error():
    image = np.ones((4, 4), np.float32)
    image[1, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        normalize(image, NormConfig())


def test_a_single_nan_in_a_large_image_is_found():
    image = np.ones((2100, 2100), np.float32)
    image[1001, 1003] = np.inf  # off the percentile sub-grid
    with pytest.raises(InputError, match="NaN or infinite"):
        normalize(image, NormConfig())


@pytest.mark.parametrize(
    "image",
    [np.zeros((0, 5)), np.zeros(7), np.zeros((2, 3, 4, 5)), np.zeros((3, 3), complex)],
    ids=["empty", "1d", "4d-not-rgb", "complex"],
)
def test_unusable_images_are_input_errors(image):
    with pytest.raises(InputError):
        normalize(image, NormConfig())


def test_layout_guess():
    assert not is_stack(np.zeros((5, 6)))
    assert not is_stack(np.zeros((5, 6, 3)))
    assert not is_stack(np.zeros((5, 6, 4)))
    assert is_stack(np.zeros((2, 5, 6)))
    assert is_stack(np.zeros((2, 5, 6, 3)))


def test_spatial_shape_leaves_out_the_colour_axis():
    assert spatial_shape(np.zeros((4, 5))) == (4, 5)
    assert spatial_shape(np.zeros((4, 5, 3))) == (4, 5)
    assert spatial_shape(np.zeros((4, 5, 4), np.uint8)) == (4, 5)
    assert spatial_shape(np.zeros((2, 4, 5))) == (2, 4, 5)
    assert spatial_shape(np.zeros((2, 4, 5, 3))) == (2, 4, 5)
    assert spatial_shape(np.zeros((4, 5, 3)), rgb=False) == (4, 5, 3)  # a 3-slice stack
    assert spatial_shape(np.zeros((4, 5, 6)), rgb=True) == (4, 5)


def test_plane_shape_is_the_shape_of_each_plane():
    assert plane_shape(np.zeros((4, 5))) == (4, 5)
    assert plane_shape(np.zeros((4, 5, 3))) == (4, 5)
    assert plane_shape(np.zeros((2, 4, 5))) == (4, 5)
    assert plane_shape(np.zeros((2, 4, 5, 4))) == (4, 5)
    assert is_rgb(np.zeros((2, 4, 5, 4))) and not is_rgb(np.zeros((4, 5)))


def test_inference_still_offers_the_moved_names():
    assert inference.normalize is normalize and inference.to_gray is to_gray
    assert inference.is_rgb is is_rgb and inference.is_stack is is_stack
    assert inference.GRAY_WEIGHTS == GRAY_WEIGHTS
