"""Ensembles: average the probability maps of several models.

Each model predicts the image with its own normalisation and channels
(:func:`~napari_unet.core.inference.iter_predict`, or with test-time
augmentation); the foreground probabilities are averaged, and so are the rim
maps of the models that have one.  The spread of the foreground across the
models is kept as an uncertainty map, as for test-time augmentation.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from napari_unet.core.defaults import DEFAULT_TILE_SIZE
from napari_unet.core.errors import InputError
from napari_unet.core.events import Notice, Progress, relay
from napari_unet.core.inference import Prediction, iter_predict
from napari_unet.core.model import UNet
from napari_unet.core.tta import TTAPrediction, iter_predict_tta


@dataclass(frozen=True, eq=False)
class Ensemble:
    """Several models used as one (the GUI's Segment with several model files).

    Attributes
    ----------
    models
        The members, predicted by :func:`iter_predict_ensemble`.
    """

    models: tuple[UNet, ...]

    def __post_init__(self) -> None:
        if not self.models:
            raise InputError("give at least one model")

    @property
    def threshold(self) -> float:
        """The mean of the models' thresholds, where the averaged map is thresholded."""
        return float(sum(m.threshold for m in self.models) / len(self.models))


def iter_predict_ensemble(
    image: np.ndarray,
    models: Sequence[UNet],
    *,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int | None = None,
    device: str | torch.device = "auto",
    tta: bool = False,
) -> Generator[Progress | Notice, None, TTAPrediction]:
    """Predict ``image`` with every model and average their maps.

    Parameters
    ----------
    image, tile_size, overlap, device
        As for :func:`~napari_unet.core.inference.iter_predict`.
    models
        One or more models; they may differ in channels and outputs.
    tta
        Predict each model with the 8 flips and rotations too.

    Yields
    ------
    Progress
        Per model: ``model k/N`` and the model's own progress text.
    Notice
        Each distinct notice once.

    Returns
    -------
    TTAPrediction
        Mean foreground probability, mean rim probability of the models with a
        rim output (``None`` if none has one), and the spread of the
        foreground across the models (across models and transforms with ``tta``).
    """
    if not models:
        raise InputError("give at least one model")
    maps: list[Prediction] = []
    notices: set[str] = set()
    for k, model in enumerate(models):
        gen: Generator[Progress | Notice, None, Prediction]
        if tta:
            gen = iter_predict_tta(
                image, model, tile_size=tile_size, overlap=overlap, device=device
            )
        else:
            gen = iter_predict(image, model, tile_size=tile_size, overlap=overlap, device=device)

        def overall(event: Progress, k: int = k) -> Progress:
            return Progress(
                k * event.total + event.step,
                len(models) * event.total,
                f"model {k + 1}/{len(models)}, {event.message}",
            )

        maps.append((yield from relay(gen, notices, overall)))
    probs = np.stack([m.proba for m in maps])
    mean = probs.mean(axis=0, dtype=np.float32)
    # Spread over models, plus each model's own spread over transforms (total variance).
    variance = probs.var(axis=0, dtype=np.float32)
    if tta:
        spreads = [m.uncertainty for m in maps if isinstance(m, TTAPrediction)]
        variance += np.stack([u**2 for u in spreads if u is not None]).mean(axis=0)
    rims = [m.boundary for m in maps if m.boundary is not None]
    boundary = np.stack(rims).mean(axis=0, dtype=np.float32) if rims else None
    # The distance map only when every model gives one: it drives the split alone.
    dists = [m.distance for m in maps if m.distance is not None]
    distance = None
    if len(dists) == len(maps):
        distance = np.stack(dists).mean(axis=0, dtype=np.float32)
    return TTAPrediction(mean, boundary, np.sqrt(variance).astype(np.float32), distance=distance)
