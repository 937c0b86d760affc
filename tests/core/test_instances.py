"""Instances from two-output models: rim targets, seeded watershed, AP and the DSB score."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _fixtures import fine_tuned_maps, untrained_maps
from scipy import ndimage as ndi

from napari_unet.core.errors import InputError
from napari_unet.core.events import run_to_completion
from napari_unet.core.inference import iter_predict, predict_proba
from napari_unet.core.instances import MIN_OBJECT_SIZE, instances_from_maps, split_objects
from napari_unet.core.losses import bce_dice, get_loss
from napari_unet.core.metrics import average_precision, dsb_score, object_scores
from napari_unet.core.model import build_model
from napari_unet.core.postprocess import label_objects
from napari_unet.core.targets import BOUNDARY_BIT, boundary_target, separation_border
from napari_unet.core.training import training_loss
from napari_unet.core.validation import prepare_data


def _touching(shape=(80, 120), centres=((40, 30), (40, 50), (40, 90)), radius=12):
    """Discs; the first two overlap, so they touch along a chord."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.int32)
    for i, (cy, cx) in enumerate(centres, 1):
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
        labels[disc & (labels == 0)] = i
    return labels


def _ideal_maps(labels):
    return (labels > 0).astype(np.float32), boundary_target(labels).astype(np.float32)


# ----------------------------------------------------------------------------- rims


def test_boundary_target_marks_rims_and_contacts_but_not_the_image_edge():
    labels = _touching()
    rim = boundary_target(labels)
    assert not np.any(rim & (labels == 0))
    # Both sides of the contact between objects 1 and 2 are rim.
    contact = (labels == 1) & np.roll(labels == 2, -1, axis=1)
    assert contact.any() and rim[contact].all()
    # The interior stays: each object keeps a connected core.
    for i in (1, 2, 3):
        core = (labels == i) & ~rim
        assert core.sum() > 0.6 * (labels == i).sum()
    full = np.ones((10, 10), np.uint8)
    assert not boundary_target(full).any()  # the image edge is no rim
    # A binary mask: touching objects are one component, so no contact rim.
    assert boundary_target(labels > 0)[contact].sum() < contact.sum()


def test_boundary_target_stacks_never_cross_slices():
    labels = np.stack([_touching(), np.zeros((80, 120), np.int32)])
    rim = boundary_target(labels)
    np.testing.assert_array_equal(rim[0], boundary_target(labels[0]))
    assert not rim[1].any()


# ----------------------------------------------------------------------------- instances


def test_ideal_maps_give_the_true_objects_back():
    labels = _touching()
    proba, rim = _ideal_maps(labels)
    # Connected components merge the touching pair; the rims split it.
    assert label_objects(proba > 0.5).max() == 2
    out = instances_from_maps(proba, rim, 0.5)
    assert out.dtype == np.uint16 and out.max() == 3
    scores = object_scores(out, labels, iou_threshold=0.9)
    assert scores["tp"] == 3 and scores["fp"] == 0
    assert not np.any((out > 0) != (labels > 0))  # the watershed fills the whole mask


def test_without_a_boundary_map_objects_are_connected_components():
    labels = _touching()
    proba, _ = _ideal_maps(labels)
    np.testing.assert_array_equal(
        instances_from_maps(proba, None, 0.5), label_objects(proba >= 0.5)
    )


def test_an_object_without_interior_is_kept_and_tiny_seeds_do_not_split():
    labels = np.zeros((40, 40), np.int32)
    labels[5:8, 5:8] = 1  # 3x3: all rim, no seed
    labels[20:32, 20:32] = 2
    proba, rim = _ideal_maps(labels)
    rim[25, 25] = 1.0  # a one-pixel hole in the rim map cuts no seed off
    rim[25:27, 21:23] = 0.0  # joined to the interior anyway
    out = instances_from_maps(proba, rim, 0.5, min_object_size=0)
    assert out.max() == 2
    assert object_scores(out, labels, iou_threshold=0.9)["tp"] == 2


def test_mask_options_apply_and_stacks_get_unique_ids():
    labels = _touching()
    proba, rim = _ideal_maps(labels)
    proba[2:4, 2:4] = 1.0  # a 4-pixel speck
    assert instances_from_maps(proba, rim, 0.5, min_object_size=0).max() == 4
    assert instances_from_maps(proba, rim, 0.5, min_size=10, min_object_size=0).max() == 3
    # By default the split drops specks under MIN_OBJECT_SIZE; components keep them.
    assert MIN_OBJECT_SIZE > 4
    split = instances_from_maps(proba, rim, 0.5)
    assert split.max() == 3 and not split[2:4, 2:4].any()
    assert instances_from_maps(proba, None, 0.5)[2:4, 2:4].all()
    stack = instances_from_maps(np.stack([proba, proba]), np.stack([rim, rim]), 0.5, min_size=10)
    assert stack.shape == (2, *labels.shape)
    assert set(np.unique(stack[0])) == {0, 1, 2, 3}
    assert set(np.unique(stack[1])) == {0, 4, 5, 6}
    # The threshold acts like the mask's: nothing at 1.01 is foreground.
    assert instances_from_maps(proba * 0.5, rim, 0.6).max() == 0


def test_the_shape_alone_parts_touching_discs_and_a_rim_parts_a_straight_contact():
    labels = _touching()
    proba = (labels > 0).astype(np.float32)
    # No rim predicted anywhere: the neck between the two discs still splits them.
    out = instances_from_maps(proba, np.zeros_like(proba), 0.5)
    assert out.max() == 3
    assert object_scores(out, labels, iou_threshold=0.8)["tp"] == 3
    # Two squares side by side make a rectangle with no neck: one object,
    # until the rim output marks the contact between them.
    squares = np.zeros((40, 60), np.int32)
    squares[8:32, 6:30], squares[8:32, 30:54] = 1, 2
    flat = (squares > 0).astype(np.float32)
    assert instances_from_maps(flat, np.zeros_like(flat), 0.5).max() == 1
    split = instances_from_maps(flat, boundary_target(squares).astype(np.float32), 0.5)
    assert split.max() == 2
    assert object_scores(split, squares, iou_threshold=0.8)["tp"] == 2


def test_a_split_made_once_follows_the_threshold():
    labels = _touching()
    dist = ndi.distance_transform_edt(labels > 0)
    # Probabilities that fall off outside the objects: a lower threshold grows
    # the mask, a higher one shrinks it.
    proba = np.clip(0.5 + 0.05 * (dist - ndi.distance_transform_edt(labels == 0)), 0, 1)
    proba = proba.astype(np.float32)
    proba[2:12, 2:12] = 0.35  # a blob only the lowest threshold shows
    rim = np.zeros_like(proba)
    reference = split_objects(proba >= 0.5, rim)
    assert reference.dtype == np.int32 and reference.max() == 3
    np.testing.assert_array_equal(
        instances_from_maps(proba, rim, 0.5, split=reference),
        instances_from_maps(proba, rim, 0.5),
    )
    for t in (0.3, 0.4, 0.6, 0.7):
        out = instances_from_maps(proba, rim, t, split=reference, min_object_size=0)
        np.testing.assert_array_equal(out > 0, proba >= t)  # the whole mask, nothing more
        ids = np.unique(out[out > 0])
        np.testing.assert_array_equal(ids, np.arange(1, ids.size + 1))
        # The three objects stay apart at every threshold.
        assert object_scores(out, labels, iou_threshold=0.5)["tp"] == 3
        assert out.max() == (4 if t <= 0.35 else 3)  # the blob is an object of its own
    stack = np.stack([proba, proba])
    both = split_objects(stack >= 0.5, np.stack([rim, rim]))
    assert both.max() == 6 and set(np.unique(both[1])) == {0, 4, 5, 6}
    follow = instances_from_maps(stack, np.stack([rim, rim]), 0.4, split=both)
    assert follow.max() == 6
    with pytest.raises(InputError, match="split"):
        instances_from_maps(proba, rim, 0.5, split=reference[:10])


def test_instances_reject_mismatched_maps():
    with pytest.raises(InputError, match="boundary map"):
        instances_from_maps(np.zeros((5, 5)), np.zeros((5, 6)), 0.5)


# ----------------------------------------------------------------------------- AP


def test_average_precision_counts_and_the_dsb_score():
    truth = np.zeros((40, 60), np.int32)
    truth[5:15, 5:15] = 1
    truth[20:30, 20:30] = 2
    truth[5:15, 40:50] = 3
    pred = np.zeros_like(truth)
    pred[5:15, 5:15] = 7  # exact
    pred[20:30, 20:29] = 8  # IoU 0.9: passes 0.85, fails 0.9
    pred[30:38, 50:58] = 9  # a false positive; object 3 is missed
    ap = average_precision(pred, truth)
    assert list(ap) == pytest.approx([0.5 + 0.05 * k for k in range(10)])
    assert ap[0.5] == pytest.approx(2 / 4)  # tp 2, fp 1, fn 1
    assert ap[0.85] == pytest.approx(2 / 4)
    assert ap[0.9] == pytest.approx(1 / 5)  # tp 1, fp 2, fn 2
    assert dsb_score(pred, truth) == pytest.approx(np.mean(list(ap.values())))
    assert average_precision(np.zeros_like(truth), np.zeros_like(truth))[0.5] == 1.0
    assert average_precision(np.zeros_like(truth), truth)[0.5] == 0.0
    # A stack averages its slices.
    both = average_precision(np.stack([pred, truth]), np.stack([truth, truth]))
    assert both[0.9] == pytest.approx((1 / 5 + 1.0) / 2)
    with pytest.raises(InputError, match="AP thresholds"):
        average_precision(pred, truth, thresholds=(0.3,))


# ----------------------------------------------------------------------------- models


def test_two_output_models_predict_both_maps_in_one_pass():
    image, model, maps = untrained_maps(out_channels=2, shape=(70, 90))
    assert maps.proba.shape == maps.boundary.shape == image.shape
    np.testing.assert_allclose(maps.proba, predict_proba(image, model, device="cpu"), atol=1e-6)
    assert not np.allclose(maps.proba, maps.boundary)
    one = run_to_completion(iter_predict(image, build_model(base_width=4, depth=2), device="cpu"))
    assert one.boundary is None


def test_training_targets_pack_the_rims_and_the_loss_uses_both_outputs():
    labels = _touching()
    image = (labels > 0) * 200.0 + 20.0
    model = build_model(base_width=4, depth=2, out_channels=2)
    data = prepare_data([image], [labels], None, model, val_fraction=0.0)
    code = data.train_targets[0]
    rim = boundary_target(labels)
    np.testing.assert_array_equal(code >= BOUNDARY_BIT, rim)
    assert set(np.unique(code)) == {0, 1, 2, 3}  # 2: the contact, cut from the foreground
    one = prepare_data([image], [labels], None, build_model(base_width=4, depth=2), val_fraction=0)
    assert set(np.unique(one.train_targets[0])) == {0, 1}

    loss = get_loss("bce_dice")
    logits = torch.randn(2, 2, 16, 16)
    target = torch.randint(0, 4, (2, 1, 16, 16)).float()
    expected = loss(logits[:, :1], target.remainder(2)) + bce_dice(
        logits[:, 1:], (target >= 2).float()
    )
    assert training_loss(loss, logits, target, None) == pytest.approx(float(expected))

    # With border weights, a wrong rim logit costs more where the weight is high (contacts).
    default = get_loss("default")
    weights = torch.ones(2, 1, 16, 16)
    rim_target = torch.zeros(2, 1, 16, 16)
    rim_target[:, :, 8] = 2.0  # a rim row, predicted as no rim
    good = torch.full((2, 2, 16, 16), -5.0)
    plain = float(training_loss(default, good, rim_target, weights))
    weights[:, :, 8] = 11.0
    assert float(training_loss(default, good, rim_target, weights)) > plain + 0.1


def test_fine_tuning_a_two_output_model_learns_the_rims():
    labels = _touching(shape=(96, 128))
    maps = fine_tuned_maps(labels, out_channels=2)
    rim = boundary_target(labels)
    # The rim output is higher on rims than inside objects.
    assert maps.boundary[rim].mean() > maps.boundary[(labels > 0) & ~rim].mean() + 0.2


def test_random_maps_keep_the_mask_and_split_only_within_its_parts():
    rng = np.random.default_rng(3)
    from scipy import ndimage as ndi

    proba = ndi.gaussian_filter(rng.random((120, 150)), 2).astype(np.float32)
    proba = (proba - proba.min()) / np.ptp(proba)
    rim = ndi.gaussian_filter(rng.random((120, 150)), 1.5).astype(np.float32)
    rim = (rim - rim.min()) / np.ptp(rim)
    out = instances_from_maps(proba, rim, 0.5, min_object_size=0)
    mask = proba >= 0.5
    np.testing.assert_array_equal(out > 0, mask)
    parts = label_objects(mask)
    assert out.max() > parts.max()  # something was split
    ids = np.unique(out[out > 0])
    np.testing.assert_array_equal(ids, np.arange(1, ids.size + 1))  # consecutive
    for i in ids:  # every object lies in one part of the mask
        assert np.unique(parts[out == i]).size == 1


def test_boundary_target_widens_contacts_only():
    labels = _touching()
    thin = boundary_target(labels, contact_width=0)
    wide = boundary_target(labels)
    assert (wide >= thin).all() and wide.sum() > thin.sum()
    assert not np.any(wide & (labels == 0))
    # The extra pixels lie next to a contact, never on an outline against the background.
    contacts = separation_border(labels)
    extra = wide & ~thin
    near = ndi.binary_dilation(contacts, structure=np.ones((3, 3), bool))
    assert near[extra].all()
    # The band between objects 1 and 2 is 4 px wide (2 + 2 * CONTACT_WIDTH).
    row = np.flatnonzero(contacts.any(axis=1))[len(np.flatnonzero(contacts.any(axis=1))) // 2]
    on_row = wide[row] & ((labels[row] == 1) | (labels[row] == 2))
    assert on_row.sum() - thin[row][(labels[row] == 1) | (labels[row] == 2)].sum() >= 2
