"""The settings of one fine-tuning run, checked once: :class:`FineTuneConfig`.

Torch-free, like :mod:`napari_unet.core.defaults`: the command line and the
widgets can build and check a configuration before torch is imported.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from napari_unet.core.augment_config import AugmentConfig
from napari_unet.core.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_FINE_TUNE_LR,
    DEFAULT_FOREGROUND_FRACTION,
    DEFAULT_LR,
    DEFAULT_PATCH_SIZE,
    DEFAULT_PSEUDO_FRACTION,
    DEFAULT_PSEUDO_HIGH,
    DEFAULT_PSEUDO_LOW,
    DEFAULT_REPLAY_FRACTION,
    DEFAULT_VAL_FRACTION,
    LOSS_NAMES,
)
from napari_unet.core.errors import InputError

if TYPE_CHECKING:
    import torch


def _number(value: object) -> float | None:
    """``value`` as a finite float if it is a real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _check_positive_int(name: str, value: object) -> None:
    number = _number(value)
    if number is None or not number.is_integer() or number < 1:
        raise InputError(f"{name} must be a positive whole number, got {value!r}")


def _check_share(name: str, value: object, *, closed: bool = False) -> None:
    number = _number(value)
    if number is None or number < 0.0 or number > 1.0 or (number == 1.0 and not closed):
        interval = "[0, 1]" if closed else "[0, 1)"
        raise InputError(f"{name} must be in {interval}, got {value!r}")


_INT_FIELDS = ("epochs", "patch_size", "batch_size", "seed", "steps_per_epoch", "patience")
_FLOAT_FIELDS = (
    "max_minutes",
    "lr",
    "val_fraction",
    "foreground_fraction",
    "weight_decay",
    "replay_fraction",
    "pseudo_low",
    "pseudo_high",
    "pseudo_fraction",
)


@dataclass(frozen=True)
class FineTuneConfig:
    """Settings of :func:`napari_unet.core.training.fine_tune`, checked on creation.

    Attributes
    ----------
    epochs
        Maximum number of epochs.  ``None`` (the default) means
        :data:`~napari_unet.core.defaults.DEFAULT_EPOCHS` without a time
        budget, and no epoch limit with one: the run then lasts until the
        budget is spent.
    max_minutes
        Time budget; training stops at the first step boundary that would
        overrun it.  The learning-rate schedule then follows elapsed time, so
        it anneals fully within the budget (and the run is no longer exactly
        reproducible).  With both limits, whichever comes first ends the run.
    lr
        Peak learning rate of AdamW (linear warm-up over the first 5 % of the
        run, then cosine decay to 1 % of it); by default
        :data:`~napari_unet.core.defaults.DEFAULT_FINE_TUNE_LR` when
        fine-tuning (``keep_start``) and
        :data:`~napari_unet.core.defaults.DEFAULT_LR` from scratch.
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
    foreground_fraction
        Expected share of patches centred on a foreground pixel (0 gives
        uniform patches).
    augment
        Augmentation switches (default :class:`AugmentConfig()` when
        fine-tuning, the same without zoom and defocus blur from scratch; use
        ``AugmentConfig.none()`` for none).
    device
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"`` (or a ``torch.device``);
        CUDA trains in mixed precision with channels-last memory.
    seed
        Seed of every random choice (patches, augmentation); on the CPU two
        runs with the same seed and no time budget give identical weights.
    steps_per_epoch
        Training steps per epoch; by default enough to see the training
        pixels about once, between 10 and 100.
    patience
        Early stopping without a time budget: end after this many epochs
        without a better validation Dice (default ``max(5, epochs // 4)``).
        With a time budget the plateau is measured in time instead: at least
        :data:`~napari_unet.core.defaults.PLATEAU_SHARE` of the budget without
        improvement; training from scratch (``keep_start=False``) with a time
        budget uses all of it.  Either way early stopping waits until the
        model has predicted foreground on a validation set that holds some.
    weight_decay
        AdamW weight decay.
    keep_start
        Whether the starting weights compete for "best": True for fine-tuning
        (a run that does not improve the validation Dice returns the model
        unchanged), False for training from scratch (the first validated
        epoch replaces the untrained start).
    replay_fraction
        Expected share of replayed patches per batch, in [0, 1), when replay
        images are given.
    pseudo_low, pseudo_high
        Pseudo-labels of the unlabelled images
        (:mod:`napari_unet.core.pseudo_labels`): the starting model's pixels of
        foreground probability at least ``pseudo_high`` are foreground
        targets, at most ``pseudo_low`` background, the rest ignored;
        ``0 <= pseudo_low < pseudo_high <= 1``.
    pseudo_fraction
        Expected share, in [0, 1), of the patches that are not replayed that
        come from the pseudo-labelled images, when unlabelled images are given.
    pseudo_tta
        Pseudo-label with test-time augmentation (8 flips and rotations
        averaged: steadier labels, 8 times the prediction work).
    """

    epochs: int | None = None
    max_minutes: float | None = None
    lr: float | None = None
    loss: str = "default"
    patch_size: int = DEFAULT_PATCH_SIZE
    batch_size: int = DEFAULT_BATCH_SIZE
    val_fraction: float = DEFAULT_VAL_FRACTION
    foreground_fraction: float = DEFAULT_FOREGROUND_FRACTION
    augment: AugmentConfig | None = None
    device: str | torch.device = "auto"
    seed: int = 0
    steps_per_epoch: int | None = None
    patience: int | None = None
    weight_decay: float = 1e-4
    keep_start: bool = True
    replay_fraction: float = DEFAULT_REPLAY_FRACTION
    pseudo_low: float = DEFAULT_PSEUDO_LOW
    pseudo_high: float = DEFAULT_PSEUDO_HIGH
    pseudo_fraction: float = DEFAULT_PSEUDO_FRACTION
    pseudo_tta: bool = False

    def __post_init__(self) -> None:
        for name, label in (
            ("epochs", "epochs"),
            ("steps_per_epoch", "steps per epoch"),
            ("patience", "patience"),
        ):
            if getattr(self, name) is not None:
                _check_positive_int(label, getattr(self, name))
        _check_positive_int("patch size", self.patch_size)
        _check_positive_int("batch size", self.batch_size)
        lr, minutes = self.lr, self.max_minutes
        if lr is not None and not (_number(lr) or 0.0) > 0:
            raise InputError(f"learning rate must be a positive number, got {lr!r}")
        if minutes is not None and not (_number(minutes) or 0.0) > 0:
            raise InputError(f"time budget must be a positive number of minutes, got {minutes!r}")
        if self.loss not in LOSS_NAMES:
            choices = ", ".join(LOSS_NAMES)
            raise InputError(f"unknown loss {self.loss!r}: choose one of {choices}")
        _check_share("validation share", self.val_fraction)
        _check_share("foreground_fraction", self.foreground_fraction, closed=True)
        _check_share("replay share", self.replay_fraction)
        _check_share("pseudo-label share", self.pseudo_fraction)
        low, high = _number(self.pseudo_low), _number(self.pseudo_high)
        if low is None or high is None or not 0.0 <= low < high <= 1.0:
            raise InputError(
                "pseudo-label thresholds must satisfy 0 <= low < high <= 1, "
                f"got low {self.pseudo_low!r} and high {self.pseudo_high!r}"
            )
        if not isinstance(self.pseudo_tta, bool):
            raise InputError(f"pseudo_tta must be True or False, got {self.pseudo_tta!r}")
        if self.augment is not None and not isinstance(self.augment, AugmentConfig):
            raise InputError(f"augment must be an AugmentConfig, got {self.augment!r}")
        seed = _number(self.seed)
        if seed is None or not seed.is_integer() or seed < 0:
            raise InputError(f"seed must be a whole number of at least 0, got {self.seed!r}")
        decay = _number(self.weight_decay)
        if decay is None or decay < 0:
            raise InputError(
                f"weight decay must be a number of at least 0, got {self.weight_decay!r}"
            )
        # Plain Python numbers (not numpy scalars), so the history stays
        # loadable by torch's weights-only unpickler.
        for name in _INT_FIELDS + _FLOAT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                kind = int if name in _INT_FIELDS else float
                object.__setattr__(self, name, kind(value))

    @classmethod
    def build(cls, config: FineTuneConfig | None = None, **settings: Any) -> FineTuneConfig:
        """Return ``config`` (default: all defaults) with ``settings`` changed.

        Raises
        ------
        InputError
            A setting is unknown or has a bad value.
        """
        unknown = set(settings) - {f.name for f in fields(cls)}
        if unknown:
            raise InputError(f"unknown fine-tuning setting(s): {', '.join(sorted(unknown))}")
        config = cls() if config is None else config
        return replace(config, **settings) if settings else config

    def resolved(self) -> FineTuneConfig:
        """Fill in the defaults that depend on other settings (lr, augment, epochs, patience).

        ``epochs`` stays ``None`` only with a time budget (no epoch limit).
        """
        epochs = self.epochs
        if epochs is None and self.max_minutes is None:
            epochs = DEFAULT_EPOCHS
        augment = self.augment
        if augment is None:
            # Zoom and defocus teach a fine-tune the look of unseen planes; from
            # scratch on 3-14 px targets they shrink and blur the targets away
            # (benchmarks/results/small_targets.md), so training from scratch
            # leaves them off unless asked for.
            augment = (
                AugmentConfig() if self.keep_start else AugmentConfig(blur=False, scale=False)
            )
        lr = self.lr
        if lr is None:
            lr = DEFAULT_FINE_TUNE_LR if self.keep_start else DEFAULT_LR
        patience = max(5, (epochs or 0) // 4) if self.patience is None else self.patience
        return replace(self, epochs=epochs, augment=augment, lr=float(lr), patience=patience)

    def to_record(self) -> dict[str, Any]:
        """Return the settings as plain JSON-safe values, for a model's history."""
        record = asdict(self)
        record["device"] = str(self.device)
        return record
