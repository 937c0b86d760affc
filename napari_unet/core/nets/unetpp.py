"""U-Net++ (Zhou et al. 2018): nested, dense skip connections and deep supervision.

Node X(i, j) sits at level ``i`` (``i`` poolings down) and column ``j``.  The
encoder is column 0 (X(0, 0) = :class:`~napari_unet.core.model.DoubleConv`,
X(i, 0) = :class:`~napari_unet.core.model.Down` of X(i-1, 0)); every other
node is a DoubleConv of the concatenation of all the nodes before it on its
level, X(i, 0..j-1), and the 2x2 up-convolution of X(i+1, j-1).  A plain
U-Net of the same depth is the path X(0, 0) .. X(depth, 0) .. X(0, depth).

One 1x1 head reads each X(0, j), j = 1..depth.  Training uses every head
(:meth:`UNetPlusPlus.forward_heads`; the loss is their mean); ``forward``
returns the mean of the heads' logits, or, with ``config.prune_to = j``, the
head on X(0, j) alone, computing only the nodes X(i, j') with i + j' <= j
(the paper's pruning: faster, with a smaller receptive radius).
"""

from __future__ import annotations

import torch
from torch import nn

from napari_unet.core.model import DoubleConv, Down, OutConv, UNet, UNetConfig
from napari_unet.core.nets import Heads


def _key(level: int, column: int) -> str:
    return f"{level}_{column}"


class UNetPlusPlus(UNet):
    """U-Net++ with a head on every top node; same contract as :class:`UNet`.

    Parameters
    ----------
    config
        Architecture with ``arch="unetpp"``; ``prune_to`` chooses the head
        ``forward`` uses (0: the mean of all).

    Attributes
    ----------
    nodes : nn.ModuleDict
        The DoubleConv of node X(i, j) (j >= 1) under key ``"i_j"``.
    up_convs : nn.ModuleDict
        The 2x2 up-convolution from X(i+1, j-1) into X(i, j), same keys.
    heads : nn.ModuleList
        The 1x1 heads on X(0, 1), ..., X(0, depth).
    """

    def _build(self, config: UNetConfig) -> None:
        depth = config.depth
        widths = [config.base_width * 2**level for level in range(depth + 1)]
        self.inc = DoubleConv(config.in_channels, widths[0])
        self.downs = nn.ModuleList(Down(widths[i], widths[i + 1]) for i in range(depth))
        self.nodes = nn.ModuleDict()
        self.up_convs = nn.ModuleDict()
        for j in range(1, depth + 1):
            for i in range(depth - j + 1):
                self.up_convs[_key(i, j)] = nn.ConvTranspose2d(
                    widths[i + 1], widths[i], 2, stride=2
                )
                # j nodes of this level before it, plus the up-sampled one below.
                self.nodes[_key(i, j)] = DoubleConv((j + 1) * widths[i], widths[i])
        self.heads = nn.ModuleList(OutConv(widths[0], config.out_channels) for _ in range(depth))

    def _top_nodes(self, x: torch.Tensor, columns: int) -> list[torch.Tensor]:
        """Features of X(0, 1..columns), computing only the nodes they need."""
        grid: dict[tuple[int, int], torch.Tensor] = {(0, 0): self.inc(x)}
        for i in range(1, columns + 1):
            grid[i, 0] = self.downs[i - 1](grid[i - 1, 0])
        for j in range(1, columns + 1):
            for i in range(columns - j + 1):
                same_level = [grid[i, k] for k in range(j)]
                below = self.up_convs[_key(i, j)](grid[i + 1, j - 1])
                grid[i, j] = self.nodes[_key(i, j)](torch.cat([*same_level, below], dim=1))
        return [grid[0, j] for j in range(1, columns + 1)]

    def forward_heads(self, x: torch.Tensor) -> Heads:
        """Compute the logits of every head.

        Parameters
        ----------
        x
            Normalised (N, C, H, W) tensor, H and W multiples of ``size_multiple``.

        Returns
        -------
        Heads
            ``depth`` logit maps of shape (N, out_channels, H, W), from X(0, 1)
            to X(0, depth); no presence logit.
        """
        features = self._top_nodes(x, self.config.depth)
        return Heads([head(f) for head, f in zip(self.heads, features, strict=True)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute foreground logits: the heads' mean, or the pruned head.

        Parameters
        ----------
        x
            Normalised (N, C, H, W) tensor, H and W multiples of ``size_multiple``.

        Returns
        -------
        torch.Tensor
            Logits of shape (N, out_channels, H, W).
        """
        prune = self.config.prune_to
        if prune:
            return self.heads[prune - 1](self._top_nodes(x, prune)[-1])
        return torch.stack(self.forward_heads(x).logits).mean(dim=0)
