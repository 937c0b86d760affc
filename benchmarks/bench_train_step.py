"""Time one fine-tuning step on the CPU for a few U-Net widths, patch and batch sizes.

A step is what :func:`napari_unet.core.training.fine_tune` does per batch:
forward, default loss, backward and an AdamW update, in channels-last memory
(as ``fine_tune`` uses).  Both the wall time and the thread's CPU time are
reported: on a machine whose cores are shared with other work, the CPU time of
a one-thread run is the steadier measure of the work itself.

Usage::

    .venv/bin/python benchmarks/bench_train_step.py [--threads 1 2] [--repeats 6]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from napari_unet.core.losses import get_loss
from napari_unet.core.model import build_model

CASES = [(16, 128, 4), (16, 96, 4), (16, 128, 2), (8, 128, 4), (12, 128, 4)]


def time_steps(width: int, patch: int, batch: int, repeats: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model = build_model(base_width=width).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = get_loss("default")
    x = torch.randn(batch, 1, patch, patch).contiguous(memory_format=torch.channels_last)
    y = (torch.rand(batch, 1, patch, patch) > 0.9).float()
    walls, cpus = [], []
    for i in range(repeats + 1):
        w0, c0 = time.perf_counter(), time.thread_time()
        optimizer.zero_grad(set_to_none=True)
        loss(model(x), y, None).backward()
        optimizer.step()
        if i:  # the first step pays for allocation and oneDNN set-up
            walls.append(time.perf_counter() - w0)
            cpus.append(time.thread_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args(argv)
    print(f"cpus={os.cpu_count()} torch={torch.__version__} load={os.getloadavg()[0]:.1f}")
    print("threads width depth patch batch  wall_ms  thread_cpu_ms  px_per_s")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for width, patch, batch in CASES:
            wall, cpu = time_steps(width, patch, batch, args.repeats)
            print(
                f"{threads:7d} {width:5d} {4:5d} {patch:5d} {batch:5d} {wall * 1e3:8.0f} "
                f"{cpu * 1e3:14.0f} {batch * patch * patch / wall:9.0f}",
                flush=True,
            )
    print(f"load at end={os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
