"""Score a model on the held-out part of the DSB 2018 development set, per modality.

Every held-out image (:func:`datasets.dsb2018`, never trained or validated on
by ``scripts/train_default_model.py``) is predicted whole, as a user would,
and thresholded at the model's threshold; blur + Otsu
(:func:`datasets.otsu_baseline`) is scored on the same images.  Scores are
pooled Dice; object F1 at IoU 0.5 (counts summed over the images of a
modality) and the mean average precision per image at IoU 0.5, 0.75 and 0.9
and the DSB 2018 score (mean AP over IoU 0.5:0.05:0.95), all against the
instance labels; and the time to predict a 512 x 512 image.  The model's
objects are :func:`~napari_unet.core.instances.instances_from_maps` (its
boundary output splits touching nuclei; connected components for a
one-output model); Otsu's are connected components.

Usage::

    .venv/bin/python benchmarks/bench_default_model.py [--model default] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_generalisation import Tally  # noqa: E402
from datasets import MODALITIES, dsb2018, otsu_baseline  # noqa: E402

from napari_unet.core.checkpoint import load_model  # noqa: E402
from napari_unet.core.events import run_to_completion  # noqa: E402
from napari_unet.core.inference import iter_predict, predict_proba  # noqa: E402
from napari_unet.core.instances import instances_from_maps  # noqa: E402


def mask_and_objects(model, image, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """``model``'s mask and objects of ``image``, predicted whole as a user would."""
    maps = run_to_completion(iter_predict(image, model, device=device))
    objects = instances_from_maps(
        maps.proba, maps.boundary, model.threshold, distance=maps.distance
    )
    return maps.proba >= model.threshold, objects


def evaluate(model, split=None, log=print) -> dict:
    """Pooled Dice and F1 of ``model`` and of Otsu on each modality's held-out images."""
    split = dsb2018() if split is None else split
    out = {}
    overall = {"model": Tally(), "otsu": Tally()}
    for modality in MODALITIES:
        tallies = {"model": Tally(), "otsu": Tally()}
        for item in split[modality]["test"]:
            image, truth = item.load()
            mask, objects = mask_and_objects(model, image)
            for name, pred, obj in (
                ("model", mask, objects),
                ("otsu", otsu_baseline(image), None),
            ):
                tallies[name].add(pred, truth, obj)
                overall[name].add(pred, truth, obj)
        out[modality] = {
            "images": len(split[modality]["test"]),
            **{name: t.result() for name, t in tallies.items()},
        }
        log(f"{modality}: {json.dumps(out[modality])}")
    out["all"] = {name: t.result() for name, t in overall.items()}
    return out


def time_512(model, repeats: int = 3) -> float:
    """Median seconds to predict a 512 x 512 image on the CPU."""
    image = np.random.default_rng(0).integers(0, 255, (512, 512)).astype(np.uint8)
    predict_proba(image, model, device="cpu")  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict_proba(image, model, device="cpu")
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    results = {
        "model": args.model,
        "torch_threads": torch.get_num_threads(),
        "load_average": round(os.getloadavg()[0], 2),
        "held_out": evaluate(model),
        "seconds_per_512": round(time_512(model), 3),
    }
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
