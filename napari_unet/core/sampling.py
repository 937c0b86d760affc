"""Random training patches with a foreground-biased share.

Uniform patches from images where the objects cover 0.1 % of the pixels
almost never contain an object: the loss converges and the output is all
black.  :class:`PatchSampler` therefore centres a share of the patches
(``foreground_fraction``) on a random foreground pixel and draws the rest
uniformly.  An optional region-of-interest (ROI) mask restricts where patch
centres may fall (for example inside the lungs of a CT slice).

Every image is reflect-padded by half a patch on each side once, up front:
a patch centred on a border pixel sees mirrored context (the overlap-tile
strategy of the U-Net paper), and images smaller than a patch work too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_unet.core.errors import InputError


@dataclass(frozen=True)
class PatchBatch:
    """A batch of patches as float32 arrays ready for the network.

    Attributes
    ----------
    images
        (N, C, P, P) normalised images.
    targets
        (N, 1, P, P) 0/1 targets.
    weights
        (N, 1, P, P) per-pixel weights, or ``None`` when the sampler has none.
    foreground
        (N,) bool: which patches were centred on foreground.
    """

    images: np.ndarray
    targets: np.ndarray
    weights: np.ndarray | None
    foreground: np.ndarray


def _reflect_pad(array: np.ndarray, pad: int) -> np.ndarray:
    """Mirror-pad the last two axes by ``pad``; works for any size, even 1 px."""
    width = [(0, 0)] * (array.ndim - 2) + [(pad, pad), (pad, pad)]
    if min(array.shape[-2:]) > 1:
        return np.pad(array, width, mode="reflect")
    return np.pad(array, width, mode="edge")


class PatchSampler:
    """Draw square training patches from a list of images.

    Parameters
    ----------
    images
        Normalised float images, each (C, H, W) or (H, W).
    targets
        0/1 targets or packed target codes (:data:`~napari_unet.core.targets.BOUNDARY_BIT`,
        bit 0 the foreground), each (H, W), matching its image.
    weights
        Per-pixel weight maps (H, W), or ``None`` for no weights.
    rois
        Optional ROI masks (H, W) (nonzero = allowed patch centre), one per
        image, or ``None`` entries for "everywhere".
    patch_size
        Side P of the square patches.
    foreground_fraction
        Expected share of patches centred on a foreground pixel, in [0, 1].
        0 gives plain uniform sampling.

    Raises
    ------
    InputError
        If the lists are empty or disagree in length or shape, or no ROI
        allows any patch centre.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        targets: Sequence[np.ndarray],
        weights: Sequence[np.ndarray] | None = None,
        rois: Sequence[np.ndarray | None] | None = None,
        *,
        patch_size: int = 128,
        foreground_fraction: float = 0.4,
    ) -> None:
        n = len(images)
        if n == 0:
            raise InputError("no training images: add at least one image with a mask")
        if len(targets) != n or (weights is not None and len(weights) != n):
            raise InputError(f"got {n} images but {len(targets)} targets: give one per image")
        if rois is not None and len(rois) != n:
            raise InputError(f"got {n} images but {len(rois)} ROI masks: give one per image")
        if not 0.0 <= foreground_fraction <= 1.0:
            raise InputError(f"foreground_fraction must be in [0, 1], got {foreground_fraction}")
        if patch_size < 1:
            raise InputError(f"patch size must be at least 1, got {patch_size}")
        self.patch_size = int(patch_size)
        self.foreground_fraction = float(foreground_fraction)
        self.has_weights = weights is not None
        half = self.patch_size // 2
        self._images, self._targets, self._weights = [], [], []
        self._anywhere: list[np.ndarray] = []  # allowed centres, flat indices
        self._fg: list[np.ndarray] = []  # allowed foreground centres
        self._shapes: list[tuple[int, int]] = []
        for i in range(n):
            img = np.asarray(images[i], dtype=np.float32)
            img = img[None] if img.ndim == 2 else img
            tgt = np.asarray(targets[i])
            shape = img.shape[-2:]
            if tgt.shape != shape:
                raise InputError(
                    f"target {i} has shape {tgt.shape} but its image is {shape}: "
                    "give masks of the image's size"
                )
            allowed = np.ones(shape, bool)
            roi = None if rois is None else rois[i]
            if roi is not None:
                if np.shape(roi) != shape:
                    raise InputError(f"ROI {i} has shape {np.shape(roi)}, its image {shape}")
                allowed = np.asarray(roi) != 0
            self._images.append(_reflect_pad(img, half))
            self._targets.append(_reflect_pad(tgt.astype(np.float32), half))
            if weights is not None:
                wgt = np.asarray(weights[i], dtype=np.float32)
                self._weights.append(_reflect_pad(wgt, half))
            self._anywhere.append(np.flatnonzero(allowed))
            # Bit 0 of a packed target code is the foreground (napari_unet.core.targets).
            self._fg.append(np.flatnonzero(allowed & (np.remainder(tgt, 2) != 0)))
            self._shapes.append(shape)
        area = np.array([a.size for a in self._anywhere], float)
        if area.sum() == 0:
            raise InputError("the ROI masks leave no pixel to train on: draw a larger ROI")
        # Uniform patches: images in proportion to their allowed area, so
        # every allowed pixel is equally likely to be a centre.
        self._area_p = area / area.sum()
        # Foreground patches: every image that has foreground equally often,
        # so a slice with one small nodule is not drowned by a large one.
        self._fg_images = np.array([i for i in range(n) if self._fg[i].size])

    @property
    def num_images(self) -> int:
        """Number of images the sampler draws from."""
        return len(self._images)

    def sample(
        self, batch_size: int, rng: np.random.Generator
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]]:
        """Draw ``batch_size`` patches without stacking them.

        The number of foreground-centred patches is ``foreground_fraction *
        batch_size`` rounded stochastically, so its expectation is exact for
        any batch size.  Without any foreground pixel in the allowed region,
        every patch is uniform.

        Parameters
        ----------
        batch_size
            Number of patches.
        rng
            Random generator.

        Returns
        -------
        list of tuple
            ``(image (C, P, P), target (P, P), weight (P, P) or None,
            centred_on_foreground)`` per patch; copies, safe to modify.
        """
        expected = self.foreground_fraction * batch_size
        n_fg = int(expected) + int(rng.random() < expected - int(expected))
        if self._fg_images.size == 0:
            n_fg = 0
        out = []
        for k in range(batch_size):
            on_fg = k < n_fg
            if on_fg:
                i = int(self._fg_images[rng.integers(self._fg_images.size)])
                centres = self._fg[i]
            else:
                i = int(rng.choice(self.num_images, p=self._area_p))
                centres = self._anywhere[i]
            flat = int(centres[rng.integers(centres.size)])
            cy, cx = divmod(flat, self._shapes[i][1])
            # After padding by P // 2, the patch centred on (cy, cx) starts at (cy, cx).
            win = (slice(cy, cy + self.patch_size), slice(cx, cx + self.patch_size))
            weight = self._weights[i][win].copy() if self.has_weights else None
            out.append(
                (
                    self._images[i][(slice(None), win[0], win[1])].copy(),
                    self._targets[i][win].copy(),
                    weight,
                    on_fg,
                )
            )
        return out

    def batch(self, batch_size: int, rng: np.random.Generator) -> PatchBatch:
        """Draw a stacked batch of patches (no augmentation).

        Parameters
        ----------
        batch_size
            Number of patches.
        rng
            Random generator.

        Returns
        -------
        PatchBatch
            Stacked float32 arrays.
        """
        return stack_patches(self.sample(batch_size, rng))


def stack_patches(
    patches: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]],
) -> PatchBatch:
    """Stack ``(image, target, weight, on_foreground)`` tuples into a :class:`PatchBatch`.

    Parameters
    ----------
    patches
        As returned by :meth:`PatchSampler.sample` (possibly augmented).

    Returns
    -------
    PatchBatch
        float32 arrays with a batch axis and a channel axis.
    """
    images = np.stack([p[0] if p[0].ndim == 3 else p[0][None] for p in patches])
    targets = np.stack([p[1] for p in patches])[:, None]
    weights = None
    maps = [p[2] for p in patches if p[2] is not None]
    if patches[0][2] is not None:
        weights = np.stack(maps)[:, None].astype(np.float32)
    return PatchBatch(
        images.astype(np.float32),
        targets.astype(np.float32),
        weights,
        np.array([p[3] for p in patches], bool),
    )
