"""One session per viewer: the active model, the device, the training set, the history.

Every widget asks :func:`get_session` for the session of its viewer, so the
widgets share state when docked together and each still works alone.  Images,
probability maps and masks live in napari layers, never here.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal

# Sessions are keyed weakly by viewer so that closing a viewer frees its
# session (and its model) with it.
_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class TrainingPair:
    """An accepted image and its corrected mask (2D, same shape)."""

    name: str
    image: np.ndarray
    mask: np.ndarray
    effort_dice: float = float("nan")  # Dice(model mask, accepted mask)
    path: Path | None = None  # where it was saved on disk


@dataclass
class PredictionRecord:
    """What Segment produced for one image layer.

    ``prob`` is the cached probability map the threshold slider reads;
    ``model_mask`` is the mask as the model gave it (before any correction),
    used to measure the correction effort at Accept.
    """

    image_layer: str
    prob_layer: str
    mask_layer: str
    prob: np.ndarray
    model_mask: np.ndarray | None = None
    corrected: bool = False  # set once a person edits the mask layer
    # How the mask layer was last written from ``prob`` (a MaskSettings from
    # gui/_mask_tracker.py); whoever writes the mask layer sets it, so the
    # model's mask can be rebuilt exactly when a person starts to edit.
    settings: Any | None = None
    # Rim probabilities of a two-output model (None for one output): they
    # split touching objects when Segment shows separate labels.
    boundary: np.ndarray | None = None


class Session:
    """Shared state of the napari-unet widgets for one viewer.

    Signals
    -------
    model_changed(str)
        The active model changed; carries its display label.
    training_set_changed(int)
        The number of accepted training pairs.
    threshold_changed(float)
        The Segment threshold moved (the Dice widget follows it).
    prediction_changed(str)
        Segment produced or refreshed the mask layer of that name.
    busy_changed(bool)
        Long work started or ended (widgets disable their buttons).
    """

    model_changed = Signal(str)
    training_set_changed = Signal(int)
    threshold_changed = Signal(float)
    prediction_changed = Signal(str)
    busy_changed = Signal(bool)

    def __init__(self) -> None:
        self.model: Any | None = None  # torch.nn.Module, loaded lazily
        self.model_label: str = "default"
        self.device: str = "auto"
        self.threshold: float = 0.5
        self.training_set: list[TrainingPair] = []
        self.training_dir: Path = Path.home() / "napari-unet" / "training-set"
        self.history: list[dict] = []  # one entry per fine-tune run
        self.predictions: dict[str, PredictionRecord] = {}  # keyed by mask layer name
        self._busy = 0

    def set_model(self, model: Any, label: str) -> None:
        """Make ``model`` the active model and tell the widgets."""
        self.model = model
        self.model_label = label
        self.model_changed.emit(label)

    def get_model(self) -> Any:
        """Return the active model, loading the shipped default on first use."""
        if self.model is None:
            from napari_unet.core.model import load_model

            self.set_model(load_model("default"), "default")
        return self.model

    def latest_prediction(self, image: str, layers: Any) -> PredictionRecord | None:
        """Return the newest prediction of ``image`` whose mask layer is in ``layers``."""
        for record in reversed(list(self.predictions.values())):
            if record.image_layer == image and record.mask_layer in layers:
                return record
        return None

    def set_threshold(self, value: float) -> None:
        """Record the Segment threshold and tell the widgets that follow it."""
        self.threshold = float(value)
        self.threshold_changed.emit(self.threshold)

    @property
    def busy(self) -> bool:
        """Whether a prediction or a fine-tune is running."""
        return self._busy > 0

    def begin_work(self) -> None:
        """Mark the start of long work."""
        self._busy += 1
        self.busy_changed.emit(True)

    def end_work(self) -> None:
        """Mark the end of long work."""
        self._busy = max(0, self._busy - 1)
        self.busy_changed.emit(self.busy)


def get_session(viewer: Any) -> Session:
    """Return the session of ``viewer``, creating it on first use."""
    # napari hands each dock widget its own PublicOnlyProxy of the viewer; key
    # by the viewer itself so the session lives as long as the viewer, not as
    # long as whichever widget asked first.
    viewer = getattr(viewer, "__wrapped__", viewer)
    session = _SESSIONS.get(viewer)
    if session is None:
        session = Session()
        _SESSIONS[viewer] = session
    return session
