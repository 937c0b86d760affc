"""The ``napari-unet`` command line, run in-process through ``main`` and as a script."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_unet import __version__, cli
from napari_unet.cli import FINE_TUNE_LR, LOSS_NAMES, SCRATCH_LR, TRAIN_DEFAULTS, main
from napari_unet.core.checkpoint import load_model, save_model
from napari_unet.core.events import run_to_completion
from napari_unet.core.inference import iter_predict, predict_proba
from napari_unet.core.instances import instances_from_maps
from napari_unet.core.metrics import dice, iou
from napari_unet.core.model import build_model
from napari_unet.core.postprocess import label_objects
from napari_unet.core.weights import border_weight_map

RNG = np.random.default_rng(1)


def _blobs(shape=(48, 48), centres=((12, 12), (30, 34)), radius=6):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint16)
    for i, (cy, cx) in enumerate(centres, 1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = i
    image = (labels > 0) * 3000.0 + RNG.normal(1000, 150, shape)
    return image.clip(0, 65535).astype(np.uint16), labels


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(build_model(base_width=4, depth=2), path)
    return path


def _run(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what fixtures printed
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_error_line(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ----------------------------------------------------------------------------- predict


def test_predict_writes_prob_and_mask_with_the_model_threshold(tmp_path, capsys, tiny_model):
    image, _ = _blobs()
    tifffile.imwrite(tmp_path / "cells.tif", image)
    model = load_model(tiny_model)
    prob = predict_proba(image, model, device="cpu")
    # A threshold inside the range of this untrained model's output, so that the
    # mask only comes out right if the stored threshold is the one applied.
    model.threshold = float(np.median(prob))
    save_model(model, tmp_path / "thr.pt")

    code, out, _ = _run(
        capsys, "predict", tmp_path / "cells.tif", "--out", tmp_path / "res",
        "--model", tmp_path / "thr.pt", "--device", "cpu",
    )  # fmt: skip
    assert code == 0
    assert "cells_prob.tif" in out and "cells_mask.tif" in out
    written_prob = tifffile.imread(tmp_path / "res" / "cells_prob.tif")
    written_mask = tifffile.imread(tmp_path / "res" / "cells_mask.tif")
    assert written_prob.dtype == np.float32 and written_prob.shape == image.shape
    assert written_mask.dtype == np.uint8 and set(np.unique(written_mask)) == {0, 1}
    np.testing.assert_allclose(written_prob, prob, atol=1e-6)
    np.testing.assert_array_equal(written_mask, prob >= model.threshold)
    # One-output model: the labels are the mask's connected components.
    written_labels = tifffile.imread(tmp_path / "res" / "cells_labels.tif")
    assert written_labels.dtype == np.uint16
    np.testing.assert_array_equal(written_labels, label_objects(written_mask))

    code, _, _ = _run(
        capsys, "predict", tmp_path / "cells.tif", "--out", tmp_path / "res",
        "--model", tmp_path / "thr.pt", "--threshold", "0",
    )  # fmt: skip
    assert code == 0
    assert tifffile.imread(tmp_path / "res" / "cells_mask.tif").all()


def test_predict_writes_instances_of_a_two_output_model(tmp_path, capsys):
    image, _ = _blobs(centres=((12, 12), (12, 28), (30, 20)))
    tifffile.imwrite(tmp_path / "cells.tif", image)
    torch.manual_seed(1)
    model = build_model(base_width=4, depth=2, out_channels=2)
    maps = run_to_completion(iter_predict(image, model, device="cpu"))
    model.threshold = float(np.quantile(maps.proba, 0.7))  # a mask with several parts
    save_model(model, tmp_path / "two.pt")

    code, out, _ = _run(
        capsys, "predict", tmp_path / "cells.tif", "--out", tmp_path / "res",
        "--model", tmp_path / "two.pt", "--device", "cpu",
    )  # fmt: skip
    assert code == 0 and "cells_labels.tif" in out
    labels = tifffile.imread(tmp_path / "res" / "cells_labels.tif")
    expected = instances_from_maps(maps.proba, maps.boundary, model.threshold)
    assert expected.max() > 1
    np.testing.assert_array_equal(labels, expected)
    # Every object lies inside the written mask.
    mask = tifffile.imread(tmp_path / "res" / "cells_mask.tif")
    assert not np.any((labels > 0) & (mask == 0))


def test_predict_tta_writes_the_uncertainty(tmp_path, capsys):
    from napari_unet.core.tta import iter_predict_tta

    image, _ = _blobs(centres=((12, 12), (12, 28), (30, 20)))
    tifffile.imwrite(tmp_path / "cells.tif", image)
    torch.manual_seed(2)
    model = build_model(base_width=4, depth=2, out_channels=2)
    save_model(model, tmp_path / "two.pt")
    code, out, _ = _run(
        capsys, "predict", tmp_path / "cells.tif", "--out", tmp_path / "res",
        "--model", tmp_path / "two.pt", "--device", "cpu", "--tta",
    )  # fmt: skip
    assert code == 0 and "cells_uncertainty.tif" in out
    expected = run_to_completion(
        iter_predict_tta(image, load_model(tmp_path / "two.pt"), device="cpu")
    )
    written = tifffile.imread(tmp_path / "res" / "cells_uncertainty.tif")
    assert written.dtype == np.float32 and written.shape == image.shape
    np.testing.assert_allclose(written, expected.uncertainty, atol=1e-6)
    np.testing.assert_allclose(
        tifffile.imread(tmp_path / "res" / "cells_prob.tif"), expected.proba, atol=1e-6
    )


def test_predict_with_several_models_averages_them(tmp_path, capsys):
    from napari_unet.core.ensemble import iter_predict_ensemble

    image, _ = _blobs(centres=((12, 12), (30, 20)))
    tifffile.imwrite(tmp_path / "cells.tif", image)
    paths = []
    for seed in (3, 4):
        torch.manual_seed(seed)
        paths.append(save_model(build_model(base_width=4, depth=2), tmp_path / f"m{seed}.pt"))
    code, out, _ = _run(
        capsys, "predict", tmp_path / "cells.tif", "--out", tmp_path / "res",
        "--model", *paths, "--device", "cpu",
    )  # fmt: skip
    assert code == 0 and "cells_uncertainty.tif" in out
    models = [load_model(p) for p in paths]
    expected = run_to_completion(iter_predict_ensemble(image, models, device="cpu"))
    prob = tifffile.imread(tmp_path / "res" / "cells_prob.tif")
    np.testing.assert_allclose(prob, expected.proba, atol=1e-6)
    np.testing.assert_allclose(
        tifffile.imread(tmp_path / "res" / "cells_uncertainty.tif"),
        expected.uncertainty,
        atol=1e-6,
    )


def test_predict_stack_rgb_and_png_shapes(tmp_path, capsys, tiny_model):
    import imageio.v3 as iio

    stack = RNG.integers(0, 255, (3, 32, 40), dtype=np.uint8)
    rgb = RNG.integers(0, 255, (35, 33, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    iio.imwrite(tmp_path / "rgb.png", rgb)
    code, _, _ = _run(
        capsys, "predict", tmp_path / "stack.tif", tmp_path / "rgb.png",
        "--out", tmp_path / "new" / "dir", "--model", tiny_model, "--tile-size", "16",
    )  # fmt: skip
    assert code == 0
    out = tmp_path / "new" / "dir"
    assert tifffile.imread(out / "stack_prob.tif").shape == (3, 32, 40)
    assert tifffile.imread(out / "stack_mask.tif").shape == (3, 32, 40)
    assert tifffile.imread(out / "rgb_prob.tif").shape == (35, 33)
    assert tifffile.imread(out / "rgb_mask.tif").shape == (35, 33)


def test_predict_refuses_two_inputs_with_one_stem(tmp_path, capsys, tiny_model):
    image, _ = _blobs((16, 16))
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        tifffile.imwrite(tmp_path / folder / "x.tif", image)
    code, _, err = _run(
        capsys, "predict", tmp_path / "a" / "x.tif", tmp_path / "b" / "x.tif",
        "--out", tmp_path / "o", "--model", tiny_model,
    )  # fmt: skip
    _assert_one_error_line(code, err, "x_prob.tif")
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- train


def test_predict_raises_a_small_tile_with_one_note_per_run(tmp_path, capsys):
    model = build_model(depth=2, base_width=2).eval()  # smallest tile 96
    save_model(model, tmp_path / "m.pt")
    for name in ("a", "b"):
        tifffile.imwrite(tmp_path / f"{name}.tif", np.zeros((120, 130), np.uint8))
    argv = ["predict", tmp_path / "a.tif", tmp_path / "b.tif", "--out", tmp_path / "res"]
    argv += ["--model", tmp_path / "m.pt", "--tile-size", "64", "--device", "cpu"]
    code, _, err = _run(capsys, *argv)
    assert code == 0
    assert err.count("note: tile size 64 px raised to 96 px") == 1
    assert (tmp_path / "res" / "b_prob.tif").is_file()


def test_train_max_minutes_alone_uses_the_budget(tmp_path, capsys, tiny_model):
    # --max-minutes alone: no epoch limit, so the run lasts the whole budget
    # (without validation nothing can stop it early) and says why it ended.
    image, labels = _blobs((32, 32), centres=((8, 8), (20, 22)), radius=4)
    tifffile.imwrite(tmp_path / "a.tif", image)
    tifffile.imwrite(tmp_path / "a_mask.tif", labels)
    roi = np.zeros((32, 32), np.uint8)
    roi[:, :20] = 1
    tifffile.imwrite(tmp_path / "a_roi.tif", roi)
    argv = [
        "train", "--images", tmp_path / "a.tif", "--masks", tmp_path / "a_mask.tif",
        "--rois", tmp_path / "a_roi.tif", "--out", tmp_path / "m.pt", "--init", tiny_model,
        "--max-minutes", "0.1", "--val-fraction", "0", "--patch-size", "16",
        "--batch-size", "2", "--device", "cpu",
    ]  # fmt: skip
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    assert out.splitlines()[0] == "stopped: time budget of 6 s used"
    run = load_model(tmp_path / "m.pt").history[-1]
    assert run["stop_reason"] == "time_budget" and run["epochs_planned"] is None
    assert run["elapsed_s"] >= 0.8 * 0.1 * 60 and run["epochs"]
    assert re.search(r"^epoch \d+ \[#*-*\] loss", err, re.M)  # no "/N": the budget ends it


FAST = ["--epochs", "1", "--patch-size", "16", "--batch-size", "2", "--device", "cpu"]


@pytest.fixture()
def train_files(tmp_path):
    image, labels = _blobs((32, 32), centres=((8, 8), (20, 22)), radius=4)
    tifffile.imwrite(tmp_path / "a.tif", image)
    tifffile.imwrite(tmp_path / "a_mask.tif", (labels > 0).astype(np.uint8) * 255)
    stack = np.stack([image, image[::-1]])
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    tifffile.imwrite(tmp_path / "s_mask.tif", np.stack([labels, labels[::-1]]))
    return tmp_path


def _train_argv(d, tiny_model, *extra):
    return [
        "train", "--images", d / "a.tif", d / "s.tif", "--masks", d / "a_mask.tif",
        d / "s_mask.tif", "--out", d / "out" / "model.pt", "--init", tiny_model, *extra,
    ]  # fmt: skip


def test_train_saves_a_model_and_reports_best_dice(train_files, capsys, tiny_model):
    code, out, err = _run(capsys, *_train_argv(train_files, tiny_model, *FAST, "--loss", "dice"))
    assert code == 0, err
    first, second = out.strip().splitlines()
    assert first == "stopped: the 1 epoch done"
    assert re.fullmatch(r"best validation Dice \d\.\d{4} \(.*\); saved .*model\.pt", second)
    assert re.search(
        r"^epoch 1/1 \[#+\] loss \d+\.\d{4}  val Dice \d\.\d{4}  best .* ETA 0m00s$", err, re.M
    )
    model = load_model(train_files / "out" / "model.pt")
    run = model.history[-1]
    assert run["loss"] == "dice" and run["patch_size"] == 16 and len(run["epochs"]) == 1
    assert run["n_images"] == 3  # the 2-slice stack was split into slices
    assert run["augment"]["depth"]  # and its slices teach the planes off focus
    assert f"{run['best_dice']:.4f}" in out
    assert model.config == load_model(tiny_model).config  # --init was used
    assert sorted(os.listdir(train_files / "out")) == ["model.pt"]


def test_train_on_2d_images_keeps_the_masks_of_defocused_patches(train_files, capsys, tiny_model):
    d = train_files
    argv = ["train", "--images", d / "a.tif", d / "a.tif", "--masks", d / "a_mask.tif",
            d / "a_mask.tif", "--out", d / "out" / "model.pt", "--init", tiny_model,
            *FAST]  # fmt: skip
    code, _, err = _run(capsys, *argv)
    assert code == 0, err
    run = load_model(d / "out" / "model.pt").history[-1]
    assert run["augment"]["blur"] and not run["augment"]["depth"]
    # --planes-off-focus overrides what the images say: on for 2D, off for a stack.
    code, _, err = _run(capsys, *argv, "--planes-off-focus", "on")
    assert code == 0, err
    assert load_model(d / "out" / "model.pt").history[-1]["augment"]["depth"]
    code, _, err = _run(capsys, *_train_argv(d, tiny_model, *FAST, "--planes-off-focus", "off"))
    assert code == 0, err
    assert not load_model(d / "out" / "model.pt").history[-1]["augment"]["depth"]


def test_train_without_validation_saves_the_lowest_loss_epoch(train_files, capsys, tiny_model):
    argv = _train_argv(train_files, tiny_model, *FAST, "--val-fraction", "0")
    code, out, _ = _run(capsys, *argv)
    assert code == 0
    saved = train_files / "out" / "model.pt"
    assert out.strip().splitlines()[-1] == (
        f"no validation split (--val-fraction 0): saved epoch 1 (lowest training loss) to {saved}"
    )
    assert load_model(train_files / "out" / "model.pt").history[-1]["val_pixels"] == 0


def test_train_replays_a_set_when_asked_and_not_from_another_model(
    train_files, capsys, tiny_model
):
    from napari_unet.core.replay import save_replay

    image, labels = _blobs((32, 32), centres=((10, 10),), radius=5)
    save_replay(train_files / "old.npz", [image, image], [labels, labels])
    argv = _train_argv(train_files, tiny_model, *FAST, "--replay", train_files / "old.npz")
    code, _, err = _run(capsys, *argv, "--replay-fraction", "0.5")
    assert code == 0, err
    run = load_model(train_files / "out" / "model.pt").history[-1]
    assert run["replay_images"] == 2 and run["replay_fraction"] == 0.5
    # 'auto' replays only when starting from the shipped model.
    code, _, err = _run(capsys, *_train_argv(train_files, tiny_model, *FAST))
    assert code == 0, err
    assert load_model(train_files / "out" / "model.pt").history[-1]["replay_images"] == 0
    code, _, err = _run(capsys, *argv, "--replay-fraction", "1")
    _assert_one_error_line(code, err, "--replay-fraction")
    code, _, err = _run(capsys, *_train_argv(train_files, tiny_model, *FAST, "--replay", "x.npz"))
    _assert_one_error_line(code, err, "replay set not found")


def _interrupt_after(monkeypatch, method: str, match: str, times: int = 1):
    """Send real SIGINTs to this process when the progress bar shows ``match``."""
    original = getattr(cli._ProgressBar, method)
    seen = []

    def hooked(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if match in " ".join(map(str, args)) and not seen:
            seen.append(args)
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(cli._ProgressBar, method, hooked)
    return seen


def test_ctrl_c_saves_the_best_model_so_far(train_files, capsys, tiny_model, monkeypatch):
    out_path = train_files / "out" / "model.pt"
    previous = build_model(base_width=4, depth=2)
    previous.threshold = 0.123
    save_model(previous, out_path)
    whole_during_training = []
    # default_int_handler, or SIG_IGN when the tests run as a background job.
    handler_before = signal.getsignal(signal.SIGINT)

    original = cli._ProgressBar.line

    def check_then_interrupt(self, text):
        original(self, text)
        # Whatever has been checkpointed so far, the file is whole at every moment.
        whole_during_training.append(load_model(out_path).config.base_width == 4)
        if text.startswith("epoch 1/"):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(cli._ProgressBar, "line", check_then_interrupt)
    argv = _train_argv(train_files, tiny_model, *FAST[2:], "--epochs", "20")
    code, out, err = _run(capsys, *argv)
    assert code == 130
    assert "stopping after the current step" in err
    assert f"interrupted: saved the best model so far to {out_path}" in err
    assert "Traceback" not in err and "best validation Dice" in out
    assert whole_during_training == [True]
    saved = load_model(out_path)
    run = saved.history[-1]
    assert run["stop_reason"] == "stopped" and len(run["epochs"]) == 1
    assert saved.threshold != 0.123  # the new model replaced the previous one ...
    assert sorted(os.listdir(out_path.parent)) == ["model.pt"]  # ... and left no temp file
    # The handlers are restored: Ctrl-C is a KeyboardInterrupt again.
    assert signal.getsignal(signal.SIGINT) is handler_before


def test_keyboard_interrupt_from_a_callback_stops_cleanly(train_files, capsys, tiny_model,
                                                          monkeypatch):  # fmt: skip
    original = cli._ProgressBar.line

    def raise_after_first_epoch(self, text):
        original(self, text)
        if text.startswith("epoch 1/"):
            raise KeyboardInterrupt

    monkeypatch.setattr(cli._ProgressBar, "line", raise_after_first_epoch)
    argv = _train_argv(train_files, tiny_model, *FAST[2:], "--epochs", "20")
    code, _, err = _run(capsys, *argv)
    assert code == 130 and "saved the best model so far" in err
    assert load_model(train_files / "out" / "model.pt").history[-1]["stop_reason"] == "stopped"


def test_ctrl_c_before_the_first_epoch_keeps_the_previous_file(
    train_files, capsys, tiny_model, monkeypatch
):
    out_path = train_files / "out" / "model.pt"
    save_model(build_model(base_width=4, depth=2), out_path)
    before = out_path.read_bytes()
    _interrupt_after(monkeypatch, "progress", "")
    code, _, err = _run(capsys, *_train_argv(train_files, tiny_model, *FAST))
    assert code == 130
    assert "nothing saved" in err
    assert out_path.read_bytes() == before


def test_second_ctrl_c_aborts_without_saving(train_files, capsys, tiny_model, monkeypatch):
    _interrupt_after(monkeypatch, "progress", "", times=2)
    code, _, err = _run(capsys, *_train_argv(train_files, tiny_model, *FAST))
    assert code == 130
    assert err.strip().splitlines()[-1] == "interrupted; no output was left half-written"
    assert not (train_files / "out" / "model.pt").exists()


@pytest.mark.slow
def test_sigint_to_a_training_process(train_files, tiny_model):
    out_path = train_files / "out" / "model.pt"
    argv = [str(a) for a in _train_argv(train_files, tiny_model, *FAST[2:], "--epochs", "50")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "napari_unet.cli", *argv[0:]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    try:
        for line in proc.stderr:
            if line.startswith("epoch 1/"):
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "saved the best model so far" in err and "Traceback" not in err
    assert "best validation Dice" in out
    run = load_model(out_path).history[-1]
    assert run["stop_reason"] == "stopped" and 1 <= len(run["epochs"]) < 50


def test_train_bad_input(train_files, capsys, tiny_model, files):
    d = train_files
    tifffile.imwrite(d / "small_mask.tif", np.zeros((20, 32), np.uint8))
    cases = [
        (["--masks", d / "a_mask.tif"], "--images gives 2 file(s) but --masks gives 1"),
        (["--masks", d / "small_mask.tif", d / "s_mask.tif"], "has shape (20, 32)"),
        (["--masks", d / "s_mask.tif", d / "a_mask.tif"], "must match its image"),
        (["--init", files / "evil.pt"], "refused for safety"),
        (["--init", files / "corrupt.pt"], "not a readable model file"),
        (["--init", d / "none.pt"], "does not exist"),
        (["--out", d], "is a folder"),
        (["--images", files / "nan.tif", d / "s.tif"], "NaN or infinite"),
        (["--images", files / "empty.tif", d / "s.tif"], "empty"),
        (["--loss", "mse"], "invalid choice: 'mse'"),
        (["--val-fraction", "1"], "--val-fraction"),
        (["--epochs", "0"], "--epochs"),
        (["--device", "tpu"], "unknown device"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "not available"))
    for extra, fragment in cases:
        argv = _train_argv(d, tiny_model, *FAST)
        for flag_index in [i for i, a in enumerate(argv) if a == extra[0]]:
            # Replace the option's values by the bad ones.
            end = flag_index + 1
            while end < len(argv) and not str(argv[end]).startswith("--"):
                end += 1
            argv[flag_index:end] = extra
            break
        else:
            argv += extra
        code, _, err = _run(capsys, *argv)
        _assert_one_error_line(code, err, fragment)
    assert not (d / "out" / "model.pt").exists()


def test_train_arch_builds_a_new_network_of_that_architecture(train_files, capsys, tiny_model):
    argv = _train_argv(train_files, "none", *FAST, "--arch", "unetpp")
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    model = load_model(train_files / "out" / "model.pt")
    assert model.config.arch == "unetpp" and type(model).__name__ == "UNetPlusPlus"
    # A starting model keeps its own architecture: asking for another is an error.
    code, _, err = _run(capsys, *_train_argv(train_files, tiny_model, *FAST, "--arch", "unet3p"))
    _assert_one_error_line(code, err, "--arch unet3p conflicts with the starting model, a U-Net")
    code, _, err = _run(capsys, *_train_argv(train_files, "none", *FAST, "--arch", "vnet"))
    _assert_one_error_line(code, err, "invalid choice: 'vnet'")


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_text_and_json(tmp_path, capsys):
    _, truth = _blobs()
    pred = np.zeros_like(truth, np.uint8)
    pred[truth == 1] = 255  # a 0/255 prediction finding one of the two objects
    tifffile.imwrite(tmp_path / "truth.tif", truth)
    tifffile.imwrite(tmp_path / "pred.tif", pred)
    expected = dice(pred > 0, truth > 0)
    assert 0.3 < expected < 0.9

    code, out, _ = _run(
        capsys, "evaluate", "--pred", tmp_path / "pred.tif", tmp_path / "truth.tif",
        "--truth", tmp_path / "truth.tif", tmp_path / "truth.tif", "--json",
    )  # fmt: skip
    assert code == 0
    report = json.loads(out)
    keys = {"dice", "iou", "f1", "ap50", "ap75", "ap90", "dsb"}
    assert set(report) == {"pairs"} | {f"mean_{k}" for k in keys}
    assert [set(p) for p in report["pairs"]] == [{"pred", "truth", "ap"} | keys] * 2
    # One of two objects found, and its 255 covers it exactly: AP 1/2 at every IoU.
    assert report["pairs"][0]["f1"] == pytest.approx(2 / 3)
    assert report["pairs"][0]["ap90"] == pytest.approx(0.5)
    assert report["pairs"][0]["dsb"] == pytest.approx(0.5)
    assert len(report["pairs"][0]["ap"]) == 10
    assert report["pairs"][1]["dsb"] == 1.0
    assert report["pairs"][0]["pred"] == str(tmp_path / "pred.tif")
    assert report["pairs"][0]["dice"] == pytest.approx(expected)
    assert report["pairs"][0]["iou"] == pytest.approx(iou(pred, truth))
    assert report["pairs"][1]["dice"] == 1.0
    assert report["mean_dice"] == pytest.approx((expected + 1.0) / 2)

    code, out, _ = _run(
        capsys, "evaluate", "--pred", tmp_path / "pred.tif", "--truth", tmp_path / "truth.tif"
    )
    assert code == 0
    assert f"{expected:.4f}" in out
    assert out.strip().splitlines()[-1].startswith("mean")


# ----------------------------------------------------------------------------- weightmap


def test_weightmap_matches_core(tmp_path, capsys):
    _, labels = _blobs(centres=((12, 12), (12, 28), (30, 20)))
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    code, _, _ = _run(
        capsys, "weightmap", tmp_path / "labels.tif", "--out", tmp_path / "w.tif",
        "--w0", "5", "--sigma", "3",
    )  # fmt: skip
    assert code == 0
    written = tifffile.imread(tmp_path / "w.tif")
    assert written.dtype == np.float32
    np.testing.assert_allclose(written, border_weight_map(labels, w0=5, sigma=3), rtol=1e-6)


# ----------------------------------------------------------------------------- bad input


@pytest.fixture()
def files(tmp_path):
    image, labels = _blobs((32, 32), centres=((10, 10),), radius=5)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "mask.tif", labels)
    tifffile.imwrite(tmp_path / "small_mask.tif", labels[:16])
    nan = image.astype(np.float32)
    nan[3, 3] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan)
    inf = image.astype(np.float32)
    inf[0, 0] = np.inf
    tifffile.imwrite(tmp_path / "inf.tif", inf)
    (tmp_path / "empty.tif").write_bytes(b"")
    (tmp_path / "corrupt.tif").write_bytes(b"II*\x00" + b"garbage" * 10)
    with pytest.warns(UserWarning, match="zero-size"):
        tifffile.imwrite(tmp_path / "nopixels.tif", np.zeros((0, 4), np.uint8))
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 not a model")
    # A pickle that would build an arbitrary Python object on load.
    torch.save({"format": "napari-unet", "payload": argparse_namespace()}, tmp_path / "evil.pt")
    return tmp_path


def argparse_namespace():
    import argparse

    return argparse.Namespace(run="code")


BAD_PREDICT = [
    (["missing.tif"], [], "not found"),
    (["empty.tif"], [], "empty"),
    (["corrupt.tif"], [], "cannot read"),
    (["nopixels.tif"], [], "nopixels.tif"),
    (["nan.tif"], [], "NaN or infinite"),
    (["inf.tif"], [], "NaN or infinite"),
    (["img.tif"], ["--model", "{d}/corrupt.pt"], "not a readable model file"),
    (["img.tif"], ["--model", "{d}/evil.pt"], "refused for safety"),
    (["img.tif"], ["--model", "{d}/nothere.pt"], "does not exist"),
    (["img.tif"], ["--device", "gpu"], "unknown device"),
    (["img.tif"], ["--threshold", "1.5"], "--threshold"),
    (["img.tif"], ["--tile-size", "abc"], "--tile-size"),
]
if not torch.cuda.is_available():
    BAD_PREDICT.append((["img.tif"], ["--device", "cuda"], "not available"))
if not (torch.backends.mps.is_available()):
    BAD_PREDICT.append((["img.tif"], ["--device", "mps"], "not available"))


@pytest.mark.parametrize(("images", "extra", "fragment"), BAD_PREDICT)
def test_predict_bad_input(files, capsys, tiny_model, images, extra, fragment):
    extra = [e.format(d=files) for e in extra]
    if "--model" not in extra:
        extra += ["--model", str(tiny_model)]
    argv = ["predict", *[files / i for i in images], "--out", files / "out", *extra]
    code, _, err = _run(capsys, *argv)
    _assert_one_error_line(code, err, fragment)


BAD_EVALUATE = [
    (["mask.tif"], ["mask.tif", "mask.tif"], "gives 1 file(s)"),
    (["small_mask.tif"], ["mask.tif"], "has shape (16, 32)"),
    (["missing.tif"], ["mask.tif"], "not found"),
    (["mask.tif"], ["empty.tif"], "empty"),
    (["corrupt.tif"], ["mask.tif"], "cannot read"),
    (["nan.tif"], ["mask.tif"], "NaN or infinite"),
]


@pytest.mark.parametrize(("pred", "truth", "fragment"), BAD_EVALUATE)
def test_evaluate_bad_input(files, capsys, pred, truth, fragment):
    argv = [
        "evaluate",
        "--pred",
        *[files / p for p in pred],
        "--truth",
        *[files / t for t in truth],
    ]
    code, _, err = _run(capsys, *argv)
    _assert_one_error_line(code, err, fragment)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["weightmap", "missing.tif", "--out", "w.tif"], "not found"),
        (["weightmap", "corrupt.tif", "--out", "w.tif"], "cannot read"),
        (["weightmap", "mask.tif", "--out", "w.tif", "--sigma", "0"], "--sigma"),
        (["weightmap", "mask.tif", "--out", "w.tif", "--w0", "-1"], "--w0"),
        (["weightmap", "mask.tif", "--out", "mask.tif/w.tif"], "mask.tif"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_other_bad_input(files, capsys, argv, fragment):
    argv = [str(files / a) if a.endswith(".tif") else a for a in argv]
    code, _, err = _run(capsys, *argv)
    _assert_one_error_line(code, err, fragment)


# ----------------------------------------------------------------------------- the script


def test_version_and_help_in_process(capsys):
    code, out, _ = _run(capsys, "--version")
    assert code == 0 and out.strip() == f"napari-unet {__version__}"
    for command in ("predict", "train", "evaluate", "weightmap"):
        code, out, _ = _run(capsys, command, "--help")
        assert code == 0 and f"napari-unet {command}" in out


def test_predict_tile_size_matches_the_core():
    from napari_unet.cli import PREDICT_MIN_TILE_SIZE, PREDICT_TILE_SIZE
    from napari_unet.core.inference import DEFAULT_TILE_SIZE, MIN_TILE_SIZE

    assert PREDICT_TILE_SIZE == DEFAULT_TILE_SIZE
    assert PREDICT_MIN_TILE_SIZE == MIN_TILE_SIZE


def test_train_options_match_the_core():
    from napari_unet.core import training
    from napari_unet.core.losses import LOSSES

    assert tuple(LOSSES) == LOSS_NAMES
    assert (FINE_TUNE_LR, SCRATCH_LR) == (training.DEFAULT_FINE_TUNE_LR, training.DEFAULT_LR)
    assert cli.REPLAY_FRACTION == training.DEFAULT_REPLAY_FRACTION
    assert TRAIN_DEFAULTS == {
        "epochs": training.DEFAULT_EPOCHS,
        "lr": None,
        "patch_size": training.DEFAULT_PATCH_SIZE,
        "batch_size": training.DEFAULT_BATCH_SIZE,
        "val_fraction": training.DEFAULT_VAL_FRACTION,
    }


def test_console_script_help_is_fast_and_torch_free():
    script = Path(sys.executable).parent / "napari-unet"
    assert script.exists(), "reinstall the package: pip install -e ."
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for command in ("predict", "train", "evaluate", "weightmap"):
        assert command in done.stdout
    probe = "import sys, napari_unet.cli; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "[]"


def test_module_entry_point_reports_errors_without_traceback(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-m", "napari_unet.cli", "evaluate", "--pred", tmp_path / "no.tif",
         "--truth", tmp_path / "no.tif"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: mask file not found: {tmp_path / 'no.tif'}; check the path"
    ]
