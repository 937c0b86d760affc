"""The 2D U-Net: its configuration, building blocks and helpers.

The network follows Ronneberger et al. (2015): a contracting path of
``depth`` 2x2 max-pool steps and an expanding path of as many 2x2 transposed
convolutions, joined by skip concatenation; every level has two 3x3
convolutions with batch norm and ReLU.  Convolutions use "same" padding, so any
image whose height and width are multiples of ``2 ** depth`` passes through
unchanged in size (the inference module reflect-pads images to that multiple).

Every model carries its own metadata (``norm``, ``threshold``, ``history``,
``extra``); :mod:`napari_unet.core.checkpoint` writes it with the weights into
one file, and :mod:`napari_unet.core.devices` chooses where the network runs.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from napari_unet.core.defaults import ARCH_NAMES
from napari_unet.core.errors import InputError


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
    arch
        One of :data:`~napari_unet.core.defaults.ARCH_NAMES`: ``"unet"`` (this
        class), ``"unetpp"`` (U-Net++) or ``"unet3p"`` (U-Net 3+); see
        :mod:`napari_unet.core.nets`.  Checkpoints written before it existed
        load as ``"unet"``.
    prune_to
        U-Net++ only: 0 averages the logits of all ``depth`` heads; ``j`` in
        1..depth predicts with the head on node X(0, j) alone and computes
        only the nodes it needs (faster, smaller receptive radius).
    skip_width
        U-Net 3+ only: channels of each full-scale skip (the paper's 64 for
        its base width 64); 0 means ``base_width``, the paper's ratio.
    gate_empty
        U-Net 3+ only: at inference, zero the foreground of every input that
        the classification-guided head judges empty.  Off by default: it acts
        per forward pass, so on a tiled image it acts per tile and can leave
        seams (see :class:`napari_unet.core.nets.unet3p.UNet3Plus`).
    """

    in_channels: int = 1
    out_channels: int = 1
    depth: int = 4
    base_width: int = 16
    arch: str = "unet"
    prune_to: int = 0
    skip_width: int = 0
    gate_empty: bool = False

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels", "depth", "base_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"UNetConfig.{name} must be a positive integer, not {value!r}")
        if self.arch not in ARCH_NAMES:
            raise InputError(
                f"unknown architecture {self.arch!r}: choose one of {', '.join(ARCH_NAMES)}"
            )
        for name, top in (("prune_to", self.depth), ("skip_width", None)):
            value = getattr(self, name)
            bad = not isinstance(value, int) or isinstance(value, bool) or value < 0
            if bad or (top is not None and value > top):
                upper = f" and at most the depth ({top})" if top is not None else ""
                raise InputError(
                    f"UNetConfig.{name} must be a whole number of at least 0{upper}, not {value!r}"
                )
        if not isinstance(self.gate_empty, bool):
            raise InputError(
                f"UNetConfig.gate_empty must be True or False, not {self.gate_empty!r}"
            )


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


def conv_bn_relu(in_channels: int, out_channels: int, count: int) -> nn.Sequential:
    """``count`` 3x3 "same" convolutions, each followed by batch norm and ReLU."""
    layers: list[nn.Module] = []
    for i in range(count):
        # No conv bias: the batch norm right after it has its own shift.
        width_in = in_channels if i == 0 else out_channels
        layers += [
            nn.Conv2d(width_in, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class DoubleConv(nn.Module):
    """Two 3x3 "same" convolutions, each followed by batch norm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = conv_bn_relu(in_channels, out_channels, 2)

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

    The variants of :mod:`napari_unet.core.nets` subclass it: they share its
    metadata and input/output contract and build their own layers in
    :meth:`_build`.

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
        self._build(config)

    def _build(self, config: UNetConfig) -> None:
        """Create the layers of ``config`` (subclasses build their own)."""
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
    the ``2**depth`` grid; see :mod:`napari_unet.core.tiling`).  U-Net++ and
    U-Net 3+ have their own radius (:func:`napari_unet.core.nets.receptive_radius`).

    Parameters
    ----------
    config
        The architecture.

    Returns
    -------
    int
        The radius in input pixels.
    """
    if config.arch != "unet":
        from napari_unet.core import nets

        return nets.receptive_radius(config)
    block = 2**config.depth
    return 4 * (block - 1) + 2 * block + (block - 1)


def build_model(config: UNetConfig | None = None, **overrides: Any) -> UNet:
    """Build a freshly initialised :class:`UNet`.

    Parameters
    ----------
    config
        Base architecture (default :class:`UNetConfig()`).
    **overrides
        Fields of :class:`UNetConfig` to change, e.g. ``base_width=8`` or
        ``arch="unetpp"``.

    Returns
    -------
    UNet
        A new network in training mode, on the CPU: a :class:`UNet`, or the
        :mod:`napari_unet.core.nets` class of ``config.arch``.
    """
    config = UNetConfig() if config is None else config
    if overrides:
        unknown = set(overrides) - {f.name for f in fields(UNetConfig)}
        if unknown:
            raise InputError(f"unknown U-Net setting(s): {', '.join(sorted(unknown))}")
        config = UNetConfig(**{**asdict(config), **overrides})
    if config.arch == "unet":
        return UNet(config)
    from napari_unet.core import nets

    return nets.network_class(config.arch)(config)


def fuse_for_inference(model: UNet) -> UNet:
    """Return an evaluation copy of ``model`` with each batch norm folded into its conv.

    The copy computes the same function as ``model.eval()`` (to float rounding)
    with a third fewer memory passes per level, which matters on the CPU.
    ``model`` itself is left untouched.  Every block that keeps its layers in
    an ``nn.Sequential`` called ``block`` (:class:`DoubleConv`, and the blocks
    of :mod:`napari_unet.core.nets`) is folded; other modules are left as
    they are.
    """
    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        block = getattr(module, "block", None)
        if isinstance(block, nn.Sequential):
            layers = list(block)
            merged: list[nn.Module] = []
            for layer in layers:
                if (
                    isinstance(layer, nn.BatchNorm2d)
                    and merged
                    and isinstance(merged[-1], nn.Conv2d)
                ):
                    merged[-1] = nn.utils.fusion.fuse_conv_bn_eval(merged[-1], layer)
                else:
                    merged.append(layer)
            module.block = nn.Sequential(*merged)
    return fused


# Compatibility: device selection and checkpoints used to live here, and
# scripts, benchmarks and the widgets still import them from this module.
# New code imports them from napari_unet.core.devices and .checkpoint.
from napari_unet.core.devices import (  # noqa: E402
    autocast,
    available_devices,
    prepare_for_device,
    resolve_device,
)

#: Names re-exported lazily from :mod:`napari_unet.core.checkpoint`, which
#: imports this module: an eager import here would be circular.
_CHECKPOINT_NAMES = frozenset({"FORMAT_VERSION", "default_model_path", "load_model", "save_model"})


def __getattr__(name: str) -> Any:
    if name in _CHECKPOINT_NAMES:
        from napari_unet.core import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DoubleConv",
    "Down",
    "NormConfig",
    "OutConv",
    "UNet",
    "UNetConfig",
    "Up",
    "autocast",
    "available_devices",
    "build_model",
    "fuse_for_inference",
    "prepare_for_device",
    "receptive_radius",
    "resolve_device",
]
