"""``napari-unet train --unlabelled``: pseudo-labels from the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_unet.cli import main
from napari_unet.cli._unlabelled import PSEUDO_FRACTION, PSEUDO_HIGH, PSEUDO_LOW
from napari_unet.core import defaults
from napari_unet.core.checkpoint import load_model, save_model
from napari_unet.core.model import build_model

FAST = ["--epochs", "1", "--patch-size", "16", "--batch-size", "2", "--device", "cpu"]


def _blobs(seed: int, shape=(32, 32)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint16)
    for i, (cy, cx) in enumerate(((8, 8), (20, 22)), 1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= 16] = i
    image = (labels > 0) * 3000.0 + rng.normal(1000, 150, shape)
    return image.clip(0, 65535).astype(np.uint16), labels


@pytest.fixture()
def files(tmp_path) -> Path:
    torch.manual_seed(0)
    save_model(build_model(base_width=4, depth=2), tmp_path / "tiny.pt")
    folder = tmp_path / "data"
    folder.mkdir()
    image, labels = _blobs(0)
    tifffile.imwrite(folder / "a.tif", image)
    tifffile.imwrite(folder / "a_mask.tif", labels)
    tifffile.imwrite(folder / "b.tif", _blobs(1)[0])
    stack = np.stack([_blobs(2)[0], _blobs(3)[0]])
    tifffile.imwrite(folder / "c.tif", stack, photometric="minisblack")
    return tmp_path


def _run(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _argv(d: Path, *extra):
    return [
        "train", "--images", d / "data" / "a.tif", "--masks", d / "data" / "a_mask.tif",
        "--out", d / "out.pt", "--init", d / "tiny.pt", *FAST, *extra,
    ]  # fmt: skip


def test_train_learns_from_a_folder_of_unlabelled_images(files, capsys):
    argv = _argv(
        files, "--unlabelled", files / "data", "--pseudo-low", "0.2", "--pseudo-high", "0.8"
    )
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    # b.tif and the two slices of c.tif; a.tif is labelled, a_mask.tif is its mask.
    assert "note: pseudo-labels: 3 unlabelled images" in err
    run = load_model(files / "out.pt").history[-1]
    assert run["pseudo_labels"]["planes"] == 3
    assert run["pseudo_labels"]["confident"] + run["pseudo_labels"]["ignored"] == 3 * 32 * 32
    assert run["config"]["pseudo_low"] == 0.2 and run["config"]["pseudo_high"] == 0.8


def test_train_without_unlabelled_images_makes_no_pseudo_labels(files, capsys):
    code, _, err = _run(capsys, *_argv(files))
    assert code == 0, err
    assert "pseudo-labels" not in err
    assert "pseudo_labels" not in load_model(files / "out.pt").history[-1]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--pseudo-low", "0.9", "--pseudo-high", "0.1"], "low < high"),
        (["--pseudo-fraction", "1"], "pseudo-label share"),
        (["--pseudo-high", "2"], "out of range"),
        (["--unlabelled", "nowhere.tif"], "not found"),
    ],
)
def test_bad_pseudo_label_options_give_one_error_line(files, capsys, extra, fragment):
    if "--unlabelled" not in extra:
        extra = [*extra, "--unlabelled", files / "data" / "b.tif"]
    code, _, err = _run(capsys, *_argv(files, *extra))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err


def test_only_labelled_images_as_unlabelled_is_an_error(files, capsys):
    code, _, err = _run(capsys, *_argv(files, "--unlabelled", files / "data" / "a.tif"))
    assert code == 2 and "only images given with --images" in err


def test_pseudo_label_defaults_are_the_cores():
    assert (PSEUDO_LOW, PSEUDO_HIGH) == (defaults.DEFAULT_PSEUDO_LOW, defaults.DEFAULT_PSEUDO_HIGH)
    assert PSEUDO_FRACTION == defaults.DEFAULT_PSEUDO_FRACTION
