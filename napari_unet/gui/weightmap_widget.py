"""Border weight map: show Ronneberger's eq. 2 weights of a Labels layer, live.

The widget calls :func:`napari_unet.core.weights.border_weight_map` in a
thread worker and writes the result into one Image layer per Labels layer
(``"<labels> weight map"``).  Changing w0 or sigma, or painting the labels,
rewrites that same layer: changes are debounced, and while one map is being
computed only the newest settings wait, so a spin-box drag costs at most one
extra computation.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QFormLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_unet.core.events import Progress
from napari_unet.gui._layers import LayerCombo, layer_array, spatial_transform
from napari_unet.gui._weight_params import weight_params_form
from napari_unet.gui.session import get_session
from napari_unet.gui.workers import start_generator

if TYPE_CHECKING:
    import napari
    from napari.qt.threading import GeneratorWorker

COLORMAP = "inferno"  # perceptually uniform, readable on the dark theme
DEBOUNCE_MS = 150


def _weight_map_job(labels: np.ndarray, w0: float, sigma: float) -> Generator:
    """Compute one weight map in a worker (a generator, as the worker adapter expects)."""
    from napari_unet.core.weights import border_weight_map

    yield Progress(0, 1, "border weight map")
    return border_weight_map(labels, w0=w0, sigma=sigma)


class BorderWeightMapWidget(QWidget):
    """Border weight map of a Labels layer (Ronneberger et al. 2015, eq. 2).

    Parameters
    ----------
    napari_viewer
        The viewer whose Labels layers are offered.

    Attributes
    ----------
    computations : int
        How many weight maps have been written into layers (for tests and for
        checking that a drag does not queue one computation per step).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)
        self.worker: GeneratorWorker | None = None
        self.computations = 0
        self._live = False  # becomes True once the user asked for a map
        self._pending = False
        self._watched: Any | None = None

        self.labels_combo = LayerCombo(napari_viewer, Labels, self)
        self.params = weight_params_form()
        self.w0_spin = self.params.w0.native
        self.sigma_spin = self.params.sigma.native
        self.show_button = QPushButton("Show weight map")
        self.status = QLabel(
            "w = w_c + w0 exp(-(d1 + d2)^2 / 2 sigma^2): large weights in the gaps "
            "between nearby objects."
        )
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Labels", self.labels_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.params.native)
        layout.addWidget(self.show_button)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._start)

        self.show_button.clicked.connect(self.show_weight_map)
        self.w0_spin.valueChanged.connect(self._schedule)
        self.sigma_spin.valueChanged.connect(self._schedule)
        self.labels_combo.currentIndexChanged.connect(self._on_labels_changed)
        self._watch(self.labels_combo.layer())

    # ------------------------------------------------------------- public
    def weight_layer_name(self, labels_name: str | None = None) -> str:
        """Return the name of the weight-map layer of a Labels layer (the chosen one)."""
        name = labels_name if labels_name is not None else self.labels_combo.currentText()
        return f"{name} weight map"

    def show_weight_map(self) -> None:
        """Compute the chosen Labels layer's weight map now, then follow w0 and sigma."""
        if self.labels_combo.layer() is None:
            show_error("Border weight map: no Labels layer chosen; load or draw a mask first.")
            return
        self._live = True
        self._timer.stop()
        self._start()

    # ------------------------------------------------------------ events
    def _watch(self, layer: Any | None) -> None:
        """Follow paint edits of the chosen Labels layer only."""
        if self._watched is not None:
            self._watched.events.paint.disconnect(self._schedule)
            self._watched.events.data.disconnect(self._schedule)
        self._watched = layer
        if layer is not None:
            layer.events.paint.connect(self._schedule)
            layer.events.data.connect(self._schedule)

    def _on_labels_changed(self, _index: int = -1) -> None:
        self._watch(self.labels_combo.layer())
        self._schedule()

    def _schedule(self, *_: Any) -> None:
        if self._live:
            self._timer.start()

    # ------------------------------------------------------------ compute
    def _start(self) -> None:
        if self.worker is not None:
            # Only the newest settings matter: run once more when this one ends.
            self._pending = True
            return
        layer = self.labels_combo.layer()
        if layer is None:
            return
        labels = layer_array(layer)
        w0, sigma = self.w0_spin.value(), self.sigma_spin.value()
        target = {
            "name": self.weight_layer_name(layer.name),
            "transform": spatial_transform(layer, labels.ndim),
            "w0": w0,
            "sigma": sigma,
        }
        self.status.setText(f"Computing the weight map of '{layer.name}'...")
        self.worker = start_generator(
            _weight_map_job(labels, w0, sigma),
            on_return=lambda weights: self._on_result(weights, target),
            on_error=self._on_error,
            on_finish=self._on_finish,
        )

    def _on_result(self, weights: np.ndarray, target: dict[str, Any]) -> None:
        name = target["name"]
        limits = (float(weights.min()), max(float(weights.max()), float(weights.min()) + 1e-6))
        existing = self.viewer.layers[name] if name in self.viewer.layers else None
        if isinstance(existing, Image) and existing.data.shape == weights.shape:
            existing.data = weights
            existing.contrast_limits = limits
        else:
            if existing is not None:
                self.viewer.layers.remove(existing)
            self.viewer.add_image(
                weights,
                name=name,
                colormap=COLORMAP,
                contrast_limits=limits,
                blending="additive",
                **target["transform"],
            )
        self.computations += 1
        self.status.setText(
            f"'{name}': w0 = {target['w0']:g}, sigma = {target['sigma']:g} px; "
            f"weights {limits[0]:.2f} to {limits[1]:.2f}."
        )

    def _on_error(self, exc: BaseException) -> None:
        self.status.setText(f"Error: {exc}")
        # A failed map stops live updates until the user asks again.
        self._live = False
        self._pending = False

    def _on_finish(self) -> None:
        self.worker = None
        if self._pending:
            self._pending = False
            self._start()
