"""Target 3: small, rare targets, trained from scratch (synthetic CT-like slices).

Trains a fresh U-Net (the default architecture) from scratch for a fixed time
budget on the hard synthetic CT generator (:mod:`napari_unet.core.synthetic`:
about half of the slices without a nodule, 1-2 nodules of 3-14 px across on
the others, solid and part-solid, bright vessel cross-sections of the same
brightness and size as distractors), once per mode:

- ``defaults``: :func:`napari_unet.core.training.fine_tune` with every default,
  the lung mask as region of interest (ROI) for patch centres::

      fine_tune(build_model(), images, labels, rois=lungs, max_minutes=M,
                keep_start=False, device="cpu")

- ablations, each changing one thing from ``defaults``: ``uniform`` (uniform
  patches, ``foreground_fraction=0``), ``no_roi`` (patch centres anywhere),
  ``bce``, ``dice``, ``focal``, ``ohem``, ``ohem_dice``, ``default``
  (``loss=...``; ``default`` is the default loss, so the same as
  ``defaults``), and ``baseline`` (plain BCE and uniform patches together);
- any other setting as ``NAME:key=value,key=value`` with ``fine_tune``
  keywords, for example ``fg80:foreground_fraction=0.8`` or
  ``p96:patch_size=96,batch_size=8``; ``augment.FIELD=value`` changes one
  field of the default :class:`~napari_unet.core.augment.AugmentConfig`
  (``noblur:augment.blur=False``).

Data: training slices from seeds ``0 .. n_train-1``; test slices, never seen
in training or validation, from seeds ``10000 ..``.  Scores on the test
slices at the model's threshold (0.5), on the whole slice and with the output
restricted to the lung mask (the ROI a user would have):

- pooled Dice: one Dice over all test pixels together (sum of overlaps over
  sum of sizes) -- the headline number, defined when some slices are empty;
- mean per-slice Dice over the slices that hold nodules;
- nodules found / false detections: a nodule is found when a predicted
  connected component overlaps it, a predicted component that overlaps no
  nodule is a false detection (the usual rule for lesions a few pixels
  across, where IoU >= 0.5 is decided by a pixel); IoU >= 0.5 matches too;
- false-positive pixels and components on the slices without nodules;
- distractors hit: vessel cross-sections with any predicted pixel;
- the Dice at the best threshold over 0.00-1.00 (an oracle, to tell a
  miscalibrated output from one that does not separate nodules).

``--epochs N --minutes 0`` trains every mode for the same number of steps
(``N`` epochs of 100 steps here) instead of the same time: on a machine
shared with other work a time budget buys a different number of steps from
one run to the next.

Usage::

    .venv/bin/python benchmarks/bench_small_targets.py --minutes 10 --modes defaults
    .venv/bin/python benchmarks/bench_small_targets.py --minutes 0 --epochs 8 --modes all
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

from napari_unet.core import training
from napari_unet.core.augment import AugmentConfig
from napari_unet.core.checkpoint import save_model
from napari_unet.core.events import EpochEnd
from napari_unet.core.inference import predict_proba
from napari_unet.core.metrics import dice, dice_sweep, object_scores
from napari_unet.core.model import build_model
from napari_unet.core.synthetic import ct_dataset, ct_phantom
from napari_unet.core.training import fine_tune

TEST_SEED = 10000
#: Named modes: ``fine_tune`` keywords changed from the defaults.
PRESETS: dict[str, dict] = {
    "defaults": {},
    "uniform": {"foreground_fraction": 0.0},
    "no_roi": {"rois": None},
    "baseline": {"loss": "bce", "foreground_fraction": 0.0},
    **{name: {"loss": name} for name in ("bce", "dice", "focal", "ohem", "ohem_dice", "default")},
}
ALL_MODES = ["defaults", "uniform", "no_roi", "bce", "dice", "focal", "ohem", "ohem_dice"]


def parse_mode(mode: str) -> tuple[str, dict]:
    """``NAME`` (a preset) or ``NAME:key=value,...`` -> (name, fine_tune overrides)."""
    if ":" not in mode:
        if mode not in PRESETS:
            raise SystemExit(f"unknown mode {mode!r}: use one of {', '.join(PRESETS)} or NAME:k=v")
        return mode, dict(PRESETS[mode])
    name, spec = mode.split(":", 1)
    options = dict(PRESETS.get(name, {}))
    for item in filter(None, spec.split(",")):
        key, _, text = item.partition("=")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        options[key.strip()] = value
    return name, options


def train(name: str, options: dict, data, minutes, epochs, seed: int, log) -> tuple:
    images, lungs, labels = data
    options = dict(options)
    rois = options.pop("rois", lungs)
    if rois == "none":
        rois = None
    augment = {
        k.split(".", 1)[1]: options.pop(k) for k in list(options) if k.startswith("augment.")
    }
    if augment:
        options["augment"] = AugmentConfig(**augment)
    torch.manual_seed(seed)
    model = build_model()
    gen = fine_tune(
        model,
        images,
        labels,
        rois=rois,
        epochs=options.pop("epochs", epochs),
        max_minutes=minutes,
        device="cpu",
        seed=seed,
        keep_start=False,  # from scratch: the untrained start is no candidate
        **options,
    )
    started = time.perf_counter()
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        if isinstance(event, EpochEnd):
            log(
                f"[{name}] epoch {event.epoch} loss {event.train_loss:.4f} "
                f"val Dice {event.val_dice:.4f} best {event.best_dice:.4f} "
                f"(epoch {event.best_epoch}) {event.elapsed_s:.0f} s"
            )
    return result, time.perf_counter() - started


def detections(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    """Nodules found, nodules, true and false detections (8-connected components, any overlap)."""
    components, n_pred = ndi.label(pred, structure=np.ones((3, 3)))
    hit = pred & (truth > 0)
    true_components = int(np.unique(components[hit]).size)
    return (
        int(np.unique(truth[hit]).size),
        int(truth.max()),
        true_components,
        n_pred - true_components,
    )


def score(preds, test) -> dict:
    labels = [p.nodules for p in test]
    overlap = sum(int(np.count_nonzero(p & (t > 0))) for p, t in zip(preds, labels, strict=True))
    sizes = sum(
        int(np.count_nonzero(p)) + int(np.count_nonzero(t))
        for p, t in zip(preds, labels, strict=True)
    )
    found = total = true = false = 0
    fp_pixels_empty, fp_components_empty, distractors_hit, distractors = [], [], 0, 0
    tp = fp = fn = 0
    for pred, phantom in zip(preds, test, strict=True):
        a, b, c, d = detections(pred, phantom.nodules)
        found, total, true, false = found + a, total + b, true + c, false + d
        s = object_scores(pred, phantom.nodules)
        tp, fp, fn = tp + s["tp"], fp + s["fp"], fn + s["fn"]
        if not phantom.nodules.any():
            fp_pixels_empty.append(int(np.count_nonzero(pred)))
            fp_components_empty.append(int(ndi.label(pred, structure=np.ones((3, 3)))[1]))
        parts, n_parts = ndi.label(phantom.distractors)
        distractors += n_parts
        distractors_hit += int(np.unique(parts[pred & phantom.distractors]).size)
    with_nodules = [dice(p, t) for p, t in zip(preds, labels, strict=True) if t.any()]
    return {
        "pooled_dice": 2 * overlap / sizes if sizes else 1.0,
        "mean_dice_slices_with_nodules": float(np.mean(with_nodules)),
        "nodules_found": found,
        "nodules": total,
        "false_detections": false,
        "detection_recall": found / max(total, 1),
        "detection_precision": true / max(true + false, 1),
        "iou50_tp": tp,
        "iou50_fp": fp,
        "iou50_fn": fn,
        "fp_pixels_on_empty_slices": int(sum(fp_pixels_empty)),
        "fp_components_on_empty_slices": int(sum(fp_components_empty)),
        "empty_slices_with_any_fp": int(sum(n > 0 for n in fp_pixels_empty)),
        "distractors_hit": distractors_hit,
        "distractors": distractors,
    }


def evaluate(model, test, save: Path | None = None) -> dict:
    probs = [predict_proba(p.image, model, device="cpu") for p in test]
    if save is not None:
        np.savez_compressed(save, prob=np.stack(probs).astype(np.float16))
    preds = [prob >= model.threshold for prob in probs]
    scores = {
        "whole": score(preds, test),
        "lung_roi": score([m & p.lung for m, p in zip(preds, test, strict=True)], test),
    }
    truth = np.stack([p.nodules for p in test])
    lungs = np.stack([p.lung for p in test])
    _, _, t_best, d_best = dice_sweep(np.stack(probs) * lungs, truth)
    scores["oracle_threshold_lung_roi"] = {
        "threshold": float(t_best),
        "pooled_dice": float(d_best),
    }
    return scores


def summary(name: str, run: dict) -> str:
    w, r = run["test"]["whole"], run["test"]["lung_roi"]
    return (
        f"{name}: pooled Dice {w['pooled_dice']:.3f} (lung ROI {r['pooled_dice']:.3f}), "
        f"found {r['nodules_found']}/{r['nodules']}, false detections {w['false_detections']} "
        f"(ROI {r['false_detections']}), FP px on empty {w['fp_pixels_on_empty_slices']}, "
        f"distractors hit {w['distractors_hit']}/{w['distractors']}, "
        f"oracle {run['test']['oracle_threshold_lung_roi']['pooled_dice']:.3f}; "
        f"{run['steps']} steps, best epoch {run['best_epoch']} of {run['epochs']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Small-target benchmark (Target 3)")
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="time budget per mode (0: none)"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help="fixed number of epochs (100 steps each here) instead of, or with, the budget",
    )
    parser.add_argument("--train", type=int, default=40, help="training slices")
    parser.add_argument("--test", type=int, default=32, help="unseen test slices")
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["defaults"],
        help=f"any of {', '.join(PRESETS)}, "
        "'all' for the defaults and every ablation, or NAME:key=value,...",
    )
    parser.add_argument(
        "--plateau-share",
        type=float,
        help="early stopping after this share of the time budget without a better "
        "validation Dice (default: fine_tune's own; 1 switches it off)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--save", help="folder for each mode's model and test probabilities")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = [m for mode in args.modes for m in (ALL_MODES if mode == "all" else [mode])]
    specs = [parse_mode(mode) for mode in modes]
    if args.plateau_share is not None:
        training.PLATEAU_SHARE = args.plateau_share
    minutes = args.minutes if args.minutes > 0 else None
    epochs = args.epochs or None  # None: until the time budget is used
    if minutes is None and epochs is None:
        raise SystemExit("give a time budget (--minutes) or --epochs")
    save = Path(args.save) if args.save else None
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)

    def log(text: str) -> None:
        print(text, flush=True)

    train_data = ct_dataset(args.train, seed=0)
    test = [ct_phantom(TEST_SEED + i) for i in range(args.test)]
    fg = np.mean([np.count_nonzero(t) / t.size for t in train_data[2]])
    log(
        f"train {args.train} slices ({sum(t.any() for t in train_data[2])} with nodules, "
        f"mean foreground {100 * fg:.4f} %), test {args.test} slices "
        f"({sum(p.nodules.any() for p in test)} with nodules, "
        f"{sum(int(p.nodules.max()) for p in test)} nodules); "
        f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.2f}"
    )
    results = {
        "args": vars(args),
        "torch_threads": torch.get_num_threads(),
        "plateau_share": getattr(training, "PLATEAU_SHARE", None),
        "cpu_count": os.cpu_count(),
        "load_average_start": os.getloadavg(),
        "runs": {},
    }
    for name, options in specs:
        load_before = os.getloadavg()
        result, seconds = train(name, options, train_data, minutes, epochs, args.seed, log)
        if save is not None:
            save_model(result.model, save / f"{name}.pt")
        scores = evaluate(result.model, test, None if save is None else save / f"{name}.npz")
        run = {
            "options": options,
            "train_seconds": round(seconds, 1),
            "epochs": len(result.history),
            "steps": sum(h["steps"] for h in result.history),
            "best_epoch": result.best_epoch,
            "best_val_dice": result.best_dice,
            "stop_reason": str(result.stop_reason),
            "selected_by": getattr(result, "selected_by", "validation Dice"),
            "history": result.history,
            "test": scores,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        }
        results["runs"][name] = run
        log(summary(name, run))
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(results, handle, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
