"""Choose the instance split's settings on development images, never on held-out ones.

Predicts a fixed subset of each modality's development part of the DSB 2018
development set (images the default model trained on; the held-out part is
for ``bench_default_model.py`` alone) and scores object F1 at IoU 0.5 and the
DSB score of :func:`napari_unet.core.instances.instances_from_maps` for a grid
of seed settings (the distance map's smoothing and the seeds' depth) and
smallest object sizes, and connected components::

    .venv/bin/python benchmarks/tune_instances.py --threads 1

``--bounds`` adds what the split could reach with better maps: the true mask
split by its shape (a perfect foreground), and the model's mask with the true
contacts between touching nuclei as its rim map (perfect contacts).
``--scale S`` predicts every image resized by ``S`` (bilinear) and resizes the
maps back to the image's size before the split: whether the model sees some
kind of nuclei better larger or smaller than they come.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_generalisation import Tally  # noqa: E402
from datasets import MODALITIES, dsb2018  # noqa: E402

from napari_unet.core.checkpoint import load_model  # noqa: E402
from napari_unet.core.events import run_to_completion  # noqa: E402
from napari_unet.core.inference import iter_predict  # noqa: E402
from napari_unet.core.instances import (  # noqa: E402
    MIN_OBJECT_SIZE,
    instances_from_maps,
    split_objects,
)
from napari_unet.core.postprocess import label_objects  # noqa: E402
from napari_unet.core.targets import separation_border  # noqa: E402


def predict_at_scale(image: np.ndarray, model, scale: float):
    """``model``'s maps of ``image`` resized by ``scale``, resized back to the image's size."""
    from skimage.transform import resize

    if scale == 1:
        return run_to_completion(iter_predict(image, model, device="cpu"))
    size = tuple(round(n * scale) for n in image.shape[:2])
    big = resize(image.astype(np.float32), size + image.shape[2:], order=1, preserve_range=True,
                 anti_aliasing=scale < 1)  # fmt: skip
    maps = run_to_completion(iter_predict(big, model, device="cpu"))

    def back(a):
        return None if a is None else resize(a, image.shape[:2], order=1).astype(np.float32)

    return dataclasses.replace(
        maps,
        proba=back(maps.proba),
        boundary=back(maps.boundary),
        distance=back(maps.distance),
        objects=None,
    )


def bounds(cases: list, threshold: float) -> dict:
    """F1 and DSB score of the split given the true mask, or the true contacts."""
    rows = {}
    for name, maps_of in (
        ("true mask, its components", None),
        ("true mask, split by its shape", lambda maps, t: (t > 0, np.zeros(t.shape, np.float32))),
        ("model's mask, true contacts as rims",
         lambda maps, t: (maps.proba >= threshold, separation_border(t).astype(np.float32))),
    ):  # fmt: skip
        tally = Tally()
        for maps, truth in cases:
            if maps_of is None:
                tally.add(truth > 0, truth, label_objects(truth > 0))
                continue
            mask, rims = maps_of(maps, truth)
            objects = instances_from_maps(mask.astype(np.float32), rims, 0.5)
            tally.add(objects > 0, truth, objects)
        rows[f"bound: {name}"] = tally.result()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--per-modality", type=int, default=40)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[1.5, 2.0, 2.5])
    parser.add_argument("--depths", type=float, nargs="+", default=[0.5, 1.0, 1.5])
    parser.add_argument(
        "--min-sizes", type=int, nargs="+", default=[MIN_OBJECT_SIZE],
        help="smallest object kept, in pixels",
    )  # fmt: skip
    parser.add_argument(
        "--distance-sigmas",
        type=float,
        nargs="+",
        default=[0.0, 1.0, 2.0],
        help="with a three-output model: smoothing of its distance map",
    )
    parser.add_argument(
        "--distance-depths",
        type=float,
        nargs="+",
        default=[0.05, 0.1, 0.2, 0.3],
        help="with a three-output model: seed depth in its distance map's units",
    )
    parser.add_argument("--bounds", action="store_true", help="add the split's bounds")
    parser.add_argument("--scale", type=float, default=1.0, help="predict images resized by this")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    split = dsb2018()
    results: dict = {}
    for modality in MODALITIES:
        dev = split[modality]["dev"]
        rng = np.random.default_rng(11)
        chosen = rng.choice(len(dev), size=min(args.per_modality, len(dev)), replace=False)
        cases = []
        for i in chosen:
            image, truth = dev[i].load()
            cases.append((predict_at_scale(image, model, args.scale), truth))
        rows = {}
        tally = Tally()
        for maps, truth in cases:
            mask = maps.proba >= model.threshold
            tally.add(mask, truth, label_objects(mask))
        rows["components"] = tally.result()
        grid = [(sigma, depth, False) for sigma in args.sigmas for depth in args.depths]
        if cases and cases[0][0].distance is not None:
            grid += [(s, d, True) for s in args.distance_sigmas for d in args.distance_depths]
        for sigma, depth, by_distance in grid:
            splits = [
                split_objects(maps.proba >= model.threshold, maps.boundary, sigma=sigma,
                              depth=depth, distance=maps.distance if by_distance else None)
                for maps, _ in cases
            ]  # fmt: skip
            for min_size in args.min_sizes:
                tally = Tally()
                for (maps, truth), reference in zip(cases, splits, strict=True):
                    objects = instances_from_maps(
                        maps.proba,
                        maps.boundary,
                        model.threshold,
                        min_object_size=min_size,
                        split=reference,
                    )
                    tally.add(objects > 0, truth, objects)
                kind = "distance map " if by_distance else ""
                rows[f"{kind}sigma {sigma} depth {depth} min size {min_size}"] = tally.result()
        if args.bounds:
            rows.update(bounds(cases, model.threshold))
        results[modality] = {"images": len(cases), "rows": rows}
        best = max((k for k in rows if not k.startswith("bound")), key=lambda k: rows[k]["f1"])
        print(f"{modality} ({len(cases)} dev images): best {best} {rows[best]}; "
              f"components {rows['components']}", flush=True)  # fmt: skip
        for name in (n for n in rows if n.startswith("bound")):
            print(f"  {name}: {rows[name]}", flush=True)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
