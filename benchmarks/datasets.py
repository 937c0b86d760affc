"""Evaluation data of the benchmarks: the DSB 2018 development set and synthetic stacks.

- :func:`dsb2018` reads ``../shared/data/dsb2018_stage1/`` (531 real images with
  instance labels; fluorescence, brightfield, histology) and splits every
  modality into a development part and a fixed held-out part
  (:data:`HELD_OUT_SHARE` of its images, chosen by a hash of the image id, so
  the split never changes and never depends on the order of the files).
  Models are trained or fine-tuned on development images only and scored on
  held-out images only.
- :func:`confocal_stack` makes a fluorescence z-stack of nuclei of another
  scale (about 60 px across), with the dim, out-of-focus planes near the top
  and bottom that a real confocal or widefield stack has.
- :func:`otsu_baseline` is the classical baseline every model is compared
  with: a Gaussian blur, then Otsu's threshold, foreground on the minority
  side (so dark nuclei on a bright background work too).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from napari_unet.core.inference import to_gray
from napari_unet.core.io import read_image, read_mask

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DSB_DIR = SHARED / "dsb2018_stage1"
#: Share of every modality held out for evaluation.
HELD_OUT_SHARE = 0.25
MODALITIES = ("fluorescence", "brightfield", "histology")
#: Blur of the Otsu baseline, in pixels.
OTSU_SIGMA = 1.0


@dataclass(frozen=True)
class Item:
    """One image of a data set: its id, modality and file paths."""

    id: str
    modality: str
    image: Path
    mask: Path
    objects: int

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Read the image and its instance labels."""
        return read_image(self.image), read_mask(self.mask)


def _unit(text: str) -> float:
    return int(hashlib.sha1(text.encode()).hexdigest()[:13], 16) / 16**13


def is_held_out(item_id: str) -> bool:
    """Whether a DSB 2018 image belongs to the fixed held-out part."""
    return _unit(f"held-out:{item_id}") < HELD_OUT_SHARE


def dsb2018(root: Path = DSB_DIR) -> dict[str, dict[str, list[Item]]]:
    """Return ``{modality: {"dev": [...], "test": [...]}}`` of the DSB 2018 development set.

    Raises
    ------
    FileNotFoundError
        If the data set is not at ``root``.
    """
    index = json.loads((root / "index.json").read_text())
    split: dict[str, dict[str, list[Item]]] = {m: {"dev": [], "test": []} for m in MODALITIES}
    for entry in index:
        path = root / entry["file"]
        item = Item(
            path.stem,
            entry["modality"],
            path,
            path.with_name(f"{path.stem}_mask.tif"),
            int(entry["objects"]),
        )
        split[item.modality]["test" if is_held_out(item.id) else "dev"].append(item)
    for parts in split.values():
        for items in parts.values():
            items.sort(key=lambda i: i.id)
    return split


def dev_replay(dsb=None, per_modality=(("fluorescence", 8), ("histology", 4), ("brightfield", 4))):
    """A fixed handful of the default model's own training images (development part).

    Brightfield images (1024 x 1024) are cropped to their central 512 x 512.
    This is the shipped replay set (``scripts/make_replay_set.py``).
    """
    dsb = dsb2018() if dsb is None else dsb
    images, masks = [], []
    for modality, n in per_modality:
        dev = dsb[modality]["dev"]
        rng = np.random.default_rng(7)
        for i in rng.choice(len(dev), size=n, replace=False):
            image, labels = dev[i].load()
            if image.shape[0] > 512:  # brightfield: a 512 x 512 crop is enough context
                image, labels = image[256:768, 256:768], labels[256:768, 256:768]
            images.append(image)
            masks.append(labels)
    return images, masks


def otsu_baseline(image: np.ndarray, sigma: float = OTSU_SIGMA) -> np.ndarray:
    """Blur + Otsu mask of a 2D image (grey or RGB); foreground is the minority side."""
    plane = np.asarray(to_gray(image), dtype=np.float32)
    smooth = ndi.gaussian_filter(plane, sigma)
    if smooth.max() <= smooth.min():
        return np.zeros(plane.shape, bool)
    t = threshold_otsu(smooth)
    mask = smooth > t
    return ~mask if mask.mean() > 0.5 else mask


def confocal_stack(
    seed: int, planes: int = 28, size: int = 256, radius: float = 30.0, count: int = 9
) -> tuple[np.ndarray, np.ndarray]:
    """Make a 16-bit fluorescence stack of nuclei and its instance labels, plane by plane.

    Nuclei are ellipsoids (``radius`` px in the plane, about a third of the
    stack deep), placed without overlap; the focal plane is the middle one.
    Each plane is the stack's 3D emission blurred by a depth-dependent
    defocus (sigma grows with distance from the focal plane) and dimmed with
    depth (absorption), over a background with shading, plus Poisson and
    camera noise.  Labels are the nuclei's true cross-sections, so the dim,
    blurred planes near the ends keep small objects that are hard to find.

    Returns
    -------
    tuple
        ``(stack (Z, Y, X) uint16, labels (Z, Y, X) uint16)``.
    """
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[:planes, :size, :size].astype(np.float32)
    labels = np.zeros((planes, size, size), np.uint16)
    emission = np.zeros((planes, size, size), np.float32)
    centres: list[tuple[float, float]] = []
    n = 0
    for _ in range(count * 30):
        if n == count:
            break
        cy, cx = rng.uniform(radius * 0.6, size - radius * 0.6, 2)
        r = radius * rng.uniform(0.75, 1.25)
        if any((cy - y) ** 2 + (cx - x) ** 2 < (r + ry + 2) ** 2 for y, x, ry in centres):
            continue
        cz = rng.uniform(0.3, 0.7) * planes
        rz = planes * rng.uniform(0.28, 0.4)
        ay, ax = r * rng.uniform(0.85, 1.15), r * rng.uniform(0.85, 1.15)
        angle = rng.uniform(0, np.pi)
        c, s = np.cos(angle), np.sin(angle)
        dy, dx = yy - cy, xx - cx
        u, v = (c * dy + s * dx) / ay, (-s * dy + c * dx) / ax
        inside = u**2 + v**2 + ((zz - cz) / rz) ** 2 <= 1.0
        n += 1
        labels[inside] = n
        # Chromatin texture: brighter rims and spots inside the nucleus.
        texture = 0.7 + 0.3 * ndi.gaussian_filter(rng.random((planes, size, size)), 2) * 2
        emission[inside] = (rng.uniform(0.6, 1.0) * texture[inside]).astype(np.float32)
        centres.append((cy, cx, max(ay, ax)))
    focus = (planes - 1) / 2
    stack = np.zeros((planes, size, size), np.float32)
    for z in range(planes):
        distance = abs(z - focus) / focus
        # Out-of-focus light from neighbouring planes, then the plane's own defocus.
        weights = np.exp(-0.5 * ((np.arange(planes) - z) / (1.0 + 2.5 * distance)) ** 2)
        plane = np.tensordot(weights / weights.sum(), emission, axes=1)
        plane = ndi.gaussian_filter(plane, 0.8 + 4.0 * distance**1.5)
        stack[z] = plane * np.exp(-2.2 * distance**2)  # dimmer away from focus
    shading = 1.0 + 0.3 * np.sin(xx[0] / size * np.pi) * np.cos(yy[0] / size * np.pi / 2)
    photons = 400.0 * rng.uniform(0.6, 1.4)
    signal = photons * stack + 20.0 * shading
    counts = rng.poisson(np.clip(signal, 0, None)).astype(np.float32)
    # Camera offset and read noise.
    counts += rng.normal(100.0, 6.0, counts.shape).astype(np.float32)
    return np.clip(counts, 0, 65535).astype(np.uint16), labels
