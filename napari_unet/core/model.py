"""The 2D U-Net, its checkpoint file format and compute-device selection.

The network follows Ronneberger et al. (2015): a contracting path of
``depth`` 2x2 max-pool steps and an expanding path of as many 2x2 transposed
convolutions, joined by skip concatenation; every level has two 3x3
convolutions with batch norm and ReLU.  Convolutions use "same" padding, so any
image whose height and width are multiples of ``2 ** depth`` passes through
unchanged in size (the inference module reflect-pads images to that multiple).

Every model carries its own metadata (``norm``, ``threshold``, ``history``,
``extra``), and :func:`save_model` writes all of it with the weights into one
``.pt`` file that :func:`load_model` reads back without unpickling any object.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import pickle
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from napari_unet.core.atomic import atomic_open
from napari_unet.core.errors import DeviceError, InputError, UnsafeCheckpointError

#: Version of the checkpoint layout written by :func:`save_model`.
FORMAT_VERSION = 1
_FORMAT_NAME = "napari-unet"


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a :class:`UNet`.

    Attributes
    ----------
    in_channels
        1 for grey images, 3 for RGB.
    out_channels
        Number of output logits (1: foreground).
    depth
        Number of 2x2 down-sampling steps; inputs must be multiples of ``2**depth``.
    base_width
        Feature channels at full resolution; doubled at every level down.
    """

    in_channels: int = 1
    out_channels: int = 1
    depth: int = 4
    base_width: int = 16

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"UNetConfig.{f.name} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class NormConfig:
    """Per-image percentile normalisation: ``p_low`` maps to 0 and ``p_high`` to 1."""

    p_low: float = 1.0
    p_high: float = 99.8

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_low < self.p_high <= 100.0:
            raise InputError(
                f"normalisation percentiles must satisfy 0 <= low < high <= 100, "
                f"not {self.p_low} and {self.p_high}"
            )


class DoubleConv(nn.Module):
    """Two 3x3 "same" convolutions, each followed by batch norm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        # No conv bias: the batch norm right after it has its own shift.
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (N, in, H, W) to (N, out, H, W)."""
        return self.block(x)


class Down(nn.Module):
    """2x2 max-pool, then :class:`DoubleConv`: halves H and W."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (N, in, H, W) to (N, out, H/2, W/2)."""
        return self.conv(self.pool(x))


class Up(nn.Module):
    """2x2 transposed convolution, concatenation with the skip, then :class:`DoubleConv`."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Map (N, in, H, W) and a skip (N, out, 2H, 2W) to (N, out, 2H, 2W)."""
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class OutConv(nn.Module):
    """1x1 convolution from features to output logits."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (N, in, H, W) to (N, out, H, W)."""
        return self.conv(x)


class UNet(nn.Module):
    """2D U-Net returning one foreground logit per pixel.

    Parameters
    ----------
    config
        Architecture; the default is :class:`UNetConfig()`.

    Attributes
    ----------
    config : UNetConfig
        The architecture this network was built from.
    size_multiple : int
        ``2 ** depth``: input height and width must be multiples of it.
    norm : NormConfig
        Normalisation the network expects its inputs to have had.
    threshold : float
        Default probability threshold for masks (0.5 unless tuned).
    history : list of dict
        Training history, one JSON-safe dict per epoch (or per run).
    extra : dict
        Free-form JSON-safe metadata saved with the checkpoint.
    """

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        config = UNetConfig() if config is None else config
        self.config = config
        self.size_multiple = 2**config.depth
        self.norm = NormConfig()
        self.threshold = 0.5
        self.history: list[dict] = []
        self.extra: dict = {}

        widths = [config.base_width * 2**level for level in range(config.depth + 1)]
        self.inc = DoubleConv(config.in_channels, widths[0])
        self.downs = nn.ModuleList(Down(widths[i], widths[i + 1]) for i in range(config.depth))
        self.ups = nn.ModuleList(
            Up(widths[i + 1], widths[i]) for i in reversed(range(config.depth))
        )
        self.outc = OutConv(widths[0], config.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute foreground logits.

        Parameters
        ----------
        x
            Normalised float tensor of shape (N, C, H, W) with C = ``config.in_channels``
            and H, W multiples of ``size_multiple`` (= ``2 ** depth``).

        Returns
        -------
        torch.Tensor
            Logits of shape (N, ``config.out_channels``, H, W); apply a sigmoid for
            probabilities.
        """
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        return self.outc(y)


def receptive_radius(config: UNetConfig) -> int:
    """Farthest distance, in pixels, from an output pixel to an input pixel it depends on.

    Every 3x3 convolution at level ``l`` (``l`` poolings down) widens the view
    by ``2**l`` pixels on each side.  Levels ``0..depth-1`` have two such
    convolutions on the way down and two on the way up, the bottom level two:
    ``4 * (2**depth - 1) + 2 * 2**depth`` pixels.  The 2x2 poolings and 2x2 up-
    convolutions add no width but shift the view by up to ``2**depth - 1``
    pixels to one side, depending on where the pixel sits in its
    ``2**depth`` block.  Together: ``7 * 2**depth - 5`` (107 for depth 4); the
    width does not matter.

    A tile's output therefore equals the whole-image output, to float
    rounding, at every pixel at least this far from the tile's edges (tiles on
    the ``2**depth`` grid; see :mod:`napari_unet.core.tiling`).

    Parameters
    ----------
    config
        The architecture.

    Returns
    -------
    int
        The radius in input pixels.
    """
    block = 2**config.depth
    return 4 * (block - 1) + 2 * block + (block - 1)


def build_model(config: UNetConfig | None = None, **overrides: Any) -> UNet:
    """Build a freshly initialised :class:`UNet`.

    Parameters
    ----------
    config
        Base architecture (default :class:`UNetConfig()`).
    **overrides
        Fields of :class:`UNetConfig` to change, e.g. ``base_width=8``.

    Returns
    -------
    UNet
        A new network in training mode, on the CPU.
    """
    config = UNetConfig() if config is None else config
    if overrides:
        unknown = set(overrides) - {f.name for f in fields(UNetConfig)}
        if unknown:
            raise InputError(f"unknown U-Net setting(s): {', '.join(sorted(unknown))}")
        config = UNetConfig(**{**asdict(config), **overrides})
    return UNet(config)


def fuse_for_inference(model: UNet) -> UNet:
    """Return an evaluation copy of ``model`` with each batch norm folded into its conv.

    The copy computes the same function as ``model.eval()`` (to float rounding)
    with a third fewer memory passes per level, which matters on the CPU.
    ``model`` itself is left untouched.
    """
    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if isinstance(module, DoubleConv):
            layers = list(module.block)
            merged: list[nn.Module] = []
            for layer in layers:
                if isinstance(layer, nn.BatchNorm2d) and isinstance(merged[-1], nn.Conv2d):
                    merged[-1] = nn.utils.fusion.fuse_conv_bn_eval(merged[-1], layer)
                else:
                    merged.append(layer)
            module.block = nn.Sequential(*merged)
    return fused


# --------------------------------------------------------------------------- devices


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn a device name into a :class:`torch.device` that exists here.

    Parameters
    ----------
    name
        ``"auto"`` (CUDA, then Apple MPS, then CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    torch.device

    Raises
    ------
    DeviceError
        The named device is not present on this machine or the name is unknown.
    """
    text = str(name).strip().lower()
    if text in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda or mps") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("device 'cuda' is not available on this machine; use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {text!r} is not present ({torch.cuda.device_count()} CUDA GPU(s)); "
                "use cuda or auto"
            )
        return device
    if device.type == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' is not available on this machine; use auto or cpu")
        return device
    raise DeviceError(f"unsupported device {name!r}; use auto, cpu, cuda or mps")


def available_devices() -> list[tuple[str, str]]:
    """List the devices present here as ``(value, label)`` pairs, ``auto`` first.

    Returns
    -------
    list of tuple of str
        e.g. ``[("auto", "auto"), ("cuda", "cuda: NVIDIA H100"), ("cpu", "cpu")]``;
        the values are accepted by :func:`resolve_device`.
    """
    devices = [("auto", "auto")]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        for index in range(count):
            value = "cuda" if count == 1 else f"cuda:{index}"
            devices.append((value, f"{value}: {torch.cuda.get_device_name(index)}"))
    if _mps_available():
        devices.append(("mps", "mps: Apple GPU"))
    devices.append(("cpu", "cpu"))
    return devices


def autocast(device: str | torch.device) -> contextlib.AbstractContextManager:
    """Mixed-precision context for ``device``.

    On CUDA this is ``torch.autocast`` with bfloat16 where the GPU supports it,
    else float16; on every other device it does nothing (CPU autocast is slower
    than float32 on most CPUs).
    """
    device = torch.device(device) if not isinstance(device, torch.device) else device
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def prepare_for_device(model: nn.Module, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device`` in place, channels-last on CUDA; return it."""
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    return model


# --------------------------------------------------------------------------- checkpoints


def default_model_path() -> Path:
    """Path of the pretrained nuclei model shipped inside the package."""
    return Path(__file__).resolve().parent.parent / "models" / "default.pt"


def _checkpoint(model: UNet) -> dict[str, Any]:
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return {
        "format": _FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": asdict(model.config),
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
    try:
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
    model = UNet(config)
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
