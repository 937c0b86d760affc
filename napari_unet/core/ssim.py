"""Multi-scale structural similarity (MS-SSIM) of probability maps, for U-Net 3+'s loss.

A compact version of Wang, Simoncelli & Bovik (2003): SSIM's contrast-structure
term at every scale and its luminance term at the coarsest one, with a
Gaussian window (11 px, sigma 1.5), 2x2 average pooling between scales and
the paper's scale weights renormalised to the scales that fit the image.
Inputs are maps in [0, 1] (data range 1).  Negative terms, possible at a
scale where the two maps are anti-correlated, are clipped to a small positive
number so that their fractional powers stay defined.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Scale weights of Wang et al. (2003), finest first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW = 11
SIGMA = 1.5
#: SSIM's stabilisers for data range 1: (0.01)^2 and (0.03)^2.
C1, C2 = 0.01**2, 0.03**2
_FLOOR = 1e-6


def _window(dtype: torch.dtype, device: torch.device, size: int) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * SIGMA**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def _ssim_terms(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean luminance and contrast-structure terms, each (N,)."""
    size = min(WINDOW, x.shape[-2], x.shape[-1])
    w = _window(x.dtype, x.device, size)
    mu_x, mu_y = F.conv2d(x, w), F.conv2d(y, w)
    var_x = F.conv2d(x * x, w) - mu_x**2
    var_y = F.conv2d(y * y, w) - mu_y**2
    cov = F.conv2d(x * y, w) - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + C1) / (mu_x**2 + mu_y**2 + C1)
    contrast = (2 * cov + C2) / (var_x + var_y + C2)
    return luminance.flatten(1).mean(1), contrast.flatten(1).mean(1)


def ms_ssim(x: torch.Tensor, y: torch.Tensor, scales: int = len(MS_SSIM_WEIGHTS)) -> torch.Tensor:
    """MS-SSIM of two (N, 1, H, W) maps in [0, 1], averaged over the batch.

    Parameters
    ----------
    x, y
        Maps of the same shape, e.g. a probability map and its 0/1 target.
    scales
        Most scales to use; fewer when the image is too small for them (every
        scale but the first halves the image, and the coarsest must still hold
        one window, or be the first).

    Returns
    -------
    torch.Tensor
        Scalar in (0, 1]; 1 for identical maps.
    """
    used = 1
    while used < scales and min(x.shape[-2:]) // 2**used >= WINDOW:
        used += 1
    weights = torch.tensor(MS_SSIM_WEIGHTS[:used], dtype=x.dtype, device=x.device)
    weights = weights / weights.sum()
    terms = []
    for level in range(used):
        luminance, contrast = _ssim_terms(x, y)
        last = level == used - 1
        terms.append((luminance * contrast if last else contrast).clamp_min(_FLOOR))
        if not last:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    stacked = torch.stack(terms, dim=1)  # (N, used)
    return torch.prod(stacked ** weights[None, :], dim=1).mean()


__all__ = ["ms_ssim"]
