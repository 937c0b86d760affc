"""Seam check: tiled vs one whole-image prediction on every image of the real data sets.

For every image of ``../shared/data/dsb2018_stage1`` (``index.json``: fluorescence
grey, histology RGB, brightfield grey) and ``../shared/data/dsb2018_nuclei``,
predicts once in a single whole-image pass and once tiled at each tile size,
with the default overlap, and reports the largest absolute difference per
modality and tile size (and how many images the tile size really cut into
several tiles; the others run in one pass, which is the whole-image pass).

``--profile`` measures instead how far the network's tile-edge effect reaches
in practice: for each image it predicts the corner crops ``[c:, c:]`` and
``[:-c, :-c]`` of the padded image (``c`` a multiple of the size multiple, so
the crops sit on the tiling grid) and records the largest difference from the
whole-image pass at each distance from the crop's inner edges.  That is the
error a tile would have at that distance with no margin.

Usage::

    .venv/bin/python benchmarks/bench_seams.py [--model default] [--tiles 432 512 768 1024]
        [--data ../shared/data] [--threads 1] [--every 1] [--profile]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import tifffile
import torch

from napari_unet.core.checkpoint import load_model
from napari_unet.core.inference import (
    DEFAULT_TILE_SIZE,
    MIN_TILE_SIZE,
    normalize,
    predict_proba,
    smallest_tile_size,
)
from napari_unet.core.model import fuse_for_inference, receptive_radius
from napari_unet.core.tiling import axis_layout, round_up

ROOT = Path(__file__).resolve().parents[1]


def images(data: Path, every: int) -> list[tuple[Path, str]]:
    """(path, modality) of every image of both data sets (every ``every``-th one)."""
    stage1 = data / "dsb2018_stage1"
    entries = json.loads((stage1 / "index.json").read_text())
    found = [(stage1 / e["file"], e["modality"]) for e in entries]
    found.append((data / "dsb2018_nuclei" / "image.tif", "nuclei sample 512x512"))
    return found[::every]


def seams(args, model) -> None:
    radius = receptive_radius(model.config)
    worst = defaultdict(float)  # (modality, tile) -> max |tiled - whole|
    mean = defaultdict(list)
    tiled_count = defaultdict(int)
    count = defaultdict(int)
    started = time.perf_counter()
    for path, modality in images(Path(args.data), args.every):
        image = tifffile.imread(path)
        h, w = image.shape[:2]
        count[modality] += 1
        whole = predict_proba(image, model, tile_size=2 * max(h, w), device="cpu")
        for tile in args.tiles:
            prob = predict_proba(image, model, tile_size=tile, device="cpu")
            diff = np.abs(prob - whole)
            key = (modality, tile)
            worst[key] = max(worst[key], float(diff.max()))
            mean[key].append(float(diff.mean()))
            used, m = max(tile, smallest_tile_size(model.config)), model.size_multiple
            rows = axis_layout(h, used, 2 * radius, m)
            tiled_count[key] += rows.count * axis_layout(w, used, 2 * radius, m).count > 1
    print(f"{sum(count.values())} images, {time.perf_counter() - started:.0f} s wall")
    print(f"receptive radius {radius} px, default overlap {2 * radius} px")
    print("| modality | images | tile size | images in several tiles | max abs diff | mean |")
    print("|---|---|---|---|---|---|")
    for modality in count:
        for tile in args.tiles:
            key = (modality, tile)
            print(
                f"| {modality} | {count[modality]} | {tile} | {tiled_count[key]} | "
                f"{worst[key]:.2e} | {np.mean(mean[key]):.1e} |"
            )
    overall = max(worst.values())
    print(f"largest difference over all images and tile sizes: {overall:.2e} (target <= 0.05)")


def profile(args, model) -> None:
    net = fuse_for_inference(model).to(memory_format=torch.channels_last)
    m = model.size_multiple
    reach = 200
    worst: dict[str, np.ndarray] = {}

    def run(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x))[None, None]
        t = t.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return torch.sigmoid(net(t))[0, 0].numpy()

    started = time.perf_counter()
    paths = images(Path(args.data), args.every)
    for path, modality in paths:
        plane = normalize(tifffile.imread(path), model)  # grey for a 1-channel model
        h, w = plane.shape
        ph, pw = round_up(h, m), round_up(w, m)
        # Centred reflect padding to the size multiple, as prediction does.
        pad = ((ph - h) // 2, ph - h - (ph - h) // 2), ((pw - w) // 2, pw - w - (pw - w) // 2)
        x = np.pad(plane, pad, mode="reflect")
        whole = run(x)
        c = 64 if min(ph, pw) < 512 else 128
        profile_ = worst.setdefault(modality, np.zeros(reach))
        corners = (
            (run(x[c:, c:]), whole[c:, c:]),
            (run(x[: ph - c, : pw - c])[::-1, ::-1], whole[: ph - c, : pw - c][::-1, ::-1]),
        )
        for crop, ref in corners:
            err = np.abs(crop - ref)
            rows, cols = np.indices(err.shape)
            distance = np.minimum(np.minimum(rows, cols), reach - 1)
            np.maximum.at(profile_, distance.ravel(), err.ravel())
    print(f"{len(paths)} images, {time.perf_counter() - started:.0f} s wall")
    print(f"receptive radius {receptive_radius(model.config)} px")
    print("| modality | " + " | ".join(f"> {t:g}" for t in (0.05, 0.01, 1e-3, 1e-4, 1e-5)) + " |")
    print("|---|---|---|---|---|---|")
    for modality, profile_ in worst.items():
        cells = []
        for t in (0.05, 0.01, 1e-3, 1e-4, 1e-5):
            over = np.nonzero(profile_ > t)[0]
            cells.append(f"{int(over.max()) + 1 if over.size else 0} px")
        print(f"| {modality} | " + " | ".join(cells) + " |")
    print("(the distance from a tile edge up to which some pixel still differs by more than that)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument(
        "--tiles", type=int, nargs="+", default=[MIN_TILE_SIZE, 512, 768, DEFAULT_TILE_SIZE]
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--every", type=int, default=1, help="use every N-th image only")
    parser.add_argument("--profile", action="store_true", help="measure the edge effect's reach")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    print(f"model {args.model}: {model.config}; torch threads {torch.get_num_threads()}")
    (profile if args.profile else seams)(args, model)


if __name__ == "__main__":
    main()
