"""The pieces of one training step: the batch, the loss and the learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from napari_unet.core.augment import augment
from napari_unet.core.augment_config import AugmentConfig
from napari_unet.core.devices import autocast
from napari_unet.core.losses import Loss, default_loss
from napari_unet.core.nets import presence_loss
from napari_unet.core.sampling import PatchSampler, stack_patches
from napari_unet.core.targets import (
    BOUNDARY_BIT,
    DISTANCE_LEVELS,
    DISTANCE_SHIFT,
    IGNORE_BIT,
    IGNORE_RIM_BIT,
)

CHANNELS_LAST = torch.channels_last
#: Weight of a two-output model's boundary loss next to its foreground loss.
BOUNDARY_LOSS_WEIGHT = 1.0
#: Weight of a third output's loss (the scaled distance to the edge, targets.distance_target).
DISTANCE_LOSS_WEIGHT = 5.0

#: Images, targets and weights (or None) of one batch, on the device.
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
#: A patch as :func:`napari_unet.core.augment.augment` returns it, with its
#: "centred on foreground" flag: (image, target code, weights or None, flag).
Patch = tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]


def lr_factor(progress: float, warmup: float) -> float:
    """Linear warm-up then cosine decay to 1 % of the base rate; ``progress`` in [0, 1]."""
    if progress < warmup:
        return (progress + 1e-3) / (warmup + 1e-3)
    t = min(1.0, (progress - warmup) / max(1e-9, 1.0 - warmup))
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t))


def training_loss(
    loss_fn: Loss, logits: torch.Tensor, code: torch.Tensor, weights: torch.Tensor | None
) -> torch.Tensor:
    """Compute the chosen loss on the foreground output, plus the boundary output's loss.

    ``code`` is the packed target of :data:`~napari_unet.core.weights.BOUNDARY_BIT`;
    a one-output model sees it as its 0/1 target.  A second output learns the
    object rims with BCE + soft Dice at weight :data:`BOUNDARY_LOSS_WEIGHT`; a
    third, each object's scaled distance to its edge
    (:data:`~napari_unet.core.targets.DISTANCE_SHIFT`), with a soft-target BCE
    at :data:`DISTANCE_LOSS_WEIGHT`.
    With border weights, its BCE is their weighted mean, as the foreground's
    default loss is: the contacts between touching objects, a few per cent of
    the rim pixels, then weigh up to ``1 + w0`` times as much as the outline
    against the background, which the foreground output already gives away.

    Pixels whose code carries :data:`~napari_unet.core.targets.IGNORE_BIT`
    (:data:`~napari_unet.core.targets.IGNORE_RIM_BIT`) are left out of the
    foreground (rim) loss: they add nothing to it, nor to its gradient.
    """
    foreground = torch.remainder(code, BOUNDARY_BIT)
    keep = ~_bit(code, IGNORE_BIT)
    loss = _known_pixels(loss_fn, logits[:, :1], foreground, weights, keep, loss_fn.pixelwise)
    if logits.shape[1] == 1:
        return loss
    rims = _bit(code, BOUNDARY_BIT).to(logits.dtype)
    known_rims = ~_bit(code, IGNORE_RIM_BIT)
    loss = loss + BOUNDARY_LOSS_WEIGHT * _known_pixels(
        default_loss, logits[:, 1:2], rims, weights, known_rims
    )
    if logits.shape[1] == 2:
        return loss
    # The third output regresses each object's scaled distance to its edge
    # (targets.distance_target) with a soft-target BCE; unknown rims leave it out too.
    level = torch.div(code, 1 << DISTANCE_SHIFT, rounding_mode="floor").to(logits.dtype)
    return loss + DISTANCE_LOSS_WEIGHT * _known_pixels(
        _soft_bce, logits[:, 2:3], level / DISTANCE_LEVELS, None, known_rims
    )


def _soft_bce(logits: torch.Tensor, target: torch.Tensor, _weights: None) -> torch.Tensor:
    """Mean BCE of logits against targets in [0, 1] (the distance output's loss)."""
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, target)


def _bit(code: torch.Tensor, bit: int) -> torch.Tensor:
    """Where ``code`` (float or integer) has ``bit`` set, as a bool tensor."""
    return torch.remainder(torch.div(code, bit, rounding_mode="floor"), 2) > 0


def _known_pixels(
    loss_fn, logits, target, weights, keep: torch.Tensor, pixelwise: bool = True
) -> torch.Tensor:
    """``loss_fn`` over the pixels where ``keep`` is true only.

    A pixelwise loss (:attr:`~napari_unet.core.losses.Loss.pixelwise`) pools
    over the batch's pixels without regard to where they lie, so the kept
    pixels flattened into one row give exactly the loss of those pixels alone
    (tests/core/test_pseudo_labels.py checks every loss).  A loss over windows
    (MS-SSIM) sees the other pixels as predicted exactly right and no gradient
    flows through them; their neighbours' windows still include them.
    """
    if bool(keep.all()):
        return loss_fn(logits, target, weights)
    if not bool(keep.any()):
        return logits.sum() * 0.0  # no known pixel: no loss, a finite zero
    if not pixelwise:
        fixed = logits.detach()
        logits = torch.where(keep, logits, fixed)
        return loss_fn(logits, torch.where(keep, target, torch.sigmoid(fixed)), weights)

    def row(tensor: torch.Tensor) -> torch.Tensor:
        return tensor[keep].reshape(1, 1, 1, -1)

    return loss_fn(row(logits), row(target), None if weights is None else row(weights))


def to_batch(patches: Sequence[Patch], device: torch.device) -> Batch:
    """Stack patches into (images, targets, weights or None) tensors on ``device``."""
    batch = stack_patches(patches)

    def put(a: np.ndarray) -> torch.Tensor:
        # Channels-last is faster on the CPU too (oneDNN: about 15 % per step here).
        return torch.from_numpy(a).to(device, memory_format=CHANNELS_LAST)

    weights = None if batch.weights is None else put(batch.weights)
    return put(batch.images), put(batch.targets), weights


def run_share(step: int, planned: int, elapsed: float, budget_s: float | None) -> float:
    """Share of the run done, in [0, 1]: the larger of the steps and the time budget used."""
    shares = []
    if planned:
        shares.append(step / planned)
    if budget_s is not None:
        shares.append(elapsed / budget_s)
    return float(min(1.0, max(shares)))


def total_steps(step: int, planned: int, budget_s: float | None, elapsed: float) -> int:
    """Return the expected steps of the whole run: planned, or as the time budget allows."""
    totals = [planned] if planned else []
    if budget_s is not None and step:
        totals.append(step + int((budget_s - elapsed) / (elapsed / step)))
    return max(step, min(totals)) if totals else step


def draw_batch(
    sampler: PatchSampler,
    replay_sampler: PatchSampler | None,
    replay_fraction: float,
    batch_size: int,
    rng: np.random.Generator,
    config: AugmentConfig | None,
    device: torch.device,
    pseudo: tuple[PatchSampler, float] | None = None,
) -> Batch:
    """Draw, augment and stack one batch; ``replay_fraction`` of it (expected) is replayed.

    ``pseudo`` is a sampler of pseudo-labelled images and the expected share
    of the patches that are not replayed to draw from it.
    """
    n_old = 0 if replay_sampler is None else int(rng.binomial(batch_size, replay_fraction))
    n_pseudo = 0 if pseudo is None else int(rng.binomial(batch_size - n_old, pseudo[1]))
    drawn = sampler.sample(batch_size - n_old - n_pseudo, rng)
    if n_pseudo and pseudo is not None:
        drawn += pseudo[0].sample(n_pseudo, rng)
    if n_old and replay_sampler is not None:
        drawn += replay_sampler.sample(n_old, rng)
    patches = [augment(img, tgt, wgt, rng, config) + (on_fg,) for img, tgt, wgt, on_fg in drawn]
    return to_batch(patches, device)


def model_loss(work: nn.Module, loss_fn: Loss, batch: Batch, device: torch.device) -> torch.Tensor:
    """Return the training loss of ``work`` on ``batch``, over all its deep-supervision heads.

    A network with ``forward_heads`` (U-Net++, U-Net 3+:
    :mod:`napari_unet.core.nets`) is scored on every head: the loss is the
    mean of the heads' :func:`training_loss`, plus the binary cross-entropy of
    its "holds a target" logit when it has one.  Any other network is scored
    on ``work(x)``.
    """
    x, y, w = batch
    forward_heads = getattr(work, "forward_heads", None)
    with autocast(device):
        heads = None if forward_heads is None else forward_heads(x)
        outputs = [work(x)] if heads is None else heads.logits
    value = torch.stack([training_loss(loss_fn, out.float(), y, w) for out in outputs]).mean()
    if heads is not None and heads.presence is not None:
        value = value + presence_loss(heads.presence.float(), torch.remainder(y, BOUNDARY_BIT))
    return value


def train_step(
    work: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss_fn: Loss,
    batch: Batch,
    device: torch.device,
) -> float | None:
    """Take one optimisation step on ``batch``; return its loss.

    Returns ``None``, and changes no weight, when the loss is NaN or infinite.
    """
    optimizer.zero_grad(set_to_none=True)
    value = model_loss(work, loss_fn, batch, device)
    if not bool(torch.isfinite(value)):
        return None
    scaler.scale(value).backward()
    scaler.step(optimizer)
    scaler.update()
    return float(value.detach())
