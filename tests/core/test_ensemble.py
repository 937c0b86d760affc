"""Ensembles: the mean of the models' maps, their spread as uncertainty."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_unet.core.ensemble import iter_predict_ensemble
from napari_unet.core.errors import InputError
from napari_unet.core.events import run_to_completion
from napari_unet.core.inference import iter_predict
from napari_unet.core.model import build_model


def test_the_mean_and_spread_of_models_with_different_outputs():
    torch.manual_seed(0)
    one = build_model(base_width=4, depth=2).eval()
    two = build_model(base_width=4, depth=2, in_channels=3, out_channels=2).eval()
    image = np.random.default_rng(0).random((40, 48)).astype(np.float32)
    a = run_to_completion(iter_predict(image, one, device="cpu"))
    b = run_to_completion(iter_predict(image, two, device="cpu"))
    out = run_to_completion(iter_predict_ensemble(image, [one, two], device="cpu"))
    np.testing.assert_allclose(out.proba, (a.proba + b.proba) / 2, atol=1e-6)
    np.testing.assert_allclose(out.uncertainty, np.abs(a.proba - b.proba) / 2, atol=1e-6)
    np.testing.assert_allclose(out.boundary, b.boundary, atol=1e-6)  # only one has rims
    alone = run_to_completion(iter_predict_ensemble(image, [one], device="cpu"))
    np.testing.assert_allclose(alone.proba, a.proba, atol=1e-6)
    assert alone.boundary is None and np.all(alone.uncertainty < 1e-6)
    with pytest.raises(InputError, match="at least one model"):
        run_to_completion(iter_predict_ensemble(image, [], device="cpu"))


def test_relay_passes_each_notice_once_maps_progress_and_returns_the_result():
    from napari_unet.core.events import Notice, Progress, relay

    def part(tag):
        yield Notice("tile size raised")
        yield Progress(1, 2, tag)
        yield Progress(2, 2, tag)
        return tag.upper()

    def job():
        seen: set[str] = set()
        a = yield from relay(part("a"), seen, lambda e: Progress(e.step, 4, e.message))
        b = yield from relay(part("b"), seen, lambda e: Progress(2 + e.step, 4, e.message))
        return a + b

    events = []
    assert run_to_completion(job(), events.append) == "AB"
    assert [e.message for e in events if isinstance(e, Notice)] == ["tile size raised"]
    assert [e.step for e in events if isinstance(e, Progress)] == [1, 2, 3, 4]
