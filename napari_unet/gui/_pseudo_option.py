"""Fine-tune's "Also learn from the slices I have not corrected": the unlabelled slices it adds.

For every image layer of which some slices are in the training set, its other
slices are unlabelled images: :func:`napari_unet.core.training.fine_tune`
pseudo-labels them with the starting model (its confident pixels are targets,
the uncertain ones ignored) and never validates on them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from napari.layers import Image
from qtpy.QtWidgets import QCheckBox, QWidget

from napari_unet.core.defaults import DEFAULT_PSEUDO_HIGH, DEFAULT_PSEUDO_LOW
from napari_unet.gui._layers import layer_array
from napari_unet.gui.session import pair_name


def unaccepted_slices(layers: Iterable[Any], accepted: Iterable[str]) -> list[np.ndarray]:
    """Copy the slices not accepted of the image stacks that have accepted slices.

    Parameters
    ----------
    layers
        The viewer's layers.
    accepted
        Names of the training pairs (:func:`~napari_unet.gui.session.pair_name`).
    """
    names = set(accepted)
    out: list[np.ndarray] = []
    for layer in layers:
        if not isinstance(layer, Image):
            continue
        data = layer_array(layer)
        if data.ndim != (4 if layer.rgb else 3):
            continue  # a single image: no slices
        taken = {z for z in range(data.shape[0]) if pair_name(layer.name, z) in names}
        if taken:
            out.extend(np.array(data[z]) for z in range(data.shape[0]) if z not in taken)
    return out


class PseudoLabelOption(QCheckBox):
    """The check box, and the unlabelled slices it gives to a fine-tune.

    Parameters
    ----------
    viewer
        The viewer whose image layers hold the slices.
    parent
        The Qt parent.
    """

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__("Also learn from the slices I have not corrected", parent)
        self.viewer = viewer
        self.setToolTip(
            "For a stack with accepted slices: its other slices join the training with the "
            f"current model's confident pixels as targets (probability >= {DEFAULT_PSEUDO_HIGH:g}"
            f" foreground, <= {DEFAULT_PSEUDO_LOW:g} background); its uncertain pixels are "
            "ignored, and these slices are never used for validation. On a stack with "
            "dim, out-of-focus planes it measured worse than without: the model is confident "
            "about masks as wide as their blurred light (benchmarks/results/pseudo_label.md)"
        )

    def unlabelled(self, pairs: Iterable[Any]) -> list[np.ndarray] | None:
        """Return the unaccepted slices when ticked (``None`` when unticked or none)."""
        if not self.isChecked():
            return None
        slices = unaccepted_slices(self.viewer.layers, (p.name for p in pairs))
        return slices or None
