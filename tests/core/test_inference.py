"""Tiling geometry and seamless tiled prediction (normalisation: test_images.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_unet.core.errors import DeviceError, InputError
from napari_unet.core.events import Notice, Progress
from napari_unet.core.images import normalize, to_gray
from napari_unet.core.inference import iter_predict_proba, predict_proba
from napari_unet.core.model import NormConfig, build_model
from napari_unet.core.tiling import axis_layout, check_tiling, read_tile, reflect_indices


def _calibrated(depth=2, base_width=4, in_channels=1, seed=0, image=None):
    """A random-weight model in eval mode whose output varies strongly over the image.

    A fresh network in eval mode gives a nearly constant output; a train-mode
    pass sets batch-norm statistics and the output layer is rescaled so that
    logits spread over about +-3, which makes tiling errors visible.
    """
    torch.manual_seed(seed)
    model = build_model(depth=depth, base_width=base_width, in_channels=in_channels)
    if image is None:
        image = _texture(96, 96, seed)
    x = torch.from_numpy(normalize(image, model))
    x = x[None, None] if x.ndim == 2 else x[None]
    for layer in model.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.momentum = None  # running statistics = this batch's statistics
    with torch.no_grad():
        model.train()
        model(x)
        model.eval()
        logits = model(x)
        mu, sd = logits.mean(), logits.std()
        model.outc.conv.weight *= 3 / sd
        model.outc.conv.bias.copy_((model.outc.conv.bias - mu) * 3 / sd)
    return model


def _texture(h, w, seed=0, dtype=np.uint16):
    """Smooth blobs on noise: structure at several scales."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = np.zeros((h, w))
    for _ in range(max(4, h * w // 400)):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, 9)
        img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    img = img / img.max() * 3000 + rng.normal(200, 30, (h, w))
    return np.clip(img, 0, None).astype(dtype)


# ----------------------------------------------------------------------------- normalisation


def test_wide_integers_keep_their_precision():
    # Around 2e9 float32 steps are 256 apart; the offset must be removed first.
    image = (2_000_000_000 + np.arange(100, dtype=np.int64).reshape(10, 10)).astype(np.int64)
    out = normalize(image, NormConfig(p_low=0, p_high=100))
    np.testing.assert_allclose(out, np.arange(100).reshape(10, 10) / 99, atol=1e-6)
    model = _calibrated(depth=1)
    small = (image - 2_000_000_000).astype(np.int64)
    np.testing.assert_allclose(
        predict_proba(image, model, device="cpu"),
        predict_proba(small, model, device="cpu"),
        atol=1e-5,
    )


# ----------------------------------------------------------------------------- tiling geometry


@pytest.mark.parametrize("length", [1, 2, 15, 16, 17, 100, 255, 256, 257, 300, 1000, 2049])
@pytest.mark.parametrize("tile,overlap", [(64, 16), (256, 32), (128, 0)])
def test_axis_layout_covers_and_weights_sum_to_one(length, tile, overlap):
    layout = axis_layout(length, tile, overlap, 16)
    padded = -(-length // 16) * 16
    assert layout.tile % 16 == 0 and layout.tile <= max(tile, padded)
    total = np.zeros(length)
    for start, weight in zip(layout.starts, layout.weights, strict=True):
        lo, hi = max(start, 0), min(start + layout.tile, length)
        total[lo:hi] += weight[lo - start : hi - start]
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    # Tiles sit on the size-multiple grid of the centred, padded frame ...
    offset = -((padded - length) // 2)
    assert layout.starts[0] == offset
    assert layout.starts[-1] + layout.tile == offset + padded
    assert all((s - offset) % 16 == 0 for s in layout.starts)
    # ... and overlap by at least the requested amount.
    assert (layout.tile - np.diff(layout.starts) >= overlap).all()


def test_layout_uses_the_fewest_tiles():
    # 2048 px with 256-px tiles overlapping by 32: 9 tiles (not 10 or 11).
    assert axis_layout(2048, 256, 32, 16).count == 9
    # A length just over one tile gets two short tiles, not two full ones.
    layout = axis_layout(260, 256, 32, 16)
    assert layout.count == 2 and layout.tile == 160


def test_blend_window_is_smooth_and_zero_over_the_margin():
    layout = axis_layout(1000, 256, 32, 16, margin=8)
    middle = layout.weights[1]
    assert (middle[:8] == 0).all() and (middle[-8:] == 0).all()
    assert middle[8] > 0 and middle[-9] > 0
    assert np.abs(np.diff(middle)).max() < 0.1
    assert layout.weights[0][0] == 1.0  # the image border is not faded


def test_margin_over_half_the_overlap_cuts_at_its_centre():
    # The overlap-tile strategy: each tile keeps its half of the overlap.
    layout = axis_layout(512, 288, 64, 16, margin=500)
    assert layout.count == 2
    shared = layout.starts[0] + layout.tile - layout.starts[1]
    first, second = layout.weights
    cut = layout.tile - shared // 2
    assert (first[:cut] == 1).all() and (first[cut:] == 0).all()
    assert (second[: shared // 2] == 0).all() and (second[shared // 2 :] == 1).all()


@pytest.mark.parametrize("length", [1, 2, 3, 10])
def test_reflect_indices_match_numpy_and_repeat_for_wide_pads(length):
    data = np.arange(length)
    pad = 3 * length + 5
    got = data[reflect_indices(-pad, length + pad, length)]
    if length > 1:
        expected = data
        while expected.size < length + 2 * pad:  # numpy reflects repeatedly the same way
            expected = np.pad(expected, length - 1, mode="reflect")
        centre = (expected.size - (length + 2 * pad)) // 2
        np.testing.assert_array_equal(got, expected[centre : centre + length + 2 * pad])
    else:
        assert (got == 0).all()


def test_read_tile_mirrors_outside_the_image():
    plane = np.arange(20).reshape(4, 5)
    tile = read_tile(plane, -2, -1, 8, 8)
    np.testing.assert_array_equal(tile[2:6, 1:6], plane)
    np.testing.assert_array_equal(tile[1, 1:6], plane[1])  # reflect, no edge repeat
    inside = read_tile(plane, 1, 1, 2, 3)
    assert np.shares_memory(inside, plane)  # no copy for inner tiles


def test_bad_tiling_settings_are_input_errors():
    with pytest.raises(InputError):
        check_tiling(0, 0, 16)
    with pytest.raises(InputError, match="half the tile"):
        check_tiling(64, 32, 16)
    assert check_tiling(70, 8, 16) == (80, 8)


# ----------------------------------------------------------------------------- prediction


@pytest.mark.parametrize(
    "shape,expected",
    [
        ((1, 1), (1, 1)),
        ((1, 7), (1, 7)),
        ((3, 5), (3, 5)),
        ((33, 65), (33, 65)),
        ((45, 50, 3), (45, 50)),
        ((20, 21, 4), (20, 21)),
        ((3, 19, 40), (3, 19, 40)),
        ((2, 17, 18, 3), (2, 17, 18)),
    ],
)
def test_output_shapes_and_dtype(shape, expected):
    model = build_model(depth=2, base_width=4).eval()
    image = np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8)
    prob = predict_proba(image, model, tile_size=32, overlap=8, device="cpu")
    assert prob.shape == expected and prob.dtype == np.float32
    assert np.isfinite(prob).all() and prob.min() >= 0 and prob.max() <= 1


def test_tiled_agrees_with_one_whole_image_pass():
    image = _texture(200, 240, seed=1)
    model = _calibrated(depth=2, base_width=4, image=image)
    whole = predict_proba(image, model, tile_size=256, overlap=0, device="cpu")
    assert whole.std() > 0.2  # the model really varies over the image
    tiled = predict_proba(image, model, tile_size=128, overlap=56, device="cpu")
    diff = np.abs(tiled - whole)
    assert diff.max() < 0.05 and diff.mean() < 0.005


def test_tiles_reproduce_the_whole_pass_exactly_beyond_the_receptive_field():
    # A depth-1 network sees only a few pixels around each output, less than
    # the quarter-overlap that blending discards at tile edges: the tiled
    # result must then equal one whole-image pass to float precision.  Tiles
    # off the size-multiple grid (shifted pooling windows) would fail this.
    image = _texture(150, 130, seed=3)
    model = _calibrated(depth=1, base_width=4, image=image)
    whole = predict_proba(image, model, tile_size=256, overlap=0, device="cpu")
    tiled = predict_proba(image, model, tile_size=96, overlap=32, device="cpu")
    assert axis_layout(150, 96, 32, 2).count > 1
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_no_seams_at_tile_borders():
    image = _texture(200, 200, seed=2)
    model = _calibrated(depth=2, base_width=4, image=image)
    whole = predict_proba(image, model, tile_size=256, overlap=0, device="cpu")
    blended = predict_proba(image, model, tile_size=128, overlap=56, device="cpu")
    naive = predict_proba(image, model, tile_size=128, overlap=0, device="cpu")
    layout = axis_layout(200, 128, 0, 4)
    assert layout.count == 2
    seam = layout.starts[1]  # where the naive tiles meet
    assert np.abs(naive - whole)[seam - 2 : seam + 2].max() > 0.2  # a visible seam
    assert np.abs(naive - whole)[:, seam - 2 : seam + 2].max() > 0.2
    # Blended tiles: near every tile edge the map is as smooth as the whole pass.
    blended_layout = axis_layout(200, 128, 56, 4)
    edges = {s for s in blended_layout.starts[1:]}
    edges |= {s + blended_layout.tile for s in blended_layout.starts[:-1]}
    for e in sorted(edges):
        assert np.abs(blended - whole)[e - 2 : e + 2].max() < 0.05
        assert np.abs(blended - whole)[:, e - 2 : e + 2].max() < 0.05
    jump = np.abs(np.diff(blended, axis=0)) - np.abs(np.diff(whole, axis=0))
    assert jump.max() < 0.05


def test_prediction_is_the_same_for_every_integer_scale():
    model = _calibrated()
    image = _texture(64, 64, dtype=np.uint16)
    as_float = predict_proba(image.astype(np.float64) * 0.01, model, device="cpu")
    as_uint = predict_proba(image, model, device="cpu")
    np.testing.assert_allclose(as_float, as_uint, atol=1e-4)


def test_stack_predicts_each_slice_like_a_single_image():
    model = _calibrated()
    stack = np.stack([_texture(40, 48, seed=s) for s in range(3)])
    prob = predict_proba(stack, model, tile_size=32, overlap=8, device="cpu")
    for z in range(3):
        single = predict_proba(stack[z], model, tile_size=32, overlap=8, device="cpu")
        np.testing.assert_allclose(prob[z], single, atol=1e-6)


def test_rgb_prediction_equals_prediction_of_its_grey_version():
    model = _calibrated()
    rgb = np.stack([_texture(40, 40, s, np.uint8) for s in range(3)], axis=-1)
    np.testing.assert_allclose(
        predict_proba(rgb, model, device="cpu"),
        predict_proba(to_gray(rgb), model, device="cpu"),
        atol=1e-6,
    )


def test_progress_events_per_batch_over_all_slices():
    model = build_model(depth=2, base_width=4)
    stack = np.zeros((2, 100, 100), np.uint8)
    # 100 px with 32-px tiles overlapping by 8: 4 tiles per axis, 16 per slice.
    gen = iter_predict_proba(stack, model, tile_size=32, overlap=8, batch_size=5, device="cpu")
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        result = stop.value
    assert result.shape == (2, 100, 100)
    assert all(isinstance(e, Progress) for e in events)
    assert len(events) == 2 * 4  # ceil(16 / 5) batches per slice
    assert [e.step for e in events] == [5, 10, 15, 16, 21, 26, 31, 32]
    assert {e.total for e in events} == {32}
    # The bar counts over the stack; the text counts the tiles of each slice.
    assert events[3].message == "slice 1/2, tile 16/16"
    assert events[4].message == "slice 2/2, tile 5/16"
    assert events[-1].message == "slice 2/2, tile 16/16"


def test_cancel_by_closing_between_batches():
    model = build_model(depth=2, base_width=4)
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    gen = iter_predict_proba(np.zeros((64, 64)), model, tile_size=16, overlap=4, batch_size=2)
    first = next(gen)
    assert first.step == 2 and first.total == axis_layout(64, 16, 4, 4).count ** 2 == 25
    assert len(calls) == 1
    gen.close()
    with pytest.raises(StopIteration):
        next(gen)
    assert len(calls) == 1  # no batch ran after the cancel


def test_model_is_not_modified_by_prediction():
    model = build_model(depth=2, base_width=4)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    predict_proba(_texture(40, 40), model, device="cpu")
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_train_mode_model_predicts_like_eval_mode():
    model = _calibrated()
    image = _texture(48, 48)
    eval_prob = predict_proba(image, model, device="cpu")
    model.train()
    np.testing.assert_allclose(predict_proba(image, model, device="cpu"), eval_prob, atol=1e-6)


def test_three_channel_model_predicts_rgb():
    model = build_model(depth=2, base_width=4, in_channels=3)
    rgb = np.random.default_rng(1).integers(0, 255, (30, 34, 3)).astype(np.uint8)
    assert predict_proba(rgb, model, device="cpu").shape == (30, 34)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_device_is_a_device_error():
    model = build_model(depth=2, base_width=4)
    with pytest.raises(DeviceError):
        predict_proba(np.zeros((8, 8)), model, device="cuda")


def test_bad_batch_size_and_tiling_are_input_errors():
    model = build_model(depth=2, base_width=4)
    with pytest.raises(InputError):
        predict_proba(np.zeros((8, 8)), model, batch_size=0)
    with pytest.raises(InputError):
        predict_proba(np.zeros((8, 8)), model, tile_size=16, overlap=8)


def test_memory_stays_near_input_plus_output():
    # numpy reports its buffers to tracemalloc (torch's do not): the arrays the
    # pipeline makes must stay far below a full float32/float64 copy per step.
    import tracemalloc

    model = build_model(depth=2, base_width=2)
    image = np.random.default_rng(0).integers(0, 4000, (1024, 1024)).astype(np.uint16)
    output_bytes = image.size * 4
    tracemalloc.start()
    try:
        prob = predict_proba(image, model, device="cpu", tile_size=256, overlap=32)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert prob.shape == image.shape
    # Output + a few tiles and histogram chunks; a float64 copy alone would be 2x output.
    assert peak < output_bytes + 12 * 2**20, peak / 2**20


def test_default_tiling_raises_small_tiles_with_a_notice():
    model = build_model(depth=2, base_width=4)  # receptive radius 23, smallest tile 96
    image = np.zeros((300, 300), np.uint8)
    gen = iter_predict_proba(image, model, tile_size=64, device="cpu", batch_size=1000)
    notice = next(gen)
    assert isinstance(notice, Notice) and "64 px raised to 96 px" in notice.message
    event = next(gen)
    assert event.total == axis_layout(300, 96, 2 * 23, 4).count ** 2
    gen.close()
    # No notice when the plane fits in the requested tile or the tile is big enough.
    for shape, tile in (((60, 60), 64), ((300, 300), 96)):
        events = list(iter_predict_proba(np.zeros(shape), model, tile_size=tile, device="cpu"))
        assert all(isinstance(e, Progress) for e in events)
