"""Fine-tune ``default`` in-process with the core defaults, on the Target 4 crops.

Same unseen image and crops as ``bench_finetune.py`` (which runs the command
line), but calling :func:`napari_unet.core.training.fine_tune` directly, so the
time is the training itself; it also reports the process CPU time, the steadier
measure when other work shares the cores, and the number of steps run.

Usage::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_train_defaults.py [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_finetune import APPEARANCE, CROPS, rest_dice  # noqa: E402

from napari_unet.core.checkpoint import load_model  # noqa: E402
from napari_unet.core.events import EpochEnd, run_to_completion  # noqa: E402
from napari_unet.core.synthetic import nuclei_image  # noqa: E402
from napari_unet.core.training import fine_tune  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--seed", type=int, default=4242, help="seed of the unseen image")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    image, truth = nuclei_image(args.seed, size=768, **APPEARANCE)
    rest = np.ones(image.shape, bool)
    for crop in CROPS:
        rest[crop] = False
    model = load_model("default")
    before = rest_dice(model, image, truth, rest)
    load = os.getloadavg()[0]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = run_to_completion(
        fine_tune(model, [image[c] for c in CROPS], [truth[c] for c in CROPS], device="cpu"),
        lambda e: print(e, flush=True) if isinstance(e, EpochEnd) else None,
    )
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    run = result.model.history[-1]
    steps = sum(h["steps"] for h in result.history)
    report = {
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "load_average_at_start": round(load, 1),
        "wall_s": round(wall, 1),
        "process_cpu_s": round(cpu, 1),
        "steps": steps,
        "wall_s_per_step": round(wall / max(steps, 1), 3),
        "epochs_run": len(result.history),
        "stop_reason": result.stop_reason,
        "settings": {k: run[k] for k in ("epochs_planned", "lr", "patch_size", "batch_size",
                                         "steps_per_epoch", "loss")},
        "val_dice_initial": round(result.initial_dice, 4),
        "val_dice_best": round(result.best_dice, 4),
        "dice_rest_before": round(before, 4),
        "dice_rest_after": round(rest_dice(result.model, image, truth, rest), 4),
    }  # fmt: skip
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
