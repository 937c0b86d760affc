"""Numerics of the segmentation losses."""

from __future__ import annotations

import math

import pytest
import torch

from napari_unet.core.errors import InputError
from napari_unet.core.losses import (
    LOSSES,
    OHEM_FRACTION,
    bce_dice,
    default_loss,
    focal,
    get_loss,
    ohem_bce,
    ohem_dice,
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
    for name in ("dice", "bce_dice", "focal", "ohem", "ohem_dice", "hybrid"):
        loss = get_loss(name)
        assert loss.weighting == "none"
        assert torch.equal(loss(logits, target, big), loss(logits, target, None))
    wce = get_loss("wce")
    assert wce.weighting == "paper"
    assert torch.allclose(wce(logits, target, big), 7 * wce(logits, target, None))


def test_registry_and_unknown_name():
    assert set(LOSSES) == {
        "default",
        "wce",
        "dice",
        "bce_dice",
        "focal",
        "bce",
        "ohem",
        "ohem_dice",
        "hybrid",
    }
    assert all(isinstance(d, str) and d and "\n" not in d for d in LOSSES.values())
    with pytest.raises(InputError, match="choose one of default, wce, dice, bce_dice, focal, bce"):
        get_loss("hinge")


def per_pixel_bce(logits, target):
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")


def test_ohem_is_the_mean_of_the_hardest_pixels(target):
    logits = torch.randn(target.shape, generator=torch.Generator().manual_seed(6)) * 3
    values = per_pixel_bce(logits, target).flatten()
    k = math.ceil(OHEM_FRACTION * values.numel())
    hardest = values.sort(descending=True).values[:k]
    assert torch.allclose(ohem_bce(logits, target), hardest.mean())
    assert torch.allclose(get_loss("ohem")(logits, target), hardest.mean())
    # Keeping every pixel is the plain BCE; keeping fewer can only raise the mean.
    assert torch.allclose(ohem_bce(logits, target, fraction=1.0), weighted_bce(logits, target))
    assert float(ohem_bce(logits, target, fraction=0.01)) >= float(ohem_bce(logits, target))
    assert float(ohem_bce(logits, target)) > float(weighted_bce(logits, target))
    with pytest.raises(ValueError, match="fraction"):
        ohem_bce(logits, target, fraction=0.0)


def test_ohem_gradient_flows_only_from_the_hardest_pixels(target):
    logits = torch.randn(target.shape, generator=torch.Generator().manual_seed(7)) * 3
    logits.requires_grad_(True)
    ohem_bce(logits, target).backward()
    values = per_pixel_bce(logits.detach(), target).flatten()
    k = math.ceil(OHEM_FRACTION * values.numel())
    hardest = torch.zeros(values.numel(), dtype=torch.bool)
    hardest[values.topk(k).indices] = True
    grad = logits.grad.flatten()
    assert torch.count_nonzero(grad) == k
    assert torch.all(grad[~hardest] == 0)
    assert torch.all(grad[hardest] != 0)
    # Each kept pixel gets the plain BCE gradient (sigmoid - target), divided by k.
    expected = (torch.sigmoid(logits.detach()) - target).flatten()[hardest] / k
    assert torch.allclose(grad[hardest], expected, atol=1e-7)


def test_ohem_spends_the_gradient_on_a_missed_nodule():
    # 9 foreground pixels in 4 x 64 x 64, everything predicted background.
    target = torch.zeros((4, 1, 64, 64))
    target[0, 0, 30:33, 30:33] = 1
    shares = {}
    for name, fn in (("bce", weighted_bce), ("ohem", ohem_bce)):
        logits = torch.full_like(target, -6.0, requires_grad=True)
        fn(logits, target).backward()
        grad = logits.grad.abs()
        shares[name] = float(grad[target > 0].sum() / grad.sum())
    # Plain BCE spends most of its gradient on the 16,375 easy background pixels.
    assert shares["bce"] < 0.25 < 0.5 < shares["ohem"]
    assert float(ohem_bce(perfect_logits(target), target)) < 1e-6


def test_ohem_dice_is_the_sum_of_its_parts(target):
    logits = torch.randn(target.shape, generator=torch.Generator().manual_seed(8))
    assert torch.allclose(
        ohem_dice(logits, target), ohem_bce(logits, target) + soft_dice(logits, target)
    )
    assert torch.allclose(get_loss("ohem_dice")(logits, target), ohem_dice(logits, target))


def test_dice_and_focal_are_registered_and_train_towards_the_target(target):
    # A few plain gradient steps on free logits lower each loss and the pixel error.
    for name in ("dice", "focal", "ohem", "ohem_dice"):
        logits = torch.zeros(target.shape, requires_grad=True)
        loss = get_loss(name)
        first = float(loss(logits, target).detach())
        optimizer = torch.optim.Adam([logits], lr=0.5)
        for _ in range(30):
            optimizer.zero_grad()
            loss(logits, target).backward()
            optimizer.step()
        assert float(loss(logits, target).detach()) < 0.5 * first, name
        assert float(((logits > 0).float() != target).float().mean()) < 0.05, name
