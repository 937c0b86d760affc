"""``napari-unet evaluate``: Dice, IoU, object F1, AP and the DSB score against ground truth."""

from __future__ import annotations

import argparse
import json
from typing import Any

from napari_unet.cli._common import (
    _check_pair_counts,
    _check_same_shape,
)

#: Columns of ``evaluate``'s table: key, header.
EVALUATE_COLUMNS = (
    ("dice", "dice"),
    ("iou", "iou"),
    ("f1", "F1@.5"),
    ("ap50", "AP@.5"),
    ("ap75", "AP@.75"),
    ("ap90", "AP@.9"),
    ("dsb", "DSB"),
)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from napari_unet.core.io import read_mask
    from napari_unet.core.metrics import average_precision, dice, iou, object_scores

    _check_pair_counts(args.pred, args.truth, "--pred", "--truth", "ground truth")
    pairs = []
    for pred_path, truth_path in zip(args.pred, args.truth, strict=True):
        pred, truth = read_mask(pred_path), read_mask(truth_path)
        _check_same_shape(pred, pred_path, truth.shape, truth_path, what="prediction")
        ap = average_precision(pred, truth)
        pairs.append(
            {
                "pred": str(pred_path),
                "truth": str(truth_path),
                "dice": float(dice(pred, truth)),
                "iou": float(iou(pred, truth)),
                "f1": float(object_scores(pred, truth)["f1"]),
                "ap50": ap[0.5],
                "ap75": ap[0.75],
                "ap90": ap[0.9],
                "dsb": float(sum(ap.values()) / len(ap)),
                "ap": {f"{t:.2f}": v for t, v in ap.items()},
            }
        )
    mean = {key: sum(p[key] for p in pairs) / len(pairs) for key, _ in EVALUATE_COLUMNS}
    if args.json:
        print(json.dumps({"pairs": pairs, **{f"mean_{k}": v for k, v in mean.items()}}))
        return 0
    width = max(len(p["pred"]) for p in pairs)
    header = "  ".join(f"{title:>6}" for _, title in EVALUATE_COLUMNS)
    print(f"{'prediction'.ljust(width)}  {header}  truth")
    for p in pairs:
        values = "  ".join(f"{p[key]:6.4f}" for key, _ in EVALUATE_COLUMNS)
        print(f"{p['pred'].ljust(width)}  {values}  {p['truth']}")
    values = "  ".join(f"{mean[key]:6.4f}" for key, _ in EVALUATE_COLUMNS)
    print(f"{'mean'.ljust(width)}  {values}")
    return 0


def add_parser(sub: Any, positive: Any, device_help: str) -> None:
    """Add this command's subparser to ``sub``."""
    e = sub.add_parser(
        "evaluate",
        help="Dice, IoU, object F1 and average precision against ground truth",
        description="Per pair and as means: Dice and IoU (label > 0 is foreground; two empty "
        "masks score 1); object F1 at IoU 0.5; average precision tp / (tp + fp + fn) at IoU "
        "0.5, 0.75 and 0.9; and the DSB 2018 score, the mean AP over IoU 0.5:0.05:0.95. "
        "Objects are instance ids, or the 8-connected components of a binary mask; give "
        "predict's STEM_labels.tif to score instances.",
    )
    e.add_argument("--pred", nargs="+", required=True, metavar="P", help="predicted masks")
    e.add_argument(
        "--truth",
        nargs="+",
        required=True,
        metavar="T",
        help="ground-truth masks, in the same order",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=_cmd_evaluate)
