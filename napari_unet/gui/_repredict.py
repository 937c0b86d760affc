"""After a fine-tune: predict an image again and score the model before and after.

Both predictions run in one thread worker.  The probability layer of the
image is refreshed; its mask layer is rewritten only when nobody corrected it,
otherwise the new mask goes to a new layer (a correction is never lost).

The Dice "before" and "after" compare the masks of the starting and the
fine-tuned model, both at the session's threshold, with a reference mask:

1. the image's ground-truth layer (``"<image> ground truth"``, as Load images
   and the samples name it), when its shape matches; else
2. the image's accepted masks in the training set (for a stack, the accepted
   slices only).  These are training data, so the "after" value is optimistic;
   the label says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import Any

import numpy as np
from napari.layers import Image, Labels

from napari_unet.gui._layers import MASK_SUFFIXES, fresh_name, layer_array, spatial_transform
from napari_unet.gui._mask_tracker import MaskSettings, MaskTracker
from napari_unet.gui.session import PredictionRecord, Session
from napari_unet.gui.workers import start_generator

_DERIVED = (*MASK_SUFFIXES, " weight map")


def _is_derived(viewer: Any, session: Session, name: str) -> bool:
    probs = {record.prob_layer for record in session.predictions.values()}
    base = name[: name.rindex(" [")] if name.endswith("]") and " [" in name else name
    return name in probs or base.endswith(_DERIVED)


def guess_image_layer(viewer: Any, session: Session, current: Any | None) -> Any | None:
    """Pick the image a fine-tune should predict again.

    Keeps ``current`` when it is a source image; else the image of the newest
    prediction; else the first image layer that is not a probability or weight
    map.
    """
    if current is not None and not _is_derived(viewer, session, current.name):
        return current
    for record in reversed(list(session.predictions.values())):
        if record.image_layer in viewer.layers:
            return viewer.layers[record.image_layer]
    for layer in viewer.layers:
        if isinstance(layer, Image) and not _is_derived(viewer, session, layer.name):
            return layer
    return None


def find_reference(
    viewer: Any, session: Session, image: str, shape: tuple[int, ...]
) -> tuple[np.ndarray, list[int] | None, str] | None:
    """Return ``(reference mask, slices or None, description)`` for an image, or None."""
    truth_name = f"{image} ground truth"
    if truth_name in viewer.layers:
        layer = viewer.layers[truth_name]
        if isinstance(layer, Labels) and layer.data.shape == shape:
            return layer_array(layer), None, f"'{truth_name}'"
    pairs = {pair.name: pair for pair in session.training_set}
    if len(shape) == 2:
        pair = pairs.get(image)
        if pair is not None and pair.mask.shape == shape:
            return pair.mask.copy(), None, "the accepted mask (training data)"
        return None
    slices = [
        z
        for z in range(shape[0])
        if f"{image} z{z:03d}" in pairs and pairs[f"{image} z{z:03d}"].mask.shape == shape[1:]
    ]
    if not slices:
        return None
    masks = np.stack([pairs[f"{image} z{z:03d}"].mask for z in slices])
    return masks, slices, f"the accepted masks of {len(slices)} slice(s) (training data)"


def _predict_both(
    image: np.ndarray, old_model: Any, new_model: Any, device: str, score: bool
) -> Generator[Any, None, tuple[Any, Any]]:
    """Both models' :class:`~napari_unet.core.inference.Prediction` (old only to score)."""
    from napari_unet.core.inference import iter_predict

    old = None
    if score:
        old = yield from iter_predict(image, old_model, device=device)
    new = yield from iter_predict(image, new_model, device=device)
    return old, new


class Repredictor:
    """Predict an image with the old and the new model and update its layers.

    Parameters
    ----------
    viewer, session
        The viewer and its session.
    on_done
        Called with ``(dice_before, dice_after, reference description, mask
        layer name)``; the Dice values are NaN and the description empty when
        there is no reference.
    """

    def __init__(
        self, viewer: Any, session: Session, on_done: Callable[[float, float, str, str], None]
    ) -> None:
        self.viewer = viewer
        self.session = session
        self.on_done = on_done
        self.worker: Any | None = None

    def start(self, image_name: str, old_model: Any, new_model: Any) -> Any:
        """Predict layer ``image_name`` in a worker; return the worker."""
        layer = self.viewer.layers[image_name]
        image = layer_array(layer)
        from napari_unet.core.images import spatial_shape

        spatial = spatial_shape(image, rgb=layer.rgb)
        reference = find_reference(self.viewer, self.session, image_name, spatial)
        target = {
            "image": image_name,
            "reference": reference,
            "transform": spatial_transform(layer, len(spatial)),
        }
        self.session.begin_work()
        self.worker = start_generator(
            _predict_both(image, old_model, new_model, self.session.device, reference is not None),
            on_return=lambda probs: self._apply(probs, target),
            on_finish=self._finish,
        )
        return self.worker

    def _finish(self) -> None:
        self.worker = None
        self.session.end_work()

    def _apply(self, maps: tuple[Any, Any], target: dict) -> None:
        from napari_unet.core.metrics import dice

        old, new = maps
        mask_layer, settings = self._show(target, new)
        before = after = math.nan
        description = ""
        if target["reference"] is not None:
            reference, slices, description = target["reference"]
            new_mask = np.asarray(mask_layer.data)
            old_mask = settings.render(old.proba, boundary=old.boundary)
            if slices is not None:
                new_mask, old_mask = new_mask[slices], old_mask[slices]
            before, after = dice(old_mask, reference), dice(new_mask, reference)
        self.on_done(before, after, description, mask_layer.name)

    def _show(self, target: dict, maps: Any) -> tuple[Any, MaskSettings]:
        """Write the new probabilities and mask into layers.

        The mask is made at the session's threshold with the options the
        image's last mask was made with (minimum size, fill holes, separate
        labels).

        Returns
        -------
        tuple
            The mask layer and the settings its mask was made with.
        """
        image = target["image"]
        record = self.session.latest_prediction(image, self.viewer.layers)
        threshold = self.session.threshold
        settings = (
            replace(record.settings, threshold=threshold)
            if record is not None and record.settings is not None
            else MaskSettings(threshold=threshold)
        )
        prob = maps.proba
        mask = settings.render(prob, boundary=maps.boundary)
        prob_name = record.prob_layer if record is not None else f"{image} probability"
        prob_layer = self.viewer.layers[prob_name] if prob_name in self.viewer.layers else None
        if isinstance(prob_layer, Image) and prob_layer.data.shape == prob.shape:
            prob_layer.data = prob
        else:
            prob_layer = self.viewer.add_image(
                prob,
                name=fresh_name(self.viewer, f"{image} probability"),
                colormap="magma",
                contrast_limits=(0.0, 1.0),
                blending="additive",
                **target["transform"],
            )
        mask_layer = self.viewer.layers[record.mask_layer] if record is not None else None
        if (
            record is not None
            and isinstance(mask_layer, Labels)
            and mask_layer.data.shape == mask.shape
            and not record.corrected  # paint edits and Accept set it
        ):
            mask_layer.data = mask
            record.settings = settings  # so the model's mask can be rebuilt at an edit
        else:
            mask_layer = self.viewer.add_labels(
                mask, name=fresh_name(self.viewer, f"{image} mask"), **target["transform"]
            )
            record = PredictionRecord(
                image_layer=image,
                prob_layer=prob_layer.name,
                mask_layer=mask_layer.name,
                prob=prob,
            )
            self.session.predictions[mask_layer.name] = record
            # The tracker lives as long as the layer (its event callbacks hold it).
            tracker = MaskTracker(self.session, mask_layer, record)
            tracker.settings = settings
        record.prob = prob
        record.boundary = maps.boundary
        record.prob_layer = prob_layer.name
        self.session.prediction_changed.emit(mask_layer.name)
        return mask_layer, settings
