"""The replay set: round trip, the shipped file, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.core.errors import InputError
from napari_unet.core.replay import default_replay_path, load_replay, save_replay


def test_round_trip_keeps_arrays_and_order(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (20, 30), dtype=np.uint8), rng.random((8, 9, 3))]
    labels = [rng.integers(0, 5, (20, 30)).astype(np.uint16), np.zeros((8, 9), np.int32)]
    path = save_replay(tmp_path / "set.npz", images, labels)
    got_images, got_labels = load_replay(path)
    for a, b in zip(images + labels, got_images + got_labels, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    assert not list(tmp_path.glob("*.tmp"))


def test_the_shipped_set_holds_grey_and_colour_images_with_instances():
    assert default_replay_path().is_file()
    images, labels = load_replay("default")
    assert len(images) == len(labels) == 16
    assert any(im.ndim == 3 and im.shape[-1] == 3 for im in images)  # H&E in colour
    assert any(im.ndim == 2 for im in images)
    for image, label in zip(images, labels, strict=True):
        assert label.shape == image.shape[:2]
        assert label.max() > 1  # instance ids, not a binary mask


def test_bad_replay_sources_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_replay(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not a replay set")
    with pytest.raises(InputError, match="not a replay set"):
        load_replay(tmp_path / "text.npz")
    with pytest.raises(InputError, match="one label image per image"):
        save_replay(tmp_path / "x.npz", [np.zeros((2, 2))], [])
