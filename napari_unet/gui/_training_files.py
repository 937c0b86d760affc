"""Files of the training folder: accepted pairs and fine-tuned models, each write atomic.

A pair ``NAME`` is written as ``NAME.tif`` (image), ``NAME_mask.tif`` (mask)
and ``NAME.json`` (where it came from and the correction effort), so the
folder loads back with Load images, which pairs ``x.tif`` with ``x_mask.tif``.

A fine-tune's model file is written before the run starts, with the starting
weights (:func:`start_autosave`), and then replaced by every new best epoch:
whenever napari closes, the file holds a loadable model.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from pathlib import Path
from typing import Any

from napari_unet.core.atomic import atomic_open
from napari_unet.gui.session import TrainingPair


def file_stem(name: str) -> str:
    """Turn a layer-derived name into a safe file stem."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return stem or "pair"


def save_pair(pair: TrainingPair, folder: Path, info: dict[str, Any]) -> Path:
    """Write ``pair`` into ``folder`` and return the image path.

    Parameters
    ----------
    pair
        The accepted image and mask.
    folder
        The training-set folder; created when missing.
    info
        Extra JSON-safe facts to store beside the pair (source layers, slice).

    Returns
    -------
    pathlib.Path
        Path of the written image file.
    """
    from napari_unet.core.io import write_tiff

    folder = Path(folder).expanduser()
    stem = file_stem(pair.name)
    image_path = write_tiff(folder / f"{stem}.tif", pair.image)
    mask_path = write_tiff(folder / f"{stem}_mask.tif", pair.mask)
    effort = None if math.isnan(pair.effort_dice) else round(float(pair.effort_dice), 6)
    meta = {
        "name": pair.name,
        "image": image_path.name,
        "mask": mask_path.name,
        "shape": list(pair.mask.shape),
        "effort_dice": effort,
        **info,
    }
    _write_json(folder / f"{stem}.json", meta)
    return image_path


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_open(path, "w") as handle:
        json.dump(data, handle, indent=2)


def start_autosave(model: Any, path: Path) -> Path:
    """Write ``model`` (the starting weights of a fine-tune) to ``path`` and return it.

    Missing folders are created; when the write fails, the folders it created
    are removed again, so a refused run leaves no empty folder behind.

    Raises
    ------
    OSError
        The file cannot be written.
    """
    from napari_unet.core.model import save_model

    path = Path(path)
    created = [folder for folder in path.parents if not folder.exists()]
    try:
        return save_model(model, path)
    except OSError:
        for folder in created:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()  # only an empty folder goes
        raise
