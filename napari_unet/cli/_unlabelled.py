"""``train --unlabelled``: images without masks, pseudo-labelled by the starting model."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napari_unet.cli._common import _number
from napari_unet.core import defaults as _core

#: ``train --pseudo-low/--pseudo-high/--pseudo-fraction`` defaults.
PSEUDO_LOW, PSEUDO_HIGH = _core.DEFAULT_PSEUDO_LOW, _core.DEFAULT_PSEUDO_HIGH
PSEUDO_FRACTION = _core.DEFAULT_PSEUDO_FRACTION


def add_unlabelled_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--unlabelled`` and its thresholds to ``train``'s parser."""
    share = _number(float, 0.0, 1.0)
    group = parser.add_argument_group("pseudo-labels (images without masks)")
    group.add_argument(
        "--unlabelled",
        nargs="+",
        metavar="IMG|DIR",
        help="images without masks (files or folders; stacks are split into slices) of the "
        "data you want segmented: the starting model's confident pixels become extra "
        "training targets, its uncertain pixels are ignored; never validated on",
    )
    group.add_argument(
        "--pseudo-low",
        type=share,
        default=PSEUDO_LOW,
        metavar="P",
        help="foreground probability at or under which a pixel is a background target "
        f"(default: {PSEUDO_LOW:g})",
    )
    group.add_argument(
        "--pseudo-high",
        type=share,
        default=PSEUDO_HIGH,
        metavar="P",
        help="foreground probability at or over which a pixel is a foreground target; "
        f"pixels in between are ignored (default: {PSEUDO_HIGH:g})",
    )
    group.add_argument(
        "--pseudo-fraction",
        type=share,
        default=PSEUDO_FRACTION,
        metavar="F",
        help="expected share of the patches that are not replayed drawn from the unlabelled "
        f"images, under 1 (default: {PSEUDO_FRACTION:g})",
    )
    group.add_argument(
        "--pseudo-tta",
        action="store_true",
        help="pseudo-label with test-time augmentation (8 times the prediction work)",
    )


def pseudo_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Return the FineTuneConfig fields that the pseudo-label options set."""
    return {
        "pseudo_low": args.pseudo_low,
        "pseudo_high": args.pseudo_high,
        "pseudo_fraction": args.pseudo_fraction,
        "pseudo_tta": args.pseudo_tta,
    }


def read_unlabelled(paths: Sequence[str] | None, labelled: Sequence[str]) -> list | None:
    """Read the ``--unlabelled`` images; folders give their images, ``--images`` left out.

    Raises
    ------
    InputError
        A path is missing or not an image, or nothing is left to pseudo-label.
    """
    if not paths:
        return None
    from napari_unet.core.errors import InputError
    from napari_unet.core.io import pair_images_and_masks, read_image

    given = {Path(p).resolve() for p in labelled}
    files = [image for image, _ in pair_images_and_masks(paths) if image.resolve() not in given]
    if not files:
        raise InputError(
            "--unlabelled holds only images given with --images: give images without masks"
        )
    return [read_image(path) for path in files]
