"""A fine-tune in progress: save every new best model, show the epochs on the plot and the bar."""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils import progress
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QLabel

from napari_unet.core.events import EpochEnd, Notice, Progress
from napari_unet.gui.live_plot import LivePlot

if TYPE_CHECKING:
    from napari_unet.core.training import FineTuneResult, TrainingState

STEP_TEXT_INTERVAL_S = 1.0
LOSS_COLOR, DICE_COLOR = "#ffb74d", "#4fc3f7"
#: Delay of the progress-bar update after an epoch's plot update, in ms.
BAR_DELAY_MS = 50
#: The progress bar counts thousandths of the run (epochs or time budget).
BAR_STEPS = 1000


def train_and_save(
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


class TrainingProgress:
    """Show a fine-tune's events: loss and Dice curves, a status line, napari's progress bar.

    Parameters
    ----------
    status
        The label the epoch summaries and notes go to.

    Attributes
    ----------
    plot : LivePlot
        Training loss and validation Dice per epoch.
    notice : str
        The last note of the run ("" when none).
    """

    def __init__(self, status: QLabel) -> None:
        self.status = status
        self.notice = ""
        self._bar: progress | None = None
        self._last_step_text = -math.inf
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

    def reset(self) -> None:
        """Forget the last run's curves and note."""
        self.notice = ""
        self.plot.clear_curves()

    def open_bar(self) -> None:
        """Show napari's progress bar (once per run)."""
        if self._bar is None:
            self._bar = progress(total=BAR_STEPS, desc="Fine-tune")

    def close(self) -> None:
        """Close the progress bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_event(self, event: Any) -> None:
        """Show one event of ``fine_tune`` (a note, a training step or an epoch's end)."""
        bar = self._bar
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
        if isinstance(event, EpochEnd):
            self._on_epoch(event)

    def _on_epoch(self, event: EpochEnd) -> None:
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
        left = "" if event.eta_s is None else f", about {duration(event.eta_s)} left"
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

    def _advance_bar(self, text: str, done: int) -> None:
        bar = self._bar
        if bar is None:
            return
        bar.set_description(f"Fine-tune: {text}")
        # set_description processes events: the run may have finished meanwhile.
        if self._bar is bar and done > bar.n:
            bar.update(done - bar.n)


def duration(seconds: float) -> str:
    """Say ``seconds`` as "42 s" or "3 min 05 s"."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"
