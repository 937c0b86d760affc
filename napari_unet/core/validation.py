"""Training data preparation and the validation set of fine-tuning.

:func:`prepare_data` checks the images, masks and ROIs, normalises them as
prediction does, and cuts them by the fixed split of
:mod:`napari_unet.core.split` (stored in ``model.extra["validation_split"]``)
into training crops, with their targets and weights, and a
:class:`ValidationSet`.

Model selection pools the validation pixels into one Dice (overlaps summed over
sizes summed; see :meth:`ValidationSet.score`), which an empty prediction
scores 0 on whenever the validation set holds foreground.  When it holds none,
:func:`~napari_unet.core.training.fine_tune` says so and selects by training
loss instead.

Training targets separate touching objects (the paper's separation border)
and weight maps are computed once per image, here, not per training step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from napari_unet.core.devices import autocast
from napari_unet.core.errors import InputError
from napari_unet.core.images import is_stack, normalize, spatial_shape
from napari_unet.core.losses import Weighting
from napari_unet.core.model import UNet
from napari_unet.core.split import assign_split, image_key
from napari_unet.core.targets import (
    BOUNDARY_BIT,
    DISTANCE_SHIFT,
    boundary_target,
    distance_target,
    target_and_weights,
)
from napari_unet.core.tiling import read_tile
from napari_unet.core.weights import class_balance_weights

#: Validation regions are predicted in blocks of at most this side (memory).
VAL_BLOCK = 256


def _check_inputs(images, masks, rois):
    if images is None or len(images) == 0:
        raise InputError("the training set is empty: add at least one image with its mask")
    if masks is None or len(masks) != len(images):
        n_masks = 0 if masks is None else len(masks)
        raise InputError(f"got {len(images)} images but {n_masks} masks: give one mask per image")
    if rois is not None and len(rois) != len(images):
        raise InputError(f"got {len(images)} images but {len(rois)} ROI masks: give one per image")
    planes = []
    for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
        image, mask = np.asarray(image), np.asarray(mask)
        roi = None if rois is None or rois[i] is None else np.asarray(rois[i])
        if image.dtype.kind == "f" and not np.all(np.isfinite(image)):
            raise InputError(f"image {i + 1} contains NaN or infinite pixels; replace them first")
        if mask.dtype.kind not in "biuf":
            raise InputError(f"mask {i + 1} must hold numbers (labels), not {mask.dtype}")
        if mask.dtype.kind == "f" and not np.all(np.isfinite(mask)):
            raise InputError(f"mask {i + 1} contains NaN or infinite values; fix the mask")
        spatial = spatial_shape(image)
        if mask.shape != spatial:
            raise InputError(
                f"mask {i + 1} has shape {mask.shape} but its image has {spatial}: "
                "give each image a mask of the same size"
            )
        if roi is not None and roi.shape != spatial:
            raise InputError(f"ROI {i + 1} has shape {roi.shape} but its image has {spatial}")
        if image.size == 0:
            raise InputError(f"image {i + 1} is empty (shape {image.shape})")
        if is_stack(image):
            for z in range(image.shape[0]):
                planes.append((image[z], mask[z], None if roi is None else roi[z]))
        else:
            planes.append((image, mask, roi))
    return planes


@dataclass(frozen=True)
class ValidationScore:
    """How a model does on the validation set.

    Attributes
    ----------
    dice
        Pooled Dice over all validation pixels (overlaps summed over sizes
        summed; both empty: 1.0), the score used for model selection: an empty
        prediction scores 0 whenever the validation set holds foreground.
    per_image
        Dice of each held-out image or band, for display only (an empty image
        predicted empty scores 1 here, which is why selection never uses it).
    predicted
        Pixels the model marked as foreground.
    foreground
        Foreground pixels of the ground truth.
    """

    dice: float
    per_image: tuple[float, ...] = ()
    predicted: int = 0
    foreground: int = 0


@dataclass
class ValidationSet:
    """Held-out regions, normalised, and their ground truth.

    Attributes
    ----------
    blocks
        ``(image (C, h, w) float32, truth (h, w) bool, region)`` triples of at
        most :data:`VAL_BLOCK` pixels a side; ``region`` numbers the held-out
        image or band each block comes from.
    """

    blocks: list[tuple[np.ndarray, np.ndarray, int]] = field(default_factory=list)
    regions: int = 0

    @property
    def pixels(self) -> int:
        """Number of held-out pixels."""
        return int(sum(truth.size for _, truth, _ in self.blocks))

    @property
    def foreground(self) -> int:
        """Number of held-out foreground pixels."""
        return int(sum(np.count_nonzero(truth) for _, truth, _ in self.blocks))

    def add(self, image: np.ndarray, truth: np.ndarray) -> None:
        """Add a held-out region ((C, h, w) image and (h, w) truth), cut into blocks."""
        h, w = truth.shape
        ny, nx = math.ceil(h / VAL_BLOCK), math.ceil(w / VAL_BLOCK)
        ys = np.linspace(0, h, ny + 1).round().astype(int)
        xs = np.linspace(0, w, nx + 1).round().astype(int)
        for y0, y1 in zip(ys[:-1], ys[1:], strict=True):
            for x0, x1 in zip(xs[:-1], xs[1:], strict=True):
                self.blocks.append((image[:, y0:y1, x0:x1], truth[y0:y1, x0:x1], self.regions))
        self.regions += 1

    def score(self, model: UNet, device: torch.device | None = None) -> ValidationScore:
        """Score ``model``'s mask (at ``model.threshold``) on the held-out pixels.

        Each block is mirror-padded to the model's size multiple.  The model is
        left in evaluation mode.

        Returns
        -------
        ValidationScore
            Pooled Dice (NaN when nothing is held out), per-region Dice and
            pixel counts.
        """
        if not self.blocks:
            return ValidationScore(math.nan)
        device = next(model.parameters()).device if device is None else device
        model.eval()
        m = model.size_multiple
        overlap = np.zeros(self.regions, dtype=np.int64)
        sizes = np.zeros(self.regions, dtype=np.int64)
        predicted = foreground = 0
        for image, truth, region in self.blocks:
            h, w = truth.shape
            th, tw = math.ceil(h / m) * m, math.ceil(w / m) * m
            # Centre the block in its padded tile so both borders get mirrored context.
            y0, x0 = -((th - h) // 2), -((tw - w) // 2)
            tile = np.ascontiguousarray(read_tile(image, y0, x0, th, tw), dtype=np.float32)
            x = torch.from_numpy(tile[None]).to(device)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), autocast(device):
                prob = torch.sigmoid(model(x)[0, 0].float()).cpu().numpy()
            pred = prob[-y0 : -y0 + h, -x0 : -x0 + w] >= model.threshold
            n_pred, n_true = int(np.count_nonzero(pred)), int(np.count_nonzero(truth))
            overlap[region] += int(np.count_nonzero(pred & truth))
            sizes[region] += n_pred + n_true
            predicted, foreground = predicted + n_pred, foreground + n_true
        pooled = 2.0 * overlap.sum() / sizes.sum() if sizes.sum() else 1.0
        per_image = tuple(
            float(2.0 * o / s) if s else 1.0 for o, s in zip(overlap, sizes, strict=True)
        )
        return ValidationScore(float(pooled), per_image, predicted, foreground)

    def dice(self, model: UNet, device: torch.device | None = None) -> float:
        """Pooled Dice of ``model`` over all held-out pixels (see :meth:`score`)."""
        return self.score(model, device).dice


@dataclass
class PreparedData:
    """Training crops with their targets and weights, and the validation set."""

    train_images: list[np.ndarray]
    train_targets: list[np.ndarray]
    train_weights: list[np.ndarray] | None
    train_rois: list[np.ndarray | None] | None
    val: ValidationSet
    split: dict
    planes: int = 0

    @property
    def train_pixels(self) -> int:
        """Number of training pixels (all crops)."""
        return int(sum(t.size for t in self.train_targets))


def _train_windows(box: list[int] | None, shape: tuple[int, int]) -> list[tuple[slice, slice]]:
    """Return the rectangles left for training beside a validation band (all if none)."""
    h, w = shape
    if box is None:
        return [(slice(0, h), slice(0, w))]
    y0, y1, x0, x1 = box
    if x0 == 0 and x1 == w:  # a band of rows: train above and below it
        parts = [(slice(0, y0), slice(0, w)), (slice(y1, h), slice(0, w))]
    else:
        parts = [(slice(0, h), slice(0, x0)), (slice(0, h), slice(x1, w))]
    return [(ys, xs) for ys, xs in parts if ys.stop > ys.start and xs.stop > xs.start]


def target_weights(
    mask: np.ndarray, weighting: Weighting, boundary: bool = False, distance: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Target code and weights of one crop (see :data:`BOUNDARY_BIT`, :data:`DISTANCE_SHIFT`)."""
    target, paper = target_and_weights(mask)
    if boundary:
        target = target | (boundary_target(mask).astype(np.uint8) * BOUNDARY_BIT)
    if distance:
        target = target | (distance_target(mask) << DISTANCE_SHIFT).astype(np.uint8)
    if weighting is Weighting.PAPER:
        return target, paper
    if weighting is Weighting.BORDER:
        # The border term alone on top of 1: class balance is the Dice term's job.
        return target, (paper - class_balance_weights(target) + 1.0).astype(np.float32)
    return target, None


def prepare_data(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    rois: Sequence[np.ndarray | None] | None,
    model: UNet,
    *,
    val_fraction: float,
    weighting: Weighting | str = Weighting.NONE,
) -> PreparedData:
    """Check, normalise and split the training data.

    Parameters
    ----------
    images, masks, rois
        As for :func:`napari_unet.core.training.fine_tune`.
    model
        Supplies the normalisation, the input channels and the stored split.
    val_fraction
        Share held out for validation.
    weighting
        A :class:`~napari_unet.core.losses.Weighting` or its value: ``"paper"``,
        ``"border"`` or ``"none"``.

    Returns
    -------
    PreparedData

    Raises
    ------
    InputError
        Empty set, unequal counts, shape mismatch, NaN/inf, or nothing left
        to train on.
    """
    try:
        weighting = Weighting(weighting)
    except ValueError:
        choices = ", ".join(w.value for w in Weighting)
        raise InputError(f"unknown weighting {weighting!r}: choose one of {choices}") from None
    planes = _check_inputs(images, masks, rois)
    keys = [image_key(image) for image, _, _ in planes]
    shapes = [mask.shape for _, mask, _ in planes]
    split = assign_split(
        keys,
        shapes,
        val_fraction,
        model.extra.get("validation_split"),
        masks=[mask for _, mask, _ in planes],
    )
    entries = split["images"] if val_fraction > 0 else {}
    outputs = model.config.out_channels
    train_images: list[np.ndarray] = []
    train_targets: list[np.ndarray] = []
    train_weights: list[np.ndarray] = []
    train_rois: list[np.ndarray | None] = []
    val = ValidationSet()
    seen_val: set[str] = set()
    for key, (image, mask, roi) in zip(keys, planes, strict=True):
        norm = normalize(image, model)
        norm = norm[None] if norm.ndim == 2 else norm
        entry = entries.get(key, {"role": "train"})
        role = entry.get("role", "train")
        h, w = mask.shape
        box = entry.get("box") if role == "strip" else None
        if role == "val" or box is not None:
            y0, y1, x0, x1 = box if box is not None else (0, h, 0, w)
            if key not in seen_val:  # the same image passed twice is validated once
                seen_val.add(key)
                val.add(norm[:, y0:y1, x0:x1], mask[y0:y1, x0:x1] > 0)
        if role == "val":
            continue
        for ty, tx in _train_windows(box, (h, w)):
            target, weight = target_weights(mask[ty, tx], weighting, outputs > 1, outputs > 2)
            train_images.append(np.ascontiguousarray(norm[:, ty, tx]))
            train_targets.append(target)
            if weight is not None:
                train_weights.append(weight)
            train_rois.append(None if roi is None else roi[ty, tx])
    if not train_images:
        raise InputError("every image is held out for validation: add images or lower the share")
    return PreparedData(
        train_images,
        train_targets,
        None if weighting is Weighting.NONE else train_weights,
        None if rois is None else train_rois,
        val,
        split,
        len(planes),
    )
