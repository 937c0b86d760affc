"""Target 3: small, rare targets (synthetic CT-like slices with lung nodules).

Trains a fresh U-Net (the default architecture) for the same time budget
twice, on the same synthetic slices:

- ``defaults``: :func:`napari_unet.core.training.fine_tune` with its defaults
  (default loss, foreground-biased patches, augmentation), the lung mask as
  region of interest for patch centres.
- ``baseline``: plain (unweighted) binary cross-entropy and uniform patches
  (``foreground_fraction=0``), everything else the same (same ROI, same
  augmentation, same budget).

Data: training slices from seeds ``0 .. n_train-1``; test slices, never seen
in training or validation, from seeds ``10000 ..``.  All are 512 x 512 with
0-3 nodules of 4-18 px across (< 0.1 % foreground) and bright vessels.

Scores on the test slices (threshold = the model's, 0.5):

- pooled Dice: over all test pixels together (sum of overlaps over sum of
  sizes) -- the headline number, well defined when some slices are empty;
- mean per-slice Dice over the slices that contain nodules;
- false-positive pixels on the slices without nodules;
- nodule-level recall/precision (IoU >= 0.5).

The network's output is scored as it is (the whole slice), and also
restricted to the lung mask (the region of interest a user would have).

Usage::

    .venv/bin/python benchmarks/bench_small_targets.py --minutes 10 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from napari_unet.core.events import EpochEnd
from napari_unet.core.inference import predict_proba
from napari_unet.core.metrics import dice, object_scores
from napari_unet.core.model import build_model
from napari_unet.core.synthetic import ct_dataset
from napari_unet.core.training import fine_tune

TEST_SEED = 10000


def train(mode: str, data, minutes: float, seed: int, log) -> tuple:
    images, lungs, labels = data
    options = {} if mode == "defaults" else {"loss": "bce", "foreground_fraction": 0.0}
    torch.manual_seed(seed)
    model = build_model()
    gen = fine_tune(
        model,
        images,
        labels,
        rois=lungs,
        epochs=10_000,  # the time budget ends the run
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
                f"[{mode}] epoch {event.epoch} loss {event.train_loss:.4f} "
                f"val Dice {event.val_dice:.4f} best {event.best_dice:.4f} "
                f"{event.elapsed_s:.0f} s"
            )
    return result, time.perf_counter() - started


def evaluate(model, test) -> dict:
    images, lungs, labels = test
    preds, preds_roi = [], []
    for image, lung in zip(images, lungs, strict=True):
        mask = predict_proba(image, model, device="cpu") >= model.threshold
        preds.append(mask)
        preds_roi.append(mask & lung)
    scores = {}
    for name, ps in (("whole", preds), ("lung_roi", preds_roi)):
        overlap = sum(int(np.count_nonzero(p & (t > 0))) for p, t in zip(ps, labels, strict=True))
        sizes = sum(
            int(np.count_nonzero(p)) + int(np.count_nonzero(t))
            for p, t in zip(ps, labels, strict=True)
        )
        with_nodules = [dice(p, t) for p, t in zip(ps, labels, strict=True) if t.any()]
        fp_empty = [
            int(np.count_nonzero(p)) for p, t in zip(ps, labels, strict=True) if not t.any()
        ]
        tp = fp = fn = 0
        for p, t in zip(ps, labels, strict=True):
            s = object_scores(p, t)
            tp, fp, fn = tp + s["tp"], fp + s["fp"], fn + s["fn"]
        scores[name] = {
            "pooled_dice": 2 * overlap / sizes if sizes else 1.0,
            "mean_dice_slices_with_nodules": float(np.mean(with_nodules)),
            "fp_pixels_on_empty_slices": fp_empty,
            "nodule_recall": tp / max(tp + fn, 1),
            "nodule_precision": tp / max(tp + fp, 1),
            "tp": tp,
            "fp": fp,
            "fn": fn,
        }
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Small-target benchmark (Target 3)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--train", type=int, default=40, help="training slices")
    parser.add_argument("--test", type=int, default=20, help="unseen test slices")
    parser.add_argument("--modes", nargs="+", default=["defaults", "baseline"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    def log(text: str) -> None:
        print(text, flush=True)

    train_data = ct_dataset(args.train, seed=0)
    test = ct_dataset(args.test, seed=TEST_SEED)
    fg = np.mean([np.count_nonzero(t) / t.size for t in train_data[2]])
    log(
        f"train {args.train} slices (mean foreground {100 * fg:.3f} %), test {args.test} "
        f"slices ({sum(t.any() for t in test[2])} with nodules, "
        f"{sum(int(t.max()) for t in test[2])} nodules)"
    )
    results = {
        "args": vars(args),
        "torch_threads": torch.get_num_threads(),
        "load_average_start": os.getloadavg()[0],
        "runs": {},
    }
    for mode in args.modes:
        result, seconds = train(mode, train_data, args.minutes, args.seed, log)
        scores = evaluate(result.model, test)
        results["runs"][mode] = {
            "train_seconds": round(seconds, 1),
            "epochs": len(result.history),
            "steps": sum(h["steps"] for h in result.history),
            "best_epoch": result.best_epoch,
            "best_val_dice": result.best_dice,
            "test": scores,
            "load_average_end": os.getloadavg()[0],
        }
        log(json.dumps({mode: results["runs"][mode]}, indent=2))
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
