"""Segment's slow mask rewrites in a worker: at most one running, one waiting, the last wins.

``prob >= t`` written in place is fast at any size and stays on the main
thread.  Minimum object size, fill holes and separate labels cost up to a
second on a 4096x4096 image (label, fill and watershed-like passes in scipy),
so on large images they are computed in a worker and only the layer write
(``np.copyto`` into the layer's array and a refresh) is left to the main
thread.

The worker reads the record's probability and rim arrays without a copy: they
are never written in place (a new prediction replaces them with new arrays),
and the worker never sees a layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_unet.gui.workers import start_function

if TYPE_CHECKING:
    from napari_unet.gui.predictions import MaskSettings, PredictionRecord

#: Probability pixels (all slices) from which a mask that needs more than the
#: plain threshold is computed in a worker; smaller ones take a few ms.
WORKER_MIN_PIXELS = 1_000_000


def needs_worker(settings: MaskSettings, prob: np.ndarray) -> bool:
    """Whether making this mask is slow enough to leave the main thread."""
    extra = settings.min_size > 0 or settings.fill_holes or settings.separate
    return extra and prob.size > WORKER_MIN_PIXELS


@dataclass(frozen=True)
class MaskRequest:
    """One mask to compute: the record, the maps it had when asked, the settings."""

    record: PredictionRecord
    prob: np.ndarray
    boundary: np.ndarray | None
    settings: MaskSettings
    objects: np.ndarray | None = None

    def current(self) -> bool:
        """Whether the record still holds the maps this mask was computed from."""
        return self.record.prob is self.prob and self.record.boundary is self.boundary


class MaskJobs:
    """Compute masks in a worker, coalescing requests.

    Parameters
    ----------
    make_request
        Builds the request for a threshold from the controls and the session
        as they are when the computation starts (None: nothing to compute).
    write
        Writes a finished mask into its layer, on the main thread.
    """

    def __init__(
        self,
        make_request: Callable[[float], MaskRequest | None],
        write: Callable[[MaskRequest, np.ndarray], None],
    ) -> None:
        self._make_request = make_request
        self._write = write
        self.worker: Any | None = None
        self.waiting: float | None = None  # the latest threshold asked while one runs
        self._generation = 0  # bumped when a newer write makes the running one stale

    @property
    def running(self) -> bool:
        """Whether a computation is running."""
        return self.worker is not None

    def submit(self, value: float) -> None:
        """Compute the mask at ``value`` now, or after the running one (replacing any waiting)."""
        if self.worker is not None:
            self.waiting = value
            return
        self._start(value)

    def supersede(self) -> None:
        """Drop the waiting request and the running one's result (a newer mask was written)."""
        self.waiting = None
        self._generation += 1

    def _start(self, value: float) -> None:
        request = self._make_request(value)
        if request is None:
            return
        generation = self._generation
        result: list[np.ndarray] = []

        def compute() -> np.ndarray:
            return request.settings.render(
                request.prob, boundary=request.boundary, objects=request.objects
            )

        def finished() -> None:
            self.worker = None
            value_again = None
            if result and generation == self._generation:
                if request.current():
                    self._write(request, result[0])
                elif self.waiting is None:
                    value_again = value  # a new prediction came: redo it on the new maps
            waiting, self.waiting = self.waiting, None
            if waiting is None:
                waiting = value_again
            if waiting is not None:
                self._start(waiting)

        self.worker = start_function(compute, on_return=result.append, on_finish=finished)
