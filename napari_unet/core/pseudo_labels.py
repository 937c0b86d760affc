"""Pseudo-labels: unlabelled images as training data, with the model's confident pixels.

A person corrects a few images (or slices); the others of the same data set
are unlabelled.  :func:`iter_pseudo_labels` predicts them with the starting
model and turns each probability map into a training target
(:func:`pseudo_target`): pixels of foreground probability at least ``high``
are foreground, at most ``low`` background, and the uncertain rest carry
:data:`~napari_unet.core.targets.IGNORE_BIT`, so the loss leaves them out
(:func:`napari_unet.core.training_step.training_loss`).  The flag travels in
the packed target code, which patches and augmentation move (nearest
neighbour) together with the image, so no separate mask has to follow them.

The rim output of a two-output model learns nothing from pseudo-labels (every
pixel carries :data:`~napari_unet.core.targets.IGNORE_RIM_BIT`): the rims of
the confident objects would lie on the ``high`` contour, inside the true edge,
which is in the ignored band, so they would teach the rims one band too far
in; and touching objects, the case the rims exist for, are where the model is
least sure.  Pseudo-labelled images are never validated on: the validation
set is the person's masks alone.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from napari_unet.core.defaults import DEFAULT_PSEUDO_HIGH, DEFAULT_PSEUDO_LOW, DEFAULT_TILE_SIZE
from napari_unet.core.errors import InputError
from napari_unet.core.events import Notice, Progress, relay
from napari_unet.core.images import is_stack, normalize
from napari_unet.core.inference import Prediction, iter_predict
from napari_unet.core.losses import Weighting
from napari_unet.core.model import UNet
from napari_unet.core.targets import IGNORE_BIT, IGNORE_RIM_BIT
from napari_unet.core.tta import iter_predict_tta
from napari_unet.core.validation import target_weights

#: Progress units per image (images differ in size; each counts the same).
_UNITS = 1000


def pseudo_target(
    proba: np.ndarray,
    low: float = DEFAULT_PSEUDO_LOW,
    high: float = DEFAULT_PSEUDO_HIGH,
    *,
    rims: bool = False,
) -> np.ndarray:
    """Target code of one probability map: confident pixels known, the rest ignored.

    Parameters
    ----------
    proba
        Foreground probabilities, any shape.
    low, high
        ``p >= high`` is foreground (1), ``p <= low`` background (0), pixels in
        between carry :data:`~napari_unet.core.targets.IGNORE_BIT`.
    rims
        Mark every pixel's rim target unknown too
        (:data:`~napari_unet.core.targets.IGNORE_RIM_BIT`), for a two-output model.

    Returns
    -------
    np.ndarray
        uint8 target code of ``proba``'s shape.
    """
    if not 0.0 <= low < high <= 1.0:
        raise InputError(f"pseudo-label thresholds need 0 <= low < high <= 1, got {low}, {high}")
    p = np.asarray(proba)
    code = (p >= high).astype(np.uint8)
    code[(p > low) & (p < high)] |= IGNORE_BIT
    if rims:
        code |= IGNORE_RIM_BIT
    return code


@dataclass
class PseudoLabels:
    """Pseudo-labelled planes ready for a :class:`~napari_unet.core.sampling.PatchSampler`.

    Attributes
    ----------
    train_images
        Normalised planes, (C, H, W) float32.
    train_targets
        Their :func:`pseudo_target` codes.
    train_weights
        Their weight maps (of the confident foreground's objects), or ``None``
        for a loss without weights.
    train_rois
        Always ``None`` (patch centres anywhere); the names are those of
        :class:`~napari_unet.core.validation.PreparedData`'s training part.
    confident, ignored
        Pixels with a pseudo-label and pixels left out, over all planes.
    """

    train_images: list[np.ndarray]
    train_targets: list[np.ndarray]
    train_weights: list[np.ndarray] | None
    confident: int = 0
    ignored: int = 0
    train_rois: None = None

    def record(self) -> dict[str, int]:
        """Return the counts as plain numbers, for a model's history."""
        planes = len(self.train_images)
        return {"planes": planes, "confident": self.confident, "ignored": self.ignored}

    def describe(self) -> str:
        """Say in one sentence what the pseudo-labels add, for the progress events."""
        total = self.confident + self.ignored
        share = self.confident / total if total else 0.0
        planes = len(self.train_images)
        return (
            f"pseudo-labels: {planes} unlabelled image{'s' if planes != 1 else ''}, "
            f"{self.confident:,} confident pixels ({share:.0%}) learned from, "
            f"{self.ignored:,} uncertain pixels ignored; never validated on"
        )


def _planes(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    planes = []
    for i, image in enumerate(images):
        image = np.asarray(image)
        if image.size == 0:
            raise InputError(f"unlabelled image {i + 1} is empty (shape {image.shape})")
        if image.dtype.kind == "f" and not np.all(np.isfinite(image)):
            raise InputError(f"unlabelled image {i + 1} contains NaN or infinite pixels")
        planes.extend(list(image) if is_stack(image) else [image])
    return planes


def iter_pseudo_labels(
    images: Sequence[np.ndarray],
    model: UNet,
    *,
    low: float = DEFAULT_PSEUDO_LOW,
    high: float = DEFAULT_PSEUDO_HIGH,
    tta: bool = False,
    weighting: Weighting | str = Weighting.NONE,
    device: str | torch.device = "auto",
    tile_size: int = DEFAULT_TILE_SIZE,
) -> Generator[Progress | Notice, None, PseudoLabels]:
    """Predict unlabelled images with ``model`` and make their pseudo-labels.

    Parameters
    ----------
    images
        2D images or stacks (split into slices), as for
        :func:`~napari_unet.core.training.fine_tune`.
    model
        The starting model of the fine-tune; it is not modified.
    low, high
        Thresholds of :func:`pseudo_target`.
    tta
        Predict with test-time augmentation (:mod:`napari_unet.core.tta`).
    weighting
        The weight map the loss expects (:class:`~napari_unet.core.losses.Weighting`).
    device, tile_size
        As for :func:`~napari_unet.core.inference.iter_predict`.

    Yields
    ------
    Progress
        ``pseudo-labels: image k/N`` with the prediction's own progress.
    Notice
        Each distinct notice of the predictions once.

    Returns
    -------
    PseudoLabels
    """
    weighting = Weighting(weighting)
    planes = _planes(images)
    rims = model.config.out_channels > 1
    out = PseudoLabels([], [], None if weighting is Weighting.NONE else [])
    notices: set[str] = set()
    for k, plane in enumerate(planes):

        def overall(event: Progress, k: int = k) -> Progress:
            done = k * _UNITS + (_UNITS * event.step) // max(1, event.total)
            return Progress(
                done, len(planes) * _UNITS, f"pseudo-labels: image {k + 1}/{len(planes)}"
            )

        gen: Generator[Progress | Notice, None, Prediction]
        if tta:
            gen = iter_predict_tta(plane, model, tile_size=tile_size, device=device)
        else:
            gen = iter_predict(plane, model, tile_size=tile_size, device=device)
        proba = (yield from relay(gen, notices, overall)).proba
        code = pseudo_target(proba, low, high, rims=rims)
        norm = normalize(plane, model)
        out.train_images.append(np.ascontiguousarray(norm[None] if norm.ndim == 2 else norm))
        out.train_targets.append(code)
        if out.train_weights is not None:
            weight = target_weights(code & 1, weighting)[1]
            out.train_weights.append(np.ones(code.shape, np.float32) if weight is None else weight)
        ignored = int(np.count_nonzero(code & IGNORE_BIT))
        out.ignored += ignored
        out.confident += code.size - ignored
    return out
