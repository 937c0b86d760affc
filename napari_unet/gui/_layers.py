"""Layer lookup helpers shared by the widgets: a self-refreshing layer combo and names."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from qtpy.QtWidgets import QComboBox, QWidget

# Suffixes the plugin gives to layers it derives from an image layer; used to
# find the image a mask belongs to.
MASK_SUFFIXES = (" mask", " ground truth", " probability")


class LayerCombo(QComboBox):
    """A combo box of the viewer's layers of one type that follows the layer list.

    It refreshes when layers are added, removed, moved or renamed and keeps
    the current choice when it still exists.

    Parameters
    ----------
    viewer
        The napari viewer whose layers are listed.
    layer_type
        The layer class to list (for example ``napari.layers.Labels``).
    parent
        Optional parent widget.
    exclude
        Layers for which this returns True are not listed.
    """

    def __init__(
        self,
        viewer: Any,
        layer_type: type,
        parent: QWidget | None = None,
        exclude: Callable[[Any], bool] | None = None,
    ) -> None:
        super().__init__(parent)
        self._viewer = viewer
        self._type = layer_type
        self._exclude = exclude
        layers = viewer.layers
        layers.events.inserted.connect(self._on_inserted)
        layers.events.removed.connect(self.refresh)
        layers.events.moved.connect(self.refresh)
        for layer in layers:
            layer.events.name.connect(self.refresh)
        self.refresh()

    def _on_inserted(self, event: Any = None) -> None:
        layer = getattr(event, "value", None)
        if layer is not None:
            layer.events.name.connect(self.refresh)
        self.refresh()

    def layers(self) -> list[Any]:
        """Return the viewer's layers of this combo's type, in list order."""
        return [
            layer
            for layer in self._viewer.layers
            if isinstance(layer, self._type) and not (self._exclude and self._exclude(layer))
        ]

    def refresh(self, event: Any = None) -> None:
        """Rebuild the items from the layer list, keeping the current choice."""
        current = self.currentText()
        names = [layer.name for layer in self.layers()]
        self.blockSignals(True)
        try:
            self.clear()
            self.addItems(names)
            if current in names:
                self.setCurrentText(current)
        finally:
            self.blockSignals(False)
        if self.currentText() != current:
            self.currentIndexChanged.emit(self.currentIndex())

    def layer(self) -> Any | None:
        """Return the chosen layer, or ``None`` when there is none."""
        name = self.currentText()
        if not name or name not in self._viewer.layers:
            return None
        layer = self._viewer.layers[name]
        return layer if isinstance(layer, self._type) else None

    def set_layer(self, layer_or_name: Any) -> None:
        """Choose a layer (object or name); unknown names are ignored."""
        name = getattr(layer_or_name, "name", layer_or_name)
        index = self.findText(str(name))
        if index >= 0:
            self.setCurrentIndex(index)


def layer_array(layer: Any) -> np.ndarray:
    """Return a numpy copy of a layer's data (level 0 for a multiscale layer).

    Workers get this copy, never the layer itself.
    """
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.array(data, copy=True)


def fresh_name(viewer: Any, base: str) -> str:
    """Return ``base`` if no layer has it, else ``"base [n]"`` with the first free n >= 2."""
    if base not in viewer.layers:
        return base
    n = 2
    while f"{base} [{n}]" in viewer.layers:
        n += 1
    return f"{base} [{n}]"


def base_name(name: str) -> str:
    """Drop the ``" [n]"`` napari adds to a taken name (``"x mask [2]"`` -> ``"x mask"``)."""
    return name[: name.rindex(" [")] if name.endswith("]") and " [" in name else name


def image_name_for(mask_name: str) -> str:
    """Guess the image layer name a derived layer belongs to (``"x mask [2]"`` -> ``"x"``)."""
    name = base_name(mask_name)
    for suffix in MASK_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def spatial_transform(image_layer: Any, ndim: int) -> dict[str, Any]:
    """Return ``scale`` and ``translate`` of an image layer for a derived layer of ``ndim`` axes.

    An RGB layer's channel axis is not a layer axis, so the image's own
    scale applies as it is; other mismatches fall back to napari's defaults.
    """
    scale = tuple(image_layer.scale)
    translate = tuple(image_layer.translate)
    if len(scale) != ndim:
        return {}
    return {"scale": scale, "translate": translate}


def layer_names(combo: LayerCombo) -> list[str]:
    """Return the names of the layers a layer box offers."""
    return [layer.name for layer in combo.layers()]


def unwrap(layer: Any) -> Any:
    """Return the layer behind napari's public proxy (widgets get proxies of one layer)."""
    return getattr(layer, "__wrapped__", layer)


def shown_slice(layer: Any, viewer: Any, n_slices: int) -> int:
    """Return the slice of a stack layer the viewer shows (any scale or offset)."""
    z = layer.world_to_data(viewer.dims.point)[0]
    return int(np.clip(np.round(z), 0, n_slices - 1))


# The overlays of a Labels layer's drawing tools: napari builds their vispy
# visuals when the layer is added, unless they are hidden then.  napari makes
# them visible and switches them with the layer's mode (``enabled``).
_TOOL_OVERLAYS = ("polygon", "brush_stroke")


def _tool_overlays(layer: Any) -> list[Any]:
    overlays = getattr(layer, "_overlays", {})  # napari's, private: absent, none
    return [overlays[key] for key in _TOOL_OVERLAYS if key in overlays]


@contextmanager
def inserted_unselected(viewer: Any) -> Iterator[None]:
    """Within this, a layer napari adds does not become the selected one.

    napari selects every layer it inserts, in the same call, and the layer
    controls, the layer list and the viewer's status follow: 11-17 ms of a
    2048x2048 layer's add here, more from a Labels layer.  The caller selects
    the layer in a later event-loop turn (:func:`select_layer`).  napari's
    flag for it is private (set on the layer list behind the public proxy a
    docked widget is given); without it, napari selects as it always did.
    """
    layers = unwrap(viewer.layers)
    flag = getattr(layers, "_activate_on_insert", None)
    if not isinstance(flag, bool):
        yield
        return
    layers._activate_on_insert = False
    try:
        yield
    finally:
        layers._activate_on_insert = flag


def layer_of_type(viewer: Any, name: str, kind: type) -> Any | None:
    """Return the viewer's layer called ``name`` if it is a ``kind``, else None."""
    layer = viewer.layers[name] if name in viewer.layers else None
    return layer if isinstance(layer, kind) else None


def write_probability(
    viewer: Any, name: str, new_name: str, prob: np.ndarray, transform: dict[str, Any]
) -> tuple[Any, bool]:
    """Write ``prob`` into the Image layer ``name``; return it and whether it is new.

    When there is no such layer, or its shape differs, a new one (``new_name``,
    made unique) is added hidden and unselected: the caller shows it in a
    later event-loop turn, and selects it if it should be.
    """
    from napari.layers import Image

    layer = layer_of_type(viewer, name, Image)
    if layer is not None and layer.data.shape == prob.shape:
        layer.data = prob
        return layer, False
    with inserted_unselected(viewer):
        layer = viewer.add_image(
            prob,
            name=fresh_name(viewer, new_name),
            colormap="magma",
            contrast_limits=(0.0, 1.0),
            blending="additive",
            visible=False,
            **transform,
        )
    return layer, True


def select_layer(viewer: Any, layer: Any) -> None:
    """Make ``layer`` the selected one, as napari's add would have, if it is still there."""
    if layer in viewer.layers:
        viewer.layers.selection.active = layer


def add_hidden_labels(viewer: Any, data: np.ndarray, **kwargs: Any) -> Any:
    """Add a Labels layer hidden, unselected, and without its drawing tools' visuals yet.

    napari builds a layer's visuals in its add (78 ms for a 2048x2048 Labels
    layer here, 54-56 ms with the polygon and brush tools' overlays hidden,
    39-55 ms unselected too) and paints it on the next turn.  Made hidden,
    with the tools' overlays hidden too, the add does less and the first
    paint waits for :func:`show_added`, which the caller runs in a later
    event-loop turn; the selection waits for :func:`select_layer`.
    """
    from napari.layers import Labels

    layer = Labels(data, visible=False, **kwargs)
    for overlay in _tool_overlays(layer):
        overlay.visible = False
    with inserted_unselected(viewer):
        viewer.add_layer(layer)
    return layer


def show_added(layer: Any) -> None:
    """Show a layer made by :func:`add_hidden_labels`; its drawing tools follow their modes.

    A tool's overlay is shown now if its mode is on, else when the layer's mode
    first switches to it: napari then builds its visuals, 30-60 ms that would
    otherwise fall in the turn that shows the layer.  Selecting it is the
    caller's next step (:func:`select_layer`).
    """
    layer.visible = True
    if not _show_enabled_tools(layer):
        layer.events.mode.connect(_on_mode)


def _show_enabled_tools(layer: Any) -> bool:
    """Show the tool overlays whose mode is on; True when all are shown."""
    overlays = _tool_overlays(layer)
    for overlay in overlays:
        if overlay.enabled and not overlay.visible:
            overlay.visible = True
    return all(overlay.visible for overlay in overlays)


def _on_mode(event: Any) -> None:
    layer = event.source
    if _show_enabled_tools(layer):
        layer.events.mode.disconnect(_on_mode)


def viewer_camera(viewer: Any) -> Any:
    """Return ``viewer.scene.camera`` (napari 0.9 and later), else ``viewer.camera``."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera
