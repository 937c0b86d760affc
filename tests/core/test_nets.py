"""U-Net++ and U-Net 3+: shapes, deep supervision, checkpoints, receptive radius, seams."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from napari_unet.core.checkpoint import load_model, save_model
from napari_unet.core.errors import InputError
from napari_unet.core.images import normalize
from napari_unet.core.inference import predict_proba, smallest_tile_size
from napari_unet.core.losses import get_loss, hybrid
from napari_unet.core.model import (
    UNet,
    UNetConfig,
    build_model,
    fuse_for_inference,
    receptive_radius,
)
from napari_unet.core.nets.unet3p import UNet3Plus
from napari_unet.core.nets.unetpp import UNetPlusPlus
from napari_unet.core.ssim import ms_ssim
from napari_unet.core.tiling import axis_layout, round_up
from napari_unet.core.training_step import model_loss, training_loss

VARIANTS = ("unetpp", "unet3p")
ARCHS = ("unet", *VARIANTS)


def tiny(arch, **settings):
    torch.manual_seed(0)
    return build_model(arch=arch, depth=2, base_width=4, **settings)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("in_channels,out_channels", [(1, 1), (3, 2)])
def test_every_arch_keeps_the_unet_contract(arch, in_channels, out_channels):
    model = tiny(arch, in_channels=in_channels, out_channels=out_channels)
    assert isinstance(model, UNet) and model.config.arch == arch
    assert (model.size_multiple, model.threshold, model.history, model.extra) == (4, 0.5, [], {})
    x = torch.randn(2, in_channels, 12, 20)
    model.eval()
    with torch.no_grad():
        y = model(x)
        fused = fuse_for_inference(model)(x)
    assert y.shape == (2, out_channels, 12, 20) and torch.isfinite(y).all()
    torch.testing.assert_close(fused, y, atol=1e-5, rtol=1e-4)


def test_build_model_picks_the_class_and_checks_the_arch():
    assert type(tiny("unetpp")) is UNetPlusPlus and type(tiny("unet3p")) is UNet3Plus
    assert type(tiny("unet")) is UNet
    with pytest.raises(InputError, match="unknown architecture 'resnet'"):
        build_model(arch="resnet")
    with pytest.raises(InputError, match="prune_to"):
        UNetConfig(arch="unetpp", depth=2, prune_to=3)


@pytest.mark.parametrize("arch,heads", [("unetpp", 2), ("unet3p", 3)])
def test_forward_heads_gives_one_full_size_map_per_head(arch, heads):
    model = tiny(arch, out_channels=2).train()
    out = model.forward_heads(torch.randn(2, 1, 16, 8))
    assert len(out.logits) == heads
    assert all(h.shape == (2, 2, 16, 8) for h in out.logits)
    assert (out.presence is None) == (arch == "unetpp")
    if out.presence is not None:
        assert out.presence.shape == (2, 1)


def test_unetpp_forward_is_the_heads_mean_or_the_pruned_head():
    model = tiny("unetpp").eval()
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        heads = model.forward_heads(x).logits
        torch.testing.assert_close(model(x), (heads[0] + heads[1]) / 2)
        pruned = dataclasses.replace(model.config, prune_to=1)
        model.config = pruned
        torch.testing.assert_close(model(x), heads[0])
    assert receptive_radius(pruned) == 7 * 2 - 5


@pytest.mark.parametrize("arch", VARIANTS)
def test_deep_supervision_loss_is_the_mean_over_every_head(arch):
    model = tiny(arch, out_channels=2).train()
    x = torch.randn(2, 1, 16, 16)
    code = torch.randint(0, 4, (2, 1, 16, 16)).float()  # foreground and rim bits
    loss_fn = get_loss("default")
    torch.manual_seed(1)  # the same dropout in both passes
    value = model_loss(model, loss_fn, (x, code, None), torch.device("cpu"))
    torch.manual_seed(1)
    out = model.forward_heads(x)
    expected = torch.stack([training_loss(loss_fn, h, code, None) for h in out.logits]).mean()
    if out.presence is not None:
        holds = torch.ones_like(out.presence)  # every patch holds foreground here
        expected = expected + nn.functional.binary_cross_entropy_with_logits(out.presence, holds)
    torch.testing.assert_close(value, expected)
    value.backward()
    for head in model.heads:
        assert head.conv.weight.grad is not None and head.conv.weight.grad.abs().sum() > 0
    if arch == "unet3p":
        assert model.classifier[1].weight.grad.abs().sum() > 0


def test_gate_empty_zeroes_an_input_judged_empty_and_is_off_by_default():
    model = tiny("unet3p").eval()
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        model.classifier[1].bias.fill_(-100.0)  # judges everything empty
        plain = torch.sigmoid(model(x))
        model.config = dataclasses.replace(model.config, gate_empty=True)
        gated = torch.sigmoid(model(x))
    assert plain.max() > 0.01 and gated.max() == 0.0


def test_ms_ssim_and_hybrid_loss():
    torch.manual_seed(0)
    target = (torch.rand(2, 1, 64, 64) > 0.7).float()
    assert float(ms_ssim(target, target)) == pytest.approx(1.0, abs=1e-5)
    assert float(ms_ssim(torch.rand(2, 1, 64, 64), target)) < 0.5
    good, bad = 20 * (target - 0.5), torch.zeros_like(target)
    assert float(hybrid(good, target)) < 0.05 < float(hybrid(bad, target))
    assert torch.isfinite(hybrid(bad, torch.zeros_like(target)))
    assert get_loss("hybrid").fn is hybrid


@pytest.mark.parametrize("arch", VARIANTS)
def test_checkpoint_keeps_the_architecture(arch, tmp_path):
    model = tiny(arch, in_channels=3, out_channels=2)
    model.threshold = 0.4
    path = save_model(model, tmp_path / "m.pt")
    assert torch.load(path, weights_only=True)["config"]["arch"] == arch
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))


def test_checkpoint_without_arch_loads_as_unet_and_unknown_arch_is_refused(tmp_path):
    path = save_model(tiny("unet"), tmp_path / "old.pt")
    data = torch.load(path, weights_only=True)
    # A plain U-Net is written as before the variants existed, without "arch".
    assert set(data["config"]) == {"in_channels", "out_channels", "depth", "base_width"}
    assert type(load_model(path)) is UNet
    data["config"]["arch"] = "unet9"
    torch.save(data, path)
    with pytest.raises(InputError, match="'unet9' network.*upgrade napari-unet"):
        load_model(path)


def _linearised(model):
    """ReLU -> identity, max-pool -> average pool: a gradient wherever an output depends."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.ReLU):
                setattr(module, name, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                setattr(module, name, nn.AvgPool2d(child.kernel_size))
    return model.double().eval()


@pytest.mark.parametrize("arch,depth,prune", [
    ("unetpp", 1, 0), ("unetpp", 3, 0), ("unetpp", 3, 2), ("unet3p", 1, 0), ("unet3p", 3, 0),
])  # fmt: skip
def test_receptive_radius_is_the_variants_farthest_reach(arch, depth, prune):
    torch.manual_seed(depth)
    model = _linearised(build_model(arch=arch, depth=depth, base_width=1, prune_to=prune))
    radius, block = receptive_radius(model.config), 2**depth
    x = torch.randn(1, 1, 2 * block, round_up(2 * radius + 4 * block, block), dtype=torch.float64)
    x.requires_grad_(True)
    y = model(x)
    reach = []
    for p in range(radius + block, radius + 2 * block):  # every position in a pooling block
        (grad,) = torch.autograd.grad(y[0, 0, block, p], x, retain_graph=True)
        cols = torch.nonzero(grad[0, 0].abs().sum(0)).flatten()
        reach += [p - int(cols.min()), int(cols.max()) - p]
    assert max(reach) == radius


def test_default_depth_radii():
    assert receptive_radius(UNetConfig(arch="unetpp")) == receptive_radius(UNetConfig()) == 107
    assert receptive_radius(UNetConfig(arch="unet3p")) == 122


@pytest.mark.parametrize("arch", ARCHS)
def test_tiles_equal_one_whole_pass_for_every_arch(arch):
    rng = np.random.default_rng(3)
    image = rng.gamma(2.0, 400.0, (200, 180)).astype(np.uint16)
    model = tiny(arch)
    x = torch.from_numpy(normalize(image, model))[None, None]
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.momentum = None  # running statistics = this batch's statistics
    with torch.no_grad():
        model.train()
        model(x[..., :128, :128])
    model.eval()
    tile = smallest_tile_size(model.config)
    assert axis_layout(200, tile, 2 * receptive_radius(model.config), 4).count > 1
    whole = predict_proba(image, model, tile_size=512, device="cpu")
    tiled = predict_proba(image, model, tile_size=tile, device="cpu")
    assert whole.std() > 1e-3
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
