"""The magicgui forms: Fine-tune's options and augmentation, Segment's mask options."""

from __future__ import annotations

import pytest

from napari_unet.core import defaults
from napari_unet.core.augment import AugmentConfig
from napari_unet.core.losses import LOSSES
from napari_unet.gui.finetune_widget import FineTuneWidget
from napari_unet.gui.segment_widget import SegmentWidget

pytestmark = pytest.mark.gui


def test_forms_start_at_the_core_defaults(make_napari_viewer):
    widget = FineTuneWidget(make_napari_viewer())
    config = widget.settings()
    assert config.epochs == defaults.DEFAULT_EPOCHS and config.max_minutes is None
    assert config.lr == pytest.approx(defaults.DEFAULT_FINE_TUNE_LR)
    assert config.patch_size == defaults.DEFAULT_PATCH_SIZE and config.loss == "default"
    assert config.val_fraction == pytest.approx(defaults.DEFAULT_VAL_FRACTION)
    assert config.augment == AugmentConfig()
    options = widget.form.options
    assert list(options.loss.choices) == list(LOSSES)
    assert widget.patch_spin.text() == f"{defaults.DEFAULT_PATCH_SIZE} px"
    assert widget.minutes_spin.text() == "no limit"


def test_form_values_reach_the_config(make_napari_viewer):
    widget = FineTuneWidget(make_napari_viewer())
    options = widget.form.options
    options.epochs.value = 0  # shown as a word, trained as "no epoch limit"
    assert widget.epochs_spin.text() == "until the time budget is used"
    options.minutes.value = 2.5
    options.lr.value = 3e-4
    options.loss.value = "focal"
    options.val_fraction.value = 0.3
    widget.patch_spin.setValue(192)  # the Qt box and the form are one widget
    widget.augment_checks["blur"].value = False
    widget.augment_checks["rot90"].value = False
    config = widget.settings()
    assert config.epochs is None and config.max_minutes == pytest.approx(2.5)
    assert config.lr == pytest.approx(3e-4) and config.loss == "focal"
    assert config.val_fraction == pytest.approx(0.3)
    assert config.patch_size == 192 and isinstance(config.patch_size, int)
    assert not config.augment.blur and not config.augment.rot90 and config.augment.flips


def test_mask_options_form_drives_the_mask_settings(make_napari_viewer):
    widget = SegmentWidget(make_napari_viewer())
    settings = widget.mask_settings(0.4)
    assert (settings.min_size, settings.fill_holes, settings.separate) == (0, False, False)
    assert widget.min_size_spin.text() == "0 px"
    options = widget.mask_options
    options.min_size.value = 35
    options.fill_holes.value = True
    widget.separate_check.setChecked(True)  # the Qt box and the form are one widget
    settings = widget.mask_settings(0.4)
    assert settings.threshold == pytest.approx(0.4)
    assert settings.min_size == 35 and isinstance(settings.min_size, int)
    assert settings.fill_holes and settings.separate
