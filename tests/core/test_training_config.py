"""FineTuneConfig: checked settings, and the old import paths of moved names."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_unet.core.errors import InputError
from napari_unet.core.training_config import FineTuneConfig


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"epochs": 0}, "epochs"),
        ({"lr": float("nan")}, "learning rate"),
        ({"max_minutes": -1}, "time budget"),
        ({"val_fraction": 1.0}, "validation share"),
        ({"replay_fraction": 1.0}, "replay share"),
        ({"loss": "l2"}, "unknown loss"),
        ({"patch_size": 2.5}, "patch size"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_settings_raise_one_line(settings, match):
    with pytest.raises(InputError, match=match) as info:
        FineTuneConfig(**settings)
    assert "\n" not in str(info.value)


def test_build_overrides_and_resolves():
    base = FineTuneConfig(epochs=3, lr=2e-4)
    config = FineTuneConfig.build(base, epochs=np.int64(5))
    assert config.epochs == 5 and type(config.epochs) is int and config.lr == 2e-4
    with pytest.raises(InputError, match="unknown fine-tuning setting"):
        FineTuneConfig.build(base, epoch=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 1  # type: ignore[misc]
    scratch = FineTuneConfig(keep_start=False, max_minutes=1.0).resolved()
    assert scratch.epochs is None and scratch.augment is not None and not scratch.augment.blur
    assert FineTuneConfig().resolved().epochs == 20


def test_fine_tune_records_its_config():
    from napari_unet.core.events import run_to_completion
    from napari_unet.core.model import build_model
    from napari_unet.core.training import fine_tune

    image = np.zeros((64, 64), np.float32)
    image[20:40, 20:40] = 1.0
    mask = (image > 0).astype(np.uint8)
    config = FineTuneConfig(epochs=1, patch_size=32, batch_size=2, steps_per_epoch=1)
    result = run_to_completion(
        fine_tune(build_model(depth=2, base_width=4), [image], [mask], config, device="cpu")
    )
    record = result.model.history[-1]["config"]
    assert record["epochs"] == 1 and record["device"] == "cpu" and record["lr"] > 0


def test_moved_names_keep_their_old_paths():
    from napari_unet.core import checkpoint, devices, model, synthetic, training
    from napari_unet.core.synthetic import ct, nuclei

    assert model.load_model is checkpoint.load_model
    assert model.save_model is checkpoint.save_model
    assert model.resolve_device is devices.resolve_device
    assert model.available_devices is devices.available_devices
    assert synthetic.ct_slice is ct.ct_slice and synthetic.nuclei_image is nuclei.nuclei_image
    assert training.FineTuneConfig is FineTuneConfig
    with pytest.raises(AttributeError):
        model.no_such_name  # noqa: B018
