"""Typed progress events yielded by the long-running core generators.

Prediction and fine-tuning are generators: they ``yield`` these small events
and ``return`` their result.  The GUI runs a generator in a napari thread
worker and reacts to each event; the command line and the tests run it to
completion with :func:`run_to_completion`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """Work done so far: ``step`` of ``total`` units, with a short message."""

    step: int
    total: int
    message: str = ""


@dataclass(frozen=True)
class EpochEnd:
    """End of one fine-tuning epoch.

    ``val_dice`` is NaN when there is no validation set; ``eta_s`` is the
    estimated time left in seconds (``None`` when unknown).
    """

    epoch: int
    epochs: int
    train_loss: float
    val_dice: float
    best_dice: float
    best_epoch: int
    elapsed_s: float
    lr: float
    eta_s: float | None = None
    done: float = 0.0
    """Share of the run done, in [0, 1]: the larger of epochs and time budget used."""

    @property
    def epoch_text(self) -> str:
        """``"epoch 3/20"``, or ``"epoch 3"`` when the time budget alone ends the run."""
        return f"epoch {self.epoch}/{self.epochs}" if self.epochs else f"epoch {self.epoch}"


@dataclass(frozen=True)
class Notice:
    """Something the user should know about a run, in one sentence."""

    message: str


class StopReason(str, Enum):
    """Why a fine-tuning run ended (the values are stored in model histories)."""

    EPOCHS = "epochs"
    TIME_BUDGET = "time_budget"
    PLATEAU = "early_stopping"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    NON_FINITE = "non_finite"


def _minutes(seconds: float) -> str:
    minutes = seconds / 60.0
    if minutes >= 1:
        return f"{minutes:.3g} min"
    return f"{seconds:.0f} s"


def describe_stop(
    reason: str,
    *,
    epochs: int = 0,
    budget_s: float | None = None,
    plateau_s: float | None = None,
    patience: int = 0,
) -> str:
    """Say in words why a run stopped, e.g. ``"time budget of 10 min used"``.

    Parameters
    ----------
    reason
        A :class:`StopReason` (or its value).
    epochs
        Epochs run (for ``EPOCHS``).
    budget_s
        The time budget in seconds (for ``TIME_BUDGET``).
    plateau_s, patience
        The plateau that ended the run: seconds (time budget set) or epochs.
    """
    reason = StopReason(reason)
    if reason is StopReason.EPOCHS:
        return f"all {epochs} epochs done" if epochs != 1 else "the 1 epoch done"
    if reason is StopReason.TIME_BUDGET:
        return f"time budget of {_minutes(budget_s or 0.0)} used"
    if reason is StopReason.PLATEAU:
        if plateau_s is not None:
            return f"no improvement for {_minutes(plateau_s)}"
        return f"no improvement for {patience} epochs"
    if reason is StopReason.STOPPED:
        return "stopped on request"
    if reason is StopReason.NON_FINITE:
        return (
            "the loss was not a finite number (training diverged): lower the learning "
            "rate or check the images for extreme pixel values"
        )
    return "interrupted"


def run_to_completion(
    gen: Generator[Any, None, T], on_event: Callable[[Any], None] | None = None
) -> T:
    """Drive a core generator to its end and return its result.

    Parameters
    ----------
    gen
        A generator that yields events and returns a value.
    on_event
        Called with each yielded event (for example to print progress).

    Returns
    -------
    T
        The generator's return value.
    """
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)


def relay(
    gen: Generator[Any, None, T],
    seen: set[str],
    progress: Callable[[Progress], Progress],
) -> Generator[Any, None, T]:
    """Pass on the events of one part of a longer job; return the part's result.

    Use as ``result = yield from relay(part, seen, progress)``.  Each
    :class:`Notice` text is passed on once over the whole job (``seen`` holds
    the texts already passed), each :class:`Progress` is mapped by
    ``progress`` (to count over the whole job), other events pass unchanged.
    """
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if isinstance(event, Notice):
            if event.message not in seen:
                seen.add(event.message)
                yield event
        elif isinstance(event, Progress):
            yield progress(event)
        else:
            yield event
