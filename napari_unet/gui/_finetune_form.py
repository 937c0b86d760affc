"""The fine-tune form: training options, augmentation switches, region of interest, replay."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from napari.layers import Image, Labels
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_unet.core.errors import InputError
from napari_unet.gui._arch_option import ArchitectureOption
from napari_unet.gui._layers import LayerCombo, layer_array
from napari_unet.gui._pseudo_option import PseudoLabelOption

#: Whether "Keep what the default model knows" starts checked
#: (benchmarks/results/generalisation.md).
REPLAY_BY_DEFAULT = True
_AUGMENT_LABELS = {
    "flips": "flips",
    "rot90": "90° rotations",
    "elastic": "elastic",
    "intensity": "gamma / brightness / contrast",
    "noise": "noise",
    "blur": "blur (defocus)",
    "scale": "zoom 0.5-2x",
}


class FineTuneForm(QWidget):
    """The controls that describe one fine-tune, and the ``fine_tune`` arguments they give.

    Parameters
    ----------
    viewer
        The viewer whose layers the image and ROI boxes list.
    parent
        The Qt parent.
    """

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        from napari_unet.core import training
        from napari_unet.core.augment import AugmentConfig
        from napari_unet.core.losses import LOSSES

        super().__init__(parent)
        self._replay: tuple[list, list] | None = None

        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(0, 10_000)
        self.epochs_spin.setSpecialValueText("until the time budget is used")
        self.epochs_spin.setValue(training.DEFAULT_EPOCHS)
        self.minutes_spin = QDoubleSpinBox()
        self.minutes_spin.setRange(0.0, 24 * 60.0)
        self.minutes_spin.setDecimals(1)
        self.minutes_spin.setSingleStep(0.5)
        self.minutes_spin.setSpecialValueText("no limit")
        self.minutes_spin.setSuffix(" min")
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setRange(1e-6, 1.0)
        self.lr_spin.setDecimals(6)
        self.lr_spin.setSingleStep(1e-4)
        self.lr_spin.setValue(training.DEFAULT_FINE_TUNE_LR)
        self.loss_combo = QComboBox()
        for name, description in LOSSES.items():
            self.loss_combo.addItem(name, name)
            self.loss_combo.setItemData(self.loss_combo.count() - 1, description, 3)  # tooltip
        self.loss_combo.setCurrentIndex(max(0, self.loss_combo.findData("default")))
        self.val_spin = QDoubleSpinBox()
        self.val_spin.setRange(0.0, 0.9)
        self.val_spin.setSingleStep(0.05)
        self.val_spin.setValue(training.DEFAULT_VAL_FRACTION)
        self.patch_spin = QSpinBox()
        self.patch_spin.setRange(16, 2048)
        self.patch_spin.setSingleStep(16)
        self.patch_spin.setSuffix(" px")
        self.patch_spin.setValue(training.DEFAULT_PATCH_SIZE)
        self.augment_checks: dict[str, QCheckBox] = {}
        augment_box = QGroupBox("Augmentation")
        grid = QGridLayout(augment_box)
        for f in fields(AugmentConfig):
            if isinstance(f.default, bool):
                check = QCheckBox(_AUGMENT_LABELS.get(f.name, f.name.replace("_", " ")))
                check.setChecked(f.default)
                grid.addWidget(check, len(self.augment_checks) // 2, len(self.augment_checks) % 2)
                self.augment_checks[f.name] = check

        self.image_combo = LayerCombo(viewer, Image, self)
        self.roi_check = QCheckBox("Patch centres inside")
        self.roi_check.setToolTip(
            "Train on patches centred inside this Labels layer (for example a lung mask "
            "for nodules); pairs of another size use the whole image"
        )
        self.roi_combo = LayerCombo(viewer, Labels, self)
        roi_row = QHBoxLayout()
        roi_row.addWidget(self.roi_check)
        roi_row.addWidget(self.roi_combo, 1)
        self.replay_check = QCheckBox("Keep what the default model knows")
        self.replay_check.setToolTip(
            "Mix patches of 16 images the shipped model was trained on (fluorescence, "
            "brightfield, H&E) into every batch, half of them, so that fine-tuning on "
            "a few images does not make the model forget the rest"
        )
        self.replay_check.setChecked(REPLAY_BY_DEFAULT)
        self.pseudo_check = PseudoLabelOption(viewer, self)
        self.arch_option = ArchitectureOption(self)

        form = QFormLayout()
        # A row too long for a narrow dock (a long layer name in a combo) puts
        # its label above its field instead of widening the dock.
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.addRow(self.arch_option)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Time budget", self.minutes_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Loss", self.loss_combo)
        form.addRow("Validation share", self.val_spin)
        form.addRow("Patch size", self.patch_spin)
        form.addRow("Region of interest", roi_row)
        form.addRow(self.replay_check)
        form.addRow(self.pseudo_check)
        form.addRow("Image", self.image_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(augment_box)

    def settings(self, device: str) -> Any:
        """Return the :class:`~napari_unet.core.training_config.FineTuneConfig` shown."""
        from napari_unet.core.augment import AugmentConfig
        from napari_unet.core.training_config import FineTuneConfig

        switches = {name: check.isChecked() for name, check in self.augment_checks.items()}
        minutes = self.minutes_spin.value()
        return FineTuneConfig(
            epochs=self.epochs_spin.value() or None,
            max_minutes=minutes if minutes > 0 else None,
            lr=self.lr_spin.value(),
            loss=self.loss_combo.currentData(),
            val_fraction=self.val_spin.value(),
            patch_size=self.patch_spin.value(),
            augment=replace(AugmentConfig(), **switches),
            device=device,
            # A new network has no starting weights worth keeping.
            keep_start=not self.arch_option.new_network(),
        )

    def replay(self) -> tuple[list, list] | None:
        """Return the replay images and labels when "Keep what ... knows" is ticked."""
        return self.replay_set() if self.replay_check.isChecked() else None

    def replay_set(self) -> tuple[list, list] | None:
        """Return the shipped replay set (read once per form), or None if it is missing."""
        if self._replay is None:
            from napari_unet.core.replay import load_replay

            try:
                self._replay = load_replay("default")
            except InputError as exc:
                show_error(f"Fine-tune: {exc}; training without replay.")
                return None
        return self._replay

    def roi_arrays(self, pairs: list) -> list | None:
        """Return the ROI mask for each pair (``None`` where it does not fit), or ``None``.

        The chosen Labels layer applies to the pairs of its own size.
        """
        layer = self.roi_combo.layer() if self.roi_check.isChecked() else None
        if layer is None:
            return None
        roi = layer_array(layer) > 0
        return [roi if roi.shape == pair.mask.shape else None for pair in pairs]
