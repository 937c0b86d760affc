"""Border weight map widget: one Image layer per Labels layer, rewritten live."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image

from napari_unet.core.weights import border_weight_map
from napari_unet.gui.weightmap_widget import BorderWeightMapWidget

pytestmark = pytest.mark.gui


def two_cells(shape=(64, 64)):
    labels = np.zeros(shape, dtype=np.int32)
    labels[10:30, 8:28] = 1
    labels[10:30, 32:52] = 2  # 4 px gap: the border term is large there
    labels[40:56, 20:40] = 3
    return labels


def wait_for(qtbot, widget, count):
    qtbot.waitUntil(lambda: widget.computations >= count and widget.worker is None, timeout=20_000)


def test_weight_map_layer_appears_and_updates_in_place(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    labels = two_cells()
    viewer.add_labels(labels, name="cells", scale=(0.5, 0.5))
    widget = BorderWeightMapWidget(viewer)
    assert widget.labels_combo.currentText() == "cells"
    # Nothing is computed before the user asks for it.
    qtbot.wait(250)
    assert "cells weight map" not in viewer.layers

    widget.show_weight_map()
    wait_for(qtbot, widget, 1)
    layer = viewer.layers["cells weight map"]
    assert isinstance(layer, Image)
    assert layer.colormap.name == "inferno"
    assert tuple(layer.scale) == (0.5, 0.5)
    np.testing.assert_allclose(layer.data, border_weight_map(labels, 10.0, 5.0), rtol=1e-6)
    gap = layer.data[20, 30]
    assert gap > layer.data[60, 5] + 5  # the gap between touching cells is heavy

    # Changing w0 and sigma rewrites the same layer; no new layers appear.
    n_layers = len(viewer.layers)
    widget.w0_spin.setValue(20.0)
    qtbot.waitUntil(
        lambda: np.allclose(layer.data, border_weight_map(labels, 20.0, 5.0)), timeout=20_000
    )
    assert layer.data[20, 30] > gap  # a larger w0 weighs the gap more
    widget.params.sigma.value = 3.0  # the magicgui form drives the same map
    qtbot.waitUntil(
        lambda: np.allclose(layer.data, border_weight_map(labels, 20.0, 3.0)), timeout=20_000
    )
    assert widget.params.w0.value == pytest.approx(20.0)
    assert viewer.layers["cells weight map"] is layer
    assert len(viewer.layers) == n_layers
    assert layer.contrast_limits[1] == pytest.approx(float(layer.data.max()))


def test_drag_coalesces_and_paint_updates(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    labels_layer = viewer.add_labels(two_cells(), name="cells")
    widget = BorderWeightMapWidget(viewer)
    widget.show_weight_map()
    wait_for(qtbot, widget, 1)
    before = widget.computations
    for value in np.linspace(5, 15, 20):
        widget.w0_spin.setValue(float(value))
    wait_for(qtbot, widget, before + 1)
    qtbot.wait(400)
    # Twenty quick steps give one debounced computation, not twenty.
    assert widget.computations - before <= 2
    np.testing.assert_allclose(
        viewer.layers["cells weight map"].data,
        border_weight_map(two_cells(), 15.0, 5.0),
        rtol=1e-6,
    )

    # Replacing the labels (an edit) updates the map of the same layer.
    edited = two_cells()
    edited[40:56, 20:40] = 0
    count = widget.computations
    labels_layer.data = edited
    wait_for(qtbot, widget, count + 1)
    np.testing.assert_allclose(
        viewer.layers["cells weight map"].data, border_weight_map(edited, 15.0, 5.0), rtol=1e-6
    )


def test_stack_and_no_labels_error(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    widget = BorderWeightMapWidget(viewer)
    widget.show_weight_map()
    assert any("no Labels layer" in m for m in messages)

    stack = np.stack([two_cells(), np.zeros((64, 64), np.int32)])
    viewer.add_labels(stack, name="stack")
    widget.labels_combo.set_layer("stack")
    widget.show_weight_map()
    wait_for(qtbot, widget, 1)
    data = viewer.layers["stack weight map"].data
    assert data.shape == (2, 64, 64)
    np.testing.assert_allclose(data, border_weight_map(stack), rtol=1e-6)
