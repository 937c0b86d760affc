"""The replay set: a few of the default model's own training images, shipped with it.

Fine-tuning on two corrected images teaches the network those two images and
makes it forget the rest (``benchmarks/results/generalisation.md``: on held-out
fluorescence a fine-tune on two images fell from 0.932 to 0.868 Dice).  Mixing
a share of patches from the images the model was trained on into every batch
(:func:`napari_unet.core.training.fine_tune`'s ``replay``) keeps what it knew.

The shipped set (``napari_unet/models/default_replay.npz``) is written by
``scripts/make_replay_set.py`` from the development part of the DSB 2018
development set (CC0), never from its held-out part.  The file holds
``image_K`` and ``labels_K`` arrays for K = 0, 1, ...; labels are instance ids.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_unet.core.atomic import atomic_open
from napari_unet.core.errors import InputError


def default_replay_path() -> Path:
    """Path of the replay set shipped with the default model."""
    return Path(__file__).resolve().parent.parent / "models" / "default_replay.npz"


def save_replay(
    path: str | os.PathLike, images: Sequence[np.ndarray], labels: Sequence[np.ndarray]
) -> Path:
    """Write images and their labels to one compressed ``.npz`` file, atomically.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    if len(images) != len(labels) or not images:
        raise InputError(f"give one label image per image, got {len(images)} and {len(labels)}")
    arrays = {}
    for k, (image, label) in enumerate(zip(images, labels, strict=True)):
        arrays[f"image_{k}"] = np.asarray(image)
        arrays[f"labels_{k}"] = np.asarray(label)
    buffer = io.BytesIO()
    # numpy's stubs type **kwds as bool (allow_pickle); they are the arrays to save.
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return Path(path)


def load_replay(
    source: str | os.PathLike = "default",
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Read a replay set: ``"default"`` (the shipped one) or a ``.npz`` file.

    Returns
    -------
    images, labels
        Lists of arrays, paired by index.

    Raises
    ------
    InputError
        If the file is missing or not a replay set.
    """
    path = default_replay_path() if str(source) == "default" else Path(source)
    if not path.is_file():
        raise InputError(f"replay set not found: {path}; give a .npz written by save_replay")
    try:
        with np.load(path, allow_pickle=False) as data:
            count = sum(1 for name in data.files if name.startswith("image_"))
            images = [data[f"image_{k}"] for k in range(count)]
            labels = [data[f"labels_{k}"] for k in range(count)]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(
            f"{path} is not a replay set ({exc}); give a .npz from save_replay"
        ) from None
    if not images:
        raise InputError(f"{path} holds no images; give a .npz from save_replay")
    return images, labels
