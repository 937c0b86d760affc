"""Train the shipped ``default`` nuclei model from the DSB 2018 sample plus synthetic nuclei.

One command retrains it (about 12 minutes on a 2-core CPU)::

    .venv/bin/python scripts/train_default_model.py --out napari_unet/models/default.pt

Data
    - The left 512 x 384 part of ``sample_data/dsb2018_nuclei.tif`` (and its
      ground truth), cut into six 256 x 128 tiles so that the fixed validation
      split of ``fine_tune`` (whole images, chosen by a hash of their pixels)
      holds out some real tiles and trains on the others.
    - ``--synthetic`` synthetic fluorescence nuclei images of 256 x 256
      (:func:`napari_unet.core.synthetic.nuclei_image`, seeds 1000, 1001, ...)
      with varied nucleus size, contrast, blur and density.

Held out
    The right-hand 512 x 128 strip of the sample (columns 384-511, 30 nuclei
    wholly or partly) is never given to training.  The script predicts the
    whole sample image with the trained model (as a user would) and reports
    the Dice on that strip only, next to the Otsu reference (Gaussian blur
    sigma 1, Otsu threshold computed on the strip itself) on the same pixels.

Training uses the project's own :func:`napari_unet.core.training.fine_tune`
from a fresh network (``--init none``), with a fixed seed, its default loss,
patch sampling and augmentation, and a time budget.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from napari_unet.core.events import EpochEnd
from napari_unet.core.inference import predict_proba
from napari_unet.core.metrics import dice
from napari_unet.core.model import UNetConfig, build_model, save_model
from napari_unet.core.synthetic import nuclei_image
from napari_unet.core.training import fine_tune
from napari_unet.core.validation import assign_split, image_key

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "dsb2018_nuclei.tif"
SAMPLE_MASK = ROOT / "sample_data" / "dsb2018_nuclei_mask.tif"
#: Columns of the sample image that training never sees.
HELD_OUT_COLUMNS = slice(384, 512)
TRAIN_COLUMNS = slice(0, 384)
SYNTHETIC_SEED = 1000


def training_data(n_synthetic: int) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Real tiles from the left of the sample, then synthetic nuclei images."""
    image = tifffile.imread(SAMPLE)[:, TRAIN_COLUMNS]
    truth = tifffile.imread(SAMPLE_MASK).astype(np.int32)[:, TRAIN_COLUMNS]
    images, masks, names = [], [], []
    for y in range(0, image.shape[0], 256):
        for x in range(0, image.shape[1], 128):
            images.append(np.ascontiguousarray(image[y : y + 256, x : x + 128]))
            masks.append(np.ascontiguousarray(truth[y : y + 256, x : x + 128]))
            names.append(f"sample[{y}:{y + 256}, {x}:{x + 128}]")
    for i in range(n_synthetic):
        img, labels = nuclei_image(SYNTHETIC_SEED + i, size=256)
        images.append(img)
        masks.append(labels)
        names.append(f"synthetic nuclei seed {SYNTHETIC_SEED + i}")
    return images, masks, names


def held_out_scores(model) -> dict[str, float]:
    """Dice of the model and of the Otsu reference on the held-out strip."""
    image = tifffile.imread(SAMPLE)
    truth = tifffile.imread(SAMPLE_MASK)[:, HELD_OUT_COLUMNS] > 0
    prob = predict_proba(image, model, device="cpu")[:, HELD_OUT_COLUMNS]
    strip = ndi.gaussian_filter(image[:, HELD_OUT_COLUMNS].astype(np.float32), 1.0)
    otsu = strip > threshold_otsu(strip)
    return {
        "dice_model": dice(prob >= model.threshold, truth),
        "dice_otsu": dice(otsu, truth),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "napari_unet" / "models" / "default.pt")
    parser.add_argument("--minutes", type=float, default=12.0, help="training time budget")
    parser.add_argument("--epochs", type=int, default=400, help="upper bound on epochs")
    parser.add_argument("--synthetic", type=int, default=12, help="synthetic images to add")
    parser.add_argument("--base-width", type=int, default=UNetConfig().base_width)
    parser.add_argument("--depth", type=int, default=UNetConfig().depth)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    images, masks, names = training_data(args.synthetic)
    model = build_model(base_width=args.base_width, depth=args.depth)
    split = assign_split([image_key(i) for i in images], [i.shape for i in images], 0.2)
    held = [
        n
        for n, i in zip(names, images, strict=True)
        if split["images"][image_key(i)]["role"] != "train"
    ]
    print(f"{len(images)} training images; validation: {', '.join(held)}", flush=True)

    load_before = os.getloadavg()
    started = time.perf_counter()

    def show(event) -> None:
        if isinstance(event, EpochEnd):
            print(
                f"epoch {event.epoch:3d}  loss {event.train_loss:.4f}  val Dice "
                f"{event.val_dice:.4f}  best {event.best_dice:.4f} (epoch {event.best_epoch})  "
                f"{event.elapsed_s:6.0f} s",
                flush=True,
            )

    gen = fine_tune(
        model,
        images,
        masks,
        epochs=args.epochs,
        max_minutes=args.minutes,
        device=args.device,
        seed=args.seed,
        keep_start=False,  # from scratch: the untrained start is no candidate
    )
    result = None
    while True:
        try:
            show(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    train_s = time.perf_counter() - started

    trained = result.model
    trained.extra = {
        **trained.extra,
        "name": "default",
        "trained_by": "scripts/train_default_model.py",
        "training_data": "DSB 2018 sample columns 0-383 + synthetic nuclei",
        "held_out": "DSB 2018 sample columns 384-511 (right 512x128 strip)",
    }
    scores = held_out_scores(trained)
    path = save_model(trained, args.out)
    summary = {
        "out": str(path),
        "train_seconds": round(train_s, 1),
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "best_val_dice": round(result.best_dice, 4),
        "stop_reason": result.stop_reason,
        "held_out_dice_model": round(scores["dice_model"], 4),
        "held_out_dice_otsu": round(scores["dice_otsu"], 4),
        "load_average_start_end": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
        "torch_threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in trained.parameters()),
        "file_bytes": path.stat().st_size,
        "config": vars(args) | {"out": str(args.out)},
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
