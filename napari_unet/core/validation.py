"""Training data preparation and the fixed validation split of :func:`fine_tune`.

The split is a pure function of the images' contents, so fine-tuning the same
data again holds out the same pixels, and it is stored in the model
(``model.extra["validation_split"]``) so that a model fine-tuned twice never
trains on what it was validated on before, even when images are added.  It is
built so that an empty prediction cannot look good: whenever the training data
hold foreground, so does the validation set.

- Every 2D image (or slice of a stack) is identified by the SHA-1 of its
  pixels, shape and dtype.
- With at least :data:`WHOLE_IMAGE_MIN` images (and enough of them that the
  validation share amounts to one image or more), whole images are held out,
  stratified: images with foreground and empty images are split separately,
  each group giving ``val_fraction`` of its images (rounded, chosen by a
  hash-derived order).  With two or more images holding foreground, at least
  one of them is a validation image and at least one trains.  With fewer, the
  image(s) with foreground give up a band as below instead.
- With fewer images, every image gives up a band (full width or full height,
  ``val_fraction`` of the other side) chosen from its mask: among bands on a
  regular grid, one that holds foreground and leaves foreground to train on,
  with a foreground share close to the image's own; an empty image gives up a
  band along an edge chosen by its hash.  The network trains on the rest of
  the image (the parts on either side of the band) and never sees the band.
- An image already listed in the stored split keeps its assignment, whatever
  ``val_fraction`` is now.

Model selection pools the validation pixels into one Dice (overlaps summed over
sizes summed; see :meth:`ValidationSet.score`), which an empty prediction
scores 0 on whenever the validation set holds foreground.  When it holds none,
:func:`~napari_unet.core.training.fine_tune` says so and selects by training
loss instead.

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
from napari_unet.core.model import UNet, autocast
from napari_unet.core.tiling import read_tile
from napari_unet.core.weights import class_balance_weights, target_and_weights

#: From this many images on, whole images are held out instead of strips.
WHOLE_IMAGE_MIN = 5
#: Validation regions are predicted in blocks of at most this side (memory).
VAL_BLOCK = 256
SPLIT_VERSION = 2
#: Bands are tried at this many positions along each axis.
BAND_POSITIONS = 9
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


def _band_box(mask: np.ndarray, fraction: float, key: str) -> list[int] | None:
    """Box ``[y0, y1, x0, x1]`` of the validation band of one image, chosen from its mask.

    Bands span the full width (rows) or the full height (columns) and are
    ``fraction`` of the other side.  Among :data:`BAND_POSITIONS` positions per
    orientation, the chosen band holds foreground and leaves some outside it
    (when the image has any), and its foreground share is the closest to the
    image's own; ties go by the image's hash.  An empty image gets an edge
    strip chosen by its hash (:func:`strip_box`).
    """
    h, w = mask.shape
    fg = mask > 0
    total = int(np.count_nonzero(fg))
    if total == 0:
        return strip_box((h, w), fraction, _SIDES[int(_unit(key, "side") * len(_SIDES))])
    share = total / fg.size
    rows = np.count_nonzero(fg, axis=1).cumsum()
    cols = np.count_nonzero(fg, axis=0).cumsum()
    candidates = []
    for along, length, other, cum in (("rows", h, w, rows), ("cols", w, h, cols)):
        if length < 2:
            continue
        n = int(min(max(round(fraction * length), 1), length - 1))
        for start in np.unique(np.linspace(0, length - n, BAND_POSITIONS).round().astype(int)):
            inside = int(cum[start + n - 1] - (cum[start - 1] if start > 0 else 0))
            if inside == 0 or inside == total:
                continue
            error = abs(inside / (n * other) - share)
            tie = _unit(f"{key}:{along}:{start}", "band")
            y0, x0 = int(start), int(start)
            box = [y0, y0 + n, 0, w] if along == "rows" else [0, h, x0, x0 + n]
            candidates.append((error, tie, box))
    if not candidates:
        # All foreground in one place: any band that holds some of it.
        return strip_box((h, w), fraction, _SIDES[int(_unit(key, "side") * len(_SIDES))])
    return min(candidates)[2]


def assign_split(
    keys: Sequence[str],
    shapes: Sequence[tuple[int, int]],
    val_fraction: float,
    stored: dict | None = None,
    masks: Sequence[np.ndarray] | None = None,
) -> dict:
    """Assign every image to training, validation, or a validation band.

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
    masks
        The images' masks (label > 0 is foreground), used to stratify whole
        images and to place bands on foreground; without them every image
        counts as holding foreground and bands go along an edge.

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
    unique: dict[str, tuple[tuple[int, int], np.ndarray | None]] = {}
    for i, key in enumerate(keys):
        unique.setdefault(key, (tuple(shapes[i]), None if masks is None else np.asarray(masks[i])))
    has_fg = {k: m is None or bool(np.any(m > 0)) for k, (_, m) in unique.items()}
    whole = len(unique) >= WHOLE_IMAGE_MIN and len(unique) * val_fraction >= 1.0

    def band(key: str) -> dict:
        shape, mask = unique[key]
        if mask is None:
            side = _SIDES[int(_unit(key, "side") * len(_SIDES))]
            box = strip_box(shape, val_fraction, side)
        else:
            box = _band_box(mask, val_fraction, key)
        return {"role": "train"} if box is None else {"role": "strip", "box": box}

    if not whole:
        for key in unique:
            if key not in entries:
                entries[key] = band(key)
        return split
    for group_fg in (True, False):
        group = [k for k in unique if has_fg[k] == group_fg]
        new = sorted((k for k in group if k not in entries), key=lambda k: _unit(k, "role"))
        if not new:
            continue
        if group_fg and len(group) < 2:
            for key in new:  # a lone image with foreground: validate on a band of it
                entries[key] = band(key)
            continue
        want = round(val_fraction * len(group))
        if group_fg:
            want = min(max(want, 1), len(group) - 1)
        have = sum(entries[k].get("role") in ("val", "strip") for k in group if k in entries)
        for key in new:
            entries[key] = {"role": "val" if have < want else "train"}
            have += entries[key]["role"] == "val"
    roles = [entries[k]["role"] for k in unique]
    if not any(r in ("train", "strip") for r in roles):
        entries[max(unique, key=lambda k: _unit(k, "role"))] = {"role": "train"}
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
    split = assign_split(
        keys,
        shapes,
        val_fraction,
        model.extra.get("validation_split"),
        masks=[mask for _, mask, _ in planes],
    )
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
        for ty, tx in _train_windows(box, (h, w)):
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
        len(planes),
    )
