"""U-Net 3+ (Huang et al. 2020): full-scale skip connections, deep supervision, CGM.

The encoder is the plain U-Net's (levels 0..depth).  Decoder level ``i``
(``depth - 1`` down to 0) receives every encoder level ``k <= i``, max-pooled
down by ``2**(i - k)``, and every deeper level ``k > i`` (the decoder's, the
bottom encoder level for ``k = depth``), bilinearly up-sampled by
``2**(k - i)``; each of these ``depth + 1`` inputs goes through its own 3x3
conv to ``skip_width`` channels (the paper's 64), they are concatenated
(``(depth + 1) * skip_width`` channels, the paper's 320) and fused by one more
3x3 conv.  Every conv is followed by batch norm and ReLU.

``skip_width`` 0 (the default) means ``base_width``: the paper pairs 64 with a
base width of 64, and this keeps that ratio for the narrow networks that run
on a CPU (base 16: 16 per skip, 80 after concatenation).

Deep supervision: a 1x1 head on every decoder level and on the bottom encoder
level, bilinearly up-sampled to full size (:meth:`UNet3Plus.forward_heads`);
``forward`` returns the full-resolution head only, as in the paper.

The classification-guided module (CGM) is a small head on the bottom encoder
features (dropout, 1x1 conv, global max-pool) that predicts whether the input
holds any target; it is trained with binary cross-entropy next to the heads.
With ``config.gate_empty`` it zeroes, at inference, the foreground (every
output) of each input it judges empty.  It is off by default, because it
judges each forward pass as a whole: tiled prediction would judge each tile on
its own, and a tile judged empty next to one that is not leaves a seam (and a
network's output would no longer be a function of a bounded neighbourhood, so
the receptive radius would no longer make tiles match one whole-image pass).
Switch it on only where every image is predicted in one tile.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_unet.core.model import DoubleConv, Down, OutConv, UNet, UNetConfig, conv_bn_relu
from napari_unet.core.nets import Heads

#: Logit written where the classification-guided module zeroes the output
#: (sigmoid gives 0 in float32; within float16's range).
GATED_LOGIT = -1.0e4


class SingleConv(nn.Module):
    """One 3x3 "same" convolution, batch norm and ReLU (folded by ``fuse_for_inference``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = conv_bn_relu(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (N, in, H, W) to (N, out, H, W)."""
        return self.block(x)


class FullScaleLevel(nn.Module):
    """One decoder level: every scale resized to this level, a conv each, concatenated, fused.

    Parameters
    ----------
    level
        This level (``level`` poolings down).
    sources
        Channels of each input, from level 0 to ``depth``.
    skip_width
        Channels each input is mapped to.
    """

    def __init__(self, level: int, sources: list[int], skip_width: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList()
        for k, channels in enumerate(sources):
            resize: nn.Module
            if k < level:
                resize = nn.MaxPool2d(2 ** (level - k))
            elif k > level:
                resize = nn.Upsample(
                    scale_factor=2 ** (k - level), mode="bilinear", align_corners=False
                )
            else:
                resize = nn.Identity()
            self.branches.append(nn.Sequential(resize, SingleConv(channels, skip_width)))
        self.fuse = SingleConv(len(sources) * skip_width, len(sources) * skip_width)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """Map the ``depth + 1`` inputs (level 0 first) to this level's features."""
        parts = [branch(x) for branch, x in zip(self.branches, inputs, strict=True)]
        return self.fuse(torch.cat(parts, dim=1))


class UNet3Plus(UNet):
    """U-Net 3+ with deep supervision and a classification-guided module.

    Parameters
    ----------
    config
        Architecture with ``arch="unet3p"``; ``skip_width`` (0: ``base_width``)
        and ``gate_empty`` apply.

    Attributes
    ----------
    levels : nn.ModuleList
        :class:`FullScaleLevel` of decoder levels 0 .. depth-1.
    heads : nn.ModuleList
        1x1 heads on decoder levels 0 .. depth-1 and on the bottom encoder level.
    classifier : nn.Sequential
        The classification-guided module: (N, C, h, w) bottom features to (N, 1) logits.
    """

    def _build(self, config: UNetConfig) -> None:
        depth = config.depth
        widths = [config.base_width * 2**level for level in range(depth + 1)]
        skip = config.skip_width or config.base_width
        fused = (depth + 1) * skip
        self.inc = DoubleConv(config.in_channels, widths[0])
        self.downs = nn.ModuleList(Down(widths[i], widths[i + 1]) for i in range(depth))
        self.levels = nn.ModuleList(
            FullScaleLevel(i, widths[: i + 1] + [fused] * (depth - 1 - i) + [widths[depth]], skip)
            for i in range(depth)
        )
        self.heads = nn.ModuleList(
            [OutConv(fused, config.out_channels) for _ in range(depth)]
            + [OutConv(widths[depth], config.out_channels)]
        )
        self.classifier = nn.Sequential(
            nn.Dropout(0.5),
            nn.Conv2d(widths[depth], 1, 1),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Compute decoder levels 0 .. depth-1, then the bottom encoder level."""
        encoder = [self.inc(x)]
        for down in self.downs:
            encoder.append(down(encoder[-1]))
        depth = self.config.depth
        decoder: dict[int, torch.Tensor] = {depth: encoder[depth]}
        for i in reversed(range(depth)):
            inputs = encoder[: i + 1] + [decoder[k] for k in range(i + 1, depth + 1)]
            decoder[i] = self.levels[i](inputs)
        return [decoder[i] for i in range(depth + 1)]

    def forward_heads(self, x: torch.Tensor) -> Heads:
        """Compute every head's logits and the "holds a target" logit.

        Parameters
        ----------
        x
            Normalised (N, C, H, W) tensor, H and W multiples of ``size_multiple``.

        Returns
        -------
        Heads
            ``depth + 1`` logit maps of shape (N, out_channels, H, W) (decoder
            level 0 first, the deeper ones bilinearly up-sampled) and the
            classification-guided module's (N, 1) logits.
        """
        features = self._features(x)
        logits = []
        for head, f in zip(self.heads, features, strict=True):
            y = head(f)
            if y.shape[-2:] != x.shape[-2:]:
                y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
            logits.append(y)
        return Heads(logits, self.classifier(features[-1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the full-resolution head's logits (gated, with ``config.gate_empty``).

        Parameters
        ----------
        x
            Normalised (N, C, H, W) tensor, H and W multiples of ``size_multiple``.

        Returns
        -------
        torch.Tensor
            Logits of shape (N, out_channels, H, W).
        """
        features = self._features(x)
        logits = self.heads[0](features[0])
        if self.config.gate_empty and not self.training:
            empty = self.classifier(features[-1]) < 0  # P(target) < 0.5
            logits = logits.masked_fill(empty[:, :, None, None], GATED_LOGIT)
        return logits
