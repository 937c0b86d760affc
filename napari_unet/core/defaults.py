"""Defaults shared by the core, the command line and the GUI; imports nothing heavy.

The command line reads them for its ``--help`` without loading torch, and the
core's functions use them as their defaults, so there is one copy of each.
"""

from __future__ import annotations

#: Epochs when neither an epoch count nor a time budget is given: sized so that
#: fine-tuning the default model on two 256 x 256 images takes about two
#: minutes on a 2-core CPU (see BENCHMARKS.md).  With a time budget and no
#: epoch count, training runs until the budget is spent.
DEFAULT_EPOCHS = 20
#: Peak learning rate when training from scratch.
DEFAULT_LR = 1e-3
#: Peak learning rate when fine-tuning a trained model (``keep_start=True``).
#: 3e-4 kept more of the model's skill on other DSB 2018 images, but learned
#: too slowly to beat the starting weights within early stopping's patience on
#: a new look (benchmarks/results/generalisation.md, finetune.md): 1e-3 it is.
DEFAULT_FINE_TUNE_LR = 1e-3
DEFAULT_PATCH_SIZE = 128
DEFAULT_BATCH_SIZE = 4
DEFAULT_VAL_FRACTION = 0.2
#: Expected share of training patches centred on a foreground pixel.
DEFAULT_FOREGROUND_FRACTION = 0.4
#: Expected share of each batch drawn from the replay images, when given.
DEFAULT_REPLAY_FRACTION = 0.5
#: With a time budget, early stopping waits for a plateau of at least this
#: share of the budget.
PLATEAU_SHARE = 0.25

#: Pseudo-labels (fine-tuning on unlabelled images too): pixels the starting
#: model gives a foreground probability of at least PSEUDO_HIGH become
#: foreground targets, at most PSEUDO_LOW background, the rest are ignored
#: (benchmarks/results/pseudo_label.md).
DEFAULT_PSEUDO_LOW = 0.1
DEFAULT_PSEUDO_HIGH = 0.9
#: Expected share of the patches that are not replayed drawn from pseudo-labelled images.
DEFAULT_PSEUDO_FRACTION = 0.5

#: Share of a batch's pixels that online hard example mining keeps: the
#: hardest 10 %.  With nodules under 0.1 % of the pixels that keeps every
#: foreground pixel and the brightest distractors, and drops the easy air and
#: lung that make up nearly all of a patch.
OHEM_FRACTION = 0.1
#: The losses (:mod:`napari_unet.core.losses`), in the order the GUI and
#: ``train --loss`` list them, with the one line the GUI shows for each.
LOSS_DESCRIPTIONS = {
    "default": "border-weighted BCE + batch soft Dice (copes with tiny, rare targets)",
    "wce": "weighted cross-entropy with the paper's border-weight maps",
    "dice": "soft Dice over the batch",
    "bce_dice": "binary cross-entropy + soft Dice",
    "focal": "focal loss (gamma 2, alpha 0.25)",
    "bce": "plain binary cross-entropy, unweighted",
    "ohem": f"cross-entropy over the hardest {OHEM_FRACTION:.0%} of pixels (OHEM)",
    "ohem_dice": f"OHEM cross-entropy (hardest {OHEM_FRACTION:.0%}) + soft Dice",
    "hybrid": "focal + MS-SSIM + IoU (U-Net 3+'s hybrid loss)",
}
LOSS_NAMES = tuple(LOSS_DESCRIPTIONS)

#: The network architectures (``UNetConfig.arch``, ``train --arch``, the GUI's
#: "Architecture"): the plain U-Net, U-Net++ and U-Net 3+
#: (:mod:`napari_unet.core.nets`).
ARCH_NAMES = ("unet", "unetpp", "unet3p")
#: How the command line and the GUI name each architecture.
ARCH_LABELS = {"unet": "U-Net", "unetpp": "U-Net++", "unet3p": "U-Net 3+"}

#: Tiling defaults, measured in benchmarks/results/predict.md.  With the
#: default model (receptive radius 107 px) tiles overlap by 2 x 107 px, so the
#: tile size trades overlap work against memory: 1024-px tiles cover a
#: 2048x2048 image with 3 x 3 tiles of 832 px, 1.5x the pixels of one pass
#: (512-px tiles: 2.9x), and both cost the same CPU time per pixel computed.
#: That keeps prediction ~2-2.9x faster than MONAI's sliding window on a 2-core CPU.
DEFAULT_TILE_SIZE = 1024
#: Smallest tile size of the default architecture (depth 4):
#: ``napari_unet.core.inference.smallest_tile_size``, the GUI's spin box minimum.
MIN_TILE_SIZE = 432
