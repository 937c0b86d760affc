"""Segment: run the U-Net on an image layer, then threshold its cached probabilities live.

The network runs once per Run, in a napari thread worker.  The threshold
slider, the minimum object size, fill holes and the separate-labels toggle only
rewrite the mask layer's data in place from the probabilities cached in the
session's :class:`~napari_unet.gui.predictions.PredictionRecord`; the layers are
written by :mod:`napari_unet.gui.predictions`, the path a fine-tune's
prediction takes too.

A mask that a person has corrected is never rewritten: neither by Run nor by
the slider.  Both then write a new mask layer (``"<image> mask [2]"``) from the
same probabilities and leave the corrected one as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image
from napari.utils import progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider

from napari_unet.core.errors import InputError
from napari_unet.core.events import Notice
from napari_unet.core.inference import DEFAULT_TILE_SIZE, MIN_TILE_SIZE
from napari_unet.gui._layers import LayerCombo, layer_array, spatial_transform
from napari_unet.gui._model_choice import ModelChoice
from napari_unet.gui.predictions import MaskSettings, rethreshold, show_prediction
from napari_unet.gui.session import get_session
from napari_unet.gui.workers import start_generator, stop

if TYPE_CHECKING:
    import napari
    from napari.qt.threading import GeneratorWorker


class SegmentWidget(QWidget):
    """Predict probabilities and a mask for an image layer; threshold them live.

    Parameters
    ----------
    napari_viewer
        The viewer whose image layers are segmented.

    Attributes
    ----------
    worker : GeneratorWorker or None
        The running prediction, if any.
    updates_applied : int
        How many mask rewrites the threshold controls have caused (drags are
        coalesced: many slider moves give one rewrite per event-loop turn).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)
        self.worker: GeneratorWorker | None = None
        self.updates_applied = 0
        self._progress: progress | None = None
        self._pending: float | None = None
        self._last_model: Any | None = None
        self._gen: Any | None = None

        # Probability maps are Image layers too, but not images to segment.
        self.image_combo = LayerCombo(napari_viewer, Image, self, exclude=self._is_probability)
        self.model_choice = ModelChoice(self.session, self)
        self.device_combo = QComboBox()
        self._fill_devices()
        self.tile_spin = QSpinBox()
        # Below MIN_TILE_SIZE the tiles, which overlap by twice the network's
        # receptive radius, would spend most of their work on the overlap; a
        # deeper model that needs more raises the size itself, with a notice.
        self.tile_spin.setRange(MIN_TILE_SIZE, 4096)
        self.tile_spin.setSingleStep(64)
        self.tile_spin.setValue(DEFAULT_TILE_SIZE)
        self.tile_spin.setSuffix(" px")
        self.tile_spin.setToolTip(
            "Largest tile edge. Tiles overlap by twice the network's receptive radius, "
            "so the result equals one pass over the whole image; larger tiles use more "
            "memory and waste less work on the overlap."
        )
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)

        self.threshold_slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(0.0, 1.0)
        self.threshold_slider.setDecimals(3)
        self.threshold_slider.setSingleStep(0.01)
        self.threshold_slider.setValue(self.session.threshold)
        self.min_size_spin = QSpinBox()
        self.min_size_spin.setRange(0, 1_000_000)
        self.min_size_spin.setSuffix(" px")
        self.fill_holes_check = QCheckBox("Fill holes")
        self.separate_check = QCheckBox("Show objects as separate labels")
        self.status = QLabel("Choose an image layer and press Run.")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        form.addRow("Model", self.model_choice.combo)
        form.addRow("Device", self.device_combo)
        form.addRow("Tile size", self.tile_spin)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        form.addRow(buttons)
        form.addRow("Threshold", self.threshold_slider)
        form.addRow("Min object size", self.min_size_spin)
        form.addRow(self.fill_holes_check)
        form.addRow(self.separate_check)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addStretch(1)

        # One zero-delay single-shot timer coalesces drags: however many values
        # arrive before the event loop turns, only the latest is applied.
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._apply_pending)

        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.threshold_slider.valueChanged.connect(self._schedule)
        self.min_size_spin.valueChanged.connect(self._schedule_current)
        self.fill_holes_check.toggled.connect(self._schedule_current)
        self.separate_check.toggled.connect(self._schedule_current)
        self.session.threshold_changed.connect(self._on_session_threshold)
        self.session.busy_changed.connect(self._update_enabled)

    # ----------------------------------------------------------------- setup
    def _is_probability(self, layer: Any) -> bool:
        return self.session.is_probability_layer(layer.name)

    def _fill_devices(self) -> None:
        from napari_unet.core.model import available_devices

        for value, label in available_devices():
            self.device_combo.addItem(label, value)
        index = self.device_combo.findData(self.session.device)
        self.device_combo.setCurrentIndex(max(index, 0))

    def _update_enabled(self, _busy: Any = None) -> None:
        running = self.worker is not None
        self.run_button.setEnabled(not running and not self.session.busy)
        self.cancel_button.setEnabled(running)
        for widget in (self.image_combo, self.model_choice.combo, self.device_combo):
            widget.setEnabled(not running)
        self.tile_spin.setEnabled(not running)

    # ------------------------------------------------------------ prediction
    def run(self) -> GeneratorWorker | None:
        """Predict the chosen image layer in a worker.

        Returns
        -------
        GeneratorWorker or None
            The started worker, or None when nothing was started (an error
            notification says why).
        """
        from napari_unet.core.images import is_rgb
        from napari_unet.core.inference import iter_predict

        if self.worker is not None:
            show_info("Segment: a prediction is already running; wait or press Cancel.")
            return None
        layer = self.image_combo.layer()
        if layer is None:
            show_error("Segment: no image layer chosen; load an image or pick one in 'Image'.")
            return None
        try:
            model = self.model_choice.model()
        except InputError as exc:
            show_error(f"Segment: {exc}")
            return None
        image = layer_array(layer)
        if is_rgb(image) and model.config.in_channels == 1:
            show_info(
                f"Segment: '{layer.name}' is RGB; converted to grey for the 1-channel model."
            )
        device = self.device_combo.currentData() or "auto"
        self.session.set_device(device)
        gen = iter_predict(image, model, tile_size=self.tile_spin.value(), device=device)
        # A newly chosen model brings its own tuned threshold; the same model
        # again keeps whatever the user set on the slider.
        threshold = None if model is self._last_model else float(model.threshold)
        self._last_model = model
        target = {
            "image": layer.name,
            "transform": spatial_transform(layer, layer.ndim),
            "threshold": threshold,
        }
        self._progress = progress(total=0, desc=f"Segment {layer.name}")
        self.status.setText(f"Predicting '{layer.name}'...")
        self.session.begin_work()
        self._gen = gen
        self.worker = start_generator(
            gen,
            on_yield=self._on_progress,
            on_return=lambda maps: self._on_result(maps, target),
            on_error=self._on_error,
            on_finish=self._on_finish,
        )
        self._update_enabled()
        return self.worker

    def cancel(self) -> None:
        """Stop the running prediction between two batches of tiles."""
        if self.worker is not None:
            self.status.setText("Cancelling...")
            stop(self.worker)

    def _on_progress(self, event: Any) -> None:
        if isinstance(event, Notice):
            show_info(f"Segment: {event.message}")
            return
        bar = self._progress
        if bar is None or not hasattr(event, "total"):
            return
        if bar.total != event.total:
            bar.total = event.total
        bar.update(event.step - bar.n)
        bar.set_description(event.message or "Segment")

    def _on_error(self, exc: BaseException) -> None:
        # The notification with the reason comes from the worker adapter.
        self.status.setText("Prediction failed; see the notification.")

    def _on_finish(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None and worker.abort_requested:
            self.status.setText("Prediction cancelled; no layer was changed.")
        gen, self._gen = self._gen, None
        if gen is not None:
            # The worker thread is done, so closing the generator here is safe
            # and runs its cleanup now rather than at garbage collection.
            gen.close()
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self.session.end_work()
        self._update_enabled()

    def _on_result(self, maps: Any, target: dict[str, Any]) -> None:
        """Show a finished prediction: probability layer, mask layer and record."""
        image = target["image"]
        if target["threshold"] is not None:
            self.threshold_slider.blockSignals(True)
            self.threshold_slider.setValue(target["threshold"])
            self.threshold_slider.blockSignals(False)
        shown = show_prediction(
            self.viewer,
            self.session,
            image,
            maps,
            self.mask_settings(),
            target["transform"],
            "Segment",
        )
        self.status.setText(
            f"'{image}': probabilities in '{shown.prob_layer.name}', "
            f"mask in '{shown.mask_layer.name}'."
        )
        self.image_combo.refresh()  # the probability layer is now known as one
        self.session.set_threshold(self.threshold_slider.value())

    # ------------------------------------------------------- live threshold
    @property
    def pending_updates(self) -> int:
        """Mask rewrites waiting for the event loop: 0 or 1, never more."""
        return int(self._timer.isActive())

    def _schedule(self, value: float) -> None:
        self._pending = float(value)
        if not self._timer.isActive():
            self._timer.start()

    def _schedule_current(self, *_: Any) -> None:
        self._schedule(self.threshold_slider.value())

    def _on_session_threshold(self, value: float) -> None:
        # Another widget (e.g. the Dice widget's best threshold) moved it.
        if not np.isclose(value, self.threshold_slider.value(), atol=1e-6):
            self.threshold_slider.setValue(value)

    def _apply_pending(self) -> None:
        value, self._pending = self._pending, None
        if value is not None:
            self.apply_threshold(value)

    def apply_threshold(self, value: float | None = None) -> Any | None:
        """Rewrite the chosen image's mask layer from its cached probabilities.

        Never runs the network and never rewrites a corrected mask: when the
        mask holds corrections, a new mask layer is made from the same
        probabilities and used from then on.

        Parameters
        ----------
        value
            Threshold in [0, 1]; the slider's value by default.

        Returns
        -------
        napari.layers.Labels or None
            The mask layer that was written, or None when the image has no
            prediction yet.
        """
        value = self.threshold_slider.value() if value is None else float(value)
        layer = self.image_combo.layer()
        record = None
        if layer is not None:
            record = self.session.latest_prediction(layer.name, self.viewer.layers)
        mask_layer = None
        if record is not None:
            settings = self.mask_settings(value)
            mask_layer = rethreshold(self.viewer, self.session, record, settings, "Segment")
            self.updates_applied += 1
        self.session.set_threshold(value)
        return mask_layer

    def mask_settings(self, value: float | None = None) -> MaskSettings:
        """Return how the controls make a mask, at threshold ``value`` (default: the slider)."""
        return MaskSettings(
            threshold=self.threshold_slider.value() if value is None else float(value),
            min_size=self.min_size_spin.value(),
            fill_holes=self.fill_holes_check.isChecked(),
            separate=self.separate_check.isChecked(),
        )
