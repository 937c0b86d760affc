"""The fine-tune form: training options, augmentation switches, region of interest, replay."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from napari.layers import Image, Labels
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QVBoxLayout,
    QWidget,
)

from napari_unet.core.errors import InputError
from napari_unet.gui._arch_option import ArchitectureOption
from napari_unet.gui._forms import whole
from napari_unet.gui._layers import LayerCombo, layer_array
from napari_unet.gui._pseudo_option import PseudoLabelOption
from napari_unet.gui._training_options import (
    augment_form,
    augment_switches,
    training_options_form,
)

#: Whether "Keep what the default model knows" starts checked
#: (benchmarks/results/generalisation.md).
REPLAY_BY_DEFAULT = True


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
        super().__init__(parent)
        self._replay: tuple[list, list] | None = None

        # magicgui forms; their Qt spin boxes are kept by name for scripts and tests.
        self.options = training_options_form()
        self.epochs_spin = self.options.epochs.native
        self.minutes_spin = self.options.minutes.native
        self.lr_spin = self.options.lr.native
        self.loss_combo = self.options.loss.native
        self.val_spin = self.options.val_fraction.native
        self.patch_spin = self.options.patch_size.native
        self.augment = augment_form()
        self.augment_checks = augment_switches(self.augment)
        augment_box = QGroupBox("Augmentation")
        QVBoxLayout(augment_box).addWidget(self.augment.native)

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
        form.addRow(self.options.native)
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
        from napari_unet.core.augment_config import AugmentConfig
        from napari_unet.core.training_config import FineTuneConfig

        switches = {name: check.value for name, check in self.augment_checks.items()}
        options = self.options
        minutes = options.minutes.value
        return FineTuneConfig(
            epochs=whole(options.epochs) or None,
            max_minutes=minutes if minutes > 0 else None,
            lr=options.lr.value,
            loss=options.loss.value,
            val_fraction=options.val_fraction.value,
            patch_size=whole(options.patch_size),
            augment=replace(AugmentConfig(), **switches),
            device=device,
            # A new network has no starting weights worth keeping.
            keep_start=not self.arch_option.new_network(),
        )

    def follow_training_set(self, pairs: Iterable[Any]) -> None:
        """Tick "planes off focus" when the training set holds a slice of a stack, else untick.

        Only slices of a stack learn from it: on 2D images it cost Dice
        (``benchmarks/results/generalisation.md``).
        """
        self.augment_checks["depth"].value = any(p.z is not None for p in pairs)

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
