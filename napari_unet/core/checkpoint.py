"""The checkpoint file format: one ``.pt`` file per model.

A checkpoint is a plain dict (format name and version, architecture,
normalisation, threshold, history, extra and ``state_dict``) that
:func:`save_model` writes atomically and :func:`load_model` reads back with
``torch.load(..., weights_only=True)``, so loading never unpickles an object.
"""

from __future__ import annotations

import math
import os
import pickle
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from napari_unet.core.atomic import atomic_open
from napari_unet.core.defaults import ARCH_NAMES
from napari_unet.core.devices import prepare_for_device, resolve_device
from napari_unet.core.errors import InputError, UnsafeCheckpointError
from napari_unet.core.model import NormConfig, UNet, UNetConfig, build_model

#: Version of the checkpoint layout written by :func:`save_model`.
FORMAT_VERSION = 1
_FORMAT_NAME = "napari-unet"
#: Fields of :class:`UNetConfig` added with the U-Net variants.
_VARIANT_FIELDS = ("arch", "prune_to", "skip_width", "gate_empty")
_DEFAULT_CONFIG = asdict(UNetConfig())


def default_model_path() -> Path:
    """Path of the pretrained nuclei model shipped inside the package."""
    return Path(__file__).resolve().parent.parent / "models" / "default.pt"


def _config_record(config: UNetConfig) -> dict[str, Any]:
    """Return the architecture as saved: variant fields only where they are not the defaults.

    A plain U-Net is thus written exactly as before ``arch`` existed, and
    older napari-unet versions still read it; a U-Net++ or U-Net 3+ carries
    its ``arch`` (and any non-default variant setting).
    """
    record = asdict(config)
    for name in _VARIANT_FIELDS:
        if record[name] == _DEFAULT_CONFIG[name]:
            del record[name]
    return record


def _checkpoint(model: UNet) -> dict[str, Any]:
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return {
        "format": _FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": _config_record(model.config),
        "norm": asdict(model.norm),
        "threshold": float(model.threshold),
        "history": list(model.history),
        "extra": dict(model.extra),
        "state_dict": state,
    }


def save_model(model: UNet, path: str | os.PathLike) -> Path:
    """Write ``model`` with all its metadata to one ``.pt`` file, atomically.

    The checkpoint is written to a temporary file in the destination folder,
    flushed to disk and renamed over ``path`` in one step, so an interrupted or
    failed save never leaves a half-written model and never destroys the file
    that was at ``path`` before.

    Parameters
    ----------
    model
        The network; its ``config``, ``norm``, ``threshold``, ``history`` and
        ``extra`` are saved with its weights.  History and extra must hold only
        plain Python values (numbers, strings, lists, dicts).
    path
        Destination file; its folder is created if needed.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder; give a file name such as {path / 'model.pt'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = _checkpoint(model)
    with atomic_open(path, "wb") as handle:
        torch.save(payload, handle)
    return path


def _not_a_model(path: Path, why: str = "") -> InputError:
    reason = f" ({why})" if why else ""
    return InputError(
        f"{path} is not a readable model file{reason}: choose a .pt saved by napari-unet"
    )


def _written_by_torch(path: Path) -> bool:
    """Whether ``path`` starts like a torch.save file (zip archive or binary pickle)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    return head.startswith((b"PK\x03\x04", b"\x80"))


def _read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        # weights_only=True stops at the first global it does not allow, before
        # building anything: the file asked to run code, so it is refused.  A
        # text file that happens to start with "c" reads as such a global too,
        # so only a file torch.save could have written (a zip archive or a
        # binary pickle) counts as one that asked.
        asked = "GLOBAL" in text or "global" in text or "Unsupported class" in text
        if asked and _written_by_torch(path):
            raise UnsafeCheckpointError(
                f"{path} contains pickled Python objects and was refused for safety; "
                "load only napari-unet model files from sources you trust"
            ) from None
        raise _not_a_model(path, "corrupt, or not a model") from None
    except OSError as exc:
        raise _not_a_model(path, exc.strerror or "cannot be read") from None
    except Exception:
        # Any other file (text, an image, a truncated download) makes torch's
        # unpickler fail in its own ways (IndexError, KeyError, EOFError,
        # RuntimeError, ...); none of them is worth a traceback.
        raise _not_a_model(path, "corrupt, or not a model") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT_NAME:
        raise InputError(
            f"{path} is not a napari-unet model file: choose a .pt saved by napari-unet"
        )
    version = data.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise InputError(f"{path} has no valid format version; it is not a napari-unet model")
    if version > FORMAT_VERSION:
        raise InputError(
            f"{path} uses model format {version}, newer than this napari-unet supports "
            f"({FORMAT_VERSION}); upgrade napari-unet"
        )
    return data


def _model_from_checkpoint(data: dict[str, Any], path: Path) -> UNet:
    stored = data.get("config")
    arch = stored.get("arch", "unet") if isinstance(stored, dict) else "unet"
    if arch not in ARCH_NAMES:
        raise InputError(
            f"{path} holds a {arch!r} network, an architecture this napari-unet does not "
            "know; upgrade napari-unet"
        )
    try:
        # Checkpoints written before ``arch`` existed have none: plain U-Nets.
        config = UNetConfig(**data["config"])
        norm = NormConfig(**data["norm"])
        threshold = float(data["threshold"])
        history = list(data.get("history", []))
        extra = dict(data.get("extra", {}))
        state = data["state_dict"]
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path} is a napari-unet model with missing or bad settings") from None
    if not math.isfinite(threshold) or not 0.0 <= threshold <= 1.0:
        raise InputError(f"{path} stores threshold {threshold}; it must lie in [0, 1]")
    model = build_model(config)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError):
        raise InputError(f"{path} holds weights that do not fit its U-Net settings") from None
    model.norm, model.threshold, model.history, model.extra = norm, threshold, history, extra
    return model


def load_model(source: str | os.PathLike = "default", device: str | torch.device = "cpu") -> UNet:
    """Load a saved model, in evaluation mode, on ``device``.

    Parameters
    ----------
    source
        ``"default"`` for the pretrained model shipped with the package, or the
        path of a ``.pt`` file written by :func:`save_model`.
    device
        Any name :func:`resolve_device` accepts.

    Returns
    -------
    UNet
        The network with its ``norm``, ``threshold``, ``history`` and ``extra``.

    Raises
    ------
    UnsafeCheckpointError
        The file carries pickled Python objects; nothing in it was run.
    InputError
        The file is missing, corrupt, not a napari-unet model, or from a newer version.
    DeviceError
        ``device`` is not present.
    """
    target = resolve_device(device)
    if isinstance(source, str) and source == "default":
        path = default_model_path()
        if not path.is_file():
            raise InputError(
                f"the default model is missing ({path}); reinstall napari-unet or "
                "pass the path of a model file"
            )
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise InputError(f"model file {path} does not exist")
        if not path.is_file():
            raise InputError(f"{path} is not a file; give the path of a .pt model file")
    model = _model_from_checkpoint(_read_checkpoint(path), path)
    return prepare_for_device(model, target).eval()
