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
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_unet.core.errors import InputError
from napari_unet.gui._animations import restore_animations, slow_animations
from napari_unet.gui._finetune_form import FineTuneForm
from napari_unet.gui._finetune_progress import TrainingProgress, train_and_save
from napari_unet.gui._repredict import Repredictor, guess_image_layer
from napari_unet.gui._text import plural
from napari_unet.gui._training_files import start_autosave
from napari_unet.gui.session import get_session
from napari_unet.gui.workers import start_generator, stop

if TYPE_CHECKING:
    import napari
    from napari.qt.threading import GeneratorWorker

    from napari_unet.core.training import FineTuneResult, TrainingState

MODEL_FILTER = "napari-unet models (*.pt);;All files (*)"
#: Speed (percent) of napari's "in progress" animation while training; see
#: :func:`~napari_unet.gui._animations.slow_animations`.
SPINNER_SPEED_PERCENT = 10


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
        super().__init__()
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)
        self.worker: GeneratorWorker | None = None
        self.result: FineTuneResult | None = None
        self.saved_path: Path | None = None
        self.dice_before = math.nan
        self.dice_after = math.nan
        self._stop = threading.Event()
        self._state: TrainingState | None = None
        self._spinners: list = []
        self._start_model: Any | None = None
        self._target_image = ""
        self._n_pairs = 0
        self.repredictor = Repredictor(napari_viewer, self.session, self._on_repredicted, self)

        self.form = FineTuneForm(napari_viewer, self)
        # The form's controls, here too: scripts and tests set them on the widget.
        form = self.form
        self.epochs_spin, self.minutes_spin, self.lr_spin = (
            form.epochs_spin,
            form.minutes_spin,
            form.lr_spin,
        )
        self.loss_combo, self.val_spin, self.patch_spin = (
            form.loss_combo,
            form.val_spin,
            form.patch_spin,
        )
        self.augment_checks, self.image_combo = form.augment_checks, form.image_combo
        self.roi_check, self.roi_combo, self.replay_check = (
            form.roi_check,
            form.roi_combo,
            form.replay_check,
        )
        self.pseudo_check = form.pseudo_check
        self.repredict_check = QCheckBox("Predict this image again when done")
        self.repredict_check.setChecked(True)
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.save_button = QPushButton("Save model...")
        self.count_label = QLabel()
        self.count_label.setWordWrap(True)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.run_view = TrainingProgress(self.status)
        self.plot = self.run_view.plot
        self.dice_label = QLabel()
        self.dice_label.setWordWrap(True)

        buttons = QHBoxLayout()
        for button in (self.start_button, self.stop_button, self.save_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.count_label)
        layout.addWidget(self.form)
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
        form.arch_option.follow(self.session)
        self.session.prediction_added.connect(self._guess_image)
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
        self.form.follow_training_set(self.session.training_set)
        self.count_label.setText(
            f"Training set: {plural(n, 'accepted pair')}"
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

    @property
    def notice(self) -> str:
        """The last note of the run ("" when none)."""
        return self.run_view.notice

    def settings(self) -> Any:
        """Return the :class:`~napari_unet.core.training_config.FineTuneConfig` shown."""
        return self.form.settings(self.session.device)

    def replay_set(self) -> tuple[list, list] | None:
        """Return the shipped replay set (read once per widget), or None if it is missing."""
        return self.form.replay_set()

    def roi_arrays(self, pairs: list) -> list | None:
        """Return the ROI mask for each pair (``None`` where it does not fit), or ``None``."""
        return self.form.roi_arrays(pairs)

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
            if self.form.arch_option.new_network():
                start_model = self.form.arch_option.new_model(start_model)
        except InputError as exc:
            show_error(f"Fine-tune: {exc}")
            return None
        try:
            config = self.settings()
        except InputError as exc:
            show_error(f"Fine-tune: {exc}")
            return None
        if config.epochs is None and config.max_minutes is None:
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
            config,
            rois=self.roi_arrays(pairs),
            replay=self.form.replay(),
            unlabelled=self.pseudo_check.unlabelled(pairs),
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
        self.dice_before = self.dice_after = math.nan
        self.run_view.reset()
        self.dice_label.setText("")
        # Built in the next event-loop turn: creating napari's bar repaints the
        # window, and doing it inside this click would add to one long stall.
        QTimer.singleShot(0, self._open_bar)
        self._spinners = slow_animations(SPINNER_SPEED_PERCENT)
        self.status.setText(f"Fine-tuning on {plural(len(pairs), 'pair')}...")
        self.session.begin_work()
        self.worker = start_generator(
            train_and_save(gen, self._state, path),
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
        self.run_view.on_event(event)

    def _open_bar(self) -> None:
        if self.worker is not None:
            self.run_view.open_bar()

    def _on_trained(self, result: FineTuneResult) -> None:
        self.result = result
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
        label = f"fine-tuned ({plural(self._n_pairs, 'pair')}"
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
        self.run_view.close()
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
