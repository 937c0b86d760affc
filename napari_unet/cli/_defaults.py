"""Defaults the command line shows in ``--help``: the core's own, read without torch."""

from __future__ import annotations

from napari_unet.core import defaults as _core

#: Loss names offered by ``train --loss``.
LOSS_NAMES = _core.LOSS_NAMES
#: Architectures offered by ``train --arch``, and their display names.
ARCH_NAMES, ARCH_LABELS = _core.ARCH_NAMES, _core.ARCH_LABELS
#: ``predict --tile-size`` default.
PREDICT_TILE_SIZE = _core.DEFAULT_TILE_SIZE
#: Smallest tile the default model predicts with (smaller ones are raised, with a note).
PREDICT_MIN_TILE_SIZE = _core.MIN_TILE_SIZE
#: Learning rates ``fine_tune`` uses when none is given.
FINE_TUNE_LR, SCRATCH_LR = _core.DEFAULT_FINE_TUNE_LR, _core.DEFAULT_LR
#: ``train --replay-fraction`` default.
REPLAY_FRACTION = _core.DEFAULT_REPLAY_FRACTION
#: Defaults of ``train`` options, as ``fine_tune`` has them.
TRAIN_DEFAULTS = {
    "epochs": _core.DEFAULT_EPOCHS,
    "lr": None,
    "patch_size": _core.DEFAULT_PATCH_SIZE,
    "batch_size": _core.DEFAULT_BATCH_SIZE,
    "val_fraction": _core.DEFAULT_VAL_FRACTION,
}
