"""Prediction benchmark: our tiled predict_proba against MONAI's sliding_window_inference.

Both run the same network (the shipped ``default`` model unless ``--model`` names
another file) on the same 2048x2048 uint16 image, in the same process,
interleaved, each from the raw image to a float32 probability map:

* ours: ``predict_proba(image, model, device="cpu")`` with its defaults (tiles
  overlapping by twice the network's receptive radius, which makes them equal
  one whole-image pass);
* MONAI: our ``normalize`` then ``sliding_window_inference(x, roi_size=(T, T),
  sw_batch_size=4, predictor=sigmoid(model(.)), overlap=0.25, mode="gaussian")``
  with T = our tile size (or ``--monai-roi``), under ``torch.inference_mode()``.
* MONAI+opt (an ablation): MONAI running the network exactly as our pipeline
  runs it (batch norm folded into the convolutions, channels-last), which
  isolates what the tiling itself gains.

Reported: the best and the median wall-clock and process CPU time over
``--repeats`` interleaved runs (on a machine shared with other programs the
best run is the least disturbed), the speed ratios, the share of mask pixels
(probability >= model threshold) on which ours and MONAI agree, the difference
between our tiled output and one whole-image pass, and the peak resident memory
(``ru_maxrss``) of a fresh subprocess that predicts an 8192x8192 uint16 image.

Usage::

    .venv/bin/python benchmarks/bench_predict.py [--model default|PATH] [--repeats 3]
        [--size 2048] [--big 8192] [--tile-size 1024] [--overlap N] [--batch-size N]
        [--monai-roi T]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from napari_unet.core import inference
from napari_unet.core.checkpoint import load_model
from napari_unet.core.inference import normalize, predict_proba
from napari_unet.core.model import receptive_radius
from napari_unet.core.tiling import axis_layout

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "dsb2018_nuclei.tif"


def test_image(size: int) -> np.ndarray:
    """The DSB 2018 nuclei sample mirrored out to ``size`` x ``size`` (real texture, uint16)."""
    sample = tifffile.imread(SAMPLE).astype(np.uint16)
    reps = -(-size // sample.shape[0]) + 1
    tiled = np.block(
        [
            [sample[:: 1 - 2 * (i % 2), :: 1 - 2 * (j % 2)] for j in range(reps)]
            for i in range(reps)
        ]
    )
    return np.ascontiguousarray(tiled[:size, :size])


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def monai_predict(image, model, tile, overlap=0.25, sw_batch_size=4):
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(_channel_first(normalize(image, model)))[None]
    with torch.inference_mode():
        prob = sliding_window_inference(
            x,
            roi_size=(tile, tile),
            sw_batch_size=sw_batch_size,
            predictor=lambda t: torch.sigmoid(model(t)),
            overlap=overlap,
            mode="gaussian",
        )
    return prob[0, 0].numpy()


def _channel_first(x: np.ndarray) -> np.ndarray:
    """(C, H, W) of a normalised plane: (H, W) for a one-channel model, (3, H, W) for three."""
    return x[None] if x.ndim == 2 else x


def whole_pass(image, model):
    """One forward pass over the whole image, reflect-padded to the size multiple."""
    x = _channel_first(normalize(image, model))
    m = model.size_multiple
    h, w = x.shape[-2:]
    ph, pw = -(-h // m) * m - h, -(-w // m) * m - w
    x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)), mode="reflect")
    with torch.inference_mode():
        prob = torch.sigmoid(model.eval()(torch.from_numpy(x)[None]))[0, 0].numpy()
    return prob[ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w]


def peak_memory_child(args) -> None:
    """Run in a fresh process: predict a big uint16 image, print JSON with ru_maxrss."""
    torch.set_num_threads(torch.get_num_threads())
    model = load_model(args.model)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rng = np.random.default_rng(0)
    image = test_image(args.big)
    image += rng.integers(0, 20, image.shape, dtype=np.uint16)  # not a repeated pattern
    _, wall, cpu = timed(
        lambda: predict_proba(
            image,
            model,
            device="cpu",
            tile_size=args.tile_size,
            overlap=args.overlap,
            batch_size=args.batch_size,
        )
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"base_kb": base, "peak_kb": peak, "wall_s": wall, "cpu_s": cpu}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--big", type=int, default=8192, help="0 skips the memory run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tile-size", type=int, default=inference.DEFAULT_TILE_SIZE)
    parser.add_argument("--overlap", type=int, help="default: the core's own")
    parser.add_argument("--batch-size", type=int, help="default: the core's own")
    parser.add_argument("--monai-roi", type=int, help="MONAI's roi size (default: --tile-size)")
    parser.add_argument("--no-fuse", action="store_true", help="ablation: keep batch norm")
    parser.add_argument(
        "--child",
        action="store_true",
        help="only the memory run, in this process (what the main run starts as a subprocess)",
    )
    args = parser.parse_args()
    if args.child:
        peak_memory_child(args)
        return

    import monai

    if args.no_fuse:
        # Ablation only: run our tiling with the network exactly as loaded.
        inference.fuse_for_inference = lambda model: model.eval()

    model = load_model(args.model)
    image = test_image(args.size)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), monai {monai.__version__}"
    )
    roi = args.monai_roi or args.tile_size
    overlap = 2 * receptive_radius(model.config) if args.overlap is None else args.overlap
    layout = axis_layout(args.size, args.tile_size, overlap, model.size_multiple)
    print(
        f"model: {args.model} {model.config}; image {image.shape} {image.dtype}; "
        f"tile {args.tile_size}, overlap {overlap}, batch {args.batch_size or 'auto'}"
        + (" (no batch-norm folding)" if args.no_fuse else "")
    )
    print(
        f"ours: {layout.count}x{layout.count} tiles of {layout.tile} px "
        f"({layout.count**2 * layout.tile**2 / 1e6:.2f} Mpx); MONAI: roi {roi}, overlap 0.25"
    )

    def ours():
        return predict_proba(
            image,
            model,
            device="cpu",
            tile_size=args.tile_size,
            overlap=args.overlap,
            batch_size=args.batch_size,
        )

    # Ablation: MONAI given the very network our pipeline runs (batch norm folded,
    # channels-last), which isolates what the tiling itself saves.
    optimised = inference.fuse_for_inference(model).to(memory_format=torch.channels_last)
    runners = {
        "ours": ours,
        "MONAI": lambda: monai_predict(image, model, roi),
        "MONAI+opt": lambda: monai_predict(image, optimised, roi),
    }
    for run in runners.values():
        run()  # warm-up (oneDNN kernel selection, MONAI import)
    times = {name: [] for name in runners}
    probs = {}
    for _ in range(args.repeats):
        for name, run in runners.items():
            probs[name], wall, cpu = timed(run)
            times[name].append((round(wall, 2), round(cpu, 2)))
    for label, pick in (("best", min), ("median", statistics.median)):
        agg = {
            name: tuple(pick(t[i] for t in runs) for i in (0, 1)) for name, runs in times.items()
        }
        for name, (wall, cpu) in agg.items():
            print(f"{label:6s} {name:9s}: wall {wall:7.2f} s   cpu {cpu:7.2f} s")
        for name in ("MONAI", "MONAI+opt"):
            print(
                f"{label:6s} speed ratio {name}/ours: wall {agg[name][0] / agg['ours'][0]:.2f}x, "
                f"cpu {agg[name][1] / agg['ours'][1]:.2f}x"
            )
    for name, runs in times.items():
        print(f"runs (wall, cpu) {name}: {runs}")
    p_ours, p_theirs = probs["ours"], probs["MONAI"]

    t = model.threshold
    agree = np.mean((p_ours >= t) == (p_theirs >= t))
    print(f"mask agreement with MONAI at threshold {t}: {100 * agree:.3f} %")
    print(f"max |ours - MONAI| = {np.abs(p_ours - p_theirs).max():.4f}")

    whole = whole_pass(image, model)
    diff = np.abs(p_ours - whole)
    print(f"tiled vs whole-image pass: max {diff.max():.2e}, mean {diff.mean():.2e}")
    print(f"mask agreement tiled vs whole: {100 * np.mean((p_ours >= t) == (whole >= t)):.3f} %")

    if args.big:
        cmd = [sys.executable, __file__, "--child", "--model", args.model, "--big", str(args.big)]
        cmd += ["--tile-size", str(args.tile_size)]
        for flag in ("overlap", "batch_size"):
            if getattr(args, flag) is not None:
                cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        stats = json.loads(out.strip().splitlines()[-1])
        print(
            f"{args.big}x{args.big} uint16: peak RSS {stats['peak_kb'] / 1024**2:.2f} GB "
            f"(after imports and model load: {stats['base_kb'] / 1024**2:.2f} GB), "
            f"wall {stats['wall_s']:.0f} s, cpu {stats['cpu_s']:.0f} s"
        )


if __name__ == "__main__":
    main()
