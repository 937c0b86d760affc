"""Architecture variants side by side: U-Net, U-Net++, U-Net 3+, TTA and an ensemble.

Every network is trained from scratch with the same wall-clock budget on this
CPU (``fine_tune(build_model(arch=...), ..., keep_start=False,
max_minutes=M)``, the default loss unless the variant says otherwise), then
scored, on two tasks:

- ``dsb``: DSB 2018 nuclei (:func:`datasets.dsb2018`).  Training: a fixed
  subset of the development images (fluorescence, histology, brightfield
  cropped to 512 x 512); 2 outputs (foreground + rims) and 3 input channels,
  like the default model.  Scored on a fixed subset of the held-out images
  (never trained or validated on); objects are
  :func:`~napari_unet.core.instances.instances_from_maps`.
- ``ct``: the small-target synthetic CT slices of
  ``benchmarks/bench_small_targets.py`` (training seeds 0.., test seeds
  10000..), 1 output, the lung mask as region of interest for training
  patches; scored on the whole slice.

Rows: blur + Otsu, each architecture without and with test-time augmentation
(8 flips/rotations, :mod:`napari_unet.core.tta`), an ensemble of 3 plain U-Nets
(seeds 0, 1, 2; :mod:`napari_unet.core.ensemble`) and, on ``dsb``, U-Net 3+
with its own hybrid loss (focal + MS-SSIM + IoU).  Scores: pooled Dice and
object F1 at IoU 0.5 (counts summed over the test images), at the model's
threshold; and seconds per 512 x 512 prediction (median of 3, 1 for TTA).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_variants.py \\
        --dsb-minutes 3.5 --ct-minutes 2.5 --json benchmarks/results/variants.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_generalisation import Tally  # noqa: E402
from datasets import dsb2018, otsu_baseline  # noqa: E402

from napari_unet.core.defaults import ARCH_LABELS  # noqa: E402
from napari_unet.core.ensemble import iter_predict_ensemble  # noqa: E402
from napari_unet.core.events import EpochEnd, run_to_completion  # noqa: E402
from napari_unet.core.inference import iter_predict  # noqa: E402
from napari_unet.core.instances import instances_from_maps  # noqa: E402
from napari_unet.core.model import build_model  # noqa: E402
from napari_unet.core.synthetic import ct_dataset, ct_phantom  # noqa: E402
from napari_unet.core.training import fine_tune  # noqa: E402
from napari_unet.core.tta import iter_predict_tta  # noqa: E402

CT_TEST_SEED = 10000
#: (name, arch, seed, loss) of every network trained per task.
RUNS = (
    ("unet", "unet", 0, "default"),
    ("unetpp", "unetpp", 0, "default"),
    ("unet3p", "unet3p", 0, "default"),
    ("unet_s1", "unet", 1, "default"),
    ("unet_s2", "unet", 2, "default"),
    ("unet3p_hybrid", "unet3p", 0, "hybrid"),
)


def dsb_data(n_test: int, n_bright: int):
    """Training pairs (development part) and test pairs (held-out part) of DSB 2018."""
    split = dsb2018()
    train_x, train_y, test = [], [], []
    for modality, n_train in (("fluorescence", 24), ("histology", 8), ("brightfield", 4)):
        dev = split[modality]["dev"]
        for i in np.random.default_rng(1).choice(len(dev), min(n_train, len(dev)), replace=False):
            image, labels = dev[i].load()
            if image.shape[0] > 512:
                image, labels = image[256:768, 256:768], labels[256:768, 256:768]
            train_x.append(image)
            train_y.append(labels)
        held = split[modality]["test"]
        count = n_bright if modality == "brightfield" else n_test
        for i in sorted(np.random.default_rng(2).choice(len(held), min(count, len(held)), False)):
            test.append(held[i].load())
    return (train_x, train_y, None), test


def ct_data(n_train: int, n_test: int):
    """Training slices (with lung ROIs) and unseen test slices of the synthetic CT."""
    images, lungs, labels = ct_dataset(n_train, seed=0)
    test = []
    for i in range(n_test):
        phantom = ct_phantom(CT_TEST_SEED + i)
        test.append((phantom.image, phantom.nodules))
    return (images, labels, lungs), test


def train(task: str, arch: str, seed: int, loss: str, data, minutes: float, log) -> tuple:
    images, labels, rois = data
    torch.manual_seed(seed)
    outputs = 2 if task == "dsb" else 1
    channels = 3 if task == "dsb" else 1
    model = build_model(arch=arch, out_channels=outputs, in_channels=channels)
    gen = fine_tune(
        model, images, labels, rois=rois, max_minutes=minutes, device="cpu", seed=seed,
        keep_start=False, loss=loss,
    )  # fmt: skip

    def show(event) -> None:
        if isinstance(event, EpochEnd):
            log(
                f"[{task} {arch} s{seed} {loss}] epoch {event.epoch} loss {event.train_loss:.4f} "
                f"val Dice {event.val_dice:.4f} best {event.best_dice:.4f} {event.elapsed_s:.0f} s"
            )

    started = time.perf_counter()
    result = run_to_completion(gen, show)
    return result, time.perf_counter() - started


def score(predict, test, threshold: float) -> dict:
    """Pooled Dice and F1 at IoU 0.5 of ``predict(image) -> Prediction`` over ``test``."""
    tally = Tally()
    for image, truth in test:
        maps = predict(image)
        mask = maps.proba >= threshold
        objects = instances_from_maps(maps.proba, maps.boundary, threshold, distance=maps.distance)
        tally.add(mask, truth, objects)
    result = tally.result()
    return {"dice": result["dice"], "f1": result["f1"]}


def otsu_score(test) -> dict:
    tally = Tally()
    for image, truth in test:
        tally.add(otsu_baseline(image), truth)
    result = tally.result()
    return {"dice": result["dice"], "f1": result["f1"]}


def seconds_512(predict, channels: int, repeats: int) -> float:
    shape = (512, 512, 3) if channels == 3 else (512, 512)
    image = np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8)
    predict(image)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict(image)
        times.append(time.perf_counter() - t0)
    return round(float(np.median(times)), 3)


def predictors(models: dict) -> dict:
    """Row name -> (predict function, threshold, timing repeats)."""

    def plain(model):
        return lambda image: run_to_completion(iter_predict(image, model, device="cpu"))

    def tta(model):
        return lambda image: run_to_completion(iter_predict_tta(image, model, device="cpu"))

    rows = {}
    for name in ("unet", "unetpp", "unet3p"):
        if name in models:
            label = ARCH_LABELS[name]
            rows[label] = (plain(models[name]), models[name].threshold, 3)
            rows[f"{label} + TTA"] = (tta(models[name]), models[name].threshold, 1)
    if all(k in models for k in ("unet", "unet_s1", "unet_s2")):
        members = [models[k] for k in ("unet", "unet_s1", "unet_s2")]
        rows["ensemble of 3 U-Nets"] = (
            lambda image: run_to_completion(iter_predict_ensemble(image, members, device="cpu")),
            0.5,
            1,
        )
    if "unet3p_hybrid" in models:
        model = models["unet3p_hybrid"]
        rows["U-Net 3+, hybrid loss"] = (plain(model), model.threshold, 3)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsb-minutes", type=float, default=3.5)
    parser.add_argument("--ct-minutes", type=float, default=2.5)
    parser.add_argument("--dsb-test", type=int, default=16, help="held-out images per modality")
    parser.add_argument("--dsb-brightfield", type=int, default=3, help="held-out brightfield")
    parser.add_argument("--ct-train", type=int, default=40)
    parser.add_argument("--ct-test", type=int, default=16)
    parser.add_argument("--tasks", nargs="+", default=["dsb", "ct"])
    parser.add_argument("--runs", nargs="+", help="subset of: " + " ".join(r[0] for r in RUNS))
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    def log(text: str) -> None:
        print(text, flush=True)

    results = {
        "command": " ".join(sys.argv),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average_start": os.getloadavg(),
        "tasks": {},
    }

    def save() -> None:
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(results, handle, indent=2, default=str)

    for task in args.tasks:
        if task == "dsb":
            data, test = dsb_data(args.dsb_test, args.dsb_brightfield)
            minutes, channels = args.dsb_minutes, 3
        else:
            data, test = ct_data(args.ct_train, args.ct_test)
            minutes, channels = args.ct_minutes, 1
        out: dict = {"minutes_per_run": minutes, "test_images": len(test), "runs": {}, "rows": {}}
        results["tasks"][task] = out
        out["rows"]["blur + Otsu"] = otsu_score(test)
        log(f"{task}: {len(data[0])} training images, {len(test)} test images; Otsu {out['rows']}")
        models = {}
        for name, arch, seed, loss in RUNS:
            if args.runs and name not in args.runs:
                continue
            if task == "ct" and loss != "default":
                continue
            load = os.getloadavg()
            result, seconds = train(task, arch, seed, loss, data, minutes, log)
            models[name] = result.model
            out["runs"][name] = {
                "arch": arch, "seed": seed, "loss": loss, "train_seconds": round(seconds, 1),
                "steps": sum(h["steps"] for h in result.history), "epochs": len(result.history),
                "best_epoch": result.best_epoch, "best_val_dice": result.best_dice,
                "load_average_before": load, "load_average_after": os.getloadavg(),
            }  # fmt: skip
            log(f"{task} {name}: {out['runs'][name]}")
            save()
        for row, (predict, threshold, repeats) in predictors(models).items():
            t0 = time.perf_counter()
            scores = score(predict, test, threshold)
            scores["seconds_per_512"] = seconds_512(predict, channels, repeats)
            scores["eval_seconds"] = round(time.perf_counter() - t0, 1)
            out["rows"][row] = scores
            log(f"{task} {row}: {scores}")
            save()
    results["load_average_end"] = os.getloadavg()
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
