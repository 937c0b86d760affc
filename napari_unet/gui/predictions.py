"""How a prediction reaches its layers, and how its mask is followed afterwards.

One path for one job: Segment's Run and the prediction again after a fine-tune
both go through :func:`showing_prediction`, one napari layer add per event-loop
turn (a script makes them at once with ``run_to_completion``), and Segment's
threshold controls call :func:`rethreshold`.  Every write keeps the
rule that a mask a person has corrected is never overwritten: the new mask
goes to a new layer instead.

The threshold slider must stay cheap, so it never copies the mask: whoever
writes a mask layer stores only the settings of that write in the record
(``PredictionRecord.settings``).  On the first edit the tracker rebuilds the
model's mask from the cached probabilities and those settings (the same core
calls, so the same pixels) and stores it as the record's ``model_mask``, the
reference for the correction effort measured at Accept.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from napari_unet.gui._layers import (
    add_hidden_labels,
    fresh_name,
    layer_of_type,
    select_layer,
    show_added,
    spatial_transform,
    write_probability,
)
from napari_unet.gui._turns import HOLD_PAINT

if TYPE_CHECKING:
    from napari_unet.gui.session import Session


@dataclass(frozen=True)
class MaskSettings:
    """How a mask is made from probabilities."""

    threshold: float
    min_size: int = 0
    fill_holes: bool = False
    separate: bool = False

    def render(
        self,
        prob: np.ndarray,
        out: np.ndarray | None = None,
        boundary: np.ndarray | None = None,
        objects: np.ndarray | None = None,
    ) -> np.ndarray:
        """Make the mask from ``prob``; write into ``out`` when its dtype allows.

        ``boundary`` (a two-output model's rim map) splits touching objects
        when ``separate``; without it objects are connected components.
        ``objects``, the split made once at the model's threshold
        (``Prediction.objects``), is followed instead of splitting again.

        Returns
        -------
        np.ndarray
            0/1 uint8 mask, or int32 labels when ``separate``.
        """
        from napari_unet.core.instances import instances_from_maps
        from napari_unet.core.postprocess import mask_from_proba

        options = {"min_size": self.min_size, "fill_holes": self.fill_holes}
        if self.separate:
            labels = instances_from_maps(prob, boundary, self.threshold, **options, split=objects)
            if out is not None and out.dtype == labels.dtype and out.shape == labels.shape:
                np.copyto(out, labels)
                return out
            return labels
        if out is not None and out.dtype == np.uint8 and out.shape == prob.shape:
            return mask_from_proba(prob, self.threshold, **options, out=out)
        return mask_from_proba(prob, self.threshold, **options)


@dataclass
class PredictionRecord:
    """What a prediction produced for one image layer.

    ``prob`` is the cached probability map the threshold slider reads;
    ``model_mask`` is the mask as the model gave it (before any correction),
    used to measure the correction effort at Accept.
    """

    image_layer: str
    prob_layer: str
    mask_layer: str
    prob: np.ndarray
    model_mask: np.ndarray | None = None
    corrected: bool = False  # set once a person edits the mask layer
    # How the mask layer was last written from ``prob``; whoever writes the
    # mask layer sets it, so the model's mask can be rebuilt exactly when a
    # person starts to edit.
    settings: MaskSettings | None = None
    # Rim probabilities of a two-output model (None for one output): they
    # split touching objects when Segment shows separate labels.
    boundary: np.ndarray | None = None
    # The objects split once at the model's threshold (Prediction.objects),
    # which the threshold slider follows.
    objects: np.ndarray | None = None

    def render(self, settings: MaskSettings, out: np.ndarray | None = None) -> np.ndarray:
        """Make this record's mask with ``settings`` (see :meth:`MaskSettings.render`)."""
        return settings.render(self.prob, out=out, boundary=self.boundary, objects=self.objects)


class ShownPrediction(NamedTuple):
    """The layers and the record a prediction was written to."""

    record: PredictionRecord
    prob_layer: Any
    mask_layer: Any


class MaskTracker:
    """Follow one mask layer made by a prediction.

    Marks the record corrected on any edit that goes through napari's paint
    history (brush, fill, erase, the Correct masks actions) and follows renames
    of the layer.

    Parameters
    ----------
    session
        The viewer's session.
    layer
        The mask Labels layer.
    record
        The prediction record of that layer.
    """

    def __init__(self, session: Session, layer: Any, record: PredictionRecord) -> None:
        self.session = session
        self.layer = layer
        self.record = record
        # Plain functions, not bound methods: napari's emitters hold bound
        # methods weakly, and the tracker must live as long as its layer.
        layer.events.paint.connect(lambda event=None: mark_corrected(self.record))
        layer.events.name.connect(lambda event=None: self._on_name())

    def _on_name(self) -> None:
        old, new = self.record.mask_layer, self.layer.name
        if self.session.predictions.get(old) is self.record:
            self.session.rename_prediction(old, new)
        self.record.mask_layer = new


def model_output(record: PredictionRecord) -> np.ndarray | None:
    """Return the mask the model gave at the record's last written settings."""
    if record.settings is None:
        return None
    return record.render(record.settings)


def mark_corrected(record: PredictionRecord) -> None:
    """Store the model's mask as ``record.model_mask`` (once) and mark it corrected."""
    if not record.corrected:
        output = model_output(record)
        if output is not None:
            record.model_mask = output
        record.corrected = True


def check_content(record: PredictionRecord, layer: Any) -> bool:
    """Compare a mask layer with the model's output; mark corrected when they differ.

    This catches edits that bypass napari's paint history (for example from
    the console).  It costs a full mask rebuild, so it runs before a new
    prediction, never on a slider move.

    Returns
    -------
    bool
        Whether the record is corrected.
    """
    if not record.corrected:
        expected = model_output(record)
        data = layer.data
        if expected is not None and (
            data.shape != expected.shape or not np.array_equal(data, expected)
        ):
            record.model_mask = expected
            record.corrected = True
    return record.corrected


def write_mask(
    session: Session,
    layer: Any,
    record: PredictionRecord,
    settings: MaskSettings,
    mask: np.ndarray | None = None,
) -> None:
    """Write the record's mask into ``layer`` in place (same array when dtypes allow).

    ``mask`` is the mask already rendered with ``settings`` (by a worker);
    without it the mask is rendered here.
    """
    data = layer.data
    if mask is None:
        written = record.render(settings, out=data)
    elif mask.dtype == data.dtype and mask.shape == data.shape:
        np.copyto(data, mask)
        written = data
    else:
        written = mask
    if written is data:
        # The shape is unchanged, so the extent need not be recomputed.
        layer.refresh(extent=False)
    else:
        layer.data = written  # dtype changed (separate labels toggled)
    record.settings = settings  # so the model's mask can be rebuilt at an edit
    session.update_prediction(record)


def add_mask_layer(
    viewer: Any,
    session: Session,
    source: PredictionRecord,
    settings: MaskSettings,
    transform: dict[str, Any],
    mask: np.ndarray | None = None,
    *,
    visible: bool = True,
) -> ShownPrediction:
    """Make a new mask layer (``"<image> mask [n]"``) and its record from ``source``'s maps.

    ``source`` gives the image, the probability layer, the probabilities and the
    rim map; it is not changed.  ``mask``, when given, is the mask already
    rendered with ``settings``.  ``visible=False`` adds the layer hidden
    (:func:`~napari_unet.gui._layers.add_hidden_labels`), for
    :func:`~napari_unet.gui._layers.show_added` in a later turn.
    """
    if mask is None:
        mask = source.render(settings)
    name = fresh_name(viewer, f"{source.image_layer} mask")
    if visible:
        layer = viewer.add_labels(mask, name=name, **transform)
    else:
        layer = add_hidden_labels(viewer, mask, name=name, **transform)
    record = PredictionRecord(
        image_layer=source.image_layer,
        prob_layer=source.prob_layer,
        mask_layer=layer.name,
        prob=source.prob,
        settings=settings,
        boundary=source.boundary,
        objects=source.objects,
    )
    # The tracker lives as long as the layer (its event callbacks hold it).
    MaskTracker(session, layer, record)
    session.add_prediction(record)
    session.update_prediction(record)
    prob_layer = viewer.layers[source.prob_layer] if source.prob_layer in viewer.layers else None
    return ShownPrediction(record, prob_layer, layer)


def showing_prediction(
    viewer: Any,
    session: Session,
    image: str,
    maps: Any,
    settings: MaskSettings,
    transform: dict[str, Any],
    who: str,
) -> Generator[Any, None, ShownPrediction]:
    """Put a finished prediction of layer ``image`` into layers and the session.

    The probability layer of the image's newest prediction (else
    ``"<image> probability"``) is refreshed when its shape fits, else a new
    one is made.  The newest mask layer is rewritten unless it holds
    corrections, by napari's paint history or by its pixels
    (:func:`check_content`); then the mask goes to a new layer and a
    notification says so.  A generator: it yields between napari's steps, so
    that a caller can let the window react in between
    (:class:`~napari_unet.gui._turns.Turns`).  A new layer is added hidden
    (napari's add: about 55-65 ms here), with no repaint (``HOLD_PAINT``), and
    shown after the yield (``bench_event_loop_predict.py``).

    Parameters
    ----------
    viewer, session
        The viewer and its session.
    image
        Name of the predicted image layer.
    maps
        The :class:`~napari_unet.core.inference.Prediction` (``proba``, ``boundary``,
        ``objects``).
    settings
        How to make the mask from the probabilities.
    transform
        ``scale`` / ``translate`` of the image layer, for new layers.
    who
        The widget that asked, for the notification ("Segment").

    Returns
    -------
    ShownPrediction
        The record, probability layer and mask layer written (the generator's
        return value).
    """
    from napari.layers import Labels
    from napari.utils.notifications import show_info

    prob = maps.proba
    if len(transform.get("scale", prob.shape)) != prob.ndim:
        transform = {}
    record = session.latest_prediction(image, viewer.layers)
    name = f"{image} probability"
    if record is not None and record.prob_layer in viewer.layers:
        name = record.prob_layer
    prob_layer, made = write_probability(viewer, name, f"{image} probability", prob, transform)
    if made:
        # A layer's first paint (its shaders and texture, 18-47 ms here) comes in
        # its own turn, after napari's add (57-69 ms), not in the same one.
        yield HOLD_PAINT
        prob_layer.visible = True
    mask_layer = layer_of_type(viewer, record.mask_layer, Labels) if record is not None else None
    if record is not None and mask_layer is not None and not check_content(record, mask_layer):
        record.prob, record.boundary, record.prob_layer = prob, maps.boundary, prob_layer.name
        record.objects = maps.objects
        write_mask(session, mask_layer, record, settings)
        if made:
            yield
            select_layer(viewer, prob_layer)
        return ShownPrediction(record, prob_layer, mask_layer)
    if record is not None and mask_layer is not None:
        show_info(
            f"{who}: '{record.mask_layer}' holds corrections and is kept; "
            "the new mask is a new layer."
        )
    yield  # the probability layer is made; the mask layer is the next napari add
    source = PredictionRecord(
        image, prob_layer.name, "", prob, boundary=maps.boundary, objects=maps.objects
    )
    shown = add_mask_layer(viewer, session, source, settings, transform, visible=False)
    yield HOLD_PAINT
    show_added(shown.mask_layer)
    yield
    select_layer(viewer, shown.mask_layer)
    return shown


def rethreshold(
    viewer: Any,
    session: Session,
    record: PredictionRecord,
    settings: MaskSettings,
    who: str,
    mask: np.ndarray | None = None,
) -> Any:
    """Rewrite a record's mask from its cached probabilities; return the mask layer.

    Never runs the network.  A mask marked corrected (a cheap check, fit for a
    slider move) is kept and the mask goes to a new layer, used from then on.
    ``mask``, when given, is the mask a worker already rendered from the
    record's maps with ``settings``; only the layer write is left to do here.
    """
    from napari.utils.notifications import show_info

    layer = viewer.layers[record.mask_layer]
    if record.corrected:
        show_info(
            f"{who}: '{record.mask_layer}' holds corrections and is kept; "
            "the threshold now acts on a new mask layer."
        )
        transform = spatial_transform(layer, layer.ndim)
        return add_mask_layer(viewer, session, record, settings, transform, mask).mask_layer
    write_mask(session, layer, record, settings, mask)
    return layer
