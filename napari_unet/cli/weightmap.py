"""``napari-unet weightmap``: the U-Net paper's border-weight map of a label image."""

from __future__ import annotations

import argparse
from typing import Any

from napari_unet.cli._common import (
    _number,
)


def _cmd_weightmap(args: argparse.Namespace) -> int:
    from napari_unet.core.io import read_mask, write_tiff
    from napari_unet.core.weights import border_weight_map

    labels = read_mask(args.labels)
    weights = border_weight_map(labels, w0=args.w0, sigma=args.sigma)
    out = write_tiff(args.out, weights.astype("float32", copy=False))
    print(f"{args.labels} -> {out} (weights {weights.min():.3f} to {weights.max():.3f})")
    return 0


def add_parser(sub: Any, positive: Any, device_help: str) -> None:
    """Add this command's subparser to ``sub``."""
    w = sub.add_parser(
        "weightmap",
        help="border-weight map of a label image (Ronneberger et al. 2015, eq. 2)",
        description="w = w_c + w0 exp(-(d1 + d2)^2 / (2 sigma^2)) on background, w_c on "
        "objects; written as a float32 TIFF.",
    )
    w.add_argument("labels", metavar="LABELS", help="instance labels or a binary mask")
    w.add_argument("--out", required=True, metavar="W.tif")
    w.add_argument("--w0", type=_number(float, 0.0), default=10.0, help="(default: 10)")
    w.add_argument(
        "--sigma",
        type=_number(float, 0.0, open_low=True),
        default=5.0,
        help="in pixels (default: 5)",
    )
    w.set_defaults(func=_cmd_weightmap)
