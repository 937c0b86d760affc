"""The ``napari-unet`` command: predict, train, evaluate and weightmap, headless.

Exit codes: 0 success; 2 bad input (a missing, corrupt or empty file, NaN or
infinite pixels, a mask whose shape differs from its image, unequal numbers of
images and masks, an unreadable or unsafe model file, a device that is not
there, a bad option), reported as one ``error: ...`` line on stderr; 130 when
interrupted by Ctrl-C (143 for SIGTERM).  A ``train`` that is interrupted stops
after the current step, saves the best model so far (atomically) and exits
130; a second Ctrl-C aborts at once without saving, and the file at ``--out``
is never left half-written either way.

This module imports only the standard library at start-up so that ``--help``
is instant; numpy, torch and the core modules are imported by each command.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from napari_unet import __version__

#: Loss names offered by ``train --loss``; the tests check they match
#: ``napari_unet.core.training.LOSSES`` (kept here so that ``--help`` needs no torch).
LOSS_NAMES = ("default", "wce", "dice", "bce_dice", "focal", "bce", "ohem", "ohem_dice")
#: ``predict --tile-size`` default; the tests check it equals the core's own.
PREDICT_TILE_SIZE = 1024
#: Smallest tile the default model predicts with (smaller ones are raised, with a
#: note); the tests check it equals ``smallest_tile_size`` of the default architecture.
PREDICT_MIN_TILE_SIZE = 432
#: Learning rates ``fine_tune`` uses when none is given; the tests check them.
FINE_TUNE_LR, SCRATCH_LR = 1e-3, 1e-3
#: Defaults of ``train`` options; the tests check they equal ``fine_tune``'s own.
TRAIN_DEFAULTS = {
    "epochs": 20,
    "lr": None,
    "patch_size": 128,
    "batch_size": 4,
    "val_fraction": 0.2,
}

_INTERRUPT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class _UsageError(Exception):
    """A command-line usage error, reported as one ``error:`` line."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line instead of usage text plus a line."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message}; see '{self.prog} --help'")


# ----------------------------------------------------------------------------- option types


def _number(kind: type, low: float | None = None, high: float | None = None, *, open_low=False):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        too_low = low is not None and (value <= low if open_low else value < low)
        if too_low or (high is not None and value > high):
            lo = "" if low is None else f"{'>' if open_low else '>='} {low}"
            hi = "" if high is None else f"<= {high}"
            raise argparse.ArgumentTypeError(
                f"{text} is out of range (must be {' and '.join(s for s in (lo, hi) if s)})"
            )
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _device(text: str) -> str:
    if not _DEVICE_RE.match(text.strip().lower()):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use auto, cpu, cuda or mps")
    return text.strip().lower()


# ----------------------------------------------------------------------------- progress


class _ProgressBar:
    """Text progress on a stream: a live bar on a terminal, one line per epoch otherwise."""

    def __init__(self, stream: TextIO, width: int = 24) -> None:
        self.stream = stream
        self.width = width
        self.live = bool(getattr(stream, "isatty", lambda: False)())
        self.prefix = ""
        self._width = 0  # length of the live line on screen; 0 when none

    def bar(self, fraction: float) -> str:
        """Return ``[####----]`` filled to ``fraction``."""
        done = int(round(self.width * min(max(fraction, 0.0), 1.0)))
        return "[" + "#" * done + "-" * (self.width - done) + "]"

    def progress(self, step: int, total: int, message: str = "") -> None:
        """Redraw the live bar (terminals only)."""
        if not self.live or total <= 0:
            return
        text = f"{self.prefix}{self.bar(step / total)} {step}/{total} {message}"[:160]
        # Pad to the previous length so that a shorter line leaves no stale characters.
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def line(self, text: str) -> None:
        """Print a permanent line, clearing the live bar first."""
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _dice_text(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


# ----------------------------------------------------------------------------- helpers


def _output_stem(path: Path) -> str:
    stem = path.stem
    return stem[:-4] if stem.lower().endswith(".ome") else stem


def _check_pair_counts(first: Sequence, second: Sequence, a: str, b: str, what: str) -> None:
    from napari_unet.core.errors import InputError

    if len(first) != len(second):
        raise InputError(
            f"{a} gives {len(first)} file(s) but {b} gives {len(second)}; "
            f"give one {what} per file, in the same order"
        )


def _check_same_shape(mask, mask_path, shape, image_path, what: str = "mask") -> None:
    from napari_unet.core.errors import InputError

    if tuple(mask.shape) != tuple(shape):
        raise InputError(
            f"{what} {mask_path} has shape {tuple(mask.shape)} but {image_path} has "
            f"{tuple(shape)}; each {what} must match its image pixel for pixel"
        )


def _check_output_file(path: Path) -> None:
    """Fail before long work, not after, when ``path`` cannot be written."""
    from napari_unet.core.errors import InputError

    if path.is_dir():
        raise InputError(f"--out {path} is a folder; give a file name such as {path / 'model.pt'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(path.parent, os.W_OK):
        raise InputError(f"cannot write to folder {path.parent}; choose another --out")


# ----------------------------------------------------------------------------- predict


def _cmd_predict(args: argparse.Namespace) -> int:
    from napari_unet.core.errors import InputError
    from napari_unet.core.events import Notice
    from napari_unet.core.inference import iter_predict_proba
    from napari_unet.core.io import read_image, write_tiff
    from napari_unet.core.model import load_model, resolve_device
    from napari_unet.core.postprocess import mask_from_proba

    device = resolve_device(args.device)
    paths = [Path(p) for p in args.images]
    stems: dict[str, Path] = {}
    for path in paths:
        if not path.is_file():
            raise InputError(f"image file not found: {path}; check the path")
        stem = _output_stem(path)
        if stem in stems:
            raise InputError(
                f"{stems[stem]} and {path} would both write {stem}_prob.tif; "
                "rename one or predict them into different --out folders"
            )
        stems[stem] = path
    model = load_model(args.model, device="cpu")
    threshold = model.threshold if args.threshold is None else args.threshold
    # None lets the core overlap tiles by twice the network's receptive radius.
    overlap = args.overlap
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file; give a folder for the results")
    out_dir.mkdir(parents=True, exist_ok=True)

    bar = _ProgressBar(sys.stderr)
    notes: set[str] = set()
    for index, path in enumerate(paths, 1):
        image = read_image(path)
        bar.prefix = f"{path.name} ({index}/{len(paths)}) "
        gen = iter_predict_proba(
            image, model, tile_size=args.tile_size, overlap=overlap, device=device
        )
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                prob = stop.value
                break
            if isinstance(event, Notice):
                if event.message not in notes:  # once per run, not once per image
                    notes.add(event.message)
                    bar.line(f"note: {event.message}")
                continue
            bar.progress(event.step, event.total)
        mask = mask_from_proba(
            prob, threshold, min_size=args.min_size, fill_holes=args.fill_holes
        ).astype("uint8", copy=False)
        stem = _output_stem(path)
        prob_path = write_tiff(out_dir / f"{stem}_prob.tif", prob.astype("float32", copy=False))
        mask_path = write_tiff(out_dir / f"{stem}_mask.tif", mask)
        share = 100.0 * float(mask.mean())
        bar.line(f"{path.name}: foreground {share:.2f} % at threshold {threshold:.3g}")
        print(f"{path} -> {prob_path} {mask_path}")
    bar.close()
    return 0


# ----------------------------------------------------------------------------- train


def _load_training_pairs(
    images: Sequence[str], masks: Sequence[str], rois: Sequence[str] | None = None
):
    """Read image/mask (and ROI) files, check shapes and split stacks into slices."""
    from napari_unet.core.inference import is_stack
    from napari_unet.core.io import read_image, read_mask, spatial_shape

    _check_pair_counts(images, masks, "--images", "--masks", "mask")
    if rois is not None:
        _check_pair_counts(images, rois, "--images", "--rois", "ROI mask")
    xs, ys, zs = [], [], []
    for i, (image_path, mask_path) in enumerate(zip(images, masks, strict=True)):
        image, mask = read_image(image_path), read_mask(mask_path)
        _check_same_shape(mask, mask_path, spatial_shape(image), image_path)
        roi = None
        if rois is not None:
            roi = read_mask(rois[i]) > 0
            _check_same_shape(roi, rois[i], spatial_shape(image), image_path, "ROI mask")
        if is_stack(image):
            xs.extend(image)
            ys.extend(mask)
            zs.extend([None] * len(image) if roi is None else list(roi))
        else:
            xs.append(image)
            ys.append(mask)
            zs.append(roi)
    return xs, ys, (zs if rois is not None else None)


def _initial_model(init: str):
    from napari_unet.core.model import build_model, load_model

    if init == "none":
        return build_model()
    return load_model(init, device="cpu")


class _StopRequest:
    """Turns the first Ctrl-C (or SIGTERM) into a stop request; a second one aborts."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.signum is not None

    def request(self, signum: int = signal.SIGINT) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.stream.write(
            ("\n" if live else "")  # leave the live progress bar's line intact
            + "stopping after the current step; the best model so far will be saved "
            "(press Ctrl-C again to abort without saving)\n"
        )
        self.stream.flush()

    def _handler(self, signum: int, frame: Any) -> None:
        self.request(signum)

    def __enter__(self) -> _StopRequest:
        # Signal handlers can only be set from the main thread; elsewhere Ctrl-C
        # is not delivered to this code anyway.
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _fine_tune_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs = {name: getattr(args, name) for name in TRAIN_DEFAULTS}
    kwargs.update(max_minutes=args.max_minutes, seed=args.seed, patience=args.patience)
    if args.epochs is None and args.max_minutes is None:
        kwargs["epochs"] = TRAIN_DEFAULTS["epochs"]
    if args.loss is not None:
        kwargs["loss"] = args.loss
    return kwargs


def _cmd_train(args: argparse.Namespace) -> int:
    from napari_unet.core.events import EpochEnd, Notice, Progress
    from napari_unet.core.model import resolve_device, save_model
    from napari_unet.core.training import TrainingState, fine_tune

    device = resolve_device(args.device)
    images, masks, rois = _load_training_pairs(args.images, args.masks, args.rois)
    model = _initial_model(args.init)
    out = Path(args.out)
    _check_output_file(out)

    bar = _ProgressBar(sys.stderr)
    stop = _StopRequest(sys.stderr)
    state = TrainingState()  # holds the best model even if the generator dies mid-step

    started = time.perf_counter()

    def on_event(event: Any) -> None:
        if isinstance(event, Progress):
            elapsed = time.perf_counter() - started
            eta = elapsed / max(event.step, 1) * (event.total - event.step)
            if args.max_minutes is not None:
                eta = min(eta, max(0.0, 60.0 * args.max_minutes - elapsed))
            bar.progress(event.step, event.total, f"{event.message}, ETA {_duration(eta)}")
            return
        if isinstance(event, Notice):
            bar.line(f"note: {event.message}")
            return
        if not isinstance(event, EpochEnd):
            return
        if event.best_epoch == event.epoch:
            # Checkpoint every new best (atomically), so that even a killed job
            # leaves the best model so far at --out.
            save_model(state.model, out)
        bar.line(
            f"{event.epoch_text} {bar.bar(event.done)} "
            f"loss {event.train_loss:.4f}  "
            f"val Dice {_dice_text(event.val_dice)}  best {_dice_text(event.best_dice)} "
            f"(epoch {event.best_epoch})  {_duration(event.elapsed_s)} elapsed, "
            f"ETA {_duration(event.eta_s)}"
        )

    with stop:
        gen = fine_tune(
            model, images, masks, rois=rois, device=device, should_stop=stop, state=state,
            keep_start=args.init != "none", **_fine_tune_kwargs(args),
        )  # fmt: skip
        try:
            while True:
                try:
                    event = next(gen)
                except StopIteration as finished:
                    result = finished.value
                    break
                try:
                    on_event(event)
                except KeyboardInterrupt:
                    # Ctrl-C outside the generator (no handler here, e.g. off the
                    # main thread): the generator is intact, so stop it the clean way.
                    stop.request()
        except KeyboardInterrupt:
            if stop.signum is not None:
                raise  # a second Ctrl-C: abort without saving
            # Ctrl-C inside a training step, with no handler installed.
            stop.signum = signal.SIGINT
            gen.close()
            result = state.result() if state.model is not None else None
        finally:
            bar.close()
        if stop.signum is not None and state.epoch == 0:
            print(
                f"interrupted before the first epoch ended; nothing saved, {out} unchanged",
                file=sys.stderr,
            )
            return _INTERRUPT_CODES.get(stop.signum, 130)
        save_model(result.model, out)

    print(f"stopped: {result.stop_message}")
    if result.selected_by == "training loss":
        why = (
            "no validation split (--val-fraction 0)"
            if not math.isfinite(result.best_dice)
            else "no foreground in the validation set"
        )
        print(f"{why}: saved epoch {result.best_epoch} (lowest training loss) to {out}")
    else:
        if result.best_epoch == 0:
            where = "the starting weights: no epoch beat them"
        else:
            where = f"epoch {result.best_epoch}; before training {_dice_text(result.initial_dice)}"
        print(f"best validation Dice {_dice_text(result.best_dice)} ({where}); saved {out}")
    if stop.signum is not None:
        print(f"interrupted: saved the best model so far to {out}", file=sys.stderr)
        return _INTERRUPT_CODES.get(stop.signum, 130)
    return 0


# ----------------------------------------------------------------------------- evaluate


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from napari_unet.core.io import read_mask
    from napari_unet.core.metrics import dice, iou

    _check_pair_counts(args.pred, args.truth, "--pred", "--truth", "ground truth")
    pairs = []
    for pred_path, truth_path in zip(args.pred, args.truth, strict=True):
        pred, truth = read_mask(pred_path), read_mask(truth_path)
        _check_same_shape(pred, pred_path, truth.shape, truth_path, what="prediction")
        pairs.append(
            {
                "pred": str(pred_path),
                "truth": str(truth_path),
                "dice": float(dice(pred, truth)),
                "iou": float(iou(pred, truth)),
            }
        )
    mean_dice = sum(p["dice"] for p in pairs) / len(pairs)
    mean_iou = sum(p["iou"] for p in pairs) / len(pairs)
    if args.json:
        print(json.dumps({"pairs": pairs, "mean_dice": mean_dice, "mean_iou": mean_iou}))
        return 0
    width = max(len(p["pred"]) for p in pairs)
    print(f"{'prediction'.ljust(width)}  {'dice':>6}  {'iou':>6}  truth")
    for p in pairs:
        print(f"{p['pred'].ljust(width)}  {p['dice']:6.4f}  {p['iou']:6.4f}  {p['truth']}")
    print(f"{'mean'.ljust(width)}  {mean_dice:6.4f}  {mean_iou:6.4f}")
    return 0


# ----------------------------------------------------------------------------- weightmap


def _cmd_weightmap(args: argparse.Namespace) -> int:
    from napari_unet.core.io import read_mask, write_tiff
    from napari_unet.core.weights import border_weight_map

    labels = read_mask(args.labels)
    weights = border_weight_map(labels, w0=args.w0, sigma=args.sigma)
    out = write_tiff(args.out, weights.astype("float32", copy=False))
    print(f"{args.labels} -> {out} (weights {weights.min():.3f} to {weights.max():.3f})")
    return 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """Build the ``napari-unet`` argument parser (no heavy imports).

    Returns
    -------
    argparse.ArgumentParser
        The parser with the predict, train, evaluate and weightmap subcommands.
    """
    parser = _Parser(
        prog="napari-unet",
        description="U-Net segmentation without the GUI: predict, train, evaluate, weightmap.",
        epilog="Exit codes: 0 ok, 2 bad input (one 'error:' line on stderr), "
        "130 interrupted (train saves the best model so far first).",
    )
    parser.add_argument("--version", action="version", version=f"napari-unet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    positive = _number(int, 1)
    device_help = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps (default: auto)"

    p = sub.add_parser(
        "predict",
        help="segment images with a model",
        description="Write OUT/STEM_prob.tif (float32 probabilities) and OUT/STEM_mask.tif "
        "(uint8 0/1) for each image, with the image's spatial shape: a stack (Z, Y, X) "
        "keeps its leading axis, an RGB image gives a 2D result.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or TIFF images or stacks")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--model", default="default", help="'default' or a .pt file (default: default)")
    p.add_argument(
        "--threshold",
        type=_number(float, 0.0, 1.0),
        metavar="T",
        help="probability threshold in [0, 1] (default: the model's stored threshold)",
    )
    p.add_argument(
        "--tile-size",
        type=_number(int, 16),
        default=PREDICT_TILE_SIZE,
        metavar="N",
        help=f"tile edge in pixels (default: {PREDICT_TILE_SIZE}); smaller than the model "
        f"allows ({PREDICT_MIN_TILE_SIZE} for the default model) is raised to it, with a note",
    )
    p.add_argument(
        "--overlap",
        type=_number(int, 0),
        metavar="N",
        help="overlap between tiles in pixels, under half the tile (default: twice the "
        "network's receptive radius, 214 for the default model, which makes the tiles "
        "equal one whole-image pass; smaller is faster but not seamless)",
    )
    p.add_argument(
        "--min-size",
        type=_number(int, 0),
        default=0,
        metavar="N",
        help="remove objects smaller than N pixels (default: 0)",
    )
    p.add_argument("--fill-holes", action="store_true", help="fill holes inside objects")
    p.add_argument("--device", type=_device, default="auto", help=device_help)
    p.set_defaults(func=_cmd_predict)

    t = sub.add_parser(
        "train",
        help="fine-tune or train a model on images and masks",
        description="Train on image/mask pairs (masks: 0/1, 0/255 or instance labels; "
        "stacks are split into slices) and save the weights with the best validation Dice. "
        "Ctrl-C stops after the current step, saves the best model so far and exits 130. "
        "A second Ctrl-C aborts at once without saving.",
    )
    t.add_argument("--images", nargs="+", required=True, metavar="IMG")
    t.add_argument(
        "--masks",
        nargs="+",
        required=True,
        metavar="MASK",
        help="one mask per image, in the same order",
    )
    t.add_argument("--out", required=True, metavar="MODEL.pt", help="model file to write")
    t.add_argument(
        "--init",
        default="default",
        metavar="default|none|PATH",
        help="start from the shipped model, from scratch, or from a file (default: default)",
    )
    d = TRAIN_DEFAULTS
    t.add_argument(
        "--rois",
        nargs="+",
        metavar="ROI",
        help="optional region-of-interest masks, one per image: training patches are "
        "centred inside them (for example a lung mask for nodules)",
    )
    t.add_argument(
        "--epochs",
        type=positive,
        metavar="N",
        help=f"maximum number of epochs (default: {d['epochs']}; no limit when "
        "--max-minutes is given alone)",
    )
    t.add_argument(
        "--max-minutes",
        type=_number(float, 0.0, open_low=True),
        metavar="M",
        help="time budget: without --epochs, training uses all of it unless validation "
        "stops improving for a quarter of it; with --epochs, whichever ends first "
        "(default: none)",
    )
    t.add_argument(
        "--loss",
        choices=LOSS_NAMES,
        help="default copes with tiny, rare targets; wce is the paper's "
        "border-weighted cross-entropy (default: default)",
    )
    t.add_argument(
        "--patch-size",
        type=_number(int, 16),
        default=d["patch_size"],
        metavar="N",
        help=f"training patch side in pixels (default: {d['patch_size']})",
    )
    t.add_argument(
        "--batch-size",
        type=positive,
        default=d["batch_size"],
        metavar="N",
        help=f"patches per step (default: {d['batch_size']})",
    )
    t.add_argument(
        "--lr",
        type=_number(float, 0.0, open_low=True),
        default=d["lr"],
        metavar="F",
        help=f"peak learning rate (default: {FINE_TUNE_LR:g} when fine-tuning, {SCRATCH_LR:g} "
        "with --init none)",
    )
    t.add_argument(
        "--val-fraction",
        type=_number(float, 0.0, 0.9),
        default=d["val_fraction"],
        metavar="F",
        help=f"share held out for validation, 0 for none (default: {d['val_fraction']})",
    )
    t.add_argument(
        "--patience",
        type=positive,
        metavar="N",
        help="without --max-minutes: stop after N epochs without a better validation Dice "
        "(default: a quarter of the epochs, at least 5)",
    )
    t.add_argument("--device", type=_device, default="auto", help=device_help)
    t.add_argument(
        "--seed", type=_number(int, 0), default=0, metavar="N", help="random seed (default: 0)"
    )
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser(
        "evaluate",
        help="Dice and IoU of predicted masks against ground truth",
        description="Dice and IoU per pair (label > 0 is foreground; two empty masks score 1) "
        "and their means.",
    )
    e.add_argument("--pred", nargs="+", required=True, metavar="P", help="predicted masks")
    e.add_argument(
        "--truth",
        nargs="+",
        required=True,
        metavar="T",
        help="ground-truth masks, in the same order",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=_cmd_evaluate)

    w = sub.add_parser(
        "weightmap",
        help="border-weight map of a label image (Ronneberger et al. 2015, eq. 2)",
        description="w = w_c + w0 exp(-(d1 + d2)^2 / (2 sigma^2)) on background, w_c on "
        "objects; written as a float32 TIFF.",
    )
    w.add_argument("labels", metavar="LABELS", help="instance labels or a binary mask")
    w.add_argument("--out", required=True, metavar="W.tif")
    w.add_argument("--w0", type=_number(float, 0.0), default=10.0, help="(default: 10)")
    w.add_argument(
        "--sigma",
        type=_number(float, 0.0, open_low=True),
        default=5.0,
        help="in pixels (default: 5)",
    )
    w.set_defaults(func=_cmd_weightmap)
    return parser


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``napari-unet`` command line.

    Parameters
    ----------
    argv
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 success, 2 bad input, 130 interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)

    from napari_unet.core.errors import InputError

    # Library warnings are held back: a failed run prints only its one error line,
    # a successful one prints each distinct warning as one line at the end.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            code = args.func(args)
        except InputError as exc:
            print(f"error: {_one_line(exc)}", file=sys.stderr)
            return 2
        except OSError as exc:  # unwritable output, full disk, a file that vanished midway
            where = f" {exc.filename}" if exc.filename else ""
            reason = exc.strerror or _one_line(exc)
            print(f"error: cannot access{where}: {reason}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted; no output was left half-written", file=sys.stderr)
            return 130
    for text in dict.fromkeys(f"{w.category.__name__}: {_one_line(w.message)}" for w in caught):
        print(f"warning: {text}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
