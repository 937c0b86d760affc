"""Fine-tune's "Start from" and "Architecture" rows: train the current model or a new network."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from qtpy.QtWidgets import QComboBox, QFormLayout, QWidget

from napari_unet.core.defaults import ARCH_LABELS, ARCH_NAMES

CURRENT, NEW = "current", "new"


class ArchitectureOption(QWidget):
    """Choose what training starts from, and the architecture of a new network.

    With "the current model" the architecture box shows that model's
    architecture and is disabled (a trained network keeps its own); with "a
    new network" it is enabled and :meth:`new_model` builds an untrained
    network of the chosen architecture.

    Parameters
    ----------
    parent
        The Qt parent.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._current_arch = "unet"
        self._session: Any | None = None
        self.start_combo = QComboBox()
        self.start_combo.addItem("the current model", CURRENT)
        self.start_combo.addItem("a new network", NEW)
        self.start_combo.setToolTip(
            "Fine-tune the session's model, or train a new, untrained network from "
            "scratch (it then needs many more epochs or minutes)"
        )
        self.arch_combo = QComboBox()
        for name in ARCH_NAMES:
            self.arch_combo.addItem(ARCH_LABELS[name], name)
        self.arch_combo.setToolTip(
            "U-Net; U-Net++ (nested skips, about 3x the CPU time per image); U-Net 3+ "
            "(full-scale skips, about 5x); see benchmarks/results/variants.md"
        )
        rows = QFormLayout(self)
        rows.setContentsMargins(0, 0, 0, 0)
        rows.addRow("Start from", self.start_combo)
        rows.addRow("Architecture", self.arch_combo)
        self.start_combo.currentIndexChanged.connect(self._update)
        self._update()

    def new_network(self) -> bool:
        """Whether training starts from a new, untrained network."""
        return self.start_combo.currentData() == NEW

    def arch(self) -> str:
        """Return the architecture shown: the chosen one, or the current model's."""
        return str(self.arch_combo.currentData())

    def follow(self, session: Any) -> None:
        """Show the architecture of ``session``'s model now and whenever it changes."""
        self._session = session
        session.model_changed.connect(self._on_model_changed)
        self.show_model(session.model)

    def _on_model_changed(self, *_: Any) -> None:
        self.show_model(self._session.model)

    def show_model(self, model: Any | None) -> None:
        """Show ``model``'s architecture while "the current model" is chosen."""
        config = getattr(model, "config", None)
        self._current_arch = getattr(config, "arch", "unet")
        self._update()

    def new_model(self, like: Any) -> Any:
        """Return an untrained network of the chosen architecture, shaped like ``like``.

        It keeps ``like``'s input channels, outputs, depth, width and
        normalisation, so it reads the same images and gives the same maps.
        """
        from napari_unet.core.model import build_model

        config = replace(like.config, arch=self.arch(), prune_to=0, skip_width=0, gate_empty=False)
        model = build_model(config)
        model.norm = like.norm
        return model

    def _update(self, *_: Any) -> None:
        new = self.new_network()
        if not new:
            self.arch_combo.setCurrentIndex(max(0, self.arch_combo.findData(self._current_arch)))
        self.arch_combo.setEnabled(new)
