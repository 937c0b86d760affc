"""Pseudo-labels: confident pixels as targets, ignored pixels out of the loss, never validated."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_unet.core.errors import InputError
from napari_unet.core.events import Notice, Progress, run_to_completion
from napari_unet.core.losses import LOSSES, get_loss
from napari_unet.core.model import build_model
from napari_unet.core.pseudo_labels import iter_pseudo_labels, pseudo_target
from napari_unet.core.sampling import PatchSampler
from napari_unet.core.split import image_key
from napari_unet.core.targets import BOUNDARY_BIT, IGNORE_BIT, IGNORE_RIM_BIT
from napari_unet.core.training import fine_tune
from napari_unet.core.training_config import FineTuneConfig
from napari_unet.core.training_step import training_loss
from napari_unet.core.validation import ValidationSet

FAST = {"patch_size": 32, "batch_size": 2, "steps_per_epoch": 2, "device": "cpu"}


def disc_image(seed: int, shape=(64, 64)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.int32)
    for k in range(5):
        cy, cx = rng.integers(6, shape[0] - 6), rng.integers(6, shape[1] - 6)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 25] = k + 1
    image = 200 + 600 * (labels > 0) + rng.normal(0, 60, shape)
    return image.astype(np.uint16), labels


def test_confident_pixels_are_targets_and_the_rest_is_ignored():
    proba = np.array([[0.0, 0.1, 0.11, 0.5], [0.89, 0.9, 0.95, 1.0]], np.float32)
    code = pseudo_target(proba, 0.1, 0.9)
    np.testing.assert_array_equal(code, [[0, 0, IGNORE_BIT, IGNORE_BIT], [IGNORE_BIT, 1, 1, 1]])
    two = pseudo_target(proba, 0.1, 0.9, rims=True)
    np.testing.assert_array_equal(two, code | IGNORE_RIM_BIT)  # rims: unknown everywhere
    with pytest.raises(InputError, match="low < high"):
        pseudo_target(proba, 0.9, 0.1)


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("outputs", [1, 2])
def test_ignored_pixels_add_nothing_to_the_loss_or_its_gradient(name, outputs):
    loss = get_loss(name)
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, outputs, 16, 16, generator=gen)
    code = (torch.rand(2, 1, 16, 16, generator=gen) > 0.7).float()
    if outputs == 2:
        code = code + BOUNDARY_BIT * code * (torch.rand(2, 1, 16, 16, generator=gen) > 0.5)
    weights = 1 + 9 * torch.rand(2, 1, 16, 16, generator=gen)
    ignored = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    ignored[:, :, :, 8:] = True
    flagged = code + (IGNORE_BIT + IGNORE_RIM_BIT) * ignored
    logits.requires_grad_(True)
    value = training_loss(loss, logits, flagged, weights)
    value.backward()
    assert torch.all(logits.grad[ignored.expand_as(logits)] == 0)
    assert torch.any(logits.grad[~ignored.expand_as(logits)] != 0)
    nothing = training_loss(loss, logits, code + IGNORE_BIT + IGNORE_RIM_BIT, weights)
    assert float(nothing) == 0.0  # nothing known: no loss, rather than NaN
    if not loss.pixelwise:
        return  # a loss over windows sees ignored pixels as right (no gradient, checked above)
    # Exactly the loss of the known pixels alone, whatever the ignored ones hold.
    left = training_loss(loss, logits[..., :8], code[..., :8], weights[..., :8])
    assert float(value) == pytest.approx(float(left), rel=1e-5)
    scrambled = torch.where(ignored.expand_as(logits), 50.0, logits.detach())
    other = training_loss(loss, scrambled, flagged, weights * 3 * ignored + weights * ~ignored)
    assert float(other) == pytest.approx(float(value), rel=1e-5)


def test_patches_centred_on_foreground_never_start_on_ignored_pixels():
    code = np.full((64, 64), IGNORE_BIT | IGNORE_RIM_BIT, np.uint8)
    code[30:33, 40:43] = 1 | IGNORE_RIM_BIT
    image = np.stack(np.mgrid[:64, :64]).astype(np.float32)
    sampler = PatchSampler([image], [code], patch_size=8, foreground_fraction=1.0)
    batch = sampler.batch(50, np.random.default_rng(0))
    centres = batch.images[:, :, 4, 4].astype(int)
    assert batch.foreground.all()
    assert np.all((centres[:, 0] >= 30) & (centres[:, 0] < 33) & (centres[:, 1] >= 40))


def test_pseudo_labels_of_a_stack_count_their_pixels():
    torch.manual_seed(0)
    model = build_model(base_width=4, depth=2, out_channels=2)
    stack = np.stack([disc_image(s)[0] for s in range(3)])
    events = []
    labels = run_to_completion(
        iter_pseudo_labels([stack], model, low=0.3, high=0.7, device="cpu"), events.append
    )
    assert len(labels.train_images) == 3 and labels.train_weights is None
    assert labels.confident + labels.ignored == 3 * 64 * 64
    ignored = sum(int(np.count_nonzero(c & IGNORE_BIT)) for c in labels.train_targets)
    assert ignored == labels.ignored
    assert all(np.all(c & IGNORE_RIM_BIT) for c in labels.train_targets)
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[-1].step == progress[-1].total and "image 3/3" in progress[-1].message


def test_fine_tune_learns_from_pseudo_labels_and_never_validates_on_them(monkeypatch):
    labelled = [disc_image(s) for s in range(3)]
    unlabelled = [disc_image(10 + s, shape=(40, 100))[0] for s in range(2)]
    held_out: list[tuple[int, int]] = []
    original = ValidationSet.add

    def spy(self, image, truth):
        held_out.append(truth.shape)
        original(self, image, truth)

    monkeypatch.setattr(ValidationSet, "add", spy)
    torch.manual_seed(0)
    model = build_model(base_width=4, depth=2)
    events = []
    result = run_to_completion(
        fine_tune(
            model,
            [p[0] for p in labelled],
            [p[1] for p in labelled],
            unlabelled=unlabelled,
            epochs=1,
            val_fraction=0.5,
            pseudo_low=0.2,
            pseudo_high=0.8,
            **FAST,
        ),
        events.append,
    )
    assert held_out and all(100 not in shape and 40 not in shape for shape in held_out)
    split = result.model.extra["validation_split"]["images"]
    assert not {image_key(u) for u in unlabelled} & set(split)
    record = result.model.history[-1]["pseudo_labels"]
    assert record["planes"] == 2 and record["confident"] + record["ignored"] == 2 * 40 * 100
    notes = [e.message for e in events if isinstance(e, Notice) and "pseudo-labels" in e.message]
    assert len(notes) == 1 and "2 unlabelled images" in notes[0]
    assert any("pseudo-labels: image 2/2" in e.message for e in events if isinstance(e, Progress))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"pseudo_low": 0.9, "pseudo_high": 0.1}, "low < high"),
        ({"pseudo_high": 1.5}, "low < high"),
        ({"pseudo_low": float("nan")}, "low < high"),
        ({"pseudo_fraction": 1.0}, "pseudo-label share"),
        ({"pseudo_tta": "yes"}, "pseudo_tta"),
    ],
)
def test_bad_pseudo_label_settings_say_what_to_fix(settings, message):
    with pytest.raises(InputError, match=message) as info:
        FineTuneConfig(**settings)
    assert "\n" not in str(info.value)
