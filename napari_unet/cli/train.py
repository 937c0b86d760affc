"""``napari-unet train``: fine-tune or train a model on image/mask pairs."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from napari_unet.cli._common import (
    _check_output_file,
    _check_pair_counts,
    _check_same_shape,
    _device,
    _dice_text,
    _duration,
    _number,
    _ProgressBar,
)
from napari_unet.cli._defaults import (
    ARCH_LABELS,
    ARCH_NAMES,
    FINE_TUNE_LR,
    LOSS_NAMES,
    REPLAY_FRACTION,
    SCRATCH_LR,
    TRAIN_DEFAULTS,
)
from napari_unet.cli._planes import add_planes_option, planes_augment
from napari_unet.cli._unlabelled import add_unlabelled_options, pseudo_settings, read_unlabelled

if TYPE_CHECKING:
    import torch

    from napari_unet.core.training_config import FineTuneConfig

_INTERRUPT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _load_training_pairs(
    images: Sequence[str], masks: Sequence[str], rois: Sequence[str] | None = None
):
    """Read image/mask (and ROI) files, check shapes and split stacks into slices.

    Returns images, masks, ROI masks (or None) and whether any image was a stack.
    """
    from napari_unet.core.images import is_stack, spatial_shape
    from napari_unet.core.io import read_image, read_mask

    _check_pair_counts(images, masks, "--images", "--masks", "mask")
    if rois is not None:
        _check_pair_counts(images, rois, "--images", "--rois", "ROI mask")
    xs, ys, zs = [], [], []
    stacks = False
    for i, (image_path, mask_path) in enumerate(zip(images, masks, strict=True)):
        image, mask = read_image(image_path), read_mask(mask_path)
        _check_same_shape(mask, mask_path, spatial_shape(image), image_path)
        roi = None
        if rois is not None:
            roi = read_mask(rois[i]) > 0
            _check_same_shape(roi, rois[i], spatial_shape(image), image_path, "ROI mask")
        if is_stack(image):
            stacks = True
            xs.extend(image)
            ys.extend(mask)
            zs.extend([None] * len(image) if roi is None else list(roi))
        else:
            xs.append(image)
            ys.append(mask)
            zs.append(roi)
    return xs, ys, (zs if rois is not None else None), stacks


def _initial_model(init: str, arch: str | None = None):
    """Return the starting network: a new ``arch`` one for ``none``, else ``init``'s model."""
    from napari_unet.core.checkpoint import load_model
    from napari_unet.core.errors import InputError
    from napari_unet.core.model import build_model

    if init == "none":
        return build_model(arch=arch or "unet")
    model = load_model(init, device="cpu")
    if arch is not None and arch != model.config.arch:
        raise InputError(
            f"--arch {arch} conflicts with the starting model, a "
            f"{ARCH_LABELS[model.config.arch]}: a trained network keeps its architecture; "
            "add --init none to train a new "
            f"{ARCH_LABELS[arch]}"
        )
    return model


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


def _replay(args: argparse.Namespace):
    """Return the replay set ``train --replay`` names, or None."""
    from napari_unet.core.errors import InputError
    from napari_unet.core.replay import load_replay

    source = args.replay
    if source == "auto":
        source = "default" if args.init == "default" else "none"
    if source == "none" or args.replay_fraction == 0:
        return None
    if args.replay_fraction >= 1:
        raise InputError("--replay-fraction must be under 1: leave some patches for your images")
    return load_replay(source)


def _fine_tune_config(
    args: argparse.Namespace, device: torch.device, replay: bool, stacks: bool = False
) -> FineTuneConfig:
    """Return the :class:`FineTuneConfig` that ``train``'s options ask for.

    Fine-tuning on slices of a stack (``stacks``) also teaches the planes
    off focus, as ``--planes-off-focus`` says (:mod:`napari_unet.cli._planes`).
    """
    from napari_unet.core.training_config import FineTuneConfig

    settings = {name: getattr(args, name) for name in TRAIN_DEFAULTS}
    if replay:
        settings["replay_fraction"] = args.replay_fraction
    if args.epochs is None and args.max_minutes is None:
        settings["epochs"] = TRAIN_DEFAULTS["epochs"]
    if args.loss is not None:
        settings["loss"] = args.loss
    return FineTuneConfig(
        **settings,
        max_minutes=args.max_minutes,
        seed=args.seed,
        patience=args.patience,
        device=device,
        keep_start=args.init != "none",
        augment=planes_augment(args, stacks),
        **pseudo_settings(args),
    )


def _cmd_train(args: argparse.Namespace) -> int:
    from napari_unet.core.checkpoint import save_model
    from napari_unet.core.devices import resolve_device
    from napari_unet.core.events import EpochEnd, Notice, Progress, run_to_completion
    from napari_unet.core.training import TrainingState, fine_tune

    device = resolve_device(args.device)
    images, masks, rois, stacks = _load_training_pairs(args.images, args.masks, args.rois)
    model = _initial_model(args.init, args.arch)
    out = Path(args.out)
    _check_output_file(out)
    replay = _replay(args)
    config = _fine_tune_config(args, device, replay is not None, stacks)
    unlabelled = read_unlabelled(args.unlabelled, args.images)

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

    def on_event_or_stop(event: Any) -> None:
        try:
            on_event(event)
        except KeyboardInterrupt:
            # Ctrl-C outside the generator (no handler here, e.g. off the
            # main thread): the generator is intact, so stop it the clean way.
            stop.request()

    with stop:
        gen = fine_tune(
            model, images, masks, config, rois=rois, replay=replay, unlabelled=unlabelled,
            should_stop=stop, state=state,
        )  # fmt: skip
        try:
            result = run_to_completion(gen, on_event_or_stop)
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


def add_parser(sub: Any, positive: Any, device_help: str) -> None:
    """Add this command's subparser to ``sub``."""
    t = sub.add_parser(
        "train",
        help="fine-tune or train a model on images and masks",
        description="Train on image/mask pairs (masks: 0/1, 0/255 or instance labels; "
        "stacks are split into slices, and teach the planes off focus) and save the weights "
        "with the best validation Dice. "
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
    t.add_argument(
        "--arch",
        choices=ARCH_NAMES,
        help="architecture of a new network (with --init none): "
        + ", ".join(f"{name} ({ARCH_LABELS[name]})" for name in ARCH_NAMES)
        + "; a starting model keeps its own (default: unet)",
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
        "--replay",
        default="auto",
        metavar="auto|default|none|FILE.npz",
        help="mix patches of earlier training images into every batch so that the model "
        "does not forget them: 'default' replays images the shipped model was trained on; "
        "'auto' does so when starting from the shipped model (default: auto)",
    )
    t.add_argument(
        "--replay-fraction",
        type=_number(float, 0.0, 1.0),
        default=REPLAY_FRACTION,
        metavar="F",
        help="expected share of replayed patches per batch, under 1 "
        f"(default: {REPLAY_FRACTION:g})",
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
    add_unlabelled_options(t)
    add_planes_option(t)
    t.add_argument("--device", type=_device, default="auto", help=device_help)
    t.add_argument(
        "--seed", type=_number(int, 0), default=0, metavar="N", help="random seed (default: 0)"
    )
    t.set_defaults(func=_cmd_train)
