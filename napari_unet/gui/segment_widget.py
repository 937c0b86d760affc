"""Segment: run the U-Net on an image layer, then threshold its cached probabilities live.

The network runs once per Run, in a napari thread worker, which also loads
the shipped model on first use (the window never waits for it); a progress bar
and the status line follow its tiles.  The threshold slider, the minimum
object size, fill holes and the separate-labels toggle only rewrite the mask
layer's data in place from the probabilities cached in the session's
:class:`~napari_unet.gui.predictions.PredictionRecord`; the layers are written
by :mod:`napari_unet.gui.predictions`, the path a fine-tune's prediction takes
too.  On large images a mask that needs more than ``prob >= t`` is computed in
a worker (:mod:`napari_unet.gui._mask_jobs`) and only written on the main
thread.

A mask that a person has corrected is never rewritten: neither by Run nor by
the slider.  Both then write a new mask layer (``"<image> mask [2]"``) from the
same probabilities and leave the corrected one as it is.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image
from napari.utils import progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider

from napari_unet.gui._forms import mask_options_form, whole
from napari_unet.gui._layers import LayerCombo, layer_array, spatial_transform
from napari_unet.gui._mask_jobs import MaskJobs, MaskRequest, needs_worker
from napari_unet.gui._model_choice import ModelChoice
from napari_unet.gui._segment_run import (
    fill_devices,
    idle_bar,
    load_and_predict,
    prefetch_once_shown,
    show_progress,
    show_uncertainty,
    tile_size_spin,
    tta_check,
)
from napari_unet.gui._turns import Turns
from napari_unet.gui.predictions import MaskSettings, rethreshold, showing_prediction
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
        coalesced: many slider moves give one rewrite per event-loop turn, or
        per finished worker computation on large images).
    progress_bar : QProgressBar
        Tiles predicted over the whole image or stack while Run works.
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
        self._running_name = ""
        self._jobs = MaskJobs(self._mask_request, self._write_mask)
        # A finished prediction is shown one napari layer add per event-loop
        # turn; the worker counts as running until the last one is made.
        self._turns = Turns(self)

        # Probability maps are Image layers too, but not images to segment.
        self.image_combo = LayerCombo(napari_viewer, Image, self, exclude=self._is_probability)
        self.model_choice = ModelChoice(self.session, self)
        self.device_combo = QComboBox()
        fill_devices(self.device_combo, self.session.device)
        prefetch_once_shown(self)
        self.tile_spin = tile_size_spin()
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)

        self.threshold_slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(0.0, 1.0)
        self.threshold_slider.setDecimals(3)
        self.threshold_slider.setSingleStep(0.01)
        self.threshold_slider.setValue(self.session.threshold)
        self.mask_options = mask_options_form()  # magicgui; its Qt widgets by name:
        self.min_size_spin = self.mask_options.min_size.native
        self.fill_holes_check = self.mask_options.fill_holes.native
        self.separate_check = self.mask_options.separate.native
        self.tta_check = tta_check()
        self.progress_bar = idle_bar(QProgressBar())
        self.status = QLabel("Choose an image layer and press Run.")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        form.addRow("Model", self.model_choice.combo)
        form.addRow("Device", self.device_combo)
        form.addRow("Tile size", self.tile_spin)
        form.addRow(self.tta_check)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        form.addRow(buttons)
        form.addRow("Threshold", self.threshold_slider)
        form.addRow(self.mask_options.native)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress_bar)
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

    def _update_enabled(self, _busy: Any = None) -> None:
        running = self.worker is not None
        self.run_button.setEnabled(not running and not self.session.busy)
        self.cancel_button.setEnabled(running)
        inputs = (self.image_combo, self.model_choice.combo, self.device_combo, self.tile_spin)
        for widget in inputs:
            widget.setEnabled(not running)

    # ------------------------------------------------------------ prediction
    def run(self) -> GeneratorWorker | None:
        """Predict the chosen image layer in a worker.

        Returns
        -------
        GeneratorWorker or None
            The started worker, or None when nothing was started (an error
            notification says why).
        """
        if self.worker is not None:
            show_info("Segment: a prediction is already running; wait or press Cancel.")
            return None
        layer = self.image_combo.layer()
        if layer is None:
            show_error("Segment: no image layer chosen; load an image or pick one in 'Image'.")
            return None
        model, label = self.model_choice.chosen()
        image = layer_array(layer)
        device = self.device_combo.currentData() or "auto"
        self.session.set_device(device)
        gen = load_and_predict(
            image,
            model,
            layer.name,
            tta=self.tta_check.isChecked(),
            tile_size=self.tile_spin.value(),
            device=device,
        )
        target = {
            "image": layer.name,
            "transform": spatial_transform(layer, layer.ndim),
            "label": label,
        }
        self._progress = progress(total=0, desc=f"Segment {layer.name}")
        self._running_name = layer.name
        self.progress_bar.setRange(0, 0)  # busy until the first tiles are done
        self.progress_bar.setVisible(True)
        loading = " (loading the model first)" if model is None else ""
        self.status.setText(f"Predicting '{layer.name}'{loading}...")
        self.session.begin_work()
        self._gen = gen
        self.worker = start_generator(
            gen,
            on_yield=self._on_progress,
            on_return=lambda result: self._on_result(*result, target),
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
        show_progress(event, self.progress_bar, self.status, self._progress, self._running_name)

    def _on_error(self, exc: BaseException) -> None:
        # The notification with the reason comes from the worker adapter.
        self.status.setText("Prediction failed; see the notification.")

    def _on_finish(self) -> None:
        self._turns.then(self._end_run)  # after the result's layers, if they are being made

    def _end_run(self) -> None:
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
        idle_bar(self.progress_bar)
        self.session.end_work()
        self._update_enabled()

    def _on_result(self, model: Any, maps: Any, target: dict[str, Any]) -> None:
        """Show a finished prediction: probability layer, mask layer and record."""
        self.model_choice.adopt(model, target["label"])
        self._jobs.supersede()  # the mask shown next uses the current settings: newer
        if model is not self._last_model:
            # A newly chosen model brings its own tuned threshold; the same
            # model again keeps whatever the user set on the slider.
            self.threshold_slider.blockSignals(True)
            self.threshold_slider.setValue(float(model.threshold))
            self.threshold_slider.blockSignals(False)
        self._last_model = model
        self._turns.start(self._showing(maps, target), self._shown)

    def _showing(self, maps: Any, target: dict[str, Any]) -> Generator[Any, None, str]:
        """Make the result's layers, one napari add per step; return the status text."""
        image = target["image"]
        shown = yield from showing_prediction(
            self.viewer,
            self.session,
            image,
            maps,
            self.mask_settings(),
            target["transform"],
            "Segment",
        )
        text = (
            f"'{image}': probabilities in '{shown.prob_layer.name}', "
            f"mask in '{shown.mask_layer.name}'"
        )
        uncertainty = getattr(maps, "uncertainty", None)
        if uncertainty is not None:
            yield
            layer = show_uncertainty(self.viewer, image, uncertainty, target["transform"])
            text += f", uncertainty in '{layer.name}' (hidden)"
        yield  # the window paints the new layers before the run's end is shown
        return text

    def _shown(self, text: str | None) -> None:
        if self._pending is not None and not self._timer.isActive():
            self._timer.start()  # the controls moved while the layers were made
        if text is not None:
            self.status.setText(text + ".")
            self.image_combo.refresh()  # the probability layer is now known as one
            self.session.set_threshold(self.threshold_slider.value())

    # ------------------------------------------------------- live threshold
    @property
    def pending_updates(self) -> int:
        """Mask rewrites not yet in the layer: at most one computing and one waiting.

        0 means the mask layer matches the last slider value and options.
        """
        waiting = self._timer.isActive() or self._jobs.waiting is not None
        return int(waiting) + int(self._jobs.running)

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
        if self._turns.busy:
            return  # the result's layers are being made; _showing applies the latest value
        value, self._pending = self._pending, None
        if value is None:
            return
        request = self._mask_request(value)
        if request is not None and needs_worker(request.settings, request.prob):
            self.session.set_threshold(value)
            self._jobs.submit(value)
            return
        self._jobs.supersede()  # this write is newer than any computing one
        self.apply_threshold(value)

    def _mask_request(self, value: float) -> MaskRequest | None:
        layer = self.image_combo.layer()
        if layer is None:
            return None
        record = self.session.latest_prediction(layer.name, self.viewer.layers)
        if record is None:
            return None
        settings = self.mask_settings(value)
        return MaskRequest(record, record.prob, record.boundary, settings, record.objects)

    def _write_mask(self, request: MaskRequest, mask: np.ndarray) -> None:
        """Write a mask a worker computed (the corrected-mask rule holds here too)."""
        record = request.record
        if self.session.predictions.get(record.mask_layer) is not record:
            return  # its layer was removed meanwhile
        if record.mask_layer not in self.viewer.layers:
            return
        rethreshold(self.viewer, self.session, record, request.settings, "Segment", mask)
        self.updates_applied += 1

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
        options = self.mask_options
        return MaskSettings(
            threshold=self.threshold_slider.value() if value is None else float(value),
            min_size=whole(options.min_size),
            fill_holes=options.fill_holes.value,
            separate=options.separate.value,
        )
