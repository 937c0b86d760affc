"""What a fine-tuning run reports: a live :class:`TrainingState`, a :class:`FineTuneResult`.

The state is consistent at every yield of :func:`~napari_unet.core.training.fine_tune`,
so a run closed mid-way (the GUI's Stop, Ctrl-C) still gives its best model;
:meth:`TrainingState.finish` is the one place that records why a run ended.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any

from napari_unet.core.events import StopReason, describe_stop
from napari_unet.core.model import UNet

if TYPE_CHECKING:
    import torch

    from napari_unet.core.training_config import FineTuneConfig
    from napari_unet.core.validation import PreparedData, ValidationScore


class SelectedBy(str, Enum):
    """What chose the best weights (the values are stored in model histories)."""

    VALIDATION_DICE = "validation Dice"
    TRAINING_LOSS = "training loss"


def json_float(value: float | None) -> float | None:
    """``None`` for NaN, so histories stay valid JSON."""
    return None if value is None or math.isnan(value) else float(value)


def run_record(
    config: FineTuneConfig,
    data: PreparedData,
    *,
    loss: str,
    patch_size: int,
    steps_per_epoch: int,
    device: torch.device,
    replay_images: int | None,
    selected_by: SelectedBy,
) -> dict[str, Any]:
    """Start the history entry of one run (its ``"epochs"`` list fills as it goes).

    Parameters
    ----------
    config
        The run's settings, resolved (:meth:`FineTuneConfig.resolved`).
    data
        The prepared training and validation data.
    loss, patch_size, steps_per_epoch, device
        What the run uses: loss name, patch side after rounding, steps per
        epoch and the device it trains on.
    replay_images
        Number of replayed images, or ``None`` without replay.
    selected_by
        What chooses the best weights.
    """
    return {
        "type": "fine_tune",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "loss": loss,
        "epochs_planned": config.epochs or None,
        "max_minutes": config.max_minutes,
        "lr": config.lr,
        "patch_size": patch_size,
        "batch_size": config.batch_size,
        "steps_per_epoch": int(steps_per_epoch),
        "foreground_fraction": config.foreground_fraction,
        "augment": None if config.augment is None else asdict(config.augment),
        "seed": config.seed,
        "device": str(device),
        "n_images": data.planes,
        "n_train_crops": len(data.train_images),
        "replay_images": replay_images or 0,
        "replay_fraction": config.replay_fraction if replay_images is not None else 0.0,
        "val_pixels": data.val.pixels,
        "val_foreground_pixels": data.val.foreground,
        "selected_by": selected_by.value,
        "config": config.to_record(),
        "epochs": [],
    }


def epoch_record(
    epoch: int,
    train_loss: float,
    score: ValidationScore,
    lr: float,
    elapsed: float,
    steps: int,
    *,
    partial: bool,
) -> dict[str, Any]:
    """Return the history entry of one epoch (``partial``: the epoch was cut short)."""
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        "val_dice": json_float(score.dice),
        "val_dice_per_image": [round(d, 4) for d in score.per_image],
        "val_predicted_pixels": score.predicted,
        "lr": lr,
        "elapsed_s": round(elapsed, 3),
        "steps": steps,
        "partial": partial,
    }


def improves(
    by_loss: bool, val_dice: float, train_loss: float, best_dice: float, best_loss: float
) -> bool:
    """Whether an epoch beats the best so far (by training loss, or by validation Dice)."""
    if by_loss:
        return train_loss < best_loss
    # Equal at zero (no overlap yet): the lower training loss is further along.
    return (
        math.isnan(best_dice)
        or val_dice > best_dice
        or (val_dice == best_dice == 0.0 and train_loss < best_loss)
    )


@dataclass
class FineTuneResult:
    """What :func:`fine_tune` returns.

    Attributes
    ----------
    model
        A new model (on the CPU, evaluation mode) holding the best weights;
        its ``history`` ends with this run's entry and its ``extra`` holds the
        validation split.
    history
        One dict per epoch: ``epoch``, ``train_loss``, ``val_dice``, ``lr``,
        ``elapsed_s``, ``steps`` and ``partial`` (epoch cut short).
    best_dice
        Best validation Dice (the input model's own Dice when no epoch beat
        it; NaN without a validation set).
    best_epoch
        Epoch of the best weights; 0 means the input weights were kept.
    stopped_early
        True when training ended before the planned epochs (early stopping,
        time budget, ``should_stop``, a non-finite loss or the generator
        being closed).
    stop_reason
        A :class:`~napari_unet.core.events.StopReason`: ``"epochs"``,
        ``"early_stopping"``, ``"time_budget"``, ``"stopped"``,
        ``"interrupted"`` or ``"non_finite"`` (the loss was NaN or infinite
        at the last step of an epoch).
    initial_dice
        Validation Dice of the input model before any training step.
    stop_message
        Why it stopped, in words ("time budget of 10 min used").
    selected_by
        A :class:`SelectedBy`: ``"validation Dice"``, or ``"training loss"``
        when the validation set holds no foreground (or there is none).
    """

    model: UNet
    history: list[dict]
    best_dice: float
    best_epoch: int
    stopped_early: bool
    stop_reason: StopReason = StopReason.EPOCHS
    initial_dice: float = math.nan
    stop_message: str = ""
    selected_by: SelectedBy = SelectedBy.VALIDATION_DICE


@dataclass
class TrainingState:
    """Live view of a running :func:`fine_tune`, consistent at every yield.

    Create one, pass it as ``state=`` and keep a reference: if the generator
    is closed (or raises) mid-run, :meth:`result` still returns the best model
    so far.

    Attributes
    ----------
    model
        Copy of the model holding the best weights so far (``None`` until
        the run has started).
    history, best_dice, best_epoch, stopped_early, stop_reason, initial_dice,
    stop_message, selected_by
        As in :class:`FineTuneResult`.
    working
        The copy being trained (on the training device), while the run goes
        on: its weights change with every step, so read it only between
        yields, on its own device (every epoch puts it back in training
        mode).  ``None`` once the run ends.
    epoch, step
        Last completed epoch and global training step.
    finished
        True once the run has ended, in any way.
    """

    model: UNet | None = None
    history: list[dict] = field(default_factory=list)
    best_dice: float = math.nan
    best_epoch: int = 0
    stopped_early: bool = False
    stop_reason: StopReason | None = None
    initial_dice: float = math.nan
    stop_message: str = ""
    selected_by: SelectedBy = SelectedBy.VALIDATION_DICE
    working: UNet | None = None
    epoch: int = 0
    step: int = 0
    finished: bool = False

    def result(self) -> FineTuneResult:
        """Return the best model so far and its history.

        Raises
        ------
        RuntimeError
            If the run never started (no model yet).
        """
        if self.model is None:
            raise RuntimeError("fine-tuning has not started: there is no model yet")
        reason = StopReason(self.stop_reason or StopReason.INTERRUPTED)
        return FineTuneResult(
            self.model,
            list(self.history),
            self.best_dice,
            self.best_epoch,
            self.stopped_early,
            reason,
            self.initial_dice,
            self.stop_message or describe_stop(reason),
            SelectedBy(self.selected_by),
        )

    def finish(
        self,
        run: dict[str, Any],
        reason: StopReason,
        *,
        elapsed: float,
        budget_s: float | None = None,
        plateau_s: float | None = None,
        patience: int = 0,
    ) -> FineTuneResult:
        """End the run for ``reason``: record why in ``run`` and return the result.

        Parameters
        ----------
        run
            The run's history entry; gets the stop reason and message, the
            best Dice and epoch and the elapsed time.
        reason
            Why the run ended.
        elapsed
            Seconds since the run started.
        budget_s, plateau_s, patience
            The time budget, the plateau that ended the run (seconds, with a
            time budget) and the patience in epochs, for the message.
        """
        self.stop_reason = reason
        self.stopped_early = reason is not StopReason.EPOCHS
        self.stop_message = describe_stop(
            reason, epochs=self.epoch, budget_s=budget_s, plateau_s=plateau_s, patience=patience
        )
        run.update(
            stop_reason=reason.value,
            stop_message=self.stop_message,
            best_dice=json_float(self.best_dice),
            best_epoch=self.best_epoch,
            elapsed_s=round(elapsed, 2),
        )
        self.finished, self.working = True, None
        return self.result()
