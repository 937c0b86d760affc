"""Numerics of the segmentation losses."""

from __future__ import annotations

import pytest
import torch

from napari_unet.core.errors import InputError
from napari_unet.core.losses import (
    LOSSES,
    bce_dice,
    default_loss,
    focal,
    get_loss,
    soft_dice,
    weighted_bce,
)


@pytest.fixture
def target() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand((2, 1, 32, 32), generator=g) > 0.7).float()


def perfect_logits(target: torch.Tensor) -> torch.Tensor:
    return (target * 2 - 1) * 20.0


@pytest.mark.parametrize("name", list(LOSSES))
def test_perfect_prediction_has_low_loss(name, target):
    loss = get_loss(name)
    weights = torch.full_like(target, 2.0)
    perfect = float(loss(perfect_logits(target), target, weights))
    wrong = float(loss(-perfect_logits(target), target, weights))
    assert perfect < 1e-3
    assert wrong > 0.5
    assert wrong > 100 * perfect


def test_weights_scale_weighted_cross_entropy(target):
    logits = torch.randn(target.shape, generator=torch.Generator().manual_seed(1))
    plain = weighted_bce(logits, target)
    assert torch.allclose(weighted_bce(logits, target, torch.full_like(target, 3.0)), 3 * plain)
    # Weighting only the foreground changes the loss by exactly the foreground share.
    w = 1 + target
    fg_part = (
        torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")[
            target > 0
        ].sum()
        / target.numel()
    )
    assert torch.allclose(weighted_bce(logits, target, w), plain + fg_part)


def test_focal_is_at_most_bce_and_focuses_on_hard_pixels(target):
    logits = torch.randn(target.shape, generator=torch.Generator().manual_seed(2)) * 3
    assert float(focal(logits, target)) <= float(weighted_bce(logits, target))
    # Easy pixels (confidently right) lose far more of their weight than hard ones.
    easy = focal(perfect_logits(target) / 4, target) / weighted_bce(
        perfect_logits(target) / 4, target
    )
    hard = focal(-perfect_logits(target) / 4, target) / weighted_bce(
        -perfect_logits(target) / 4, target
    )
    assert float(easy) < 1e-3 < float(hard)


def test_soft_dice_is_in_unit_interval(target):
    g = torch.Generator().manual_seed(3)
    for _ in range(10):
        value = float(soft_dice(torch.randn(target.shape, generator=g) * 5, target))
        assert 0.0 <= value <= 1.0
    empty = torch.zeros_like(target)
    assert float(soft_dice(torch.full_like(target, -30.0), empty)) < 1e-6


def test_soft_dice_pools_over_the_batch():
    # One patch with foreground found, one without any: the batch Dice is perfect,
    # whereas a per-patch Dice would have to invent a value for the empty patch.
    target = torch.zeros((2, 1, 8, 8))
    target[0, 0, 2:5, 2:5] = 1
    assert float(soft_dice(perfect_logits(target), target)) < 1e-3


def test_default_loss_punishes_an_empty_output_on_tiny_targets():
    target = torch.zeros((4, 1, 64, 64))
    target[0, 0, 30:33, 30:33] = 1  # 9 foreground pixels in 16384: 0.05 %
    all_background = torch.full_like(target, -6.0)
    assert float(weighted_bce(all_background, target)) < 0.02  # BCE is content
    assert float(default_loss(all_background, target)) > 0.9  # the Dice term is not
    assert float(default_loss(perfect_logits(target), target)) < 1e-3


def test_losses_give_finite_gradients(target):
    for name in LOSSES:
        logits = torch.zeros(target.shape, requires_grad=True)
        get_loss(name)(logits, target, torch.ones_like(target)).backward()
        assert torch.isfinite(logits.grad).all()
        assert logits.grad.abs().sum() > 0


def test_bce_dice_is_the_sum_of_its_parts(target):
    logits = torch.randn(target.shape, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(
        bce_dice(logits, target), weighted_bce(logits, target) + soft_dice(logits, target)
    )


def test_losses_without_weighting_ignore_weights(target):
    logits = torch.randn(target.shape, generator=torch.Generator().manual_seed(5))
    big = torch.full_like(target, 7.0)
    for name in ("dice", "bce_dice", "focal"):
        loss = get_loss(name)
        assert loss.weighting == "none"
        assert torch.equal(loss(logits, target, big), loss(logits, target, None))
    wce = get_loss("wce")
    assert wce.weighting == "paper"
    assert torch.allclose(wce(logits, target, big), 7 * wce(logits, target, None))


def test_registry_and_unknown_name():
    assert set(LOSSES) == {"default", "wce", "dice", "bce_dice", "focal", "bce"}
    assert all(isinstance(d, str) and d and "\n" not in d for d in LOSSES.values())
    with pytest.raises(InputError, match="choose one of default, wce, dice, bce_dice, focal, bce"):
        get_loss("hinge")
