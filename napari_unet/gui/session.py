"""One session per viewer: the active model, the device, the training set, the predictions.

Every widget asks :func:`get_session` for the session of its viewer, so the
widgets share state when docked together and each still works alone.  Images,
probability maps and masks live in napari layers, never here.

The session owns its behaviour: widgets call its methods (``add_prediction``,
``accept_pair``, ``set_model``, ...) and listen to its signals; they never
change its containers or emit its signals themselves.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from psygnal import Signal

from napari_unet.gui._gc import keep_collections_short

# Re-exported: the record lived here before gui/predictions.py held it.
from napari_unet.gui.predictions import PredictionRecord

__all__ = ["PredictionRecord", "Session", "TrainingPair", "get_session", "pair_name"]

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
    z: int | None = None  # the slice of a stack it is, or None for a 2D image


def pair_name(image_layer: str, z: int | None = None) -> str:
    """Name of the training pair of an image layer, or of its slice ``z``."""
    return image_layer if z is None else f"{image_layer} z{z:03d}"


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
    prediction_added(str)
        A prediction made a new mask layer of that name (widgets that pick
        the newest mask follow this one).
    prediction_changed(str)
        The mask layer of that name was written from its probabilities: after
        ``prediction_added``, and again on every rewrite (a new Run, a move of
        the threshold slider).
    busy_changed(bool)
        Long work started or ended (widgets disable their buttons).
    """

    model_changed = Signal(str)
    training_set_changed = Signal(int)
    threshold_changed = Signal(float)
    prediction_added = Signal(str)
    prediction_changed = Signal(str)
    busy_changed = Signal(bool)

    def __init__(self) -> None:
        self.model: Any | None = None  # torch.nn.Module, loaded lazily
        self.model_label: str = "default"
        self.device: str = "auto"
        self.threshold: float = 0.5
        # Read it; change it through accept_pair / accept_pairs.
        self.training_set: list[TrainingPair] = []
        self.training_dir: Path = Path.home() / "napari-unet" / "training-set"
        self._predictions: dict[str, PredictionRecord] = {}  # keyed by mask layer name
        self._busy = 0

    # ----------------------------------------------------------------- model
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

    def set_device(self, device: str) -> None:
        """Choose the device predictions and fine-tunes run on (``"auto"``, ``"cpu"``, ...)."""
        self.device = device

    def set_threshold(self, value: float) -> None:
        """Record the Segment threshold and tell the widgets that follow it."""
        self.threshold = float(value)
        self.threshold_changed.emit(self.threshold)

    # ----------------------------------------------------------- predictions
    @property
    def predictions(self) -> Mapping[str, PredictionRecord]:
        """The prediction records by mask layer name, oldest first (read-only)."""
        return MappingProxyType(self._predictions)

    def add_prediction(self, record: PredictionRecord) -> None:
        """Store the record of a new mask layer and announce it (``prediction_added``)."""
        self._predictions.pop(record.mask_layer, None)  # the newest goes last
        self._predictions[record.mask_layer] = record
        self.prediction_added.emit(record.mask_layer)

    def update_prediction(self, record: PredictionRecord) -> None:
        """Announce that the record's mask layer was written (``prediction_changed``)."""
        self.prediction_changed.emit(record.mask_layer)

    def rename_prediction(self, old: str, new: str) -> None:
        """Follow a mask layer renamed from ``old`` to ``new``."""
        record = self._predictions.pop(old, None)
        if record is not None:
            record.mask_layer = new
            self._predictions[new] = record

    def forget_removed(self, layers: Any) -> None:
        """Drop the records whose mask layer is no longer in ``layers`` (frees their maps)."""
        for name, record in list(self._predictions.items()):
            if record.mask_layer not in layers:
                del self._predictions[name]

    def latest_prediction(self, image: str, layers: Any) -> PredictionRecord | None:
        """Return the newest prediction of ``image`` whose mask layer is in ``layers``."""
        for record in reversed(list(self._predictions.values())):
            if record.image_layer == image and record.mask_layer in layers:
                return record
        return None

    def is_probability_layer(self, name: str) -> bool:
        """Whether layer ``name`` holds the probabilities of a prediction."""
        return any(record.prob_layer == name for record in self._predictions.values())

    # ---------------------------------------------------------- training set
    def set_training_dir(self, folder: str | Path) -> None:
        """Choose the folder accepted pairs (and fine-tuned models) are saved to."""
        self.training_dir = Path(folder).expanduser()

    def accept_pair(self, pair: TrainingPair) -> None:
        """Add ``pair`` to the training set (see :meth:`accept_pairs`)."""
        self.accept_pairs([pair])

    def accept_pairs(self, pairs: Iterable[TrainingPair]) -> None:
        """Add pairs; each replaces an earlier pair of the same name (image or slice).

        Emits ``training_set_changed`` once, with the new size.
        """
        for pair in pairs:
            self.replace_pair(pair)
        self.training_set_changed.emit(len(self.training_set))

    def replace_pair(self, pair: TrainingPair) -> None:
        """Store ``pair`` in place of the pair of the same name, or add it (no signal)."""
        for i, existing in enumerate(self.training_set):
            if existing.name == pair.name:
                self.training_set[i] = pair
                return
        self.training_set.append(pair)

    # ------------------------------------------------------------------ work
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
        layers = getattr(viewer, "layers", None)
        if layers is not None:
            # A deleted mask layer frees its cached probabilities, whichever
            # widgets are open.  A plain function: napari holds methods weakly.
            layers.events.removed.connect(lambda event=None: session.forget_removed(layers))
            # The plugin's first step in this viewer: before its widgets are built.
            keep_collections_short(viewer)
    return session
