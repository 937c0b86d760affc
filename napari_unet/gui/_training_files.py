"""Save accepted training pairs to a folder, each write atomic.

A pair ``NAME`` is written as ``NAME.tif`` (image), ``NAME_mask.tif`` (mask)
and ``NAME.json`` (where it came from and the correction effort), so the
folder loads back with Load images, which pairs ``x.tif`` with ``x_mask.tif``.
"""

from __future__ import annotations

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
