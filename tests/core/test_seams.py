"""Tiles reproduce one whole-image pass: receptive radius, margins, accepted tile sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from torch import nn

from napari_unet.core.checkpoint import load_model
from napari_unet.core.images import normalize, plane_shape
from napari_unet.core.inference import (
    DEFAULT_TILE_SIZE,
    MIN_TILE_SIZE,
    predict_proba,
    smallest_tile_size,
)
from napari_unet.core.model import UNetConfig, build_model, receptive_radius
from napari_unet.core.tiling import axis_layout, round_up

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "dsb2018_nuclei.tif"
SHARED = ROOT.parent / "shared" / "data" / "dsb2018_stage1"
#: Largest tile size the Segment widget offers (its spin box maximum).
GUI_MAX_TILE = 4096
#: Tiled and whole-image probabilities may differ by float rounding only; the
#: promise to users is 0.05.
ROUNDING = 1e-4


def _whole(image, model):
    """One forward pass over the whole (reflect-padded) image."""
    return predict_proba(image, model, tile_size=2 * max(plane_shape(image)), device="cpu")


@pytest.fixture(scope="module")
def shipped():
    return load_model("default")


@pytest.fixture(scope="module")
def sample():
    return tifffile.imread(SAMPLE)


def _linearised(depth):
    """A U-Net whose gradient is non-zero exactly where an output depends on an input.

    ReLU becomes identity and max-pool average-pool (same 2x2 window), so no
    input is cut off by a zero slope or a lost maximum.
    """
    torch.manual_seed(depth)
    model = build_model(depth=depth, base_width=2)
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.ReLU):
                setattr(module, name, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                setattr(module, name, nn.AvgPool2d(2))
    return model.double().eval()


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_receptive_radius_is_the_networks_farthest_reach(depth):
    model = _linearised(depth)
    radius, block = receptive_radius(model.config), 2**depth
    width = round_up(2 * radius + 4 * block, block)
    x = torch.randn(1, 1, 2 * block, width, dtype=torch.float64, requires_grad=True)
    y = model(x)
    reach = []
    for p in range(radius + block, radius + 2 * block):  # every position in a pooling block
        (grad,) = torch.autograd.grad(y[0, 0, block, p], x, retain_graph=True)
        cols = torch.nonzero(grad[0, 0].abs().sum(0)).flatten()
        reach += [p - int(cols.min()), int(cols.max()) - p]
    assert max(reach) == radius == 7 * block - 5


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 6])
def test_smallest_tile_keeps_a_core_as_wide_as_its_margins(depth):
    config = UNetConfig(depth=depth)
    radius, tile = receptive_radius(config), smallest_tile_size(config)
    assert tile % 2**depth == 0 and tile - 2 * radius >= 2 * radius
    assert tile - 2**depth <= 4 * radius  # the first such multiple
    assert 2 * (2 * radius) < tile  # the default overlap is valid for it


def test_accepted_tile_sizes_match_the_core():
    assert MIN_TILE_SIZE == smallest_tile_size(UNetConfig()) == 432
    assert DEFAULT_TILE_SIZE >= MIN_TILE_SIZE


@pytest.mark.parametrize("tile", [16, 256, MIN_TILE_SIZE, MIN_TILE_SIZE + 16, 496])
def test_shipped_model_tiles_equal_one_whole_pass(shipped, sample, tile):
    # 16 and 256 are raised to the smallest tile; all give several tiles per axis.
    whole = _whole(sample, shipped)
    tiled = predict_proba(sample, shipped, tile_size=tile, device="cpu")
    assert np.abs(tiled - whole).max() <= ROUNDING


def test_largest_gui_tile_size_is_seamless_too(shipped, sample):
    # A strip just wider than the largest tile: two tiles of ~2.1k px along x.
    strip = np.concatenate([sample[:64], sample[:64, ::-1]] * 5, axis=1)[:, : GUI_MAX_TILE + 40]
    assert axis_layout(strip.shape[1], GUI_MAX_TILE, 214, 16).count == 2
    whole = _whole(strip, shipped)
    tiled = predict_proba(strip, shipped, tile_size=GUI_MAX_TILE, device="cpu")
    assert np.abs(tiled - whole).max() <= ROUNDING


@pytest.mark.parametrize("depth,in_channels", [(2, 1), (3, 1), (2, 3)])
def test_random_models_tile_exactly_at_their_smallest_tile(depth, in_channels):
    # Weights that the shipped model does not have, and RGB for a 3-channel model.
    rng = np.random.default_rng(depth)
    shape = (300, 260, 3) if in_channels == 3 else (300, 260)
    image = rng.gamma(2.0, 400.0, shape).astype(np.uint16)
    torch.manual_seed(depth)
    model = build_model(depth=depth, base_width=4, in_channels=in_channels)
    x = torch.from_numpy(normalize(image, model))
    x = x[None, None] if x.ndim == 2 else x[None]
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.momentum = None  # running statistics = this batch's statistics
    with torch.no_grad():
        model.train()
        model(x[..., :256, :256])
        model.eval()
        # Spread the logits over about +-3 so that any tiling error would show.
        logits = model(x[..., :256, :256])
        scale = 3 / logits.std()
        model.outc.conv.weight *= scale
        model.outc.conv.bias.copy_((model.outc.conv.bias - logits.mean()) * scale)
    tile = smallest_tile_size(model.config)
    assert axis_layout(300, tile, 2 * receptive_radius(model.config), 2**depth).count > 1
    whole = _whole(image, model)
    tiled = predict_proba(image, model, tile_size=tile, device="cpu")
    assert whole.std() > 0.1
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def _shared_fluorescence():
    index = SHARED / "index.json"
    if not index.is_file():
        pytest.skip("the shared DSB 2018 images are not beside this checkout")
    entries = json.loads(index.read_text())
    return next(e for e in entries if e["modality"] == "fluorescence" and e["shape"][0] > 500)


def test_a_shared_real_image_at_the_smallest_tile(shipped):
    entry = _shared_fluorescence()
    image = tifffile.imread(SHARED / entry["file"])
    whole = _whole(image, shipped)
    tiled = predict_proba(image, shipped, tile_size=MIN_TILE_SIZE, device="cpu")
    assert np.abs(tiled - whole).max() <= ROUNDING
