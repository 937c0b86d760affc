"""U-Net variants: U-Net++ and U-Net 3+, with deep supervision.

Both keep the contract of :class:`~napari_unet.core.model.UNet` (they
subclass it): ``forward`` maps (N, C, H, W) to (N, ``out_channels``, H, W)
logits for H, W multiples of ``size_multiple`` = ``2 ** depth``, and the model
carries ``norm``, ``threshold``, ``history`` and ``extra``.  ``config.arch``
names the class (:func:`network_class`), so a checkpoint rebuilds the right
one.

Deep supervision: :meth:`forward_heads` returns one logit map per head (all
of full size) and, for U-Net 3+, the classification-guided head's "holds a
target" logit; the training step averages the loss over the heads
(:func:`napari_unet.core.training_step.model_loss`).

- :class:`~napari_unet.core.nets.unetpp.UNetPlusPlus` (Zhou et al. 2018):
  nested, dense skip connections; one head per node X(0, j).
- :class:`~napari_unet.core.nets.unet3p.UNet3Plus` (Huang et al. 2020):
  full-scale skip connections, a head per decoder level and a
  classification-guided module.

:func:`receptive_radius` gives each one's farthest reach, which tiled
prediction uses as its halo (:mod:`napari_unet.core.tiling`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from napari_unet.core.errors import InputError
from napari_unet.core.model import UNet, UNetConfig


class Heads(NamedTuple):
    """What a deeply supervised network computes in training.

    Attributes
    ----------
    logits
        One (N, out_channels, H, W) logit map per head, all at input size.
    presence
        (N, 1) logits of "the image holds a target" (U-Net 3+'s
        classification-guided head), or ``None``.
    """

    logits: list[torch.Tensor]
    presence: torch.Tensor | None = None


def presence_loss(presence: torch.Tensor, foreground: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the "holds a target" logits against the targets.

    Parameters
    ----------
    presence
        (N, 1) logits of :attr:`Heads.presence`.
    foreground
        (N, 1, H, W) 0/1 (or boolean) foreground targets.

    Returns
    -------
    torch.Tensor
        Scalar mean over the batch.
    """
    holds = foreground.flatten(1).amax(dim=1, keepdim=True).to(presence.dtype)
    return F.binary_cross_entropy_with_logits(presence, holds)


def network_class(arch: str) -> type[UNet]:
    """Return the class that builds architecture ``arch`` (a name in ``ARCH_NAMES``)."""
    from napari_unet.core.nets.unet3p import UNet3Plus
    from napari_unet.core.nets.unetpp import UNetPlusPlus

    classes: dict[str, type[UNet]] = {
        "unet": UNet,
        "unetpp": UNetPlusPlus,
        "unet3p": UNet3Plus,
    }
    try:
        return classes[arch]
    except KeyError:
        raise InputError(
            f"unknown architecture {arch!r}: choose one of {', '.join(classes)}"
        ) from None


def _unetpp_radius(columns: int) -> int:
    """Reach of U-Net++'s heads X(0, 1..columns) (or of X(0, columns) alone, pruned)."""
    # reach[i, j]: widest view of node X(i, j) from its centre, in input pixels,
    # before the shift of the pooling grid.  A 3x3 conv at level i widens it
    # by 2**i; pooling and 2x2 up-convolutions only shift it.
    reach: dict[tuple[int, int], int] = {}
    for i in range(columns + 1):
        reach[i, 0] = (reach[i - 1, 0] if i else 0) + 2 * 2**i
    for j in range(1, columns + 1):
        for i in range(columns - j + 1):
            inputs = [reach[i, k] for k in range(j)] + [reach[i + 1, j - 1]]
            reach[i, j] = max(inputs) + 2 * 2**i
    return reach[0, columns] + 2**columns - 1


def _unet3p_radius(depth: int) -> int:
    """Reach of U-Net 3+'s top decoder level, whose head ``forward`` returns."""
    encoder = [2 * (2 ** (i + 1) - 1) for i in range(depth + 1)]
    decoder = {depth: encoder[depth]}
    for i in reversed(range(depth)):
        # Pooled-down encoder levels add nothing but the grid shift; bilinear
        # up-sampling from level k reads one level-k pixel either side (2**k).
        branches = encoder[: i + 1] + [decoder[k] + 2**k for k in range(i + 1, depth + 1)]
        decoder[i] = max(branches) + 2**i + 2**i  # the branch's conv, then the fusing conv
    # No shift of the pooling grid: every path down comes back up through a
    # bilinear up-sampling, which reads the coarse pixel on the side the fine
    # pixel sits on and so cancels the shift (the measured reach is exactly
    # this; tests/core/test_nets.py).
    return decoder[0]


def receptive_radius(config: UNetConfig) -> int:
    """Farthest distance, in pixels, from an output pixel to an input pixel it depends on.

    Counted like :func:`napari_unet.core.model.receptive_radius`: every 3x3
    convolution at level ``l`` widens the view by ``2**l`` on each side, a
    bilinear up-sampling from level ``l`` by ``2**l`` (it reads the
    neighbouring coarse pixel), pooling and 2x2 up-convolutions by nothing;
    the pooling grid shifts the view by up to ``2**L - 1`` pixels, ``L`` the
    deepest level used, except after a bilinear up-sampling, which cancels the
    shift.  U-Net++ reaches as far as the plain U-Net of its depth
    (``7 * 2**depth - 5``, 107 for depth 4; pruned to ``j``: ``7 * 2**j - 5``);
    U-Net 3+ farther, through its full-scale skips (122 for depth 4).

    Parameters
    ----------
    config
        The architecture, ``arch`` included.

    Returns
    -------
    int
        The radius in input pixels.
    """
    if config.arch == "unetpp":
        return _unetpp_radius(config.prune_to or config.depth)
    if config.arch == "unet3p":
        return _unet3p_radius(config.depth)
    from napari_unet.core.model import receptive_radius as unet_radius

    return unet_radius(config)


__all__ = ["Heads", "network_class", "presence_loss", "receptive_radius"]
