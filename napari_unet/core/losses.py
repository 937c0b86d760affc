"""Segmentation losses for one foreground logit.

Every loss takes ``logits`` of shape (N, 1, H, W), a ``target`` of the same
shape holding 0/1 floats and optional per-pixel ``weights`` of the same shape
(``None`` means uniform), and returns a scalar tensor.

Which weight map each loss expects is part of its :class:`Loss` entry
(``Loss.weighting``, a :class:`Weighting`), so the training loop computes the
right one once per image:

- ``Weighting.PAPER`` (``"paper"``): the full weight map of Ronneberger et al.
  (2015), eq. 2, class balance plus the border term
  (:func:`napari_unet.core.weights.border_weight_map`);
- ``Weighting.BORDER`` (``"border"``): the border term alone on top of 1,
  class balance left out;
- ``Weighting.NONE`` (``"none"``): no weight map.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F

from napari_unet.core.defaults import LOSS_DESCRIPTIONS, OHEM_FRACTION  # noqa: F401 (public here too)
from napari_unet.core.errors import InputError

Tensor = torch.Tensor

#: Additive smoothing of the soft Dice.  One pixel's worth keeps the ratio
#: defined (and equal to 1) for a batch with no foreground in either map.
DICE_SMOOTH = 1.0


class Weighting(str, Enum):
    """The per-pixel weight map a loss expects (string values, JSON-friendly)."""

    PAPER = "paper"
    BORDER = "border"
    NONE = "none"


def weighted_bce(logits: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """Binary cross-entropy on logits, weighted per pixel and averaged.

    With the weight map of :func:`napari_unet.core.weights.border_weight_map`
    this is the paper's weighted cross-entropy (Ronneberger et al. 2015,
    eq. 1) for one foreground class.

    Parameters
    ----------
    logits, target
        (N, 1, H, W) logits and 0/1 targets.
    weights
        (N, 1, H, W) non-negative per-pixel weights, or ``None`` for uniform.

    Returns
    -------
    torch.Tensor
        Scalar mean over all pixels of ``w * bce``.
    """
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if weights is not None:
        loss = loss * weights
    return loss.mean()


def soft_dice(logits: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """One minus the soft Dice coefficient, pooled over the whole batch.

    Pooling the sums over the batch (rather than averaging per-patch Dice)
    keeps patches without foreground from dominating: a per-patch Dice of an
    empty patch is either 1 or undefined, whereas the batch Dice only asks
    how well the foreground that is present was found.

    Parameters
    ----------
    logits, target
        (N, 1, H, W) logits and 0/1 targets.
    weights
        Ignored (accepted so every loss has the same signature).

    Returns
    -------
    torch.Tensor
        Scalar in [0, 1]; 0 is a perfect prediction.
    """
    prob = torch.sigmoid(logits.float())
    target = target.float()
    intersection = (prob * target).sum()
    total = prob.sum() + target.sum()
    return 1.0 - (2.0 * intersection + DICE_SMOOTH) / (total + DICE_SMOOTH)


def focal(
    logits: Tensor,
    target: Tensor,
    weights: Tensor | None = None,
    *,
    gamma: float = 2.0,
    alpha: float = 0.25,
) -> Tensor:
    """Focal loss of Lin et al. (2017) on logits, averaged over pixels.

    ``alpha`` weights the foreground and ``1 - alpha`` the background;
    ``(1 - p_t) ** gamma`` scales down pixels that are already right, so the
    many easy background pixels stop swamping the gradient.  Since both
    factors are at most 1, the focal loss never exceeds the plain BCE.

    Parameters
    ----------
    logits, target
        (N, 1, H, W) logits and 0/1 targets.
    weights
        Optional (N, 1, H, W) per-pixel weights applied on top.
    gamma
        Focusing exponent (2 in the paper).
    alpha
        Foreground weight in [0, 1] (0.25 in the paper, with ``gamma=2``).

    Returns
    -------
    torch.Tensor
        Scalar mean focal loss.
    """
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    prob = torch.sigmoid(logits)
    p_t = prob * target + (1.0 - prob) * (1.0 - target)
    alpha_t = alpha * target + (1.0 - alpha) * (1.0 - target)
    loss = alpha_t * (1.0 - p_t) ** gamma * bce
    if weights is not None:
        loss = loss * weights
    return loss.mean()


def ohem_bce(
    logits: Tensor,
    target: Tensor,
    weights: Tensor | None = None,
    *,
    fraction: float = OHEM_FRACTION,
) -> Tensor:
    """Binary cross-entropy over the hardest pixels of the batch only (OHEM).

    Online hard example mining (Shrivastava et al. 2016, applied per pixel):
    the per-pixel BCE is computed everywhere, and the mean is taken over the
    ``ceil(fraction * n)`` largest values of the whole batch.  The gradient
    flows only from those pixels, so once the easy background is right it
    stops counting, and the loss is spent on the missed foreground and the
    false positives (bright vessels mistaken for nodules).

    Parameters
    ----------
    logits, target
        (N, 1, H, W) logits and 0/1 targets.
    weights
        Ignored (accepted so every loss has the same signature).
    fraction
        Share of the pixels kept, in (0, 1] (1 gives the plain BCE).

    Returns
    -------
    torch.Tensor
        Scalar mean BCE of the hardest pixels; at least the plain BCE.

    Raises
    ------
    ValueError
        If ``fraction`` is not in (0, 1].
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"OHEM fraction must be in (0, 1], got {fraction}")
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").reshape(-1)
    k = max(1, math.ceil(fraction * bce.numel()))
    return torch.topk(bce, k, sorted=False).values.mean()


def ohem_dice(logits: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """OHEM binary cross-entropy (:func:`ohem_bce`) plus batch soft Dice.

    Parameters
    ----------
    logits, target
        (N, 1, H, W) logits and 0/1 targets.
    weights
        Ignored.

    Returns
    -------
    torch.Tensor
        Scalar ``ohem_bce + (1 - dice)``.
    """
    return ohem_bce(logits, target) + soft_dice(logits, target)


def bce_dice(logits: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """Plain (or weighted, if ``weights`` is given) BCE plus batch soft Dice.

    Parameters
    ----------
    logits, target
        (N, 1, H, W) logits and 0/1 targets.
    weights
        Optional per-pixel weights for the BCE term.

    Returns
    -------
    torch.Tensor
        Scalar ``bce + (1 - dice)``.
    """
    return weighted_bce(logits, target, weights) + soft_dice(logits, target)


def default_loss(logits: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """Border-weighted BCE plus batch soft Dice: the loss for tiny, rare targets.

    Why this combination:

    - The soft Dice, pooled over the batch, measures overlap relative to the
      size of the foreground, so a 10-pixel nodule counts as much as a large
      nucleus, and predicting "all background" costs the full Dice loss.
      Plain BCE on the other hand is happy at 99.9 % accuracy with an empty
      output.
    - Dice alone has weak, noisy gradients early on (when the prediction is
      nearly empty); the BCE term keeps the optimisation stable.
    - The BCE is weighted by the separation-border term of Ronneberger et
      al. (``1 + w0 exp(-(d1 + d2)^2 / 2 sigma^2)``, weighting ``"border"``)
      so that touching objects are still pulled apart.  The class-balance
      factor ``w_c`` is left out on purpose: with 0.1 % foreground it reaches
      several hundred and floods the output with false positives, while the
      Dice term and the foreground-biased patch sampling
      (:mod:`napari_unet.core.sampling`) already correct the imbalance.
    - The weighted BCE is a weighted *mean* (divided by the sum of the
      weights, as PyTorch does for class weights), so it stays on the scale of
      a plain BCE next to the Dice term.  Divided by the pixel count instead,
      patches full of narrow gaps (weights near ``w0``) make "all background"
      the cheapest early answer and training stalls.

    Parameters
    ----------
    logits, target
        (N, 1, H, W) logits and 0/1 targets.
    weights
        Optional per-pixel weights for the BCE term (border weights).

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if weights is not None:
        bce = (bce * weights).sum() / weights.sum().clamp_min(1e-12)
    else:
        bce = bce.mean()
    return bce + soft_dice(logits, target)


def hybrid(logits: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """U-Net 3+'s hybrid loss (Huang et al. 2020): focal + MS-SSIM + IoU.

    Focal loss (:func:`focal`) per pixel, ``1 - MS-SSIM`` of the probability
    map against the target (:func:`napari_unet.core.ssim.ms_ssim`) per
    region, and the soft IoU (Jaccard) loss pooled over the batch, with the
    same one-pixel smoothing as :func:`soft_dice`.

    Parameters
    ----------
    logits, target
        (N, 1, H, W) logits and 0/1 targets.
    weights
        Ignored (the hybrid loss takes no weight map).

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    from napari_unet.core.ssim import ms_ssim

    prob = torch.sigmoid(logits)
    intersection = (prob * target).sum()
    union = prob.sum() + target.sum() - intersection
    iou_loss = 1.0 - (intersection + DICE_SMOOTH) / (union + DICE_SMOOTH)
    return focal(logits, target) + (1.0 - ms_ssim(prob, target)) + iou_loss


@dataclass(frozen=True)
class Loss:
    """A named loss with the weight map it expects.

    Attributes
    ----------
    name
        Key in :data:`LOSSES`.
    description
        One line for the GUI and the command line.
    fn
        ``fn(logits, target, weights) -> scalar``.
    weighting
        A :class:`Weighting` (or its value; see the module docstring).
    pixelwise
        Whether the loss pools per-pixel terms over the batch whatever their
        place (sums, means, the hardest share), so that any set of pixels can
        be scored alone; false for losses over windows (MS-SSIM).  Ignored
        pixels (:data:`napari_unet.core.targets.IGNORE_BIT`) rely on it.
    """

    name: str
    description: str
    fn: Callable[[Tensor, Tensor, Tensor | None], Tensor]
    weighting: Weighting
    pixelwise: bool = True

    def __post_init__(self) -> None:
        # Accept the plain string values too; frozen, hence object.__setattr__.
        object.__setattr__(self, "weighting", Weighting(self.weighting))

    def __call__(self, logits: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
        """Evaluate the loss; ``weights`` are dropped for losses that take none."""
        return self.fn(logits, target, None if self.weighting is Weighting.NONE else weights)


_REGISTRY: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("default", LOSS_DESCRIPTIONS["default"], default_loss, Weighting.BORDER),
        Loss("wce", LOSS_DESCRIPTIONS["wce"], weighted_bce, Weighting.PAPER),
        Loss("dice", LOSS_DESCRIPTIONS["dice"], soft_dice, Weighting.NONE),
        Loss("bce_dice", LOSS_DESCRIPTIONS["bce_dice"], bce_dice, Weighting.NONE),
        Loss("focal", LOSS_DESCRIPTIONS["focal"], focal, Weighting.NONE),
        Loss("bce", LOSS_DESCRIPTIONS["bce"], weighted_bce, Weighting.NONE),
        Loss("ohem", LOSS_DESCRIPTIONS["ohem"], ohem_bce, Weighting.NONE),
        Loss("ohem_dice", LOSS_DESCRIPTIONS["ohem_dice"], ohem_dice, Weighting.NONE),
        Loss("hybrid", LOSS_DESCRIPTIONS["hybrid"], hybrid, Weighting.NONE, pixelwise=False),
    )
}

#: Loss name -> one-line description, in the order the GUI lists them.
LOSSES: dict[str, str] = {name: loss.description for name, loss in _REGISTRY.items()}


def get_loss(name: str) -> Loss:
    """Return the loss called ``name``.

    Parameters
    ----------
    name
        One of the keys of :data:`LOSSES`.

    Returns
    -------
    Loss
        Callable as ``loss(logits, target, weights)``.

    Raises
    ------
    InputError
        If ``name`` is not a known loss.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        choices = ", ".join(_REGISTRY)
        raise InputError(f"unknown loss {name!r}: choose one of {choices}") from None
