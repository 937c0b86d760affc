"""Reading images and masks, atomic TIFF writes and image/mask pairing."""

from __future__ import annotations

import os

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_unet.core.errors import InputError
from napari_unet.core.io import (
    find_mask,
    pair_images_and_masks,
    read_image,
    read_mask,
    spatial_shape,
    write_tiff,
)

RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------- images


def test_read_16bit_tiff_keeps_values(tmp_path):
    data = RNG.integers(0, 65535, (40, 50), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", data)
    image = read_image(tmp_path / "a.tif")
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image, data)


def test_read_png_8bit_and_16bit(tmp_path):
    data8 = RNG.integers(0, 255, (33, 17), dtype=np.uint8)
    data16 = RNG.integers(0, 65535, (20, 21), dtype=np.uint16)
    iio.imwrite(tmp_path / "a.png", data8)
    iio.imwrite(tmp_path / "b.png", data16)
    a, b = read_image(tmp_path / "a.png"), read_image(tmp_path / "b.png")
    assert a.dtype == np.uint8 and b.dtype == np.uint16
    np.testing.assert_array_equal(a, data8)
    np.testing.assert_array_equal(b, data16)


def test_read_rgb_png_and_rgba_tiff(tmp_path):
    rgb = RNG.integers(0, 255, (12, 14, 3), dtype=np.uint8)
    rgba = RNG.integers(0, 255, (12, 14, 4), dtype=np.uint8)
    iio.imwrite(tmp_path / "rgb.png", rgb)
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb")
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.tif"), rgba)


def test_planar_rgb_tiff_gets_samples_last(tmp_path):
    planar = RNG.integers(0, 255, (3, 10, 11), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "p.tif", planar, photometric="rgb", planarconfig="separate")
    image = read_image(tmp_path / "p.tif")
    assert image.shape == (10, 11, 3)
    np.testing.assert_array_equal(image, np.moveaxis(planar, 0, -1))


def test_read_stack_and_float(tmp_path):
    stack = RNG.random((5, 16, 18)).astype(np.float32)
    tifffile.imwrite(tmp_path / "s.tif", stack)
    image = read_image(tmp_path / "s.tif")
    assert image.shape == (5, 16, 18) and image.dtype == np.float32
    np.testing.assert_array_equal(image, stack)


def test_singleton_axes_are_dropped_but_tiny_images_stay_2d(tmp_path):
    tifffile.imwrite(tmp_path / "one.tif", np.full((1, 1, 7, 9), 3, np.uint8))
    assert read_image(tmp_path / "one.tif").shape == (7, 9)
    tifffile.imwrite(tmp_path / "px.tif", np.array([[5]], np.uint8))
    assert read_image(tmp_path / "px.tif").shape == (1, 1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_pixels_are_refused(tmp_path, bad):
    data = np.zeros((8, 8), np.float32)
    data[3, 4] = bad
    tifffile.imwrite(tmp_path / "nan.tif", data)
    with pytest.raises(InputError, match=r"nan\.tif has 1 NaN or infinite") as info:
        read_image(tmp_path / "nan.tif")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="NaN or infinite"):
        read_mask(tmp_path / "nan.tif")


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found: .*nope.tif"):
        read_image(tmp_path / "nope.tif")
    with pytest.raises(InputError, match="mask file not found"):
        read_mask(tmp_path / "nope.png")


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.tif").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.tif is empty \(0 bytes\)"):
        read_image(tmp_path / "empty.tif")


def test_image_without_pixels(tmp_path):
    with pytest.warns(UserWarning, match="zero-size"):
        tifffile.imwrite(tmp_path / "z.tif", np.zeros((0, 5), np.uint8))
    with pytest.raises(InputError, match=r"z\.tif has no pixels \(shape \(0, 5\)\)"):
        read_image(tmp_path / "z.tif")


@pytest.mark.parametrize("name", ["bad.tif", "bad.png", "bad.jpg"])
def test_corrupt_file(tmp_path, name):
    header = b"II*\x00" if name.endswith(".tif") else b"\x89PNG\r\n\x1a\n"
    (tmp_path / name).write_bytes(header + b"this is not an image" * 5)
    with pytest.raises(InputError, match=f"cannot read image file .*{name}") as info:
        read_image(tmp_path / name)
    assert "\n" not in str(info.value)


def test_truncated_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "full.tif", RNG.integers(0, 255, (64, 64), dtype=np.uint8))
    raw = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(InputError, match="cut.tif"):
        read_image(tmp_path / "cut.tif")


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        read_image(tmp_path)


def test_five_dimensional_image_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "h.tif", np.zeros((2, 3, 2, 8, 8), np.uint8))
    with pytest.raises(InputError, match="shape"):
        read_image(tmp_path / "h.tif")


# ----------------------------------------------------------------------------- masks


def test_0_255_mask_is_binary_not_grey(tmp_path):
    mask = np.zeros((20, 20), np.uint8)
    mask[5:10, 5:10] = 255
    iio.imwrite(tmp_path / "m.png", mask)
    tifffile.imwrite(tmp_path / "m.tif", mask)
    for name in ("m.png", "m.tif"):
        read = read_mask(tmp_path / name)
        assert read.dtype == np.uint8
        assert set(np.unique(read)) == {0, 1}
        np.testing.assert_array_equal(read, mask > 0)


def test_0_1_and_bool_masks(tmp_path):
    mask = RNG.random((15, 15)) > 0.5
    tifffile.imwrite(tmp_path / "b.tif", mask)
    tifffile.imwrite(tmp_path / "u.tif", mask.astype(np.uint16))
    for name in ("b.tif", "u.tif"):
        np.testing.assert_array_equal(read_mask(tmp_path / name), mask.astype(np.uint8))


def test_instance_mask_keeps_ids(tmp_path):
    labels = np.zeros((30, 30), np.uint16)
    labels[2:6, 2:6] = 1
    labels[10:14, 10:14] = 7
    labels[20:25, 3:9] = 300
    tifffile.imwrite(tmp_path / "l.tif", labels)
    read = read_mask(tmp_path / "l.tif")
    assert read.dtype == np.int32
    np.testing.assert_array_equal(read, labels)


def test_negative_labels_are_background(tmp_path):
    labels = np.array([[-1, 0, 2], [3, 3, -5]], np.int16)
    tifffile.imwrite(tmp_path / "n.tif", labels)
    np.testing.assert_array_equal(read_mask(tmp_path / "n.tif"), [[0, 0, 2], [3, 3, 0]])


def test_rgb_mask_any_channel_is_foreground(tmp_path):
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[1, 1] = (255, 0, 0)
    rgb[2, 2] = (0, 0, 9)
    rgb[3, 3] = (200, 200, 200)
    iio.imwrite(tmp_path / "c.png", rgb)
    read = read_mask(tmp_path / "c.png")
    assert read.shape == (10, 10)
    assert read.sum() == 3 and read[1, 1] == read[2, 2] == read[3, 3] == 1


def test_rgba_mask_transparent_pixels_are_background(tmp_path):
    rgba = np.zeros((6, 6, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere ...
    rgba[2:4, 2:4, 3] = 255  # ... but opaque only here
    iio.imwrite(tmp_path / "a.png", rgba)
    read = read_mask(tmp_path / "a.png")
    assert read.sum() == 4 and read[2:4, 2:4].all()


def test_palette_png_mask_reads_indices(tmp_path):
    from PIL import Image

    indices = np.zeros((8, 8), np.uint8)
    indices[1:3, 1:3] = 1
    indices[5:7, 5:7] = 2
    image = Image.fromarray(indices, mode="L").convert("P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    image.putdata(list(indices.ravel()))
    image.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "p.png"), indices)


def test_mask_stack_keeps_leading_axis(tmp_path):
    stack = np.zeros((3, 9, 9), np.uint8)
    stack[1, 2:4, 2:4] = 255
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    read = read_mask(tmp_path / "s.tif")
    assert read.shape == (3, 9, 9) and read.max() == 1 and read.sum() == 4


def test_probability_map_is_not_a_mask(tmp_path):
    tifffile.imwrite(tmp_path / "p.tif", np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8))
    with pytest.raises(InputError, match="non-integer values"):
        read_mask(tmp_path / "p.tif")
    tifffile.imwrite(tmp_path / "f.tif", np.array([[0.0, 2.0], [2.0, 5.0]], np.float32))
    np.testing.assert_array_equal(read_mask(tmp_path / "f.tif"), [[0, 2], [2, 5]])


def test_spatial_shape():
    assert spatial_shape(np.zeros((4, 5, 3))) == (4, 5)
    assert spatial_shape(np.zeros((2, 4, 5))) == (2, 4, 5)
    assert spatial_shape(np.zeros((4, 5))) == (4, 5)
    assert spatial_shape(np.zeros((4, 5, 3)), rgb=False) == (4, 5, 3)


# ----------------------------------------------------------------------------- writing


def test_write_tiff_round_trip_and_leaves_no_temp(tmp_path):
    data = RNG.random((3, 7, 9)).astype(np.float32)
    out = write_tiff(tmp_path / "sub" / "w.tif", data)
    assert out == tmp_path / "sub" / "w.tif"
    np.testing.assert_array_equal(tifffile.imread(out), data)
    assert sorted(os.listdir(tmp_path / "sub")) == ["w.tif"]


def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "keep.tif"
    write_tiff(target, np.ones((4, 4), np.uint8))
    before = target.read_bytes()

    def interrupted(handle, *args, **kwargs):
        handle.write(b"II*\x00 half")  # some bytes reach the disk, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(tifffile, "imwrite", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_tiff(target, np.zeros((4, 4), np.uint8))
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.tif"]


# ----------------------------------------------------------------------------- pairing


def _touch(path, value=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.full((4, 4), value, np.uint8))
    return path


@pytest.mark.parametrize("ending", ["_mask", "_masks", "_label", "_labels", "_gt", "_seg"])
def test_pairs_by_name_ending(tmp_path, ending):
    image = _touch(tmp_path / "cells.tif")
    mask = _touch(tmp_path / f"cells{ending}.tif")
    other = _touch(tmp_path / "other.tif")
    assert pair_images_and_masks(tmp_path) == [(image, mask), (other, None)]


def test_pairs_with_masks_folder_and_other_extension(tmp_path):
    a = _touch(tmp_path / "a.tif")
    b = _touch(tmp_path / "b.tif")
    a_mask = _touch(tmp_path / "masks" / "a.tif")
    b_mask = tmp_path / "labels" / "b.png"
    b_mask.parent.mkdir()
    iio.imwrite(b_mask, np.zeros((4, 4), np.uint8))
    assert pair_images_and_masks(tmp_path) == [(a, a_mask), (b, b_mask)]


def test_pairs_with_sibling_masks_folder(tmp_path):
    image = _touch(tmp_path / "images" / "x.tif")
    mask = _touch(tmp_path / "masks" / "x.tif")
    assert pair_images_and_masks(tmp_path / "images") == [(image, mask)]
    assert find_mask(image) == mask


def test_same_extension_is_preferred(tmp_path):
    image = _touch(tmp_path / "x.tif")
    _touch(tmp_path / "x_mask.png")
    tif_mask = _touch(tmp_path / "x_mask.tif")
    assert pair_images_and_masks([image]) == [(image, tif_mask)]


def test_file_list_pairs_within_list_and_skips_masks(tmp_path):
    image = _touch(tmp_path / "d" / "x.tif")
    mask = _touch(tmp_path / "d" / "x_mask.tif")
    assert pair_images_and_masks([mask, image]) == [(image, mask)]


def test_mask_named_file_without_its_image_is_an_image(tmp_path):
    lone = _touch(tmp_path / "scan_seg.tif")
    assert pair_images_and_masks(tmp_path) == [(lone, None)]


def test_pairing_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        pair_images_and_masks(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match="no PNG/TIFF/JPEG images found"):
        pair_images_and_masks(tmp_path)
    with pytest.raises(InputError, match="not a supported image"):
        pair_images_and_masks([tmp_path / "notes.txt"])
