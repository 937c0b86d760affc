"""``napari-unet predict``: probabilities, masks and instance labels of images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from napari_unet.cli._common import (
    _device,
    _number,
    _output_stem,
    _ProgressBar,
)
from napari_unet.cli._defaults import (
    PREDICT_MIN_TILE_SIZE,
    PREDICT_TILE_SIZE,
)


def _cmd_predict(args: argparse.Namespace) -> int:
    from napari_unet.core.checkpoint import load_model
    from napari_unet.core.devices import resolve_device
    from napari_unet.core.ensemble import Ensemble, iter_predict_ensemble
    from napari_unet.core.errors import InputError
    from napari_unet.core.events import Notice, run_to_completion
    from napari_unet.core.inference import iter_predict
    from napari_unet.core.instances import instances_from_maps
    from napari_unet.core.io import read_image, write_tiff
    from napari_unet.core.postprocess import mask_from_proba
    from napari_unet.core.tta import iter_predict_tta

    device = resolve_device(args.device)
    paths = [Path(p) for p in args.images]
    stems: dict[str, Path] = {}
    for path in paths:
        if not path.is_file():
            raise InputError(f"image file not found: {path}; check the path")
        stem = _output_stem(path)
        if stem in stems:
            raise InputError(
                f"{stems[stem]} and {path} would both write {stem}_prob.tif; "
                "rename one or predict them into different --out folders"
            )
        stems[stem] = path
    models = [load_model(source, device="cpu") for source in args.model]
    model = models[0]
    # An ensemble thresholds its mean at the mean of its models' thresholds.
    default_threshold = Ensemble(tuple(models)).threshold
    threshold = default_threshold if args.threshold is None else args.threshold
    # None lets the core overlap tiles by twice the network's receptive radius.
    overlap = args.overlap
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file; give a folder for the results")
    out_dir.mkdir(parents=True, exist_ok=True)

    bar = _ProgressBar(sys.stderr)
    notes: set[str] = set()

    def on_event(event: Any) -> None:
        if isinstance(event, Notice):
            if event.message not in notes:  # once per run, not once per image
                notes.add(event.message)
                bar.line(f"note: {event.message}")
            return
        bar.progress(event.step, event.total)

    for index, path in enumerate(paths, 1):
        image = read_image(path)
        bar.prefix = f"{path.name} ({index}/{len(paths)}) "
        tiling = {"tile_size": args.tile_size, "overlap": overlap, "device": device}
        if len(models) > 1:
            gen = iter_predict_ensemble(image, models, tta=args.tta, **tiling)
        elif args.tta:
            gen = iter_predict_tta(image, model, **tiling)
        else:
            gen = iter_predict(image, model, **tiling)
        maps = run_to_completion(gen, on_event)
        prob = maps.proba
        options = {"min_size": args.min_size, "fill_holes": args.fill_holes}
        mask = mask_from_proba(prob, threshold, **options).astype("uint8", copy=False)
        labels = instances_from_maps(
            prob, maps.boundary, threshold, **options, distance=maps.distance
        )
        count = int(labels.max(initial=0))
        labels = labels.astype("uint16" if count < 1 << 16 else "uint32", copy=False)
        stem = _output_stem(path)
        prob_path = write_tiff(out_dir / f"{stem}_prob.tif", prob.astype("float32", copy=False))
        mask_path = write_tiff(out_dir / f"{stem}_mask.tif", mask)
        labels_path = write_tiff(out_dir / f"{stem}_labels.tif", labels)
        written = [prob_path, mask_path, labels_path]
        if args.tta or len(models) > 1:
            written.append(write_tiff(out_dir / f"{stem}_uncertainty.tif", maps.uncertainty))
        share = 100.0 * float(mask.mean())
        bar.line(
            f"{path.name}: foreground {share:.2f} % at threshold {threshold:.3g}, "
            f"{count} object{'s' if count != 1 else ''}"
        )
        print(f"{path} -> {' '.join(str(p) for p in written)}")
    bar.close()
    return 0


def add_parser(sub: Any, positive: Any, device_help: str) -> None:
    """Add this command's subparser to ``sub``."""
    p = sub.add_parser(
        "predict",
        help="segment images with a model",
        description="Write OUT/STEM_prob.tif (float32 probabilities), OUT/STEM_mask.tif "
        "(uint8 0/1) and OUT/STEM_labels.tif (uint16 or uint32 instance labels: touching "
        "objects split along the model's predicted rims, or connected components for a "
        "one-output model) for each image, with the image's spatial shape: a stack "
        "(Z, Y, X) keeps its leading axis, an RGB image gives a 2D result. With --tta, "
        "also OUT/STEM_uncertainty.tif.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or TIFF images or stacks")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument(
        "--model",
        nargs="+",
        default=["default"],
        metavar="MODEL",
        help="'default' or a .pt file; several models make an ensemble: their probabilities "
        "are averaged and their spread is written to STEM_uncertainty.tif (default: default)",
    )
    p.add_argument(
        "--threshold",
        type=_number(float, 0.0, 1.0),
        metavar="T",
        help="probability threshold in [0, 1] (default: the model's stored threshold)",
    )
    p.add_argument(
        "--tile-size",
        type=_number(int, 16),
        default=PREDICT_TILE_SIZE,
        metavar="N",
        help=f"tile edge in pixels (default: {PREDICT_TILE_SIZE}); smaller than the model "
        f"allows ({PREDICT_MIN_TILE_SIZE} for the default model) is raised to it, with a note",
    )
    p.add_argument(
        "--overlap",
        type=_number(int, 0),
        metavar="N",
        help="overlap between tiles in pixels, under half the tile (default: twice the "
        "network's receptive radius, 214 for the default model, which makes the tiles "
        "equal one whole-image pass; smaller is faster but not seamless)",
    )
    p.add_argument(
        "--min-size",
        type=_number(int, 0),
        default=0,
        metavar="N",
        help="remove objects smaller than N pixels (default: 0)",
    )
    p.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average the 8 flips and 90-degree rotations (8x the "
        "time) and write STEM_uncertainty.tif, their per-pixel standard deviation",
    )
    p.add_argument("--fill-holes", action="store_true", help="fill holes inside objects")
    p.add_argument("--device", type=_device, default="auto", help=device_help)
    p.set_defaults(func=_cmd_predict)
