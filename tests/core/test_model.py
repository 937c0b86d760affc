"""The U-Net architecture, its configuration and device selection."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from napari_unet.core.devices import autocast, available_devices, resolve_device
from napari_unet.core.errors import DeviceError, InputError
from napari_unet.core.model import (
    DoubleConv,
    Down,
    NormConfig,
    OutConv,
    UNet,
    UNetConfig,
    Up,
    build_model,
    fuse_for_inference,
)


def test_defaults_match_the_contract():
    config = UNetConfig()
    assert (config.in_channels, config.out_channels, config.depth, config.base_width) == (
        1,
        1,
        4,
        16,
    )
    assert NormConfig() == NormConfig(p_low=1.0, p_high=99.8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.depth = 3  # type: ignore[misc]


@pytest.mark.parametrize("depth,size", [(1, 2), (2, 4), (3, 8), (4, 16)])
def test_forward_keeps_spatial_shape_at_the_size_multiple(depth, size):
    model = build_model(depth=depth, base_width=4).eval()
    assert model.size_multiple == size
    x = torch.randn(2, 1, 3 * size, 5 * size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 1, 3 * size, 5 * size)
    assert torch.isfinite(y).all()


def test_rgb_model_takes_three_channels():
    model = build_model(in_channels=3, depth=2, base_width=4).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 12)).shape == (1, 1, 8, 12)
        with pytest.raises(RuntimeError):
            model(torch.randn(1, 1, 8, 12))


def test_architecture_is_built_from_named_blocks():
    model = build_model(depth=3, base_width=8)
    assert isinstance(model.inc, DoubleConv)
    assert [type(m) for m in model.downs] == [Down] * 3
    assert [type(m) for m in model.ups] == [Up] * 3
    assert isinstance(model.outc, OutConv)
    # Width doubles per level: the bottleneck has base_width * 2**depth channels.
    assert model.downs[-1].conv.block[0].out_channels == 64
    assert isinstance(model.ups[0].up, torch.nn.ConvTranspose2d)
    assert model.ups[0].up.kernel_size == (2, 2) and model.ups[0].up.stride == (2, 2)
    assert isinstance(model.downs[0].pool, torch.nn.MaxPool2d)
    batch_norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(batch_norms) == 2 * (1 + 3 + 3)


def test_skip_connections_carry_fine_detail():
    # A change in one input pixel must reach the output at full resolution
    # mostly near that pixel (through the skips), not only blurred via the bottleneck.
    torch.manual_seed(0)
    model = build_model(depth=3, base_width=4).eval()
    x = torch.zeros(1, 1, 32, 32)
    x2 = x.clone()
    x2[0, 0, 16, 16] = 5.0
    with torch.no_grad():
        diff = (model(x2) - model(x)).abs()[0, 0]
    assert diff[16, 16] > 0
    assert diff[16, 16] >= diff[0, 0]


def test_metadata_attributes_have_defaults():
    model = build_model(depth=2, base_width=4)
    assert model.norm == NormConfig()
    assert model.threshold == 0.5
    assert model.history == [] and model.extra == {}
    other = build_model(depth=2, base_width=4)
    model.history.append({"epoch": 1})
    assert other.history == []  # not shared between instances


def test_build_model_overrides_and_rejects_unknown_settings():
    model = build_model(UNetConfig(depth=2), base_width=6)
    assert model.config == UNetConfig(depth=2, base_width=6)
    with pytest.raises(InputError, match="widht"):
        build_model(widht=3)
    with pytest.raises(InputError):
        UNetConfig(depth=0)
    with pytest.raises(InputError):
        NormConfig(p_low=50, p_high=10)


def test_fused_copy_computes_the_same_function_and_leaves_the_model_alone():
    torch.manual_seed(1)
    model = build_model(depth=2, base_width=4)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        model(x * 3 + 1)  # train-mode pass: non-trivial running statistics
    model.eval()
    fused = fuse_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-4)
    model.train()
    fuse_for_inference(model)
    assert model.training  # the original keeps its mode


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")).type == "cpu"
    auto = resolve_device("auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert auto.type == expected
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu9")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_cuda_is_a_clear_device_error():
    with pytest.raises(DeviceError, match="cuda") as info:
        resolve_device("cuda")
    assert "\n" not in str(info.value)
    assert isinstance(info.value, InputError)


def test_available_devices_lists_auto_first_and_cpu():
    devices = available_devices()
    assert devices[0] == ("auto", "auto")
    assert ("cpu", "cpu") in devices
    for value, _label in devices:
        resolve_device(value)  # every listed value is accepted


def test_autocast_is_a_no_op_on_cpu():
    model = build_model(depth=1, base_width=2).eval()
    with torch.no_grad(), autocast("cpu"):
        y = model(torch.randn(1, 1, 4, 4))
    assert y.dtype == torch.float32


def test_unet_class_is_a_module():
    assert issubclass(UNet, torch.nn.Module)
