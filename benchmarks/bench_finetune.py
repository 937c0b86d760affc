"""Target 4: fine-tune ``default`` on two corrected 256 x 256 crops of an unseen image.

The unseen image is a 768 x 768 synthetic fluorescence nuclei image whose look
lies outside everything the default model was trained on: larger nuclei
(radius 17 px; training: the DSB 2018 sample's ~12 px and synthetic 7-14 px),
a stronger blur (PSF sigma 2.6 px; training 0.7-2.0) and dimmer nuclei
(contrast 22 grey values over the background).  Its ground truth plays the role of the
"corrected" masks on the two crops, top-left ``[0:256, 0:256]`` and
``[0:256, 256:512]``.

The fine-tune runs the command line exactly as a user would, with every
training option at its default::

    napari-unet train --images crop1.tif crop2.tif --masks crop1_mask.tif crop2_mask.tif \
        --init default --out tuned.pt --device cpu

and the wall time of that command (process start to exit, model saved) is
reported.  Dice is measured at each model's stored threshold on "the rest of
the image": every pixel outside the two crops (the whole image is predicted,
the crop pixels are left out of the score).

Usage::

    .venv/bin/python benchmarks/bench_finetune.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_unet.core.checkpoint import load_model
from napari_unet.core.inference import predict_proba
from napari_unet.core.metrics import dice
from napari_unet.core.synthetic import nuclei_image

APPEARANCE = {"radius": 17.0, "contrast": 22.0, "blur": 2.6, "density": 0.28}
CROPS = [(slice(0, 256), slice(0, 256)), (slice(0, 256), slice(256, 512))]


def rest_dice(model, image: np.ndarray, truth: np.ndarray, rest: np.ndarray) -> float:
    prob = predict_proba(image, model, device="cpu")
    return dice((prob >= model.threshold)[rest], truth[rest] > 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fine-tuning benchmark (Target 4)")
    parser.add_argument("--seed", type=int, default=4242, help="seed of the unseen image")
    parser.add_argument(
        "--threads", type=int, help="CPU threads of the training process (OMP_NUM_THREADS)"
    )
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument(
        "--train-args", nargs=argparse.REMAINDER, default=[], help="more `train` options"
    )
    args = parser.parse_args(argv)

    image, truth = nuclei_image(args.seed, size=768, **APPEARANCE)
    rest = np.ones(image.shape, bool)
    for crop in CROPS:
        rest[crop] = False

    before = load_model("default")
    dice_before = rest_dice(before, image, truth, rest)
    print(f"Dice on the rest of the image, default model: {dice_before:.4f}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images, masks = [], []
        for k, crop in enumerate(CROPS, start=1):
            tifffile.imwrite(tmp / f"crop{k}.tif", image[crop])
            tifffile.imwrite(tmp / f"crop{k}_mask.tif", truth[crop].astype(np.uint16))
            images.append(str(tmp / f"crop{k}.tif"))
            masks.append(str(tmp / f"crop{k}_mask.tif"))
        out = tmp / "tuned.pt"
        command = [
            sys.executable, "-m", "napari_unet.cli", "train",
            "--images", *images, "--masks", *masks,
            "--init", "default", "--out", str(out), "--device", "cpu", *args.train_args,
        ]  # fmt: skip
        load = os.getloadavg()[0]
        started = time.perf_counter()
        env = dict(os.environ)
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - started
        print(done.stderr[-2000:], flush=True)
        if done.returncode != 0:
            print(f"train failed with exit code {done.returncode}", file=sys.stderr)
            return 1
        tuned = load_model(out)
    dice_after = rest_dice(tuned, image, truth, rest)
    runs = [h for h in tuned.history if isinstance(h, dict) and h.get("type") == "fine_tune"]
    result = {
        "image": {"seed": args.seed, "size": 768, **APPEARANCE},
        "crops": [[c[0].start, c[0].stop, c[1].start, c[1].stop] for c in CROPS],
        "train_wall_seconds": round(wall, 1),
        "epochs": len(runs[-1]["epochs"]) if runs else None,
        "stop_reason": runs[-1].get("stop_reason") if runs else None,
        "dice_rest_before": round(dice_before, 4),
        "dice_rest_after": round(dice_after, 4),
        "load_average_at_start": round(load, 1),
        "threads": args.threads or "torch default",
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
