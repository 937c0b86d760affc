"""The model combo of the Segment widget: shipped default, session model, files, ensembles.

The model the user segments with becomes the session's active model (what
Fine-tune starts from).  A model that arrives from elsewhere (a fine-tune) is
kept as the "session model" entry even after another one is chosen, so a
fine-tuned network is never lost by picking the default to compare.  Several
files chosen at once make an ensemble entry
(:class:`~napari_unet.core.ensemble.Ensemble`): Segment averages their maps;
the session keeps its model, since an ensemble is no one network to fine-tune.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_error
from qtpy.QtWidgets import QComboBox, QFileDialog, QWidget

from napari_unet.core.errors import InputError

DEFAULT = "default"
SESSION = "session"
FROM_FILE = "from file..."
#: Item data of an ensemble entry: this prefix, then the files' paths, one a line.
ENSEMBLE = "ensemble:"
MODEL_FILTER = "napari-unet models (*.pt);;All files (*)"


class ModelChoice:
    """A combo box of models and the models behind its entries.

    Parameters
    ----------
    session
        The viewer's session; its ``model_changed`` signal adds the session
        model entry.
    parent
        The widget that owns the combo (parent of the file dialog).
    """

    def __init__(self, session: Any, parent: QWidget) -> None:
        self.session = session
        self._parent = parent
        self._models: dict[str, Any] = {}  # "default" and file paths -> loaded model
        self._session_model: Any | None = None
        self._setting = False  # our own set_model calls are not "from elsewhere"
        self.combo = QComboBox(parent)
        self.combo.addItem("default (shipped)", DEFAULT)
        self.combo.addItem(FROM_FILE, FROM_FILE)
        self.combo.setItemData(1, "one .pt file, or several for an ensemble", 3)  # tooltip
        self._last_index = 0
        self.combo.activated.connect(self._on_activated)
        session.model_changed.connect(self._on_model_changed)
        if session.model is not None and session.model_label != DEFAULT:
            self._on_model_changed(session.model_label)

    def _on_activated(self, index: int) -> None:
        if self.combo.itemData(index) == FROM_FILE:
            loaded = False
            try:
                paths, _ = QFileDialog.getOpenFileNames(
                    self._parent, "Open a model (several: an ensemble)", "", MODEL_FILTER
                )
                loaded = bool(paths) and self.load_files(paths)
            finally:
                # Cancelled, refused or failed: the box goes back to the model
                # the next Run uses, never stays on "from file...".
                if not loaded:
                    self.combo.setCurrentIndex(self._last_index)
            return
        self._last_index = index

    def load_file(self, path: str | Path) -> bool:
        """Load a model file and select it; show a notification when it is not a model.

        A file that does not load leaves the choice as it was.

        Parameters
        ----------
        path
            A ``.pt`` file written by napari-unet.

        Returns
        -------
        bool
            Whether the model loaded.
        """
        from napari_unet.core.model import load_model

        key = str(Path(path).expanduser().resolve())
        try:
            self._models[key] = load_model(key)
        except InputError as exc:
            show_error(f"Segment: {exc}")
            return False
        index = self.combo.findData(key)
        if index < 0:
            index = self.combo.count() - 1  # before "from file..."
            self.combo.insertItem(index, f"file: {Path(key).name}", key)
            self.combo.setItemData(index, key, 3)  # tooltip: the full path
        self.combo.setCurrentIndex(index)
        self._last_index = index
        return True

    def load_files(self, paths: Sequence[str | Path]) -> bool:
        """Load one model file, or several as an ensemble, and select it.

        A file that does not load gives one notification and leaves the choice
        as it was (none of the files is used).

        Returns
        -------
        bool
            Whether every model loaded.
        """
        from napari_unet.core.ensemble import Ensemble
        from napari_unet.core.model import load_model

        keys = list(dict.fromkeys(str(Path(p).expanduser().resolve()) for p in paths))
        if len(keys) == 1:
            return self.load_file(keys[0])
        try:
            models = tuple(load_model(key) for key in keys)
        except InputError as exc:
            show_error(f"Segment: {exc}; the model in use is unchanged")
            return False
        key = ENSEMBLE + "\n".join(keys)
        self._models[key] = Ensemble(models)
        index = self.combo.findData(key)
        if index < 0:
            index = self.combo.count() - 1  # before "from file..."
            names = ", ".join(Path(k).name for k in keys)
            self.combo.insertItem(index, f"ensemble of {len(keys)}: {names}", key)
            self.combo.setItemData(index, "\n".join(keys), 3)  # tooltip: the full paths
        self.combo.setCurrentIndex(index)
        self._last_index = index
        return True

    def select_default(self) -> None:
        """Choose the shipped default model."""
        self.combo.setCurrentIndex(self.combo.findData(DEFAULT))
        self._last_index = self.combo.currentIndex()

    def _on_model_changed(self, label: str) -> None:
        if self._setting or label == DEFAULT or self.session.model is None:
            return
        self._session_model = self.session.model
        text = f"session model: {label}"
        index = self.combo.findData(SESSION)
        if index < 0:
            self.combo.insertItem(1, text, SESSION)
            index = 1
        else:
            self.combo.setItemText(index, text)
        self.combo.setCurrentIndex(index)
        self._last_index = index

    def chosen(self) -> tuple[Any | None, str]:
        """Return ``(model, label)`` of the chosen entry without loading anything.

        ``model`` is None when the entry is the shipped default and it is not
        loaded yet: the caller loads it off the main thread
        (:func:`napari_unet.core.model.load_model` of ``DEFAULT``) and hands it
        to :meth:`adopt`.
        """
        if self.combo.currentData() == FROM_FILE:
            self.combo.setCurrentIndex(self._last_index)  # no file was chosen
        choice = self.combo.currentData()
        if choice == SESSION and self._session_model is not None:
            return self._session_model, self.combo.currentText()[len("session model: ") :]
        if choice in (DEFAULT, SESSION, FROM_FILE, None):
            if DEFAULT not in self._models and self.session.model_label == DEFAULT:
                if self.session.model is not None:
                    self._models[DEFAULT] = self.session.model
            return self._models.get(DEFAULT), DEFAULT
        if choice.startswith(ENSEMBLE):
            return self._models[choice], self.combo.currentText()
        return self._models[choice], f"file: {Path(choice).name}"

    def adopt(self, model: Any, label: str) -> None:
        """Make ``model`` (the chosen entry's, maybe just loaded) the session's model.

        An ensemble is not one network to fine-tune: the session keeps its model.
        """
        from napari_unet.core.ensemble import Ensemble

        if isinstance(model, Ensemble):
            return
        if label == DEFAULT:
            self._models.setdefault(DEFAULT, model)
        if self.session.model is not model:
            self._setting = True
            try:
                self.session.set_model(model, label)
            finally:
                self._setting = False

    def model(self) -> Any:
        """Return the chosen model, loading it here on first use, and make it the session's.

        Loading the shipped default takes a moment; Segment's Run uses
        :meth:`chosen` and loads it in its worker instead.

        Raises
        ------
        InputError
            The model cannot be loaded.
        """
        from napari_unet.core.model import load_model

        model, label = self.chosen()
        if model is None:
            model = load_model(DEFAULT)
        self.adopt(model, label)
        return model
