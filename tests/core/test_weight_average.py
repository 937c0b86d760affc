"""The training script's mean of epochs' weights (``--average-from``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from napari_unet.core.model import build_model
from napari_unet.core.synthetic import nuclei_image

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_default_model.py"


def load_script():
    spec = importlib.util.spec_from_file_location("train_default_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_mean_of_the_weights_gets_batch_norm_statistics_of_its_own():
    script = load_script()
    nets = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        nets.append(build_model(base_width=4, depth=2))
    average = script.WeightAverage()
    for epoch, net in enumerate(nets):
        average.add(net, epoch)
    assert average.epochs == [0, 1, 2]

    images, masks = zip(*(nuclei_image(seed, size=96) for seed in (3, 4)), strict=True)
    model = average.apply(
        build_model(base_width=4, depth=2), list(images), list(masks), patch_size=64, batches=5
    )
    assert not model.training
    state = model.state_dict()
    weights = [net.state_dict() for net in nets]
    for name in ("inc.block.0.weight", "outc.conv.bias"):
        expected = torch.stack([w[name] for w in weights]).mean(0)
        torch.testing.assert_close(state[name], expected)
    # The running statistics were measured again with the mean weights, over
    # the 5 batches: they are not the nets' own (all at their initial 0 / 1).
    norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert int(norm.num_batches_tracked) == 5 and norm.momentum == 0.1
    assert not torch.allclose(norm.running_mean, torch.zeros_like(norm.running_mean))
    assert np.isfinite(norm.running_var.numpy()).all()
