"""The data preparation of fine-tuning and its validation set."""

from __future__ import annotations

import numpy as np
import torch

from napari_unet.core.model import build_model
from napari_unet.core.validation import ValidationSet, prepare_data


def test_prepare_data_never_trains_on_the_band():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 1000, (60, 80)).astype(np.uint16)
    labels = (rng.random((60, 80)) > 0.8).astype(np.int32)
    model = build_model(base_width=4, depth=2)
    data = prepare_data([image], [labels], None, model, val_fraction=0.25, weighting="border")
    (entry,) = data.split["images"].values()
    y0, y1, x0, x1 = entry["box"]
    assert data.val.pixels == (y1 - y0) * (x1 - x0)
    assert data.train_pixels + data.val.pixels == image.size
    for train, target, weight in zip(
        data.train_images, data.train_targets, data.train_weights, strict=True
    ):
        assert train.shape[1:] == target.shape == weight.shape
    # The training crops are the image minus the band (normalisation is per image).
    full = prepare_data([image], [labels], None, model, val_fraction=0.0).train_images[0]
    if x0 == 0 and x1 == 80:
        parts = [full[:, :y0], full[:, y1:]]
    else:
        parts = [full[:, :, :x0], full[:, :, x1:]]
    parts = [p for p in parts if p.size]
    assert len(parts) == len(data.train_images)
    for part, train in zip(parts, data.train_images, strict=True):
        assert np.array_equal(train, part)
    assert 0.0 <= data.val.dice(model, torch.device("cpu")) <= 1.0


def test_band_holds_foreground_the_edges_lack():
    # One small object in the middle of the image: an edge strip would hold none.
    labels = np.zeros((200, 200), np.int32)
    labels[95:105, 95:105] = 1
    labels[40:46, 150:156] = 2  # and one elsewhere, so training keeps foreground
    image = labels.astype(np.float32)
    model = build_model(base_width=4, depth=2)
    data = prepare_data([image], [labels], None, model, val_fraction=0.2)
    assert data.val.foreground > 0
    assert sum(int(t.sum()) for t in data.train_targets) > 0


def test_pooled_score_cannot_be_won_by_an_empty_prediction():
    # Three empty regions and one with foreground: per-image Dice of an empty
    # prediction averages 0.75, the pooled Dice that selection uses is 0.
    val = ValidationSet()
    for i in range(4):
        truth = np.zeros((32, 32), bool)
        if i == 0:
            truth[8:16, 8:16] = True
        val.add(np.zeros((1, 32, 32), np.float32), truth)
    model = build_model(base_width=4, depth=2)
    with torch.no_grad():
        model.outc.conv.bias.fill_(-50.0)  # predicts nothing anywhere
    score = val.score(model, torch.device("cpu"))
    assert score.predicted == 0 and score.foreground == 64
    assert np.mean(score.per_image) == 0.75
    assert score.dice == 0.0


def test_weightings():
    labels = np.zeros((40, 40), np.int32)
    labels[5:15, 5:15] = 1
    labels[5:15, 17:27] = 2  # two objects 2 px apart: a strong border term
    image = (labels > 0).astype(np.float32)
    model = build_model(base_width=4, depth=2)
    common = {"val_fraction": 0.0}
    paper = prepare_data([image], [labels], None, model, weighting="paper", **common)
    border = prepare_data([image], [labels], None, model, weighting="border", **common)
    none = prepare_data([image], [labels], None, model, weighting="none", **common)
    assert none.train_weights is None
    w_paper, w_border = paper.train_weights[0], border.train_weights[0]
    fg = labels > 0
    assert np.allclose(w_border[fg], 1.0)  # no class balance on the foreground
    assert w_paper[fg].min() > 1.5  # class balance: foreground is the rarer class
    gap = (10, 16)
    assert w_border[gap] > 5 and w_paper[gap] > 5  # the border term between the two
