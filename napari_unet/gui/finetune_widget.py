"""Fine-tune: train the session's model on the accepted pairs, in a thread worker.

Training runs :func:`napari_unet.core.training.fine_tune` on numpy copies of
the session's training set.  **Stop** asks ``fine_tune`` (through its
``should_stop``) to end at the next step: it then returns the best weights
so far, exactly like a finished run.  The run's model file,
``<training folder>/models/fine-tuned-<time>.pt``, is written with the
starting weights before training starts and replaced, atomically, by every
new best epoch, so closing napari at any moment (even in the first epoch)
leaves the best model so far whole on disk.

When training ends with an epoch better than the start, the new model becomes
the session's model and the chosen image is predicted again (see
:mod:`napari_unet.gui._repredict`): its probability layer is refreshed, its
mask layer too unless a person corrected it (then the new mask goes to a new
layer), and the Dice before and after is shown against the image's
ground-truth layer (``"<image> ground truth"``) or, failing that, its
accepted masks.  When no epoch beat the start, the session keeps its model.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Generator
from dataclasses import fields, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.layers import Image, Labels
from napari.utils import progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_unet.core.errors import InputError
from napari_unet.core.events import EpochEnd, Notice, Progress
from napari_unet.gui._animations import restore_animations, slow_animations
from napari_unet.gui._layers import LayerCombo, layer_array
from napari_unet.gui._repredict import Repredictor, guess_image_layer
from napari_unet.gui._training_files import start_autosave
from napari_unet.gui.live_plot import LivePlot
from napari_unet.gui.session import get_session
from napari_unet.gui.workers import start_generator, stop

if TYPE_CHECKING:
    import napari
    from napari.qt.threading import GeneratorWorker

    from napari_unet.core.training import FineTuneResult, TrainingState

MODEL_FILTER = "napari-unet models (*.pt);;All files (*)"
STEP_TEXT_INTERVAL_S = 1.0
LOSS_COLOR, DICE_COLOR = "#ffb74d", "#4fc3f7"
#: Speed (percent) of napari's "in progress" animation while training; see
#: :func:`~napari_unet.gui._animations.slow_animations`.
SPINNER_SPEED_PERCENT = 10
#: Delay of the progress-bar update after an epoch's plot update, in ms.
BAR_DELAY_MS = 50
#: The progress bar counts thousandths of the run (epochs or time budget).
BAR_STEPS = 1000
#: Whether "Keep what the default model knows" starts checked
#: (benchmarks/results/generalisation.md).
REPLAY_BY_DEFAULT = True
_AUGMENT_LABELS = {
    "flips": "flips",
    "rot90": "90° rotations",
    "elastic": "elastic",
    "intensity": "gamma / brightness / contrast",
    "noise": "noise",
    "blur": "blur (defocus)",
    "scale": "zoom 0.5-2x",
}


def _train_and_save(
    gen: Generator, state: TrainingState, path: Path
) -> Generator[Any, None, FineTuneResult]:
    """Pass ``fine_tune``'s events on and save every new best model (in the worker).

    Saving here, in the worker thread, keeps the file writes off the event
    loop and never races the training: the best copy only changes inside
    ``fine_tune``, between two of its yields.
    """
    from napari_unet.core.model import save_model

    try:
        while True:
            try:
                event = next(gen)
            except StopIteration as done:
                result = done.value
                break
            if isinstance(event, EpochEnd) and event.best_epoch == event.epoch:
                save_model(state.model, path)
            yield event
        # Once more at the end: the same best weights, now with the full history
        # (stop reason, last epochs) in the file.
        save_model(result.model, path)
        return result
    finally:
        gen.close()


class FineTuneWidget(QWidget):
    """Fine-tune the session's model on the accepted training pairs.

    Parameters
    ----------
    napari_viewer
        The viewer whose session is trained.

    Attributes
    ----------
    worker : GeneratorWorker or None
        The running fine-tune, if any.
    result : FineTuneResult or None
        The last finished fine-tune.
    saved_path : pathlib.Path or None
        Where the last fine-tuned model was saved automatically.
    dice_before, dice_after : float
        Dice of the re-predicted image before and after (NaN when unknown).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        from napari_unet.core import training
        from napari_unet.core.augment import AugmentConfig
        from napari_unet.core.losses import LOSSES

        super().__init__()
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)
        self.worker: GeneratorWorker | None = None
        self.result: FineTuneResult | None = None
        self.saved_path: Path | None = None
        self.dice_before = math.nan
        self.dice_after = math.nan
        self.notice = ""
        self._stop = threading.Event()
        self._state: TrainingState | None = None
        self._progress: progress | None = None
        self._last_step_text = -math.inf
        self._spinners: list = []
        self._start_model: Any | None = None
        self._target_image = ""
        self._n_pairs = 0
        self._replay: tuple[list, list] | None = None
        self.repredictor = Repredictor(napari_viewer, self.session, self._on_repredicted)

        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(0, 10_000)
        self.epochs_spin.setSpecialValueText("until the time budget is used")
        self.epochs_spin.setValue(training.DEFAULT_EPOCHS)
        self.minutes_spin = QDoubleSpinBox()
        self.minutes_spin.setRange(0.0, 24 * 60.0)
        self.minutes_spin.setDecimals(1)
        self.minutes_spin.setSingleStep(0.5)
        self.minutes_spin.setSpecialValueText("no limit")
        self.minutes_spin.setSuffix(" min")
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setRange(1e-6, 1.0)
        self.lr_spin.setDecimals(6)
        self.lr_spin.setSingleStep(1e-4)
        self.lr_spin.setValue(training.DEFAULT_FINE_TUNE_LR)
        self.loss_combo = QComboBox()
        for name, description in LOSSES.items():
            self.loss_combo.addItem(name, name)
            self.loss_combo.setItemData(self.loss_combo.count() - 1, description, 3)  # tooltip
        self.loss_combo.setCurrentIndex(max(0, self.loss_combo.findData("default")))
        self.val_spin = QDoubleSpinBox()
        self.val_spin.setRange(0.0, 0.9)
        self.val_spin.setSingleStep(0.05)
        self.val_spin.setValue(training.DEFAULT_VAL_FRACTION)
        self.patch_spin = QSpinBox()
        self.patch_spin.setRange(16, 2048)
        self.patch_spin.setSingleStep(16)
        self.patch_spin.setSuffix(" px")
        self.patch_spin.setValue(training.DEFAULT_PATCH_SIZE)
        self.augment_checks: dict[str, QCheckBox] = {}
        augment_box = QGroupBox("Augmentation")
        grid = QGridLayout(augment_box)
        for f in fields(AugmentConfig):
            if isinstance(f.default, bool):
                check = QCheckBox(_AUGMENT_LABELS.get(f.name, f.name.replace("_", " ")))
                check.setChecked(f.default)
                grid.addWidget(check, len(self.augment_checks) // 2, len(self.augment_checks) % 2)
                self.augment_checks[f.name] = check

        self.image_combo = LayerCombo(napari_viewer, Image, self)
        self.roi_check = QCheckBox("Patch centres inside")
        self.roi_check.setToolTip(
            "Train on patches centred inside this Labels layer (for example a lung mask "
            "for nodules); pairs of another size use the whole image"
        )
        self.roi_combo = LayerCombo(napari_viewer, Labels, self)
        roi_row = QHBoxLayout()
        roi_row.addWidget(self.roi_check)
        roi_row.addWidget(self.roi_combo, 1)
        self.replay_check = QCheckBox("Keep what the default model knows")
        self.replay_check.setToolTip(
            "Mix patches of 16 images the shipped model was trained on (fluorescence, "
            "brightfield, H&E) into every batch, a quarter of them, so that fine-tuning on "
            "a few images does not make the model forget the rest"
        )
        self.replay_check.setChecked(REPLAY_BY_DEFAULT)
        self.repredict_check = QCheckBox("Predict this image again when done")
        self.repredict_check.setChecked(True)
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.save_button = QPushButton("Save model...")
        self.count_label = QLabel()
        # Dice differences between epochs are often in the third decimal: the
        # axis zooms to the values (within [0, 1]) instead of showing 0 to 1.
        self.plot = LivePlot(
            "epoch",
            "train loss",
            right_ylabel="validation Dice",
            right_ylim=(0.0, 1.0),
            zoom_right=True,
        )
        self.plot.color_ylabels(LOSS_COLOR, DICE_COLOR)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.dice_label = QLabel()
        self.dice_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Time budget", self.minutes_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Loss", self.loss_combo)
        form.addRow("Validation share", self.val_spin)
        form.addRow("Patch size", self.patch_spin)
        form.addRow("Region of interest", roi_row)
        form.addRow(self.replay_check)
        form.addRow("Image", self.image_combo)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.stop_button, self.save_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.count_label)
        layout.addLayout(form)
        layout.addWidget(augment_box)
        layout.addWidget(self.repredict_check)
        layout.addLayout(buttons)
        layout.addWidget(self.plot)
        layout.addWidget(self.status)
        layout.addWidget(self.dice_label)

        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.request_stop)
        self.save_button.clicked.connect(self._save_dialog)
        self.session.training_set_changed.connect(self._show_count)
        self.session.busy_changed.connect(self._update_enabled)
        self.session.prediction_changed.connect(self._guess_image)
        napari_viewer.layers.events.inserted.connect(self._guess_image)
        # A widget torn down mid-run (napari closing) stops the training at
        # the next step; the best model so far is already on disk.
        stop_event = self._stop  # not self: the slot must outlive the widget
        self.destroyed.connect(lambda *_: stop_event.set())
        self._guess_image()
        self._show_count()

    # -------------------------------------------------------------- state
    def _show_count(self, *_: Any) -> None:
        n = len(self.session.training_set)
        self.count_label.setText(
            f"Training set: {_plural(n, 'accepted pair')}"
            if n
            else "Training set: empty; correct a mask and press Accept first."
        )

    def _guess_image(self, *_: Any) -> None:
        layer = guess_image_layer(self.viewer, self.session, self.image_combo.layer())
        if layer is not None:
            self.image_combo.set_layer(layer)

    def _update_enabled(self, *_: Any) -> None:
        running = self.worker is not None
        self.start_button.setEnabled(not running and not self.session.busy)
        self.stop_button.setEnabled(running and not self._stop.is_set())
        self.save_button.setEnabled(not running)

    def settings(self) -> dict[str, Any]:
        """Return the ``fine_tune`` keyword arguments the controls describe."""
        from napari_unet.core.augment import AugmentConfig

        switches = {name: check.isChecked() for name, check in self.augment_checks.items()}
        minutes = self.minutes_spin.value()
        return {
            "epochs": self.epochs_spin.value() or None,
            "max_minutes": minutes if minutes > 0 else None,
            "lr": self.lr_spin.value(),
            "loss": self.loss_combo.currentData(),
            "val_fraction": self.val_spin.value(),
            "patch_size": self.patch_spin.value(),
            "augment": replace(AugmentConfig(), **switches),
            "device": self.session.device,
            "replay": self.replay_set() if self.replay_check.isChecked() else None,
        }

    def replay_set(self) -> tuple[list, list] | None:
        """Return the shipped replay set (read once per widget), or None if it is missing."""
        if self._replay is None:
            from napari_unet.core.replay import load_replay

            try:
                self._replay = load_replay("default")
            except InputError as exc:
                show_error(f"Fine-tune: {exc}; training without replay.")
                return None
        return self._replay

    def roi_arrays(self, pairs: list) -> list | None:
        """Return the ROI mask for each pair (``None`` where it does not fit), or ``None``.

        The chosen Labels layer applies to the pairs of its own size.
        """
        layer = self.roi_combo.layer() if self.roi_check.isChecked() else None
        if layer is None:
            return None
        roi = layer_array(layer) > 0
        return [roi if roi.shape == pair.mask.shape else None for pair in pairs]

    def autosave_path(self) -> Path:
        """Return a new file name for this run's model in the training folder."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path(self.session.training_dir).expanduser() / "models" / f"fine-tuned-{stamp}.pt"

    # ------------------------------------------------------------ training
    def start(self) -> GeneratorWorker | None:
        """Start fine-tuning on the session's accepted pairs.

        Returns
        -------
        GeneratorWorker or None
            The started worker, or None when nothing started (a notification
            says why).
        """
        from napari_unet.core.training import TrainingState, fine_tune

        if self.worker is not None or self.session.busy:
            show_info("Fine-tune: other work is running; wait for it to finish.")
            return None
        pairs = list(self.session.training_set)
        if not pairs:
            show_error(
                "Fine-tune: the training set is empty; correct a mask and press Accept "
                "in 'Correct masks' first."
            )
            return None
        try:
            start_model = self.session.get_model()
        except InputError as exc:
            show_error(f"Fine-tune: {exc}")
            return None
        settings = self.settings()
        if settings["epochs"] is None and settings["max_minutes"] is None:
            show_error("Fine-tune: set a number of epochs or a time budget.")
            return None
        path = self.autosave_path()
        try:
            # Here, not in the worker: when this returns, a loadable model is on
            # disk, whenever napari is closed (a closing napari ends the process
            # and the training thread with it).
            start_autosave(start_model, path)
        except OSError as exc:
            show_error(
                f"Fine-tune: cannot write to {path.parent} ({exc.strerror or exc}); "
                "choose another training folder in 'Correct masks'."
            )
            return None
        self._stop.clear()
        self._state = TrainingState()
        gen = fine_tune(
            start_model,
            [p.image.copy() for p in pairs],
            [p.mask.copy() for p in pairs],
            rois=self.roi_arrays(pairs),
            **settings,
            should_stop=self._stop.is_set,
            state=self._state,
        )
        self._start_model = start_model
        self._target_image = (
            self.image_combo.currentText() if self.repredict_check.isChecked() else ""
        )
        self.saved_path = path
        self._n_pairs = len(pairs)
        self.result = None
        self.notice = ""
        self.dice_before = self.dice_after = math.nan
        self.plot.clear_curves()
        self.dice_label.setText("")
        # Built in the next event-loop turn: creating napari's bar repaints the
        # window, and doing it inside this click would add to one long stall.
        QTimer.singleShot(0, self._open_bar)
        self._spinners = slow_animations(SPINNER_SPEED_PERCENT)
        self.status.setText(f"Fine-tuning on {_plural(len(pairs), 'pair')}...")
        self.session.begin_work()
        self.worker = start_generator(
            _train_and_save(gen, self._state, path),
            on_yield=self._on_event,
            on_return=self._on_trained,
            on_error=self._on_error,
            on_finish=self._on_finish,
        )
        self._update_enabled()
        return self.worker

    def request_stop(self) -> None:
        """Stop at the next training step and keep the best weights so far."""
        if self.worker is None:
            return
        self._stop.set()
        self.status.setText("Stopping after the current step; the best weights are kept...")
        self._update_enabled()

    def abort(self) -> None:
        """Abandon the run without a result (the autosaved best model stays on disk)."""
        self._stop.set()
        stop(self.worker)

    def _on_event(self, event: Any) -> None:
        bar = self._progress
        if isinstance(event, Notice):
            self.notice = event.message
            self.status.setText(f"Note: {event.message[0].upper()}{event.message[1:]}.")
            show_info(f"Fine-tune: {event.message}.")
            return
        if isinstance(event, Progress):
            # napari's progress bar processes events and repaints the window on
            # every change; a few updates a second keep it alive at little cost.
            now = time.perf_counter()
            if bar is not None and now - self._last_step_text >= STEP_TEXT_INTERVAL_S:
                self._last_step_text = now
                bar.set_description(f"Fine-tune: {event.message}")
            return
        if not isinstance(event, EpochEnd):
            return
        self.plot.append("train loss", event.epoch, event.train_loss, color=LOSS_COLOR, style="-o")
        if not math.isnan(event.val_dice):
            self.plot.append(
                "validation Dice",
                event.epoch,
                event.val_dice,
                right=True,
                color=DICE_COLOR,
                style="-o",
            )
        if event.best_epoch > 0:
            self.plot.set_marker("best", event.best_epoch, color="#81c784")
        left = "" if event.eta_s is None else f", about {_duration(event.eta_s)} left"
        best = "" if math.isnan(event.best_dice) else f", best Dice {event.best_dice:.3f}"
        text = f"{event.epoch_text}, loss {event.train_loss:.4f}{best}{left}"
        if self.notice:
            text += f" (best by training loss: {self.notice.split(':')[0]})"
        self.status.setText(text)
        # napari's bar processes pending events when it changes, which would run
        # the plot's scheduled redraw inside the same stall; a later turn of the
        # event loop keeps the two apart.
        done = round(BAR_STEPS * event.done)
        QTimer.singleShot(BAR_DELAY_MS, lambda: self._advance_bar(text, done))

    def _open_bar(self) -> None:
        if self.worker is not None and self._progress is None:
            self._progress = progress(total=BAR_STEPS, desc="Fine-tune")

    def _advance_bar(self, text: str, done: int) -> None:
        bar = self._progress
        if bar is None:
            return
        bar.set_description(f"Fine-tune: {text}")
        # set_description processes events: the run may have finished meanwhile.
        if self._progress is bar and done > bar.n:
            bar.update(done - bar.n)

    def _on_trained(self, result: FineTuneResult) -> None:
        self.result = result
        self.session.history.append(
            {
                "run": len(self.session.history) + 1,
                "path": str(self.saved_path),
                "best_dice": result.best_dice,
                "best_epoch": result.best_epoch,
                "stop_reason": result.stop_reason,
            }
        )
        if result.best_epoch == 0:
            # The starting weights won: the session keeps its model and its
            # name, and there is nothing new to predict.
            why = (
                "no epoch beat the starting model on validation"
                if result.history
                else "no epoch finished"
            )
            self.status.setText(
                f"Done, {result.stop_message}: {why}, so the model is unchanged; correct "
                f"more images or train longer. (Its copy is in {self.saved_path}.)"
            )
            return
        label = f"fine-tuned ({_plural(self._n_pairs, 'pair')}"
        if not math.isnan(result.best_dice):
            label += f", validation Dice {result.best_dice:.3f}"
        label += ")"
        self.session.set_model(result.model, label)
        by = " (lowest training loss)" if result.selected_by == "training loss" else ""
        self.status.setText(
            f"Done, {result.stop_message}: kept epoch {result.best_epoch}{by}. "
            f"Saved to {self.saved_path}."
        )
        if self._target_image and self._target_image in self.viewer.layers:
            self.repredictor.start(self._target_image, self._start_model, result.model)

    def _on_error(self, exc: BaseException) -> None:
        self.status.setText(f"Error: {exc}")

    def _on_finish(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None and worker.abort_requested and self.result is None:
            self.status.setText(
                f"Fine-tuning abandoned; the best model so far is in {self.saved_path}."
            )
        gen = getattr(worker, "_napari_unet_gen", None)
        if gen is not None:
            gen.close()  # the thread is done: closing runs fine_tune's cleanup now
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        restore_animations(self._spinners)
        self._spinners = []
        self.session.end_work()
        self._update_enabled()

    def _on_repredicted(
        self, before: float, after: float, reference: str, mask_layer: str
    ) -> None:
        self.dice_before, self.dice_after = before, after
        if reference:
            self.dice_label.setText(
                f"Dice of '{mask_layer}' vs {reference}: before {before:.3f}, after {after:.3f}."
            )
        else:
            self.dice_label.setText(
                f"'{mask_layer}' predicted again; no ground truth or accepted mask to score it."
            )

    # --------------------------------------------------------------- save
    def save_to(self, path: str | Path) -> Path | None:
        """Save the session's model (the fine-tuned one after a run) to ``path``.

        Returns
        -------
        pathlib.Path or None
            The written file, or None on failure (a notification says why).
        """
        from napari_unet.core.model import save_model

        path = Path(path).expanduser()
        if path.suffix == "":
            path = path.with_suffix(".pt")
        try:
            written = save_model(self.session.get_model(), path)
        except OSError as exc:
            show_error(
                f"Save model: cannot write {path} ({exc.strerror or exc}); choose another place."
            )
            return None
        except InputError as exc:
            show_error(f"Save model: {exc}")
            return None
        show_info(f"Saved the model '{self.session.model_label}' to {written}.")
        return Path(written)

    def _save_dialog(self) -> None:
        start = str(self.saved_path or Path(self.session.training_dir).expanduser() / "model.pt")
        path, _ = QFileDialog.getSaveFileName(self, "Save model", start, MODEL_FILTER)
        if path:
            self.save_to(path)


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
