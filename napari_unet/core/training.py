"""Fine-tuning (and training from scratch) as a generator of progress events.

:func:`fine_tune` deep-copies the model it is given, trains the copy on random
patches of the images (:mod:`napari_unet.core.sampling`, augmented by
:mod:`napari_unet.core.augment`) and keeps, at every moment, a second copy
that holds the best weights so far by validation Dice.  It yields
:class:`~napari_unet.core.events.Progress` after training steps and
:class:`~napari_unet.core.events.EpochEnd` after each epoch, and returns a
:class:`FineTuneResult`.  Its settings are a
:class:`~napari_unet.core.training_config.FineTuneConfig`.

Stopping keeps the best weights, whichever way it happens: ``should_stop``
returning true, the time budget, early stopping, a loss that is no longer a
finite number (the weights that gave it are never kept), or the caller closing
the generator (the GUI's Stop, Ctrl-C on the command line).  In the last case
there is no return value, so pass a :class:`TrainingState`: ``fine_tune``
keeps it up to date and :meth:`TrainingState.result` gives the best model.

Validation uses a fixed split (:mod:`napari_unet.core.split`) that is
stored in ``model.extra`` and reused by later fine-tunes of the same images.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np
import torch

from napari_unet.core.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_FINE_TUNE_LR,
    DEFAULT_FOREGROUND_FRACTION,
    DEFAULT_LR,
    DEFAULT_PATCH_SIZE,
    DEFAULT_REPLAY_FRACTION,
    DEFAULT_VAL_FRACTION,
    PLATEAU_SHARE,
)
from napari_unet.core.devices import prepare_for_device, resolve_device
from napari_unet.core.events import EpochEnd, Notice, Progress, StopReason
from napari_unet.core.losses import Loss, get_loss
from napari_unet.core.model import UNet
from napari_unet.core.pseudo_labels import PseudoLabels, iter_pseudo_labels
from napari_unet.core.sampling import PatchSampler
from napari_unet.core.training_config import FineTuneConfig
from napari_unet.core.training_state import (
    FineTuneResult,
    SelectedBy,
    TrainingState,
    epoch_record,
    improves,
    json_float,
    run_record,
)
from napari_unet.core.training_step import (
    BOUNDARY_LOSS_WEIGHT,
    CHANNELS_LAST,
    draw_batch,
    lr_factor,
    run_share,
    total_steps,
    train_step,
    training_loss,
)
from napari_unet.core.validation import PreparedData, ValidationSet, prepare_data

#: Steps per epoch: enough to see the training pixels about once, within these bounds.
MIN_STEPS_PER_EPOCH = 10
MAX_STEPS_PER_EPOCH = 100
#: Shortest interval between two Progress events (fast GPUs run many steps per second).
PROGRESS_INTERVAL_S = 0.05


def fine_tune(
    model: UNet,
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    config: FineTuneConfig | None = None,
    *,
    rois: Sequence[np.ndarray | None] | None = None,
    replay: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None = None,
    unlabelled: Sequence[np.ndarray] | None = None,
    should_stop: Callable[[], bool] | None = None,
    state: TrainingState | None = None,
    **settings: Any,
) -> Generator[Progress | EpochEnd | Notice, None, FineTuneResult]:
    """Train a copy of ``model`` on images and masks; keep the best weights.

    Parameters
    ----------
    model
        Starting network (pretrained or fresh); it is not modified.
    images
        2D images ((H, W) or RGB(A) (H, W, 3|4)), any dtype; stacks (Z, H, W)
        are split into slices.  Each is normalised like at prediction time.
    masks
        One per image, of its spatial shape: binary (0/1, 0/255) or instance
        labels; label > 0 is foreground.  Touching instances are separated
        (the paper's separation border) in the training target.
    config
        The run's settings (default: :class:`FineTuneConfig()`); see there
        for what each one does.
    rois
        Optional region-of-interest masks (one per image, or ``None``
        entries): patch centres fall inside them only.
    replay
        Optional ``(images, masks)`` that the starting model was trained on:
        ``replay_fraction`` of the patches (in expectation) come from them,
        so that the fine-tune does not forget what the model could do.  They
        are never validated on.
    unlabelled
        Optional images without masks: ``model``'s confident pixels are their
        targets (:mod:`napari_unet.core.pseudo_labels`); never validated on.
    should_stop
        Checked before every step; when it returns true, training ends and
        the best weights are returned.
    state
        Optional :class:`TrainingState` kept up to date at every yield.
    **settings
        Fields of :class:`FineTuneConfig` (``epochs=3``, ``lr=1e-3``, ...),
        overriding those of ``config``.

    Yields
    ------
    Progress
        After training steps (at most every 50 ms): global step of the total.
    EpochEnd
        After every epoch, with the loss, validation Dice (pooled over all
        validation pixels), best so far and the estimated time left.
    Notice
        Once, before training, when the validation set holds no foreground
        (or there is none): the best epoch is then chosen by training loss;
        and once with the pseudo-labels' images and pixels, when given.

    Returns
    -------
    FineTuneResult
        The model with the best weights and the history; the run's history
        entry records the settings under ``"config"``.  A step whose loss is
        NaN or infinite is skipped; when the last step of an epoch is, the
        run ends with stop reason ``"non_finite"`` and the best weights from
        before (the starting weights if no epoch finished).

    Raises
    ------
    InputError
        No images, a mask of the wrong shape, NaN or infinite pixels, an
        unknown loss or a bad or unknown setting.
    """
    started = time.perf_counter()
    cfg = FineTuneConfig.build(config, **settings).resolved()
    state = TrainingState() if state is None else state
    loss_fn: Loss = get_loss(cfg.loss)
    target_device = resolve_device(cfg.device)
    patch = int(math.ceil(cfg.patch_size / model.size_multiple) * model.size_multiple)
    budget_s = None if cfg.max_minutes is None else 60.0 * cfg.max_minutes
    epochs = cfg.epochs or 0  # 0: no epoch limit (a time budget ends the run)
    patience = int(cfg.patience or 0)
    lr, batch_size, keep_start = float(cfg.lr or 0.0), cfg.batch_size, cfg.keep_start
    augment, replay_fraction = cfg.augment, cfg.replay_fraction
    # Read here, not at import: benchmarks change the module's PLATEAU_SHARE.
    plateau_s = None if budget_s is None else PLATEAU_SHARE * budget_s
    should_stop = should_stop or (lambda: False)

    data = prepare_data(
        images, masks, rois, model, val_fraction=cfg.val_fraction, weighting=loss_fn.weighting
    )

    def sampler_of(prepared: PreparedData | PseudoLabels) -> PatchSampler:
        return PatchSampler(
            prepared.train_images,
            prepared.train_targets,
            prepared.train_weights,
            prepared.train_rois,
            patch_size=patch,
            foreground_fraction=cfg.foreground_fraction,
        )

    sampler, replay_sampler = sampler_of(data), None
    if replay is not None and replay_fraction > 0:
        old = prepare_data(*replay, None, model, val_fraction=0.0, weighting=loss_fn.weighting)
        replay_sampler = sampler_of(old)
    steps_per_epoch = cfg.steps_per_epoch
    if steps_per_epoch is None:
        seen = data.train_pixels / (batch_size * patch * patch)
        steps_per_epoch = int(np.clip(math.ceil(seen), MIN_STEPS_PER_EPOCH, MAX_STEPS_PER_EPOCH))
    planned_steps = epochs * steps_per_epoch if epochs else 0
    val_foreground = data.val.foreground
    by_loss = val_foreground == 0
    selected_by = SelectedBy.TRAINING_LOSS if by_loss else SelectedBy.VALIDATION_DICE

    # The best copy lives on the CPU in eval mode; the working copy trains on the device.
    best = copy.deepcopy(model).cpu().eval()
    best.extra = {**copy.deepcopy(model.extra), "validation_split": data.split}
    run = run_record(
        cfg,
        data,
        loss=loss_fn.name,
        patch_size=patch,
        steps_per_epoch=steps_per_epoch,
        device=target_device,
        replay_images=None if replay is None else len(replay[0]),
        selected_by=selected_by,
    )
    best.history = [*copy.deepcopy(model.history), run]
    work = prepare_for_device(copy.deepcopy(model), target_device)
    work.to(memory_format=CHANNELS_LAST)  # type: ignore[call-overload]  # torch's stubs lack it
    fresh = {"model": best, "history": run["epochs"], "selected_by": selected_by, "working": work}
    state.__init__(**fresh)  # type: ignore[misc]  # a state reused from an earlier run starts afresh
    best_loss = math.inf
    last_gain_s = 0.0  # when the best score last improved

    def finish(reason: StopReason) -> FineTuneResult:
        elapsed = time.perf_counter() - started
        return state.finish(
            run,
            reason,
            elapsed=elapsed,
            budget_s=budget_s,
            plateau_s=None if plateau_s is None else elapsed - last_gain_s,
            patience=patience,
        )

    try:
        if by_loss:
            what = "no validation pixels" if not data.val.pixels else "no foreground"
            yield Notice(
                f"the validation set holds {what}: the best epoch is chosen by training "
                "loss, and early stopping is off"
            )
        pseudo = None
        if unlabelled is not None and len(unlabelled) and cfg.pseudo_fraction > 0:
            labels = yield from iter_pseudo_labels(
                unlabelled, model, low=cfg.pseudo_low, high=cfg.pseudo_high, tta=cfg.pseudo_tta,
                weighting=loss_fn.weighting, device=target_device,
            )  # fmt: skip
            pseudo = (sampler_of(labels), cfg.pseudo_fraction)
            run["pseudo_labels"] = labels.record()
            yield Notice(labels.describe())
        state.initial_dice = data.val.dice(work, target_device)
        # Training from scratch: the untrained start is never a useful result,
        # so the first validated epoch replaces it whatever its Dice.
        state.best_dice = state.initial_dice if keep_start and not by_loss else math.nan
        run["initial_dice"] = json_float(state.initial_dice)
        if should_stop():
            return finish(StopReason.STOPPED)

        rng = np.random.default_rng(cfg.seed)
        optimizer = torch.optim.AdamW(work.parameters(), lr=lr, weight_decay=cfg.weight_decay)
        use_fp16 = target_device.type == "cuda" and not torch.cuda.is_bf16_supported()
        scaler = torch.amp.GradScaler("cuda", enabled=use_fp16)
        warmup = min(0.05, 2.0 / max(1, epochs)) if epochs else 0.05
        step_times: list[float] = []
        val_time = 0.0
        last_progress = -math.inf
        epochs_without_gain = 0
        # Early stopping never ends a run whose model has not yet marked any
        # validation foreground: an all-empty output is no plateau to stop on.
        found_foreground = False
        reason = StopReason.EPOCHS
        epoch = 0

        def done_share(elapsed: float) -> float:
            return run_share(state.step, planned_steps, elapsed, budget_s)

        while not epochs or epoch < epochs:
            epoch += 1
            work.train()
            losses: list[float] = []
            cut_short = False
            finite = True  # whether the last step's loss was a finite number
            for step in range(steps_per_epoch):
                elapsed = time.perf_counter() - started
                if should_stop():
                    reason, cut_short = StopReason.STOPPED, True
                    break
                mean_step = float(np.mean(step_times[-20:])) if step_times else 0.0
                if budget_s is not None and elapsed + mean_step + val_time > budget_s:
                    reason, cut_short = StopReason.TIME_BUDGET, True
                    break
                t0 = time.perf_counter()
                progress = done_share(elapsed)
                for group in optimizer.param_groups:
                    group["lr"] = lr * lr_factor(progress, warmup)
                batch = draw_batch(
                    sampler,
                    replay_sampler,
                    replay_fraction,
                    batch_size,
                    rng,
                    augment,
                    target_device,
                    pseudo,
                )
                value = train_step(work, optimizer, scaler, loss_fn, batch, target_device)
                finite = value is not None
                if value is not None:
                    losses.append(value)
                state.step += 1
                step_times.append(time.perf_counter() - t0)
                now = time.perf_counter()
                if now - last_progress >= PROGRESS_INTERVAL_S or step == steps_per_epoch - 1:
                    last_progress = now
                    loss_text = f", loss {losses[-1]:.4f}" if losses else ""
                    if not finite:
                        loss_text = ", loss not finite"
                    total = total_steps(state.step, planned_steps, budget_s, now - started)
                    where = f"epoch {epoch}/{epochs}" if epochs else f"epoch {epoch}"
                    yield Progress(
                        state.step,
                        total,
                        f"{where}, step {step + 1}/{steps_per_epoch}{loss_text}",
                    )
            if not finite:
                # A skipped step changes no weight: the weights the epoch ends on
                # are the ones that just gave a non-finite loss.  They have
                # diverged (or the images hold extreme values): never validate
                # or keep them, and stop, as more steps would only repeat this.
                reason = StopReason.NON_FINITE
                epoch -= 1
                break
            if not losses:
                # Stopped before any step of this epoch: nothing new to validate.
                epoch -= 1
                break
            if cut_short and reason is StopReason.STOPPED:
                epoch -= 1
                break
            t0 = time.perf_counter()
            score = data.val.score(work, target_device)
            val_dice = score.dice
            val_time = time.perf_counter() - t0
            elapsed = time.perf_counter() - started
            train_loss = float(np.mean(losses))
            found_foreground = found_foreground or score.predicted > 0
            if improves(by_loss, val_dice, train_loss, state.best_dice, best_loss):
                best.load_state_dict({k: v.detach().cpu() for k, v in work.state_dict().items()})
                best.eval()
                best_loss = min(best_loss, train_loss)
                state.best_dice, state.best_epoch = val_dice, epoch
                epochs_without_gain = 0
                last_gain_s = elapsed
            else:
                epochs_without_gain += 1
            record = epoch_record(
                epoch, train_loss, score, optimizer.param_groups[0]["lr"], elapsed, len(losses),
                partial=cut_short,
            )  # fmt: skip
            run["epochs"].append(record)
            state.epoch = epoch
            run.update(best_dice=json_float(state.best_dice), best_epoch=state.best_epoch)
            eta = (epochs - epoch) * (elapsed / epoch) if epochs else math.inf
            if budget_s is not None:
                eta = min(eta, max(0.0, budget_s - elapsed))
            yield EpochEnd(
                epoch,
                epochs,
                train_loss,
                val_dice,
                state.best_dice,
                state.best_epoch,
                elapsed,
                record["lr"],
                0.0 if cut_short else eta,
                1.0 if cut_short else done_share(elapsed),
            )
            if cut_short:
                break
            may_stop = not by_loss and (found_foreground or val_foreground == 0)
            if plateau_s is not None and not keep_start:
                # From scratch a network can sit on a plateau for minutes before it
                # finds rare targets (benchmarks/results/small_targets.md): it
                # keeps the whole budget.
                may_stop = False
            if plateau_s is not None:
                plateau = elapsed - last_gain_s >= plateau_s
            else:
                plateau = epochs_without_gain >= patience
            if may_stop and plateau and (not epochs or epoch < epochs):
                reason = StopReason.PLATEAU
                break
        return finish(reason)
    finally:
        if not state.finished:
            # Closed or failed mid-run: the best copy is whole; say why it ended.
            finish(StopReason.INTERRUPTED)


__all__ = [
    "BOUNDARY_LOSS_WEIGHT", "DEFAULT_BATCH_SIZE", "DEFAULT_EPOCHS", "DEFAULT_FINE_TUNE_LR",
    "DEFAULT_FOREGROUND_FRACTION", "DEFAULT_LR", "DEFAULT_PATCH_SIZE", "DEFAULT_REPLAY_FRACTION",
    "DEFAULT_VAL_FRACTION", "PLATEAU_SHARE", "FineTuneConfig", "FineTuneResult", "SelectedBy",
    "TrainingState", "ValidationSet", "fine_tune", "training_loss",
]  # fmt: skip
