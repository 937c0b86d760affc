"""The fixed validation split of :func:`~napari_unet.core.training.fine_tune`.

The split is a pure function of the images' contents, so fine-tuning the same
data again holds out the same pixels, and it is stored in the model
(``model.extra["validation_split"]``) so that a model fine-tuned twice never
trains on what it was validated on before, even when images are added.  It is
built so that an empty prediction cannot look good: whenever the training data
hold foreground, so does the validation set.

- Every 2D image (or slice of a stack) is identified by the SHA-1 of its
  pixels, shape and dtype (:func:`image_key`).
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

:func:`assign_split` only decides; :func:`napari_unet.core.validation.prepare_data`
cuts the images accordingly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

__all__ = [
    "BAND_POSITIONS",
    "SPLIT_VERSION",
    "WHOLE_IMAGE_MIN",
    "assign_split",
    "image_key",
    "strip_box",
]

#: From this many images on, whole images are held out instead of strips.
WHOLE_IMAGE_MIN = 5
#: Version of the split dict stored in ``model.extra["validation_split"]``.
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
        h, w = shapes[i]
        unique.setdefault(key, ((h, w), None if masks is None else np.asarray(masks[i])))
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
