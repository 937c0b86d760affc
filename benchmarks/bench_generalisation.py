"""Fine-tuning on two images, scored on images it never saw, against blur + Otsu.

For every data set, the shipped ``default`` model is fine-tuned with the
defaults of :func:`napari_unet.core.training.fine_tune` (the same settings
the GUI's Fine-tune starts with) on two images, and then it, the default model
without fine-tuning and the blur + Otsu baseline (:func:`datasets.otsu_baseline`)
predict every evaluation image.  No evaluation image is ever trained or
validated on.

Data sets:

- ``fluorescence``, ``brightfield``, ``histology``: the DSB 2018 development
  set by modality (``../shared/data/dsb2018_stage1``).  The two training
  images come from a modality's development part (a different pair for each
  repeat); the scores are over its fixed held-out part
  (:func:`datasets.dsb2018`).
- ``stack``: synthetic confocal stacks of large nuclei with dim, out-of-focus
  planes (:func:`datasets.confocal_stack`), one stack per repeat; training on
  the two middle planes, scored on the 26 others, with the planes-off-focus
  augmentation that the GUI and CLI switch on for slices of a stack (unless
  ``--augment`` is given).

Scores: pooled Dice (overlaps summed over sizes summed, over all evaluation
images of a data set) and object F1 at IoU 0.5 (connected components of the
mask against the instance labels, counts summed over the images); the stack
also reports Dice on its dim planes (the 6 at each end).

``--thresholds T ...`` also scores the fine-tuned model's mask at each of
these thresholds, on the evaluation images and on its own two training images.

Usage::

    .venv/bin/python benchmarks/bench_generalisation.py --threads 1 --json out.json
    .venv/bin/python benchmarks/bench_generalisation.py --datasets stack --repeats 1 \\
        --augment blur_p=0 scale_range=1,1      # try other settings
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import sys
import time
from dataclasses import fields, replace

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from datasets import confocal_stack, dev_replay, dsb2018, otsu_baseline  # noqa: E402

from napari_unet.core.augment import AugmentConfig  # noqa: E402
from napari_unet.core.checkpoint import load_model  # noqa: E402
from napari_unet.core.events import EpochEnd, run_to_completion  # noqa: E402
from napari_unet.core.inference import predict_proba  # noqa: E402
from napari_unet.core.metrics import average_precision, object_scores  # noqa: E402
from napari_unet.core.replay import load_replay  # noqa: E402
from napari_unet.core.training import fine_tune  # noqa: E402

DATASETS = ("fluorescence", "brightfield", "histology", "stack")
TRAIN_PLANES = (13, 15)  # the two middle planes of a 28-plane stack
DIM_PLANES = 6


class Tally:
    """Pooled Dice, object counts and mean average precision over many images."""

    def __init__(self) -> None:
        self.overlap = self.size = self.tp = self.fp = self.fn = 0
        self.ap: list[dict[float, float]] = []

    def add(self, pred: np.ndarray, truth: np.ndarray, objects: np.ndarray | None = None) -> None:
        """Add one image: its mask, truth labels and, if not the mask's components, objects."""
        t = truth > 0
        self.overlap += int(np.count_nonzero(pred & t))
        self.size += int(np.count_nonzero(pred)) + int(np.count_nonzero(t))
        objects = pred if objects is None else objects
        s = object_scores(objects, truth)
        self.tp, self.fp, self.fn = self.tp + s["tp"], self.fp + s["fp"], self.fn + s["fn"]
        self.ap.append(average_precision(objects, truth))

    def result(self) -> dict:
        dice = 2 * self.overlap / self.size if self.size else 1.0
        den = 2 * self.tp + self.fp + self.fn
        out = {"dice": round(dice, 4), "f1": round(2 * self.tp / den if den else 1.0, 4)}
        if self.ap:
            ap = {t: float(np.mean([a[t] for a in self.ap])) for t in self.ap[0]}
            out["ap50"] = round(ap[0.5], 4)
            out["ap75"] = round(ap[0.75], 4)
            out["ap90"] = round(ap[0.9], 4)
            out["dsb"] = round(float(np.mean(list(ap.values()))), 4)
        return out


def _value(text: str):
    if "," in text:
        return tuple(float(v) for v in text.split(","))
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _pairs(option: list[str] | None) -> dict:
    return {k: _value(v) for k, v in (item.split("=", 1) for item in option or [])}


def as_the_gui_would(name: str, settings: dict) -> dict:
    """Add what the GUI and CLI add for a data set: a stack's slices teach the planes off focus."""
    if name == "stack" and "augment" not in settings:
        return {**settings, "augment": AugmentConfig(depth=True)}
    return settings


def data_for(name: str, repeat: int, dsb) -> tuple[list, list, list]:
    """Training images, training masks and evaluation pairs of one repeat."""
    if name == "stack":
        stack, labels = confocal_stack(seed=repeat)
        train = list(TRAIN_PLANES)
        test = [(stack[z], labels[z], z) for z in range(len(stack)) if z not in train]
        return [stack[z] for z in train], [labels[z] for z in train], test
    dev, held_out = dsb[name]["dev"], dsb[name]["test"]
    rng = np.random.default_rng(1000 + repeat)
    chosen = rng.choice(len(dev), size=2, replace=False)
    pairs = [dev[i].load() for i in chosen]
    test = [(*item.load(), item.id) for item in held_out]
    return [p[0] for p in pairs], [p[1] for p in pairs], test


def sample_replay() -> tuple[list, list]:
    """The shipped fluorescence sample and its labels, for ``--set replay=sample``."""
    from napari_unet.core.io import read_image, read_mask

    folder = os.path.join(os.path.dirname(__file__), "..", "sample_data")
    image = read_image(os.path.join(folder, "dsb2018_nuclei.tif"))
    return [image], [read_mask(os.path.join(folder, "dsb2018_nuclei_mask.tif"))]


def score(test, predict) -> dict:
    """Pooled scores of ``predict(image) -> mask`` over the evaluation pairs."""
    whole, dim = Tally(), Tally()
    for image, truth, where in test:
        mask = predict(image)
        whole.add(mask, truth)
        plane = isinstance(where, (int, np.integer))
        if plane and (where < DIM_PLANES or where >= 28 - DIM_PLANES):
            dim.add(mask, truth)
    out = whole.result()
    if dim.size:
        out["dim_planes_dice"] = dim.result()["dice"]
    return out


def by_threshold(pairs, probs, thresholds) -> dict:
    """Pooled Dice of ``prob >= t`` against the truth of ``pairs``, for each threshold."""
    out = {}
    for t in thresholds:
        tally = Tally()
        for (_, truth, *_), prob in zip(pairs, probs, strict=True):
            tally.add(prob >= t, truth)
        out[f"{t:g}"] = tally.result()["dice"]
    return out


def run(
    name: str,
    repeat: int,
    dsb,
    settings: dict,
    log,
    model: str = "default",
    thresholds: list[float] | None = None,
) -> dict:
    images, masks, test = data_for(name, repeat, dsb)
    start = load_model(model)
    t0 = time.perf_counter()
    settings = dict(as_the_gui_would(name, settings))
    if settings.get("replay") == "sample":
        settings["replay"] = sample_replay()
    elif settings.get("replay") == "dev":
        settings["replay"] = dev_replay(dsb)
    elif settings.get("replay") == "default":
        settings["replay"] = load_replay("default")
    gen = fine_tune(start, images, masks, device="cpu", seed=repeat, **settings)

    def on_event(event):
        if isinstance(event, EpochEnd):
            log(f"  [{name} #{repeat}] {event.epoch_text} loss {event.train_loss:.4f} "
                f"val Dice {event.val_dice:.4f} best {event.best_dice:.4f}")  # fmt: skip

    result = run_to_completion(gen, on_event)
    seconds = time.perf_counter() - t0

    def with_model(model):
        return lambda image: predict_proba(image, model, device="cpu") >= model.threshold

    sweep = {}
    if thresholds:
        tuned = result.model

        def probs(pairs):
            return [predict_proba(pair[0], tuned, device="cpu") for pair in pairs]

        trained = list(zip(images, masks, strict=True))
        sweep = {
            "eval_dice_by_threshold": by_threshold(test, probs(test), thresholds),
            "train_dice_by_threshold": by_threshold(trained, probs(trained), thresholds),
        }
    return {
        **sweep,
        "train_images": [list(np.shape(i)) for i in images],
        "fine_tune_seconds": round(seconds, 1),
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "stop": result.stop_message,
        "n_eval": len(test),
        "fine_tuned": score(test, with_model(result.model)),
        "default": score(test, with_model(start)),
        "otsu": score(test, otsu_baseline),
    }


def summarise(runs: dict) -> dict:
    table = {}
    for name, reps in runs.items():
        row = {}
        for method in ("fine_tuned", "default", "otsu"):
            for metric in reps[0][method]:
                row[f"{method}_{metric}"] = round(
                    float(np.mean([r[method][metric] for r in reps])), 4
                )
        row["fine_tune_seconds"] = round(float(np.mean([r["fine_tune_seconds"] for r in reps])), 1)
        row["beats_otsu_every_repeat"] = all(
            r["fine_tuned"]["dice"] > r["otsu"]["dice"] for r in reps
        )
        table[name] = row
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--repeats", type=int, default=2, help="training pairs per data set")
    parser.add_argument("--first-repeat", type=int, default=0, help="index of the first pair")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="fine_tune settings")
    parser.add_argument("--augment", nargs="*", metavar="KEY=VALUE", help="AugmentConfig fields")
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--model", default="default", help="starting model (default: default)")
    parser.add_argument(
        "--thresholds", type=float, nargs="*", help="also score the fine-tuned masks at these"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = _pairs(args.set)
    if args.augment:
        names = {f.name for f in fields(AugmentConfig)}
        extra = _pairs(args.augment)
        unknown = set(extra) - names
        if unknown:
            parser.error(f"unknown augmentation settings: {', '.join(sorted(unknown))}")
        settings["augment"] = replace(AugmentConfig(), **extra)

    def log(text: str) -> None:
        print(text, flush=True)

    dsb = dsb2018()
    results = {
        "args": vars(args),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "torch_threads": torch.get_num_threads(),
        "load_average_start": round(os.getloadavg()[0], 2),
        "runs": {},
    }
    for name in args.datasets:
        results["runs"][name] = []
        for repeat in range(args.first_repeat, args.first_repeat + args.repeats):
            out = run(name, repeat, dsb, settings, log, args.model, args.thresholds)
            results["runs"][name].append(out)
            log(json.dumps({name: out}))
            results["summary"] = summarise(results["runs"])
            results["load_average_end"] = round(os.getloadavg()[0], 2)
            if args.json:
                with open(args.json, "w") as handle:
                    json.dump(results, handle, indent=2, default=str)
    log(json.dumps(results["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
