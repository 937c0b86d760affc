"""Typed progress events yielded by the long-running core generators.

Prediction and fine-tuning are generators: they ``yield`` these small events
and ``return`` their result.  The GUI runs a generator in a napari thread
worker and reacts to each event; the command line and the tests run it to
completion with :func:`run_to_completion`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
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


Event = Progress | EpochEnd


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
