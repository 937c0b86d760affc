"""Training data preparation and the fixed validation split of :func:`fine_tune`.

The split is a pure function of the images' contents, so fine-tuning the same
data again holds out the same pixels, and it is stored in the model
(``model.extra["validation_split"]``) so that a model fine-tuned twice never
trains on what it was validated on before, even when images are added:

- Every 2D image (or slice of a stack) is identified by the SHA-1 of its
  pixels, shape and dtype.
- With at least :data:`WHOLE_IMAGE_MIN` images (and enough of them that the
  validation share amounts to one image or more), whole images are held out:
  an image is a validation image when a hash-derived number in [0, 1) is below
  ``val_fraction``.  At least one image ends up on each side.
- With fewer images, every image gives up a strip along one of its edges
  (which edge also follows from the hash), ``val_fraction`` of its height or
  width; the network trains on the rest of the image and never sees the strip.
- An image already listed in the stored split keeps its assignment, whatever
  ``val_fraction`` is now.

Training targets separate touching objects (the paper's separation border)
and weight maps are computed once per image, here, not per training step.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from napari_unet.core.errors import InputError
from napari_unet.core.inference import is_rgb, is_stack, normalize
from napari_unet.core.metrics import dice as dice_score
from napari_unet.core.model import UNet, autocast
from napari_unet.core.tiling import read_tile
from napari_unet.core.weights import class_balance_weights, target_and_weights

#: From this many images on, whole images are held out instead of strips.
WHOLE_IMAGE_MIN = 5
#: Validation regions are predicted in blocks of at most this side (memory).
VAL_BLOCK = 256
SPLIT_VERSION = 1
_SIDES = ("top", "bottom", "left", "right")


def image_key(image: np.ndarray) -> str:
    """SHA-1 hex digest of an image's pixels, shape and dtype."""
    a = np.ascontiguousarray(image)
    digest = hashlib.sha1(f"{a.dtype.str}{a.shape}".encode())
    digest.update(a.view(np.uint8).reshape(-1).data if a.size else b"")
    return digest.hexdigest()


def _unit(key: str, salt: str) -> float:
    """Map ``key`` to a number in [0, 1); the same key always gives the same number."""
    return int(hashlib.sha1(f"{salt}:{key}".encode()).hexdigest()[:13], 16) / 16**13


def strip_box(shape: tuple[int, int], fraction: float, side: str) -> list[int] | None:
    """Box ``[y0, y1, x0, x1]`` of the validation strip along ``side``, or ``None``.

    The strip is ``fraction`` of the height (top/bottom) or width (left/right),
    at least 1 pixel, and always leaves at least 1 pixel for training; on an
    axis of length 1 the other axis is used, and a 1 x 1 image has no strip.
    """
    h, w = shape
    order = [side] + [s for s in _SIDES if s != side]
    for s in order:
        length = h if s in ("top", "bottom") else w
        if length < 2:
            continue
        n = int(min(max(round(fraction * length), 1), length - 1))
        return {
            "top": [0, n, 0, w],
            "bottom": [h - n, h, 0, w],
            "left": [0, h, 0, n],
            "right": [0, h, w - n, w],
        }[s]
    return None


def assign_split(
    keys: Sequence[str],
    shapes: Sequence[tuple[int, int]],
    val_fraction: float,
    stored: dict | None = None,
) -> dict:
    """Assign every image to training, validation, or a validation strip.

    Parameters
    ----------
    keys
        :func:`image_key` of each image.
    shapes
        (H, W) of each image.
    val_fraction
        Share to hold out, in [0, 1).  0 holds out nothing and leaves
        ``stored`` as it is.
    stored
        A split returned earlier (from ``model.extra``), or ``None``.

    Returns
    -------
    dict
        ``{"version", "val_fraction", "images": {key: {"role": "train" |
        "val" | "strip", "box": [y0, y1, x0, x1]}}}``, JSON-safe; entries of
        images not passed in are kept from ``stored``.
    """
    entries: dict[str, dict] = {}
    if isinstance(stored, dict) and isinstance(stored.get("images"), dict):
        entries = {k: dict(v) for k, v in stored["images"].items() if isinstance(v, dict)}
    split = {
        "version": SPLIT_VERSION,
        "val_fraction": float(stored.get("val_fraction", val_fraction))
        if isinstance(stored, dict) and entries
        else float(val_fraction),
        "images": entries,
    }
    if val_fraction <= 0:
        return split
    unique = dict(zip(keys, shapes, strict=True))
    new = [k for k in unique if k not in entries]
    whole = len(unique) >= WHOLE_IMAGE_MIN and len(unique) * val_fraction >= 1.0
    for key in new:
        if whole:
            role = "val" if _unit(key, "role") < val_fraction else "train"
            entries[key] = {"role": role}
        else:
            side = _SIDES[int(_unit(key, "side") * len(_SIDES))]
            box = strip_box(unique[key], val_fraction, side)
            entries[key] = {"role": "train"} if box is None else {"role": "strip", "box": box}
    if whole and new:
        roles = [entries[k]["role"] for k in unique]
        by_unit = sorted(new, key=lambda k: _unit(k, "role"))
        if not any(r in ("val", "strip") for r in roles):
            entries[by_unit[0]] = {"role": "val"}
        elif not any(r in ("train", "strip") for r in roles):
            entries[by_unit[-1]] = {"role": "train"}
    return split


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
        spatial = image.shape[:-1] if is_rgb(image) else image.shape
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


@dataclass
class ValidationSet:
    """Held-out regions, normalised, and their ground truth.

    Attributes
    ----------
    blocks
        ``(image (C, h, w) float32, truth (h, w) bool)`` pairs of at most
        :data:`VAL_BLOCK` pixels a side.
    """

    blocks: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    @property
    def pixels(self) -> int:
        """Number of held-out pixels."""
        return int(sum(truth.size for _, truth in self.blocks))

    def add(self, image: np.ndarray, truth: np.ndarray) -> None:
        """Add a held-out region ((C, h, w) image and (h, w) truth), cut into blocks."""
        h, w = truth.shape
        ny, nx = math.ceil(h / VAL_BLOCK), math.ceil(w / VAL_BLOCK)
        ys = np.linspace(0, h, ny + 1).round().astype(int)
        xs = np.linspace(0, w, nx + 1).round().astype(int)
        for y0, y1 in zip(ys[:-1], ys[1:], strict=True):
            for x0, x1 in zip(xs[:-1], xs[1:], strict=True):
                self.blocks.append((image[:, y0:y1, x0:x1], truth[y0:y1, x0:x1]))

    def dice(self, model: UNet, device: torch.device | None = None) -> float:
        """Dice of ``model``'s mask (at ``model.threshold``) over all held-out pixels.

        The pixels of all blocks are pooled into one Dice (both empty: 1.0).
        Each block is mirror-padded to the model's size multiple.  The model is
        left in evaluation mode.

        Returns
        -------
        float
            Dice in [0, 1], or NaN when nothing is held out.
        """
        if not self.blocks:
            return math.nan
        device = next(model.parameters()).device if device is None else device
        model.eval()
        m = model.size_multiple
        preds, truths = [], []
        for image, truth in self.blocks:
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
            preds.append((prob[-y0 : -y0 + h, -x0 : -x0 + w] >= model.threshold).ravel())
            truths.append(truth.ravel())
        return dice_score(np.concatenate(preds), np.concatenate(truths))


@dataclass
class PreparedData:
    """Training crops with their targets and weights, and the validation set."""

    train_images: list[np.ndarray]
    train_targets: list[np.ndarray]
    train_weights: list[np.ndarray] | None
    train_rois: list[np.ndarray | None] | None
    val: ValidationSet
    split: dict

    @property
    def train_pixels(self) -> int:
        """Number of training pixels (all crops)."""
        return int(sum(t.size for t in self.train_targets))


def _train_window(box: list[int] | None, shape: tuple[int, int]) -> tuple[slice, slice]:
    """Return the rectangle left for training beside a validation strip (all if none)."""
    h, w = shape
    if box is None:
        return slice(0, h), slice(0, w)
    y0, y1, x0, x1 = box
    if x0 == 0 and x1 == w:  # a strip of rows, at the top or the bottom
        return (slice(y1, h) if y0 == 0 else slice(0, y0)), slice(0, w)
    return slice(0, h), (slice(x1, w) if x0 == 0 else slice(0, x0))


def _weights(mask: np.ndarray, weighting: str) -> tuple[np.ndarray, np.ndarray | None]:
    target, paper = target_and_weights(mask)
    if weighting == "paper":
        return target, paper
    if weighting == "border":
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
    weighting: str = "none",
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
        ``"paper"``, ``"border"`` or ``"none"`` (see :mod:`napari_unet.core.losses`).

    Returns
    -------
    PreparedData

    Raises
    ------
    InputError
        Empty set, unequal counts, shape mismatch, NaN/inf, or nothing left
        to train on.
    """
    planes = _check_inputs(images, masks, rois)
    keys = [image_key(image) for image, _, _ in planes]
    shapes = [mask.shape for _, mask, _ in planes]
    split = assign_split(keys, shapes, val_fraction, model.extra.get("validation_split"))
    entries = split["images"] if val_fraction > 0 else {}
    train_images, train_targets, train_weights, train_rois = [], [], [], []
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
        ty, tx = _train_window(box, (h, w))
        target, weight = _weights(mask[ty, tx], weighting)
        train_images.append(np.ascontiguousarray(norm[:, ty, tx]))
        train_targets.append(target)
        train_weights.append(weight)
        train_rois.append(None if roi is None else roi[ty, tx])
    if not train_images:
        raise InputError("every image is held out for validation: add images or lower the share")
    return PreparedData(
        train_images,
        train_targets,
        None if weighting == "none" else train_weights,
        None if rois is None else train_rois,
        val,
        split,
    )
