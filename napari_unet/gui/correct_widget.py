"""Correct masks: one-click fixes on a Labels layer, undo, and Accept into the training set.

Every action goes through napari's own edit history (``Labels.data_setitem``),
so the Undo button, Ctrl+Z and napari's brush share one undo stack in the
order the edits were made, and each action marks the mask as corrected.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_unet.core.errors import InputError
from napari_unet.gui._layers import LayerCombo, image_name_for, layer_array, viewer_camera
from napari_unet.gui._text import plural
from napari_unet.gui._training_files import save_pair
from napari_unet.gui.predictions import check_content, mark_corrected
from napari_unet.gui.session import TrainingPair, get_session, pair_name

if TYPE_CHECKING:
    import napari

THIS_SLICE = "this slice"
ALL_SLICES = "all slices"


class CorrectMasksWidget(QWidget):
    """Edit a mask layer with one-click actions and accept it as training data.

    Parameters
    ----------
    napari_viewer
        The viewer whose Labels layers are corrected.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)
        self._click_layer: Any | None = None

        self.mask_combo = LayerCombo(napari_viewer, Labels, self)
        self.image_combo = LayerCombo(napari_viewer, Image, self)
        self.delete_button = QPushButton("Click to delete")
        self.delete_button.setCheckable(True)
        self.delete_button.setToolTip("Then click an object in the viewer to delete it.")
        self.fill_button = QPushButton("Fill holes")
        self.min_size_spin = QSpinBox()
        self.min_size_spin.setRange(1, 1_000_000)
        self.min_size_spin.setValue(20)
        self.min_size_spin.setSuffix(" px")
        self.remove_button = QPushButton("Remove objects under")
        self.merge_button = QPushButton("Merge touching")
        self.undo_button = QPushButton("Undo")
        self.uncertain_button = QPushButton("Go to the most uncertain region")
        self.uncertain_button.setToolTip(
            "Centre the view (and the slice) where the test-time augmentation of Segment "
            "disagreed most: correcting there helps the next fine-tune most"
        )
        self.scope_combo = QComboBox()
        self.scope_combo.addItems([THIS_SLICE, ALL_SLICES])
        self.scope_combo.setToolTip("For stacks: accept the slice on screen or every slice.")
        self.folder_edit = QLineEdit(str(self.session.training_dir))
        self.folder_button = QPushButton("...")
        self.accept_button = QPushButton("Accept")
        self.count_label = QLabel()
        self._show_count(len(self.session.training_set))

        form = QFormLayout()
        form.addRow("Mask", self.mask_combo)
        form.addRow("Image", self.image_combo)
        actions = QGridLayout()
        actions.addWidget(self.delete_button, 0, 0)
        actions.addWidget(self.fill_button, 0, 1)
        actions.addWidget(self.remove_button, 1, 0)
        actions.addWidget(self.min_size_spin, 1, 1)
        actions.addWidget(self.merge_button, 2, 0)
        actions.addWidget(self.undo_button, 2, 1)
        actions.addWidget(self.uncertain_button, 3, 0, 1, 2)
        folder = QHBoxLayout()
        folder.addWidget(self.folder_edit)
        folder.addWidget(self.folder_button)
        accept = QFormLayout()
        accept.addRow("Stack", self.scope_combo)
        accept.addRow("Save to", folder)
        accept.addRow(self.accept_button)
        accept.addRow(self.count_label)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(actions)
        layout.addLayout(accept)
        layout.addStretch(1)

        self.mask_combo.currentIndexChanged.connect(self._on_mask_changed)
        self.delete_button.toggled.connect(self._set_click_mode)
        self.fill_button.clicked.connect(self.fill_holes)
        self.remove_button.clicked.connect(self.remove_small)
        self.merge_button.clicked.connect(self.merge_touching)
        self.undo_button.clicked.connect(self.undo)
        self.uncertain_button.clicked.connect(self.go_to_uncertain)
        self.accept_button.clicked.connect(self.accept)
        self.folder_edit.editingFinished.connect(self._on_folder_edited)
        self.folder_button.clicked.connect(self._choose_folder)
        self.session.training_set_changed.connect(self._show_count)
        self.session.prediction_added.connect(self._follow_prediction)
        self._choose_default_mask()
        self._on_mask_changed()

    # ------------------------------------------------------------- targets
    def _choose_default_mask(self) -> None:
        """Start on the newest prediction mask, else a Labels layer that is not ground truth."""
        masks = [n for n in self.session.predictions if n in self.viewer.layers]
        if masks:
            self._follow_prediction(masks[-1])
            return
        if "ground truth" in self.mask_combo.currentText():
            for layer in self.mask_combo.layers():
                if "ground truth" not in layer.name:
                    self.mask_combo.set_layer(layer)
                    return

    def _follow_prediction(self, mask_name: str) -> None:
        # Follow each new prediction mask Segment (or a fine-tune) makes; a
        # rewrite of a mask (a threshold move) leaves a layer picked by hand alone.
        self.mask_combo.set_layer(mask_name)

    def _on_mask_changed(self, *_: Any) -> None:
        layer = self.mask_combo.layer()
        if self.delete_button.isChecked():
            self._set_click_mode(True)  # follow the new target
        if layer is None:
            return
        record = self.session.predictions.get(layer.name)
        self.image_combo.set_layer(record.image_layer if record else image_name_for(layer.name))

    def _target(self, action: str) -> Any | None:
        layer = self.mask_combo.layer()
        if layer is None:
            show_error(f"{action}: no mask layer chosen; run Segment or load a mask first.")
        return layer

    # -------------------------------------------------------------- actions
    def _apply(self, layer: Any, new: np.ndarray, action: str) -> bool:
        """Write ``new`` into ``layer`` through napari's undo history."""
        old = layer.data
        changed = new != old
        if not changed.any():
            show_info(f"{action}: nothing to change in '{layer.name}'.")
            return False
        index = np.nonzero(changed)
        layer.data_setitem(index, new[index])
        self._mark_corrected(layer)
        return True

    def _mark_corrected(self, layer: Any) -> None:
        # The layer's tracker has usually done this on napari's paint event.
        record = self.session.predictions.get(layer.name)
        if record is not None:
            mark_corrected(record)

    def _run(self, action: str, func: Any, *args: Any, **kwargs: Any) -> bool:
        layer = self._target(action)
        if layer is None:
            return False
        try:
            new = func(np.asarray(layer.data), *args, **kwargs)
        except InputError as exc:
            show_error(f"{action}: {exc}")
            return False
        return self._apply(layer, new, action)

    def delete_at(self, y: float, x: float, z: float | None = None) -> bool:
        """Delete the object under data position (``z``,) ``y``, ``x`` of the mask layer.

        For a stack, ``z`` defaults to the slice on screen.

        Returns
        -------
        bool
            Whether an object was deleted.
        """
        from napari_unet.core.postprocess import delete_object

        layer = self.mask_combo.layer()
        if layer is not None and layer.ndim == 3 and z is None:
            z = self._current_slice(layer)
        kwargs = {} if z is None else {"z": int(round(z))}
        return self._run("Delete", delete_object, int(round(y)), int(round(x)), **kwargs)

    def fill_holes(self) -> bool:
        """Fill the holes of every object (per slice for stacks)."""
        from napari_unet.core.postprocess import fill_holes

        return self._run("Fill holes", fill_holes)

    def remove_small(self) -> bool:
        """Remove objects smaller than the chosen number of pixels."""
        from napari_unet.core.postprocess import remove_small

        return self._run("Remove small", remove_small, self.min_size_spin.value())

    def merge_touching(self) -> bool:
        """Give each group of touching objects one label."""
        from napari_unet.core.postprocess import merge_touching

        return self._run("Merge touching", merge_touching)

    def undo(self) -> None:
        """Undo the last edit of the mask layer (an action here or a brush stroke)."""
        layer = self._target("Undo")
        if layer is not None:
            layer.undo()

    # ----------------------------------------------------- click to delete
    def _set_click_mode(self, on: bool) -> None:
        if self._click_layer is not None:
            callbacks = self._click_layer.mouse_drag_callbacks
            if self._on_click in callbacks:
                callbacks.remove(self._on_click)
            self._click_layer.events.mode.disconnect(self._on_layer_mode)
            self._click_layer = None
        layer = self.mask_combo.layer() if on else None
        if layer is None:
            return
        layer.mode = "pan_zoom"  # a click must not also paint
        self.viewer.layers.selection.active = layer
        layer.mouse_drag_callbacks.append(self._on_click)
        layer.events.mode.connect(self._on_layer_mode)
        self._click_layer = layer

    def _on_layer_mode(self, event: Any = None) -> None:
        # Picking napari's brush or fill ends click-to-delete, so one click
        # never both paints and deletes.
        if self._click_layer is not None and str(self._click_layer.mode) != "pan_zoom":
            self.delete_button.setChecked(False)

    def _on_click(self, layer: Any, event: Any) -> Any:
        if getattr(event, "button", None) not in (None, 1):
            return
        start = tuple(event.position)
        yield
        dragged = False
        while event.type == "mouse_move":
            dragged = True  # a drag pans the view; only a click deletes
            yield
        if dragged:
            return
        coords = layer.world_to_data(start)
        if layer.ndim == 3:
            self.delete_at(coords[-2], coords[-1], z=coords[-3])
        else:
            self.delete_at(coords[-2], coords[-1])

    def _current_slice(self, layer: Any) -> int:
        return int(round(layer.world_to_data(self.viewer.dims.point)[0]))

    def go_to_uncertain(self) -> tuple[int | None, tuple[int, int, int, int]] | None:
        """Centre the view on the image's most uncertain window (and slice, for stacks).

        Returns
        -------
        tuple or None
            ``(slice, (y0, y1, x0, x1))`` in the uncertainty layer's pixels, or
            None when the image has no uncertainty layer (a notification says how
            to make one).
        """
        from napari_unet.core.tta import most_uncertain_region
        from napari_unet.gui._segment_run import uncertainty_name

        image = self.image_combo.layer()
        name = uncertainty_name(image.name) if image is not None else ""
        if name not in self.viewer.layers:
            show_info(
                "Correct masks: no uncertainty map for this image; tick 'Test-time "
                "augmentation' in Segment and press Run."
            )
            return None
        layer = self.viewer.layers[name]
        z, (y0, y1, x0, x1) = most_uncertain_region(np.asarray(layer.data))
        centre = ((y0 + y1) / 2, (x0 + x1) / 2)
        world = layer.data_to_world(centre if z is None else (z, *centre))
        if z is not None:
            self.viewer.dims.set_point(0, world[0])
        viewer_camera(self.viewer).center = tuple(world[-2:])
        layer.visible = True
        return z, (y0, y1, x0, x1)

    # --------------------------------------------------------------- accept
    def accept(self) -> list[TrainingPair]:
        """Store the image and its corrected mask in the training set and save them.

        For stacks each slice is one pair (the slice on screen, or all slices).
        The correction effort is the Dice between the model's mask and the
        accepted one (NaN for a mask that did not come from Segment).

        Returns
        -------
        list of TrainingPair
            The pairs stored (empty when nothing was accepted).
        """
        from napari_unet.core.metrics import dice

        layer = self._target("Accept")
        if layer is None:
            return []
        image_layer = self.image_combo.layer()
        if image_layer is None:
            show_error("Accept: no image layer chosen; pick the image this mask belongs to.")
            return []
        image, mask = layer_array(image_layer), layer_array(layer)
        from napari_unet.core.images import spatial_shape

        spatial = spatial_shape(image, rgb=image_layer.rgb)
        if spatial != mask.shape:
            show_error(
                f"Accept: mask '{layer.name}' is {mask.shape} but image '{image_layer.name}' "
                f"is {spatial}; pick the matching image."
            )
            return []
        record = self.session.predictions.get(layer.name)
        model_mask = None
        if record is not None:
            check_content(record, layer)  # edits made outside napari's history
            untouched = not record.corrected
            mark_corrected(record)  # an accepted mask is never overwritten
            # An untouched Segment mask is exactly the model's output.
            model_mask = mask if untouched and record.model_mask is None else record.model_mask
        if mask.ndim == 3:
            slices = (
                range(mask.shape[0])
                if self.scope_combo.currentText() == ALL_SLICES
                else [self._current_slice(layer)]
            )
        else:
            slices = [None]
        self.session.set_training_dir(self.folder_edit.text())
        folder = self.session.training_dir
        pairs = []
        for z in slices:
            name = pair_name(image_layer.name, z)
            accepted = _plane(mask, z)
            effort = float("nan")
            if model_mask is not None and model_mask.shape == mask.shape:
                effort = dice(_plane(model_mask, z), accepted)
            pair = TrainingPair(
                name=name, image=_plane(image, z), mask=accepted, effort_dice=effort, z=z
            )
            info = {"image_layer": image_layer.name, "mask_layer": layer.name, "slice": z}
            try:
                pair.path = save_pair(pair, folder, info)
            except OSError as exc:
                reason = exc.strerror or exc
                show_error(
                    f"Accept: could not save to {folder} ({reason}); choose another folder."
                )
            pairs.append(pair)
        self.session.accept_pairs(pairs)
        efforts = [p.effort_dice for p in pairs if not math.isnan(p.effort_dice)]
        effort_text = f"; correction effort Dice {np.mean(efforts):.3f}" if efforts else ""
        saved = f" and saved to {folder}" if all(p.path for p in pairs) else ""
        show_info(f"Accepted {plural(len(pairs), 'pair')}{saved}{effort_text}.")
        return pairs

    def _show_count(self, count: int) -> None:
        self.count_label.setText(f"Training set: {plural(count, 'pair')}")

    def _on_folder_edited(self) -> None:
        self.session.set_training_dir(self.folder_edit.text())

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Folder for the training set", str(self.session.training_dir)
        )
        if folder:
            self.folder_edit.setText(folder)
            self._on_folder_edited()


def _plane(array: np.ndarray, z: int | None) -> np.ndarray:
    """Return the whole array for a 2D image, else slice ``z`` of a stack."""
    return array if z is None else array[z]
