"""Know what Segment last wrote into a mask layer, and notice when a person edits it.

The threshold slider must stay cheap, so it never copies the mask: whoever
writes a mask layer stores only the settings of that write in the record
(``PredictionRecord.settings``).  On the first edit the tracker rebuilds the
model's mask from the cached probabilities and those settings (the same core
calls, so the same pixels) and stores it as the record's ``model_mask``, the
reference for the correction effort measured at Accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_unet.gui.session import PredictionRecord


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
    ) -> np.ndarray:
        """Make the mask from ``prob``; write into ``out`` when its dtype allows.

        ``boundary`` (a two-output model's rim map) splits touching objects
        when ``separate``; without it objects are connected components.

        Returns
        -------
        np.ndarray
            0/1 uint8 mask, or int32 labels when ``separate``.
        """
        from napari_unet.core.instances import instances_from_maps
        from napari_unet.core.postprocess import mask_from_proba

        options = {"min_size": self.min_size, "fill_holes": self.fill_holes}
        if self.separate:
            labels = instances_from_maps(prob, boundary, self.threshold, **options)
            if out is not None and out.dtype == labels.dtype and out.shape == labels.shape:
                np.copyto(out, labels)
                return out
            return labels
        if out is not None and out.dtype == np.uint8 and out.shape == prob.shape:
            return mask_from_proba(prob, self.threshold, **options, out=out)
        return mask_from_proba(prob, self.threshold, **options)


class MaskTracker:
    """Follow one mask layer made by Segment.

    Marks the record corrected on any edit that goes through napari's paint
    history (brush, fill, erase, the Correct masks actions) and follows renames
    of the layer.

    Parameters
    ----------
    session
        The viewer's session (its ``predictions`` are keyed by layer name).
    layer
        The mask Labels layer.
    record
        The prediction record of that layer.
    """

    def __init__(self, session: Any, layer: Any, record: PredictionRecord) -> None:
        self.session = session
        self.layer = layer
        self.record = record
        # Plain functions, not bound methods: napari's emitters hold bound
        # methods weakly, and the tracker must live as long as its layer.
        layer.events.paint.connect(lambda event=None: self.mark_corrected())
        layer.events.name.connect(lambda event=None: self._on_name())

    @property
    def settings(self) -> MaskSettings | None:
        """How the mask layer was last written (kept on the record)."""
        return self.record.settings

    @settings.setter
    def settings(self, value: MaskSettings | None) -> None:
        self.record.settings = value

    def mark_corrected(self) -> None:
        """Record the model's mask (once) and mark the record corrected."""
        mark_corrected(self.record)

    def _on_name(self) -> None:
        old, new = self.record.mask_layer, self.layer.name
        if self.session.predictions.get(old) is self.record:
            del self.session.predictions[old]
            self.session.predictions[new] = self.record
        self.record.mask_layer = new


def model_output(record: PredictionRecord) -> np.ndarray | None:
    """Return the mask the model gave at the record's last written settings."""
    if record.settings is None:
        return None
    return record.settings.render(record.prob, boundary=record.boundary)


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
