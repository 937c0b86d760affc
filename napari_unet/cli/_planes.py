"""``train --planes-off-focus``: whether slices teach the planes away from the focus."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from napari_unet.core.augment_config import AugmentConfig

PLANES_CHOICES = ("auto", "on", "off")


def add_planes_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--planes-off-focus auto|on|off`` to ``train``'s parser."""
    parser.add_argument(
        "--planes-off-focus",
        choices=PLANES_CHOICES,
        default="auto",
        help="defocus blurs also shrink the objects to their cross-section at a random depth, "
        "as on the planes of a z-stack away from the nuclei's equator; 'auto' switches it on "
        "when an image is a stack (use 'off' for a time series of 2D frames) (default: auto)",
    )


def planes_augment(args: argparse.Namespace, stacks: bool) -> AugmentConfig | None:
    """Return the augmentation that ``--planes-off-focus`` asks for, or None for the defaults.

    ``stacks`` says whether any training image was a stack.  Training from
    scratch (``--init none``) blurs nothing, so there it changes nothing.
    """
    from napari_unet.core.augment_config import AugmentConfig

    choice = getattr(args, "planes_off_focus", "auto")
    wanted = stacks if choice == "auto" else choice == "on"
    if not wanted or args.init == "none":
        return None
    return AugmentConfig(depth=True)
