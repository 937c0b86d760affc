"""Test-time augmentation on the held-out DSB 2018 images: scores, time, uncertainty AUROC.

For every held-out image of each modality (never trained or validated on),
the default model predicts once and with the 8 flips and rotations
(:func:`napari_unet.core.tta.iter_predict_tta`); both are scored (pooled Dice,
object F1 at IoU 0.5, DSB score; objects from ``instances_from_maps``).  The
AUROC of the TTA uncertainty for telling error pixels (mask != truth) from
right ones says whether the uncertainty is high where the errors are; 0.5 is
chance.  Time: one 512 x 512 prediction with and without TTA::

    .venv/bin/python benchmarks/bench_tta.py --threads 2 --json tta.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from scipy.stats import rankdata

sys.path.insert(0, os.path.dirname(__file__))
from bench_generalisation import Tally  # noqa: E402
from datasets import MODALITIES, dsb2018  # noqa: E402

from napari_unet.core.checkpoint import load_model  # noqa: E402
from napari_unet.core.events import run_to_completion  # noqa: E402
from napari_unet.core.inference import iter_predict  # noqa: E402
from napari_unet.core.instances import instances_from_maps  # noqa: E402
from napari_unet.core.tta import iter_predict_tta  # noqa: E402


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for ``positive`` (Mann-Whitney, ties halved)."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def seconds_512(model, tta: bool) -> float:
    image = np.random.default_rng(0).integers(0, 255, (512, 512)).astype(np.uint8)
    predict = iter_predict_tta if tta else iter_predict
    run_to_completion(predict(image, model, device="cpu"))
    t0 = time.perf_counter()
    run_to_completion(predict(image, model, device="cpu"))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json")
    parser.add_argument("--pixels", type=int, default=2_000_000, help="AUROC sample per modality")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    split = dsb2018()
    rng = np.random.default_rng(0)
    results: dict = {"model": args.model, "torch_threads": torch.get_num_threads()}
    for modality in MODALITIES:
        plain, tta = Tally(), Tally()
        scores, errors = [], []
        for item in split[modality]["test"]:
            image, truth = item.load()
            for tally, maps in (
                (plain, run_to_completion(iter_predict(image, model, device="cpu"))),
                (tta, out := run_to_completion(iter_predict_tta(image, model, device="cpu"))),
            ):
                mask = maps.proba >= model.threshold
                tally.add(
                    mask,
                    truth,
                    instances_from_maps(maps.proba, maps.boundary, 0.5, distance=maps.distance),
                )
            wrong = (out.proba >= model.threshold) != (truth > 0)
            scores.append(out.uncertainty.ravel())
            errors.append(wrong.ravel())
        s, e = np.concatenate(scores), np.concatenate(errors)
        if s.size > args.pixels:
            pick = rng.choice(s.size, size=args.pixels, replace=False)
            s, e = s[pick], e[pick]
        results[modality] = {
            "images": len(split[modality]["test"]),
            "plain": plain.result(),
            "tta": tta.result(),
            "uncertainty_auroc_for_errors": round(auroc(s, e), 4),
            "error_share": round(float(e.mean()), 4),
        }
        print(modality, json.dumps(results[modality]), flush=True)
    results["seconds_512"] = {
        "plain": round(seconds_512(model, False), 3),
        "tta": round(seconds_512(model, True), 3),
    }
    results["load_average"] = round(os.getloadavg()[0], 2)
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
