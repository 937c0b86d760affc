"""Load images widget: files and folders, masks paired by name, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from napari.layers import Image, Labels
from PIL import Image as PILImage

from napari_unet.gui.load_widget import LoadImagesWidget

pytestmark = pytest.mark.gui


def write_pair_folder(folder):
    folder.mkdir()
    (folder / "masks").mkdir()
    image = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 50).astype(np.uint16)
    tifffile.imwrite(folder / "a.tif", image)
    mask255 = np.zeros((32, 32), np.uint8)
    mask255[8:16, 8:16] = 255
    tifffile.imwrite(folder / "a_mask.tif", mask255)
    PILImage.fromarray(np.full((32, 32), 7, np.uint8)).save(folder / "b.png")
    labels = np.zeros((32, 32), np.uint16)
    labels[0:4, 0:4] = 1
    labels[10:20, 10:20] = 2
    PILImage.fromarray(labels.astype(np.uint8)).save(folder / "masks" / "b.png")
    tifffile.imwrite(folder / "c.tif", np.zeros((5, 32, 32), np.uint8), photometric="minisblack")
    return image


def test_folder_pairs_images_and_masks(make_napari_viewer, tmp_path, messages):
    viewer = make_napari_viewer()
    image = write_pair_folder(tmp_path / "data")
    widget = LoadImagesWidget(viewer)
    added = widget.load_paths([tmp_path / "data"])
    names = [layer.name for layer in viewer.layers]
    assert names == ["a", "a ground truth", "b", "b ground truth", "c"]
    assert len(added) == 5
    assert isinstance(viewer.layers["a"], Image) and viewer.layers["a"].data.dtype == np.uint16
    np.testing.assert_array_equal(viewer.layers["a"].data, image)
    gt = viewer.layers["a ground truth"]
    assert isinstance(gt, Labels)
    # 0/255 is a binary mask (label 1), never grey values.
    assert set(np.unique(gt.data)) == {0, 1} and gt.data.sum() == 64
    b_gt = viewer.layers["b ground truth"].data
    assert set(np.unique(b_gt)) == {0, 1, 2}  # instance ids kept
    assert viewer.layers["c"].data.shape == (5, 32, 32)  # a stack
    assert any("3 image(s) and 2 mask(s)" in m for m in messages)


def test_files_with_mask_among_them(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    write_pair_folder(tmp_path / "data")
    widget = LoadImagesWidget(viewer)
    widget.load_paths([tmp_path / "data" / "a.tif", tmp_path / "data" / "a_mask.tif"])
    assert [layer.name for layer in viewer.layers] == ["a", "a ground truth"]


def test_errors_are_one_line_notifications(make_napari_viewer, tmp_path, messages):
    viewer = make_napari_viewer()
    widget = LoadImagesWidget(viewer)
    assert widget.load_paths([tmp_path / "missing.tif"]) == []
    assert any("not found" in m for m in messages)

    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "broken.tif").write_bytes(b"not a tiff")
    tifffile.imwrite(folder / "ok.tif", np.ones((16, 16), np.uint8))
    tifffile.imwrite(folder / "ok_mask.tif", np.ones((8, 8), np.uint8))
    widget.load_paths([folder])
    # The broken file is reported, the good image still loads, the mask of the
    # wrong size is refused with the reason.
    assert [layer.name for layer in viewer.layers] == ["ok"]
    assert any("broken.tif" in m for m in messages)
    assert any("ok_mask.tif" in m and "size" in m for m in messages)
    assert all("\n" not in m for m in messages)
