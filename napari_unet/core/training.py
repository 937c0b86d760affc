"""Fine-tuning (and training from scratch) as a generator of progress events.

:func:`fine_tune` deep-copies the model it is given, trains the copy on random
patches of the images (:mod:`napari_unet.core.sampling`, augmented by
:mod:`napari_unet.core.augment`) and keeps, at every moment, a second copy
that holds the best weights so far by validation Dice.  It yields
:class:`~napari_unet.core.events.Progress` after training steps and
:class:`~napari_unet.core.events.EpochEnd` after each epoch, and returns a
:class:`FineTuneResult`.

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
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import numpy as np
import torch

from napari_unet.core.augment import AugmentConfig
from napari_unet.core.augment import augment as augment_patch
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
from napari_unet.core.errors import InputError
from napari_unet.core.events import EpochEnd, Notice, Progress, StopReason, describe_stop
from napari_unet.core.losses import Loss, bce_dice, get_loss
from napari_unet.core.model import UNet, autocast, prepare_for_device, resolve_device
from napari_unet.core.sampling import PatchSampler, stack_patches
from napari_unet.core.validation import ValidationSet, prepare_data
from napari_unet.core.weights import BOUNDARY_BIT

#: Steps per epoch: enough to see the training pixels about once, within these bounds.
MIN_STEPS_PER_EPOCH = 10
MAX_STEPS_PER_EPOCH = 100
CHANNELS_LAST = torch.channels_last
#: Shortest interval between two Progress events (fast GPUs run many steps per second).
PROGRESS_INTERVAL_S = 0.05
#: Weight of a two-output model's boundary loss next to its foreground loss.
BOUNDARY_LOSS_WEIGHT = 1.0


@dataclass
class FineTuneResult:
    """What :func:`fine_tune` returns.

    Attributes
    ----------
    model
        A new model (on the CPU, evaluation mode) holding the best weights;
        its ``history`` ends with this run's entry and its ``extra`` holds the
        validation split.
    history
        One dict per epoch: ``epoch``, ``train_loss``, ``val_dice``, ``lr``,
        ``elapsed_s``, ``steps`` and ``partial`` (epoch cut short).
    best_dice
        Best validation Dice (the input model's own Dice when no epoch beat
        it; NaN without a validation set).
    best_epoch
        Epoch of the best weights; 0 means the input weights were kept.
    stopped_early
        True when training ended before the planned epochs (early stopping,
        time budget, ``should_stop``, a non-finite loss or the generator
        being closed).
    stop_reason
        A :class:`~napari_unet.core.events.StopReason`: ``"epochs"``,
        ``"early_stopping"``, ``"time_budget"``, ``"stopped"``,
        ``"interrupted"`` or ``"non_finite"`` (the loss was NaN or infinite
        at the last step of an epoch).
    initial_dice
        Validation Dice of the input model before any training step.
    stop_message
        Why it stopped, in words ("time budget of 10 min used").
    selected_by
        ``"validation Dice"``, or ``"training loss"`` when the validation set
        holds no foreground (or there is none).
    """

    model: UNet
    history: list[dict]
    best_dice: float
    best_epoch: int
    stopped_early: bool
    stop_reason: str = StopReason.EPOCHS
    initial_dice: float = math.nan
    stop_message: str = ""
    selected_by: str = "validation Dice"


@dataclass
class TrainingState:
    """Live view of a running :func:`fine_tune`, consistent at every yield.

    Create one, pass it as ``state=`` and keep a reference: if the generator
    is closed (or raises) mid-run, :meth:`result` still returns the best model
    so far.

    Attributes
    ----------
    model
        Copy of the model holding the best weights so far (``None`` until
        the run has started).
    history, best_dice, best_epoch, stopped_early, stop_reason, initial_dice,
    stop_message, selected_by
        As in :class:`FineTuneResult`.
    epoch, step
        Last completed epoch and global training step.
    finished
        True once the run has ended, in any way.
    """

    model: UNet | None = None
    history: list[dict] = field(default_factory=list)
    best_dice: float = math.nan
    best_epoch: int = 0
    stopped_early: bool = False
    stop_reason: str = ""
    initial_dice: float = math.nan
    stop_message: str = ""
    selected_by: str = "validation Dice"
    epoch: int = 0
    step: int = 0
    finished: bool = False

    def result(self) -> FineTuneResult:
        """Return the best model so far and its history.

        Raises
        ------
        RuntimeError
            If the run never started (no model yet).
        """
        if self.model is None:
            raise RuntimeError("fine-tuning has not started: there is no model yet")
        return FineTuneResult(
            self.model,
            list(self.history),
            self.best_dice,
            self.best_epoch,
            self.stopped_early,
            StopReason(self.stop_reason or StopReason.INTERRUPTED),
            self.initial_dice,
            self.stop_message or describe_stop(self.stop_reason or StopReason.INTERRUPTED),
            self.selected_by,
        )


def _check_settings(epochs, max_minutes, lr, patch_size, batch_size, val_fraction, patience):
    def positive_int(name, value):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise InputError(f"{name} must be a positive whole number, got {value!r}")

    if epochs is not None:
        positive_int("epochs", epochs)
    positive_int("patch size", patch_size)
    positive_int("batch size", batch_size)
    if patience is not None:
        positive_int("patience", patience)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InputError(f"learning rate must be a positive number, got {lr!r}")
    if max_minutes is not None and not (math.isfinite(max_minutes) and max_minutes > 0):
        raise InputError(f"time budget must be a positive number of minutes, got {max_minutes!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"validation share must be in [0, 1), got {val_fraction!r}")


def _lr_factor(progress: float, warmup: float) -> float:
    """Linear warm-up then cosine decay to 1 % of the base rate; ``progress`` in [0, 1]."""
    if progress < warmup:
        return (progress + 1e-3) / (warmup + 1e-3)
    t = min(1.0, (progress - warmup) / max(1e-9, 1.0 - warmup))
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t))


def training_loss(
    loss_fn: Loss, logits: torch.Tensor, code: torch.Tensor, weights
) -> torch.Tensor:
    """Compute the chosen loss on the foreground output, plus the boundary output's loss.

    ``code`` is the packed target of :data:`~napari_unet.core.weights.BOUNDARY_BIT`;
    a one-output model sees it as its 0/1 target.  A second output learns the
    object rims with BCE + soft Dice, unweighted, at weight
    :data:`BOUNDARY_LOSS_WEIGHT`.
    """
    if logits.shape[1] == 1:
        return loss_fn(logits, code, weights)
    foreground = torch.remainder(code, BOUNDARY_BIT)
    rims = (code >= BOUNDARY_BIT).to(logits.dtype)
    return loss_fn(logits[:, :1], foreground, weights) + BOUNDARY_LOSS_WEIGHT * bce_dice(
        logits[:, 1:2], rims
    )


def _to_batch(patches, device: torch.device):
    batch = stack_patches(patches)

    def put(a):
        # Channels-last is faster on the CPU too (oneDNN: about 15 % per step here).
        return None if a is None else torch.from_numpy(a).to(device, memory_format=CHANNELS_LAST)

    return put(batch.images), put(batch.targets), put(batch.weights)


def fine_tune(
    model: UNet,
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    *,
    epochs: int | None = None,
    max_minutes: float | None = None,
    lr: float | None = None,
    loss: str = "default",
    patch_size: int = DEFAULT_PATCH_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    augment: AugmentConfig | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
    rois: Sequence[np.ndarray | None] | None = None,
    foreground_fraction: float = DEFAULT_FOREGROUND_FRACTION,
    steps_per_epoch: int | None = None,
    patience: int | None = None,
    weight_decay: float = 1e-4,
    state: TrainingState | None = None,
    keep_start: bool = True,
    replay: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None = None,
    replay_fraction: float = DEFAULT_REPLAY_FRACTION,
) -> Generator[Progress | EpochEnd, None, FineTuneResult]:
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
    epochs
        Maximum number of epochs.  ``None`` (the default) means
        :data:`DEFAULT_EPOCHS` without a time budget, and no epoch limit with
        one: the run then lasts until the budget is spent.
    max_minutes
        Time budget; training stops at the first step boundary that would
        overrun it.  The learning-rate schedule then follows elapsed time, so
        it anneals fully within the budget (and the run is no longer exactly
        reproducible).  With both limits, whichever comes first ends the run.
    lr
        Peak learning rate of AdamW (linear warm-up over the first 5 % of
        the run, then cosine decay to 1 % of it); by default
        :data:`DEFAULT_FINE_TUNE_LR` when fine-tuning (``keep_start``) and
        :data:`DEFAULT_LR` from scratch.
    loss
        A key of :data:`napari_unet.core.losses.LOSSES`.
    patch_size
        Side of the square training patches (rounded up to the model's size
        multiple).
    batch_size
        Patches per step.
    val_fraction
        Share held out for validation (0 for none); see
        :mod:`napari_unet.core.split` for how the split is chosen and kept.
    augment
        Augmentation switches (default :class:`AugmentConfig()` when
        fine-tuning, the same without zoom and defocus blur from scratch; use
        ``AugmentConfig.none()`` for none).
    device
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``; CUDA trains in mixed
        precision with channels-last memory.
    seed
        Seed of every random choice (patches, augmentation); on the CPU two
        runs with the same seed and no time budget give identical weights.
    should_stop
        Checked before every step; when it returns true, training ends and
        the best weights are returned.
    rois
        Optional region-of-interest masks (one per image, or ``None``
        entries): patch centres fall inside them only.
    foreground_fraction
        Expected share of patches centred on a foreground pixel (0 gives
        uniform patches).
    steps_per_epoch
        Training steps per epoch; by default enough to see the training
        pixels about once, between 10 and 100.
    patience
        Early stopping without a time budget: end after this many epochs
        without a better validation Dice (default ``max(5, epochs // 4)``).
        With a time budget the plateau is measured in time instead: at least
        :data:`PLATEAU_SHARE` of the budget without improvement; training from
        scratch (``keep_start=False``) with a time budget uses all of it.  Either way
        early stopping waits until the model has predicted foreground on a
        validation set that holds some.
    weight_decay
        AdamW weight decay.
    state
        Optional :class:`TrainingState` kept up to date at every yield.
    keep_start
        Whether the starting weights compete for "best": True for fine-tuning
        (a run that does not improve the validation Dice returns the model
        unchanged), False for training from scratch (the first validated
        epoch replaces the untrained start).
    replay
        Optional ``(images, masks)`` that the starting model was trained on:
        ``replay_fraction`` of the patches (in expectation) come from them,
        so that the fine-tune does not forget what the model could do.  They
        are never validated on.
    replay_fraction
        Expected share of replayed patches per batch, in [0, 1).

    Yields
    ------
    Progress
        After training steps (at most every 50 ms): global step of the total.
    EpochEnd
        After every epoch, with the loss, validation Dice (pooled over all
        validation pixels), best so far and the estimated time left.
    Notice
        Once, before training, when the validation set holds no foreground
        (or there is none): the best epoch is then chosen by training loss.

    Returns
    -------
    FineTuneResult
        The model with the best weights and the history.  A step whose loss
        is NaN or infinite is skipped; when the last step of an epoch is, the
        run ends with stop reason ``"non_finite"`` and the best weights from
        before (the starting weights if no epoch finished).

    Raises
    ------
    InputError
        No images, a mask of the wrong shape, NaN or infinite pixels, an
        unknown loss or a bad setting.
    """
    started = time.perf_counter()
    if lr is None:
        lr = DEFAULT_FINE_TUNE_LR if keep_start else DEFAULT_LR
    state = TrainingState() if state is None else state
    if augment is None:
        # Zoom and defocus teach a fine-tune the look of unseen planes; from
        # scratch on 3-14 px targets they shrink and blur the targets away
        # (benchmarks/results/small_targets.md), so training from scratch
        # leaves them off unless asked for.
        augment = AugmentConfig() if keep_start else AugmentConfig(blur=False, scale=False)
    _check_settings(epochs, max_minutes, lr, patch_size, batch_size, val_fraction, patience)
    loss_fn: Loss = get_loss(loss)
    target_device = resolve_device(device)
    multiple = model.size_multiple
    patch = int(math.ceil(patch_size / multiple) * multiple)
    budget_s = None if max_minutes is None else 60.0 * float(max_minutes)
    if epochs is None:
        epochs = DEFAULT_EPOCHS if budget_s is None else 0  # 0: no epoch limit
    epochs = int(epochs)
    patience = max(5, epochs // 4) if patience is None else int(patience)
    plateau_s = None if budget_s is None else PLATEAU_SHARE * budget_s
    should_stop = should_stop or (lambda: False)

    data = prepare_data(
        images, masks, rois, model, val_fraction=val_fraction, weighting=loss_fn.weighting
    )
    sampler = PatchSampler(
        data.train_images,
        data.train_targets,
        data.train_weights,
        data.train_rois,
        patch_size=patch,
        foreground_fraction=foreground_fraction,
    )
    replay_sampler = None
    if replay is not None and replay_fraction > 0:
        if not 0.0 <= replay_fraction < 1.0:
            raise InputError(f"replay share must be in [0, 1), got {replay_fraction!r}")
        old = prepare_data(*replay, None, model, val_fraction=0.0, weighting=loss_fn.weighting)
        replay_sampler = PatchSampler(
            old.train_images,
            old.train_targets,
            old.train_weights,
            None,
            patch_size=patch,
            foreground_fraction=foreground_fraction,
        )
    if steps_per_epoch is None:
        seen = data.train_pixels / (batch_size * patch * patch)
        steps_per_epoch = int(np.clip(math.ceil(seen), MIN_STEPS_PER_EPOCH, MAX_STEPS_PER_EPOCH))
    total_steps = epochs * steps_per_epoch if epochs else 0
    val_foreground = data.val.foreground
    by_loss = val_foreground == 0

    # The best copy lives on the CPU in eval mode; the working copy trains on the device.
    best = copy.deepcopy(model).cpu().eval()
    best.extra = {**copy.deepcopy(model.extra), "validation_split": data.split}
    run = {
        "type": "fine_tune",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "loss": loss_fn.name,
        "epochs_planned": epochs or None,
        "max_minutes": max_minutes,
        "lr": float(lr),
        "patch_size": patch,
        "batch_size": int(batch_size),
        "steps_per_epoch": int(steps_per_epoch),
        "foreground_fraction": float(foreground_fraction),
        "augment": asdict(augment),
        "seed": int(seed),
        "device": str(target_device),
        "n_images": data.planes,
        "n_train_crops": len(data.train_images),
        "replay_images": 0 if replay is None else len(replay[0]),
        "replay_fraction": float(replay_fraction) if replay is not None else 0.0,
        "val_pixels": data.val.pixels,
        "val_foreground_pixels": val_foreground,
        "selected_by": "training loss" if by_loss else "validation Dice",
        "epochs": [],
    }
    best.history = [*copy.deepcopy(model.history), run]
    work = prepare_for_device(copy.deepcopy(model), target_device)
    work.to(memory_format=CHANNELS_LAST)
    # A state object reused from an earlier run starts afresh.
    state.__init__(model=best, history=run["epochs"], selected_by=run["selected_by"])
    best_loss = math.inf
    last_gain_s = 0.0  # when the best score last improved
    plateau_epochs = patience

    def finish(reason: StopReason) -> FineTuneResult:
        elapsed = time.perf_counter() - started
        state.stop_reason = reason
        state.stopped_early = reason is not StopReason.EPOCHS
        state.stop_message = describe_stop(
            reason,
            epochs=state.epoch,
            budget_s=budget_s,
            plateau_s=None if plateau_s is None else elapsed - last_gain_s,
            patience=plateau_epochs,
        )
        run.update(
            stop_reason=reason.value,
            stop_message=state.stop_message,
            best_dice=_json_float(state.best_dice),
            best_epoch=state.best_epoch,
            elapsed_s=round(elapsed, 2),
        )
        state.finished = True
        return state.result()

    try:
        if by_loss:
            what = "no validation pixels" if not data.val.pixels else "no foreground"
            yield Notice(
                f"the validation set holds {what}: the best epoch is chosen by training "
                "loss, and early stopping is off"
            )
        state.initial_dice = data.val.dice(work, target_device)
        # Training from scratch: the untrained start is never a useful result,
        # so the first validated epoch replaces it whatever its Dice.
        state.best_dice = state.initial_dice if keep_start and not by_loss else math.nan
        run["initial_dice"] = _json_float(state.initial_dice)
        if should_stop():
            return finish(StopReason.STOPPED)

        rng = np.random.default_rng(seed)
        optimizer = torch.optim.AdamW(work.parameters(), lr=lr, weight_decay=weight_decay)
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
            shares = []
            if total_steps:
                shares.append(state.step / total_steps)
            if budget_s is not None:
                shares.append(elapsed / budget_s)
            return float(min(1.0, max(shares)))

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
                    group["lr"] = lr * _lr_factor(progress, warmup)
                n_old = 0 if replay_sampler is None else rng.binomial(batch_size, replay_fraction)
                drawn = sampler.sample(batch_size - n_old, rng)
                if n_old:
                    drawn += replay_sampler.sample(n_old, rng)
                patches = [
                    augment_patch(img, tgt, wgt, rng, augment) + (on_fg,)
                    for img, tgt, wgt, on_fg in drawn
                ]
                x, y, w = _to_batch(patches, target_device)
                optimizer.zero_grad(set_to_none=True)
                with autocast(target_device):
                    logits = work(x)
                value = training_loss(loss_fn, logits.float(), y, w)
                finite = bool(torch.isfinite(value))
                if finite:
                    scaler.scale(value).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    losses.append(float(value.detach()))
                state.step += 1
                step_times.append(time.perf_counter() - t0)
                now = time.perf_counter()
                if now - last_progress >= PROGRESS_INTERVAL_S or step == steps_per_epoch - 1:
                    last_progress = now
                    loss_text = f", loss {losses[-1]:.4f}" if losses else ""
                    if not finite:
                        loss_text = ", loss not finite"
                    total = _total_steps(state.step, total_steps, budget_s, now - started)
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
            if by_loss:
                improved = train_loss < best_loss
            else:
                # Equal at zero (no overlap yet): the lower training loss is further along.
                improved = (
                    math.isnan(state.best_dice)
                    or val_dice > state.best_dice
                    or (val_dice == state.best_dice == 0.0 and train_loss < best_loss)
                )
            if improved:
                best.load_state_dict({k: v.detach().cpu() for k, v in work.state_dict().items()})
                best.eval()
                best_loss = min(best_loss, train_loss)
                state.best_dice, state.best_epoch = val_dice, epoch
                epochs_without_gain = 0
                last_gain_s = elapsed
            else:
                epochs_without_gain += 1
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_dice": _json_float(val_dice),
                "val_dice_per_image": [round(d, 4) for d in score.per_image],
                "val_predicted_pixels": score.predicted,
                "lr": optimizer.param_groups[0]["lr"],
                "elapsed_s": round(elapsed, 3),
                "steps": len(losses),
                "partial": cut_short,
            }
            run["epochs"].append(record)
            state.epoch = epoch
            run.update(best_dice=_json_float(state.best_dice), best_epoch=state.best_epoch)
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


def _total_steps(step: int, planned: int, budget_s: float | None, elapsed: float) -> int:
    """Return the expected steps of the whole run: planned, or as the time budget allows."""
    totals = [planned] if planned else []
    if budget_s is not None and step:
        totals.append(step + int((budget_s - elapsed) / (elapsed / step)))
    return max(step, min(totals)) if totals else step


def _json_float(value: float) -> float | None:
    """``None`` for NaN, so histories stay valid JSON."""
    return None if value is None or math.isnan(value) else float(value)


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "DEFAULT_FINE_TUNE_LR",
    "DEFAULT_LR",
    "DEFAULT_PATCH_SIZE",
    "DEFAULT_VAL_FRACTION",
    "FineTuneResult",
    "TrainingState",
    "ValidationSet",
    "fine_tune",
]
