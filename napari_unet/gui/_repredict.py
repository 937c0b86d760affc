"""After a fine-tune: predict an image again and score the model before and after.

Both predictions run in one thread worker.  The new one reaches its layers
the way Segment's does (:func:`napari_unet.gui.predictions.showing_prediction`,
one napari layer add per event-loop turn):
the probability layer of the image is refreshed; its mask layer is rewritten
only when nobody corrected it, by napari's paint history or by its pixels,
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

from napari_unet.gui._layers import MASK_SUFFIXES, base_name, layer_array, spatial_transform
from napari_unet.gui._turns import Turns
from napari_unet.gui.predictions import MaskSettings, showing_prediction
from napari_unet.gui.session import Session
from napari_unet.gui.workers import start_generator

_DERIVED = (*MASK_SUFFIXES, " weight map")


def _is_derived(viewer: Any, session: Session, name: str) -> bool:
    return session.is_probability_layer(name) or base_name(name).endswith(_DERIVED)


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
    from napari_unet.core.instances import with_objects

    old = None
    if score:
        old = yield from iter_predict(image, old_model, device=device)
        old = with_objects(old, old_model.threshold)
    new = yield from iter_predict(image, new_model, device=device)
    # The split is the slow part of separate labels: made here, in the worker.
    return old, with_objects(new, new_model.threshold)


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
    owner
        The widget that owns the layers' turns (:class:`~napari_unet.gui._turns.Turns`),
        if any.
    """

    def __init__(
        self,
        viewer: Any,
        session: Session,
        on_done: Callable[[float, float, str, str], None],
        owner: Any = None,
    ) -> None:
        self.viewer = viewer
        self.session = session
        self.on_done = on_done
        self.worker: Any | None = None
        # The worker counts as running until the result's layers are all made;
        # a widget owner's window is not repainted in the turn of a layer's add.
        self._turns = Turns(owner)

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
        self._turns.then(self._end_run)  # after the result's layers, if they are being made

    def _end_run(self) -> None:
        self.worker = None
        self.session.end_work()

    def _apply(self, maps: tuple[Any, Any], target: dict) -> None:
        self._turns.start(self._applying(maps, target))

    def _applying(self, maps: tuple[Any, Any], target: dict) -> Generator[Any, None, None]:
        from napari_unet.core.metrics import dice

        old, new = maps
        mask_layer, settings = yield from self._show(target, new)
        before = after = math.nan
        description = ""
        if target["reference"] is not None:
            reference, slices, description = target["reference"]
            new_mask = np.asarray(mask_layer.data)
            old_mask = settings.render(old.proba, boundary=old.boundary, objects=old.objects)
            if slices is not None:
                new_mask, old_mask = new_mask[slices], old_mask[slices]
            before, after = dice(old_mask, reference), dice(new_mask, reference)
        self.on_done(before, after, description, mask_layer.name)

    def _show(self, target: dict, maps: Any) -> Generator[Any, None, tuple[Any, MaskSettings]]:
        """Write the new probabilities and mask into layers.

        The mask is made at the session's threshold with the options the
        image's last mask was made with (minimum size, fill holes, separate
        labels); a corrected mask is kept and the new one goes to a new layer.

        Returns
        -------
        tuple
            The mask layer and the settings its mask was made with (the
            generator's return value; it yields between napari's layer adds).
        """
        image = target["image"]
        record = self.session.latest_prediction(image, self.viewer.layers)
        threshold = self.session.threshold
        settings = (
            replace(record.settings, threshold=threshold)
            if record is not None and record.settings is not None
            else MaskSettings(threshold=threshold)
        )
        shown = yield from showing_prediction(
            self.viewer, self.session, image, maps, settings, target["transform"], "Fine-tune"
        )
        return shown.mask_layer, settings
