"""Fine-tuning: events, best weights, reproducibility, stopping, persistence, bad input."""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import pytest
import torch

from napari_unet.core.augment import AugmentConfig
from napari_unet.core.defaults import DEFAULT_REPLAY_FRACTION
from napari_unet.core.errors import InputError
from napari_unet.core.events import EpochEnd, Notice, Progress, run_to_completion
from napari_unet.core.model import build_model
from napari_unet.core.training import FineTuneResult, TrainingState, fine_tune
from napari_unet.core.validation import prepare_data

FAST = {"patch_size": 32, "batch_size": 2, "steps_per_epoch": 2, "device": "cpu"}


def disc_image(seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A noisy uint16 image of bright discs and its instance labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.int32)
    for k in range(6):
        cy, cx = rng.integers(6, size - 6, 2)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < rng.integers(9, 30)] = k + 1
    image = 200 + 600 * (labels > 0) + rng.normal(0, 60, labels.shape)
    return image.astype(np.uint16), labels


@pytest.fixture
def data():
    pairs = [disc_image(s) for s in range(2)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model(base_width=4, depth=2)


def weights_of(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def val_dice_of(model, images, masks, val_fraction=0.2) -> float:
    """Validation Dice recomputed from scratch on the split stored in the model."""
    prepared = prepare_data(images, masks, None, model, val_fraction=val_fraction)
    return prepared.val.dice(model, torch.device("cpu"))


def test_events_history_and_result(model, data):
    events = []
    result = run_to_completion(fine_tune(model, *data, epochs=3, **FAST), events.append)
    assert isinstance(result, FineTuneResult)
    ends = [e for e in events if isinstance(e, EpochEnd)]
    progress = [e for e in events if isinstance(e, Progress)]
    assert [e.epoch for e in ends] == [1, 2, 3] and all(e.epochs == 3 for e in ends)
    assert progress and progress[-1].step == progress[-1].total == 6
    assert [p.step for p in progress] == sorted(p.step for p in progress)
    assert all(e.eta_s is not None and e.eta_s >= 0 for e in ends) and ends[-1].eta_s == 0
    assert all(0 <= e.val_dice <= 1 and math.isfinite(e.train_loss) for e in ends)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert result.best_dice == max([result.initial_dice] + [h["val_dice"] for h in result.history])
    assert result.stop_reason == "epochs" and not result.stopped_early
    run = result.model.history[-1]
    assert run["type"] == "fine_tune" and run["epochs"] == result.history
    assert run["best_dice"] == result.best_dice and run["best_epoch"] == result.best_epoch
    assert not result.model.training


def test_returned_model_holds_the_best_weights_and_input_is_untouched(model, data):
    before = weights_of(model)
    history, extra = copy.deepcopy(model.history), copy.deepcopy(model.extra)
    snapshots, trained = {}, {}
    state = TrainingState()
    gen = fine_tune(
        model, *data, epochs=4, lr=1e-2, state=state, **{**FAST, "steps_per_epoch": 20}
    )
    result = None
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        if isinstance(event, EpochEnd):
            # At every yield, the state's model is the best one so far.
            snapshots[event.epoch] = weights_of(state.model)
            assert state.best_epoch == event.best_epoch
            # The weights being trained are readable too (a caller may score them).
            assert state.working is not None and state.working is not state.model
            trained[event.epoch] = weights_of(state.working)
    assert same_weights(weights_of(model), before)
    assert model.history == history and model.extra == extra
    assert result.model is not model
    assert result.best_epoch >= 1  # a random model gains from training on this easy data
    assert same_weights(weights_of(result.model), snapshots[result.best_epoch])
    assert same_weights(trained[result.best_epoch], snapshots[result.best_epoch])
    assert not same_weights(trained[1], trained[4])
    assert state.working is None  # the run has ended: the working copy is let go
    dice = val_dice_of(result.model, *data)
    assert dice == pytest.approx(result.best_dice)
    assert dice > result.initial_dice


def test_from_scratch_the_untrained_start_is_never_the_result(model, data):
    # A vanishing learning rate: the epoch cannot beat the start on merit, yet from
    # scratch the first validated epoch replaces the start whatever its Dice.
    fresh = run_to_completion(
        fine_tune(model, *data, epochs=1, keep_start=False, **dict(FAST, lr=1e-12))
    )
    assert fresh.best_epoch == 1
    assert fresh.best_dice == fresh.history[0]["val_dice"]


def test_same_seed_gives_identical_runs(model, data):
    runs = [run_to_completion(fine_tune(model, *data, epochs=2, seed=3, **FAST)) for _ in range(2)]
    assert [h["train_loss"] for h in runs[0].history] == [h["train_loss"] for h in runs[1].history]
    assert same_weights(weights_of(runs[0].model), weights_of(runs[1].model))
    other = run_to_completion(fine_tune(model, *data, epochs=2, seed=4, **FAST))
    assert [h["train_loss"] for h in other.history] != [h["train_loss"] for h in runs[0].history]


def test_should_stop_ends_early_and_keeps_the_best(model, data):
    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return calls["n"] > 5  # a few steps into the third epoch

    result = run_to_completion(fine_tune(model, *data, epochs=20, should_stop=should_stop, **FAST))
    assert result.stopped_early and result.stop_reason == "stopped"
    assert len(result.history) == 2
    assert val_dice_of(result.model, *data) == pytest.approx(result.best_dice)


def test_closing_the_generator_leaves_a_consistent_state(model, data):
    state = TrainingState()
    gen = fine_tune(model, *data, epochs=10, lr=3e-3, state=state, **FAST)
    ends = 0
    for event in gen:
        if isinstance(event, EpochEnd):
            ends += 1
        if ends == 2 and isinstance(event, Progress):
            gen.close()  # the GUI's Stop, in the middle of the third epoch
            break
    assert state.finished and state.stop_reason == "interrupted"
    result = state.result()
    assert result.stopped_early and len(result.history) == 2
    assert val_dice_of(result.model, *data) == pytest.approx(result.best_dice)
    assert result.model.history[-1]["stop_reason"] == "interrupted"


def test_time_budget_is_respected(model, data):
    budget_min = 0.03  # 1.8 s
    t0 = time.perf_counter()
    result = run_to_completion(
        fine_tune(model, *data, epochs=10_000, max_minutes=budget_min, val_fraction=0, **FAST)
    )
    elapsed = time.perf_counter() - t0
    assert result.stop_reason == "time_budget" and result.stopped_early
    assert elapsed < budget_min * 60 + 1.5  # ends at a step boundary, a step at most over
    assert result.history and result.history[-1]["elapsed_s"] <= budget_min * 60 + 1.0


def test_max_minutes_alone_uses_the_whole_budget(model, data):
    # No epoch count: the budget alone ends the run.  The model never marks
    # foreground (threshold 1), so no plateau may end it early either.
    model.threshold = 1.0
    budget_min = 0.05  # 3 s, against 2-step epochs of a few tens of ms
    events = []
    result = run_to_completion(
        fine_tune(model, *data, max_minutes=budget_min, **FAST), events.append
    )
    assert result.stop_reason == "time_budget"
    assert result.stop_message == "time budget of 3 s used"
    assert result.history[-1]["elapsed_s"] >= 0.8 * budget_min * 60
    ends = [e for e in events if isinstance(e, EpochEnd)]
    assert len(ends) > 20 and all(e.epochs == 0 for e in ends)
    assert ends[-1].epoch_text == f"epoch {ends[-1].epoch}" and ends[-1].done >= 0.9


def test_plateau_in_time_needs_a_quarter_of_the_budget(model, data):
    # Everything marked foreground (threshold 0): Dice never changes, so the
    # run is on a plateau from the start and ends after a quarter of the budget.
    model.threshold = 0.0
    budget_min = 0.08  # 4.8 s
    result = run_to_completion(fine_tune(model, *data, max_minutes=budget_min, **FAST))
    assert result.stop_reason == "early_stopping"
    elapsed = result.history[-1]["elapsed_s"]
    assert 0.25 * budget_min * 60 <= elapsed < 0.75 * budget_min * 60
    assert result.stop_message.startswith("no improvement for ")
    assert result.best_epoch == 0  # the starting weights were never beaten


def test_both_limits_whichever_comes_first(model, data):
    result = run_to_completion(fine_tune(model, *data, epochs=2, max_minutes=10, **FAST))
    assert result.stop_reason == "epochs" and len(result.history) == 2
    assert result.stop_message == "all 2 epochs done"


def test_early_stopping_after_patience(model, data):
    model.threshold = 0.0  # everything is foreground: validation Dice never changes
    result = run_to_completion(fine_tune(model, *data, epochs=20, patience=3, **FAST))
    assert result.stop_reason == "early_stopping"
    assert result.stop_message == "no improvement for 3 epochs"
    assert result.best_epoch == 0 and len(result.history) == 3
    assert same_weights(weights_of(result.model), weights_of(model))  # the input weights kept


@pytest.mark.parametrize("keep_start", [True, False])
def test_a_diverging_run_stops_and_keeps_the_starting_weights(model, data, keep_start):
    # The first step is finite; it throws the weights so far that every later loss is not.
    events = []
    gen = fine_tune(model, *data, epochs=5, lr=1e30, keep_start=keep_start, **FAST)
    result = run_to_completion(gen, events.append)
    assert result.stop_reason == "non_finite" and result.stopped_early
    assert "not a finite number" in result.stop_message and "learning rate" in result.stop_message
    assert result.best_epoch == 0 and result.history == []
    assert not any(isinstance(e, EpochEnd) for e in events)
    assert events[-1].message.endswith("loss not finite")
    assert same_weights(weights_of(result.model), weights_of(model))
    assert result.model.history[-1]["stop_reason"] == "non_finite"


def test_a_run_without_a_finite_loss_does_not_report_completion(model, data):
    with torch.no_grad():
        next(model.parameters()).fill_(math.inf)  # every loss is NaN from the first step
    gen = fine_tune(model, *data, epochs=1, **{**FAST, "steps_per_epoch": 1})
    result = run_to_completion(gen)
    assert result.stop_reason == "non_finite" and result.stopped_early
    assert result.best_epoch == 0 and result.history == []


def test_no_early_stop_before_the_model_marks_foreground(model, data):
    model.threshold = 1.0  # nothing ever reaches it: validation Dice stays 0
    result = run_to_completion(fine_tune(model, *data, epochs=8, patience=2, **FAST))
    assert result.stop_reason == "epochs" and len(result.history) == 8


def test_empty_prediction_never_becomes_the_best_model(data):
    # Eight slices, half of them empty; validation holds one of each.  This run
    # has epochs that mark nothing at all: a per-image mean Dice rates them
    # 0.5 (1 on the empty slice), the pooled Dice that selects the model 0.
    images, masks = data
    rng = np.random.default_rng(5)
    empty = [rng.normal(200, 60, (64, 64)).astype(np.uint16) for _ in range(4)]
    more = [disc_image(s) for s in (8, 9)]
    images = [*images, *empty, *(p[0] for p in more)]
    masks = [*masks, *(np.zeros((64, 64), np.int32) for _ in range(4)), *(p[1] for p in more)]
    torch.manual_seed(0)
    model = build_model(base_width=8, depth=2)
    # The augmentation of this run's recorded trajectory (no blur, no zoom).
    augment = AugmentConfig(blur=False, scale=False)
    fast = {**FAST, "steps_per_epoch": 25, "batch_size": 4, "augment": augment}
    result = run_to_completion(
        fine_tune(model, images, masks, epochs=3, lr=1e-2, keep_start=False, val_fraction=0.34,
                  **fast)
    )  # fmt: skip
    run = result.model.history[-1]
    assert run["val_foreground_pixels"] > 0 and run["selected_by"] == "validation Dice"
    empty_epochs = [h for h in result.history if h["val_predicted_pixels"] == 0]
    assert empty_epochs and all(np.mean(h["val_dice_per_image"]) == 0.5 for h in empty_epochs)
    best = result.history[result.best_epoch - 1]
    assert best["val_predicted_pixels"] > 0 and result.best_dice > 0.5


def test_validation_without_foreground_selects_by_training_loss(model, data):
    images, _ = data
    events = []
    empty = [np.zeros((64, 64), np.int32)] * 2
    result = run_to_completion(fine_tune(model, images, empty, epochs=3, **FAST), events.append)
    (notice,) = [e for e in events if isinstance(e, Notice)]
    assert "no foreground" in notice.message and "training loss" in notice.message
    assert result.selected_by == "training loss"
    losses = [h["train_loss"] for h in result.history]
    assert result.best_epoch == 1 + int(np.argmin(losses))


def test_without_validation_the_lowest_training_loss_is_kept(model, data):
    result = run_to_completion(fine_tune(model, *data, epochs=3, val_fraction=0.0, **FAST))
    assert math.isnan(result.best_dice) and result.selected_by == "training loss"
    losses = [h["train_loss"] for h in result.history]
    assert result.best_epoch == 1 + int(np.argmin(losses))
    assert all(h["val_dice"] is None for h in result.history)


def test_split_persists_across_repeated_fine_tunes(model, data):
    images, masks = data
    first = run_to_completion(fine_tune(model, images, masks, epochs=1, **FAST))
    split = first.model.extra["validation_split"]
    assert len(split["images"]) == 2
    assert all(e["role"] == "strip" for e in split["images"].values())
    again = run_to_completion(fine_tune(model, images, masks, epochs=1, seed=9, **FAST))
    assert again.model.extra["validation_split"] == split  # same data, same split
    # Fine-tuning the fine-tuned model with another image and a new share keeps the old split.
    extra_image, extra_mask = disc_image(7)
    third = run_to_completion(
        fine_tune(
            first.model,
            [*images, extra_image],
            [*masks, extra_mask],
            epochs=1,
            val_fraction=0.4,
            **FAST,
        )
    )
    stored = third.model.extra["validation_split"]["images"]
    assert len(stored) == 3
    assert all(stored[k] == v for k, v in split["images"].items())


def test_stacks_rgb_and_losses(model):
    image, labels = disc_image(3)
    stack = np.stack([image, image[::-1]])
    result = run_to_completion(
        fine_tune(
            model,
            [stack],
            [np.stack([labels, labels[::-1]])],
            epochs=1,
            loss="wce",
            augment=AugmentConfig.none(),
            **FAST,
        )
    )
    assert result.model.history[-1]["n_images"] == 2
    rgb = np.repeat(image[..., None], 3, axis=-1)
    for loss in ("dice", "focal", "bce_dice"):
        result = run_to_completion(fine_tune(model, [rgb], [labels], epochs=1, loss=loss, **FAST))
        assert result.model.history[-1]["loss"] == loss


@pytest.mark.parametrize(
    ("images", "masks", "kwargs", "match"),
    [
        ([], [], {}, "training set is empty"),
        ([np.zeros((64, 64))], [], {}, "1 images but 0 masks"),
        ([np.zeros((64, 64))], [np.zeros((64, 60))], {}, "mask 1 has shape"),
        ([np.full((64, 64), np.nan)], [np.zeros((64, 64))], {}, "NaN or infinite"),
        ([np.zeros((64, 64))], [np.zeros((64, 64))], {"loss": "l2"}, "unknown loss"),
        ([np.zeros((64, 64))], [np.zeros((64, 64))], {"epochs": 0}, "epochs"),
        ([np.zeros((64, 64))], [np.zeros((64, 64))], {"val_fraction": 1.0}, "validation share"),
        ([np.zeros((64, 64))], [np.zeros((64, 64))], {"lr": -1.0}, "learning rate"),
        ([np.zeros((64, 64))], [np.zeros((64, 64))], {"max_minutes": 0}, "time budget"),
    ],
)
def test_bad_inputs_raise_one_line_input_errors(model, images, masks, kwargs, match):
    with pytest.raises(InputError, match=match) as info:
        run_to_completion(fine_tune(model, images, masks, **kwargs))
    assert "\n" not in str(info.value)


def test_fine_tuned_model_round_trips_through_a_checkpoint(model, data, tmp_path):
    from napari_unet.core.checkpoint import load_model, save_model

    result = run_to_completion(fine_tune(model, *data, epochs=2, **FAST))
    loaded = load_model(save_model(result.model, tmp_path / "tuned.pt"))
    assert loaded.history == result.model.history
    assert loaded.extra["validation_split"] == result.model.extra["validation_split"]
    assert same_weights(weights_of(loaded), weights_of(result.model))
    # The loaded model validates on the same held-out pixels with the same score.
    assert val_dice_of(loaded, *data) == pytest.approx(result.best_dice)


def test_a_reused_state_starts_afresh(model, data):
    state = TrainingState()
    for _ in range(2):
        result = run_to_completion(fine_tune(model, *data, epochs=2, state=state, **FAST))
        assert state.step == 4 and state.epoch == 2 and state.finished
        assert state.result().history == result.history


def test_replay_images_train_but_are_never_validated(model, data):
    images, masks = data
    old_image, old_mask = disc_image(11)
    result = run_to_completion(
        fine_tune(model, images, masks, epochs=1, replay=([old_image], [old_mask]), **FAST)
    )
    run = result.model.history[-1]
    assert run["replay_images"] == 1 and run["replay_fraction"] == DEFAULT_REPLAY_FRACTION
    split = result.model.extra["validation_split"]["images"]
    assert len(split) == 2  # only the user's own images are split
    with pytest.raises(InputError, match="replay share"):
        run_to_completion(
            fine_tune(model, images, masks, epochs=1, replay=([old_image], [old_mask]),
                      replay_fraction=1.5, **FAST)
        )  # fmt: skip


def test_zoom_and_defocus_only_when_fine_tuning(model, data):
    scratch = run_to_completion(fine_tune(model, *data, epochs=1, keep_start=False, **FAST))
    tuned = run_to_completion(fine_tune(model, *data, epochs=1, **FAST))
    assert not scratch.model.history[-1]["augment"]["blur"]
    assert not scratch.model.history[-1]["augment"]["scale"]
    assert (
        tuned.model.history[-1]["augment"]["blur"] and tuned.model.history[-1]["augment"]["scale"]
    )


def test_from_scratch_a_budget_is_never_cut_short_by_a_plateau(model, data):
    model.threshold = 0.0  # Dice never changes: a plateau from the first epoch
    budget_min = 0.05
    result = run_to_completion(
        fine_tune(model, *data, max_minutes=budget_min, keep_start=False, **FAST)
    )
    assert result.stop_reason == "time_budget"
    assert result.history[-1]["elapsed_s"] >= 0.8 * budget_min * 60
