"""Parameter count, FLOPs and CPU speed of each architecture for a few base widths.

Architectures: the plain U-Net, U-Net++ and U-Net 3+ (``--archs``;
:mod:`napari_unet.core.nets`), at the same depth and base width.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one
forward pass of a 512x512 single-channel image (convolutions and transposed
convolutions; it counts 2 FLOPs per multiply-accumulate; U-Net 3+'s bilinear
up-sampling and pooling are not counted), of the inference forward pass
(U-Net++: all heads, averaged; U-Net 3+: the full-resolution head).  Times are the
fastest of several forward passes (inference mode, eval, float32): of the model as
built, and of the copy ``predict_proba`` runs on a CPU (batch norm folded into
the convolutions, channels-last memory); and of several training steps
(forward + backward + AdamW on a batch of 8 patches of 128x128).  Each time is
given as wall-clock / process CPU seconds.

Usage::

    .venv/bin/python benchmarks/model_size.py [--widths 8 16 32] [--depth 4] \
        [--archs unet unetpp unet3p] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from napari_unet.core.defaults import ARCH_LABELS, ARCH_NAMES
from napari_unet.core.losses import get_loss
from napari_unet.core.model import UNetConfig, build_model, fuse_for_inference
from napari_unet.core.training_step import model_loss


def count_flops(model: torch.nn.Module, size: int = 512) -> int:
    """FLOPs of one forward pass on a (1, C, size, size) input."""
    x = torch.zeros(1, model.config.in_channels, size, size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def best_time(fn, repeats: int) -> tuple[float, float]:
    """Fastest wall-clock and process CPU seconds of ``fn()`` over ``repeats`` calls.

    The minimum, not the median: on a machine shared with other programs the
    fastest run is the one least disturbed by them.
    """
    fn()  # warm-up: oneDNN picks its kernels on the first call
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def fmt(times: tuple[float, float]) -> str:
    return f"{times[0]:.3f} / {times[1]:.3f}"


def forward_time(net: torch.nn.Module, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    def run():
        with torch.inference_mode():
            net(x)

    return best_time(run, repeats)


def train_step_time(model: torch.nn.Module, repeats: int) -> tuple[float, float]:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    xb = torch.randn(8, 1, 128, 128)
    yb = (torch.rand(8, 1, 128, 128) > 0.9).float()

    loss_fn = get_loss("bce")
    cpu = torch.device("cpu")

    def step():
        # Every deep-supervision head, as training computes them.
        loss = model_loss(model, loss_fn, (xb, yb, None), cpu)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return best_time(step, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--depth", type=int, default=UNetConfig().depth)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--archs", nargs="+", choices=ARCH_NAMES, default=list(ARCH_NAMES))
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, depth {args.depth}")
    print(
        "| architecture | base width | parameters | size (MB, fp32) | GFLOPs / 512x512 | "
        "forward 512x512 (s) | forward as predicted (s) | train step 8x128x128 (s) |\n"
        "|---|---|---|---|---|---|---|---|\n"
        "| | | | | | wall / cpu | wall / cpu | wall / cpu |"
    )
    x = torch.randn(1, 1, 512, 512)
    for arch, width in ((a, w) for a in args.archs for w in args.widths):
        model = build_model(depth=args.depth, base_width=width, arch=arch)
        params = sum(p.numel() for p in model.parameters())
        flops = count_flops(model)
        model.eval()
        # What predict_proba runs on a CPU: batch norm folded, channels-last.
        fast = fuse_for_inference(model).to(memory_format=torch.channels_last)
        t_forward = forward_time(model, x, args.repeats)
        t_fast = forward_time(fast, x.contiguous(memory_format=torch.channels_last), args.repeats)
        t_step = train_step_time(model, args.repeats)
        print(
            f"| {ARCH_LABELS[arch]} | {width} | {params:,} | {params * 4 / 1e6:.2f} | "
            f"{flops / 1e9:.2f} | {fmt(t_forward)} | {fmt(t_fast)} | {fmt(t_step)} |"
        )


if __name__ == "__main__":
    main()
