"""Dice vs ground truth: score a prediction layer against a ground-truth Labels layer.

The prediction is a mask (Labels layer) or a probability map (Image layer,
thresholded at the session's threshold).  The table lists Dice, IoU, object
F1 at IoU 0.5, average precision at IoU 0.5, 0.75 and 0.9 and the DSB 2018
score (per slice for stacks, then the mean; objects are the mask's instance
ids, or its connected components), from
:func:`napari_unet.core.metrics.scores_per_slice`.  When probabilities are at
hand (an Image prediction, or a mask whose probabilities Segment cached) the
Dice-versus-threshold curve of :func:`~napari_unet.core.metrics.dice_sweep`
is drawn with its best threshold; "Use best threshold" sets the session's
threshold, which moves Segment's slider.

The table follows the threshold slider, Segment's rewrites of the mask and
edits of either layer; updates are debounced so a slider drag or a paint
stroke costs one computation.  For stacks the mean is also pinned under the
table (always in view, however many slices), and the row of the slice the
viewer shows is highlighted and scrolled into view as the slider moves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_unet.core.errors import InputError
from napari_unet.gui._layers import LayerCombo, base_name, layer_names, shown_slice, unwrap
from napari_unet.gui._score_table import (
    fill_score_table,
    highlight_row,
    mean_text,
    score_table,
)
from napari_unet.gui.live_plot import LivePlot
from napari_unet.gui.session import get_session

if TYPE_CHECKING:
    import napari

DEBOUNCE_MS = 80


class DiceWidget(QWidget):
    """Dice, IoU and object F1 of a prediction against ground truth, live.

    Parameters
    ----------
    napari_viewer
        The viewer whose layers are compared.

    Attributes
    ----------
    rows : list of dict
        The last computed per-slice scores (see ``scores_per_slice``).
    mean : dict or None
        Their means.
    sweep : tuple or None
        ``(thresholds, dices, best_threshold, best_dice)`` of the last curve.
    error : str
        The last error message ("" when the last computation succeeded).
    computations : int
        How many times the scores were computed.
    current_row : int or None
        The highlighted table row: the slice the viewer shows (stacks only).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)
        self.rows: list[dict] = []
        self.mean: dict | None = None
        self.sweep: tuple | None = None
        self.error = ""
        self.computations = 0
        self.current_row: int | None = None
        self._stack = False
        self._sweep_key: tuple | None = None
        self._truth_version = 0
        self._watched: list[Any] = []
        self._truth_by_hand = False  # a ground truth picked by hand is never replaced

        self.pred_combo = LayerCombo(napari_viewer, (Labels, Image), self)
        self.pred_combo.setToolTip("A mask (Labels) or a probability map (Image).")
        self.truth_combo = LayerCombo(napari_viewer, Labels, self)
        self.compute_button = QPushButton("Compute")
        self.best_button = QPushButton("Use best threshold")
        self.best_button.setEnabled(False)
        self.best_button.setToolTip("Set the Segment threshold slider to the best threshold.")
        self.table = score_table()
        # The mean of a stack stays in view whatever the table scrolls to.
        self.mean_label = QLabel("")
        self.mean_label.setWordWrap(True)
        self.mean_label.setVisible(False)
        self.plot = LivePlot(
            "threshold", "Dice", xlim=(0.0, 1.0), ylim=(0.0, 1.02), whole_x=False, parent=self
        )
        self.status = QLabel("Choose a prediction and a ground-truth layer.")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Prediction", self.pred_combo)
        form.addRow("Ground truth", self.truth_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compute_button)
        buttons.addWidget(self.best_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.table)
        layout.addWidget(self.mean_label)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.status)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(lambda: self.compute(notify=False))

        self.compute_button.clicked.connect(lambda: self.compute(notify=True))
        self.best_button.clicked.connect(self.use_best_threshold)
        self.pred_combo.currentIndexChanged.connect(self._on_choice_changed)
        self.truth_combo.currentIndexChanged.connect(self._on_choice_changed)
        self.truth_combo.activated.connect(self._on_truth_picked)
        napari_viewer.layers.events.inserted.connect(self._guess_layers)
        napari_viewer.dims.events.current_step.connect(self._highlight_current)
        self.session.threshold_changed.connect(self._on_threshold)
        self.session.prediction_added.connect(self._on_prediction_added)
        self.session.prediction_changed.connect(self._on_prediction_changed)
        self._guess_layers()
        self._on_choice_changed()

    # ------------------------------------------------------------ choices
    def _guess_layers(self, event: Any = None) -> None:
        """Offer a likely pair: a prediction layer and a layer named like ground truth.

        A choice that cannot be a prediction (empty, the ground truth itself, a
        raw image) is replaced by the newest predicted mask, else another mask
        or a probability map; with none of those the box stays empty and the
        widget shows a hint.
        """
        predicted = [n for n in self.session.predictions if n in self.viewer.layers]
        truth = self.truth_combo.currentText()
        if not self._truth_by_hand and "ground truth" not in truth:
            named = [n for n in layer_names(self.truth_combo) if "ground truth" in n]
            if named:
                self.truth_combo.set_layer(named[0])
            elif truth in predicted:
                # Segment's own mask is no ground truth: another mask, or none yet.
                other = [n for n in layer_names(self.truth_combo) if n not in predicted]
                self._choose(self.truth_combo, other[0] if other else None)
            truth = self.truth_combo.currentText()
        if self._could_be_prediction(self.pred_combo.layer()):
            return
        masks = [n for n in reversed(predicted) if n != truth]
        masks += [
            layer.name
            for layer in self.pred_combo.layers()
            if self._could_be_prediction(layer) and layer.name not in masks
        ]
        self._choose(self.pred_combo, next(iter(masks), None))

    def _on_truth_picked(self, _index: int) -> None:
        self._truth_by_hand = True

    def _could_be_prediction(self, layer: Any) -> bool:
        if layer is None or layer.name == self.truth_combo.currentText():
            return False
        if isinstance(layer, Labels):
            return "ground truth" not in layer.name
        return self._is_probability(layer)

    def _is_probability(self, layer: Any) -> bool:
        """Whether ``layer`` is a probability map Segment made (or is named like one)."""
        if not isinstance(layer, Image):
            return False
        named = base_name(layer.name).endswith(" probability")
        return named or self.session.is_probability_layer(layer.name)

    @staticmethod
    def _choose(combo: LayerCombo, name: str | None) -> None:
        if name is None:
            combo.setCurrentIndex(-1)
        else:
            combo.set_layer(name)

    def _on_choice_changed(self, _index: int = -1) -> None:
        for layer in self._watched:
            layer.events.data.disconnect(self._on_layer_edit)
            if isinstance(layer, Labels):
                layer.events.paint.disconnect(self._on_layer_edit)
        self._watched = [
            layer
            for layer in {
                id(unwrap(x)): x for x in (self.pred_combo.layer(), self.truth_combo.layer())
            }.values()
            if layer is not None
        ]
        for layer in self._watched:
            layer.events.data.connect(self._on_layer_edit)
            if isinstance(layer, Labels):
                layer.events.paint.connect(self._on_layer_edit)
        self._sweep_key = None
        self.schedule()

    def _on_layer_edit(self, event: Any = None) -> None:
        source = getattr(event, "source", None)
        truth = self.truth_combo.layer()
        if source is not None and truth is not None and unwrap(source) is unwrap(truth):
            self._truth_version += 1
        self.schedule()

    def _on_threshold(self, value: float) -> None:
        self.schedule()

    def _on_prediction_added(self, mask_name: str) -> None:
        # Follow each new prediction mask; a rewrite of a mask (a threshold
        # move) leaves a layer picked by hand alone.
        if self.pred_combo.findText(mask_name) >= 0:
            self.pred_combo.set_layer(mask_name)
            self._guess_layers()

    def _on_prediction_changed(self, mask_name: str) -> None:
        if mask_name == self.pred_combo.currentText():
            self.schedule()

    def schedule(self) -> None:
        """Recompute after a short quiet period (coalesces drags and strokes)."""
        self._timer.start()

    # ------------------------------------------------------------ compute
    def _prediction(self, layer: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Return ``(mask, probabilities or None)`` for a prediction layer."""
        from napari_unet.core.postprocess import mask_from_proba

        data = np.asarray(layer.data)
        if isinstance(layer, Image):
            if getattr(layer, "rgb", False) or data.dtype.kind != "f":
                raise InputError(
                    f"'{layer.name}' is not a probability map; choose a mask or a "
                    "probability layer as the prediction"
                )
            return mask_from_proba(data, self.session.threshold), data
        record = self.session.predictions.get(layer.name)
        prob = record.prob if record is not None and record.prob.shape == data.shape else None
        return data, prob

    def compute(self, notify: bool = True) -> bool:
        """Score the chosen prediction against the chosen ground truth and show it.

        Parameters
        ----------
        notify
            Also show an error as a napari notification (for a button press);
            automatic updates only show it in the widget.

        Returns
        -------
        bool
            Whether the scores were computed.
        """
        self._timer.stop()
        pred_layer, truth_layer = self.pred_combo.layer(), self.truth_combo.layer()
        try:
            if pred_layer is None or truth_layer is None:
                if not notify:
                    # Nothing to compare yet is a normal state, not an error.
                    self._show_hint(pred_layer is None)
                    return False
                raise InputError(
                    "choose a prediction layer (mask or probabilities) and a ground-truth "
                    "Labels layer"
                )
            from napari_unet.core.metrics import dice_sweep, scores_per_slice  # 0.4 s: late

            # Docked widgets get napari's layer proxies, a new one per lookup:
            # compare the layers, not the proxies.
            if pred_layer.name == truth_layer.name or unwrap(pred_layer) is unwrap(truth_layer):
                raise InputError(
                    f"'{pred_layer.name}' is chosen as both the prediction and the ground "
                    "truth; choose the ground-truth layer in 'Ground truth'"
                )
            truth = np.asarray(truth_layer.data)
            pred, prob = self._prediction(pred_layer)
            if pred.shape != truth.shape:
                raise InputError(
                    f"ground truth '{truth_layer.name}' has shape {truth.shape} but prediction "
                    f"'{pred_layer.name}' has {pred.shape}; choose the ground truth of this image"
                )
            rows, mean = scores_per_slice(pred, truth)
            # The key holds the probability array itself, not its id(): an id
            # can be reused by a new array once the old one is freed.
            key = (truth_layer.name, self._truth_version)
            cached = self._sweep_key
            if prob is None:
                self.sweep = None
            elif cached is None or cached[0] is not prob or cached[1] != key or self.sweep is None:
                self.sweep = dice_sweep(prob, truth)
            self._sweep_key = (prob, key)
        except InputError as exc:
            self._show_error(str(exc), notify)
            return False
        self.error = ""
        self.rows, self.mean = rows, mean
        self.computations += 1
        self._fill_table(rows, mean, stack=pred.ndim == 3)
        self._draw_sweep()
        text = (
            f"'{pred_layer.name}' vs '{truth_layer.name}': mean Dice {mean['dice']:.3f}, "
            f"object F1 {mean['f1']:.3f}, DSB score {mean['dsb']:.3f}"
        )
        if isinstance(pred_layer, Image):
            text += f" at threshold {self.session.threshold:.3f}"
        self.status.setText(text + ".")
        return True

    def _show_hint(self, no_prediction: bool) -> None:
        self._show_error("", notify=False)
        self.status.setText(
            "No prediction yet: run Segment, or choose a mask or a probability map "
            "as the prediction."
            if no_prediction
            else "Choose the ground-truth Labels layer to compare with."
        )

    def _show_error(self, message: str, notify: bool) -> None:
        self.error = message
        self.rows, self.mean, self.sweep = [], None, None
        self.table.setRowCount(0)
        self.mean_label.setVisible(False)
        self.current_row = None
        self.plot.clear_curves()
        self.best_button.setEnabled(False)
        self.status.setText(f"Error: {message}")
        if notify:
            show_error(f"Dice vs ground truth: {message}")

    def _fill_table(self, rows: list[dict], mean: dict, *, stack: bool) -> None:
        fill_score_table(self.table, rows, mean, stack=stack)
        self._stack = stack
        self.mean_label.setVisible(stack)
        if stack:
            self.mean_label.setText(mean_text(rows, mean))
        self.current_row = None
        self._highlight_current()

    def _current_slice(self) -> int | None:
        """Return the slice of the prediction layer the viewer shows (None: not a stack)."""
        layer = self.pred_combo.layer()
        if not self._stack or layer is None or not self.rows:
            return None
        return shown_slice(layer, self.viewer, len(self.rows))

    def _highlight_current(self, event: Any = None) -> None:
        """Highlight the table row of the viewer's current slice and scroll it into view."""
        row = self._current_slice()
        if row == self.current_row:
            return
        highlight_row(self.table, self.current_row, row)
        self.current_row = row

    def _draw_sweep(self) -> None:
        if self.sweep is None:
            self.plot.clear_curves()
            self.best_button.setEnabled(False)
            return
        thresholds, dices, best_t, best_d = self.sweep
        self.plot.set_curve("Dice", thresholds, dices, color="#4fc3f7")
        self.plot.set_marker("best", best_t, best_d)
        self.plot.set_marker("current", self.session.threshold, color="#9e9e9e")
        self.best_button.setEnabled(True)
        self.best_button.setText(f"Use best threshold ({best_t:.2f}, Dice {best_d:.3f})")

    # ------------------------------------------------------------ actions
    def use_best_threshold(self) -> float | None:
        """Set the session threshold (and so Segment's slider) to the curve's best.

        Returns
        -------
        float or None
            The threshold set, or None when there is no curve.
        """
        if self.sweep is None:
            show_error("Dice vs ground truth: no Dice-vs-threshold curve; choose probabilities.")
            return None
        best = float(self.sweep[2])
        self.session.set_threshold(best)
        return best
