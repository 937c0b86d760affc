"""Fine-tuning in the Fine-tune widget's thread worker vs the same run synchronously.

The same fine-tune (the shipped default model, two 256x256 crops of the nuclei
sample with their ground truth, fixed epochs, seed 0, CPU) runs

* ``sync``: ``run_to_completion(fine_tune(...))`` on the main thread, no event
  loop (the command line's path);
* ``worker``: from a docked :class:`FineTuneWidget` in a real napari viewer
  (the sample image shown), started with its Start button's handler, while
  Qt's event loop runs (``QEventLoop.exec``) until the worker finishes.  This
  includes everything the GUI adds: the worker adapter, signals per event,
  the progress bar, the live loss/Dice plot and the autosave of each new best
  model.

Runs alternate (sync, worker, sync, worker, ...) so that a change in machine
load hits both alike.  Speed is training steps per second; the two paths run
the same steps (no time budget, same seed).  During each worker run a 10 ms
``QTimer`` records when it fires: the longest gap between two ticks is the
longest time the event loop was blocked (plus the 10 ms period).

Run on a virtual display::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python \
        benchmarks/bench_finetune_worker.py --epochs 3 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from napari_unet.core.checkpoint import load_model
from napari_unet.core.events import EpochEnd, run_to_completion
from napari_unet.core.training import fine_tune
from napari_unet.samples import sample_path

CROPS = [(slice(0, 256), slice(0, 256)), (slice(256, 512), slice(256, 512))]


def training_data() -> tuple[list[np.ndarray], list[np.ndarray]]:
    image = tifffile.imread(sample_path("dsb2018_nuclei.tif"))
    truth = tifffile.imread(sample_path("dsb2018_nuclei_mask.tif"))
    return [image[c].copy() for c in CROPS], [truth[c].copy() for c in CROPS]


def run_sync(model, images, masks, epochs: int) -> tuple[float, int, float]:
    gen = fine_tune(model, images, masks, epochs=epochs, device="cpu", seed=0)
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = run_to_completion(gen)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return seconds, sum(e["steps"] for e in result.history), cpu


def run_worker(viewer, widget, epochs: int) -> tuple[float, int, list[float], float, float]:
    from qtpy.QtCore import QEventLoop, QTimer

    widget.epochs_spin.setValue(epochs)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    loop = QEventLoop()
    timer.start()
    cpu0 = time.thread_time()  # CPU time of the main (GUI) thread only
    process0 = time.process_time()  # all threads, Mesa's rendering threads too
    t0 = time.perf_counter()
    worker = widget.start()
    started = time.perf_counter()
    epoch_ends: list[float] = []
    worker.yielded.connect(
        lambda e: epoch_ends.append(time.perf_counter()) if isinstance(e, EpochEnd) else None
    )
    worker.finished.connect(loop.quit)
    loop.exec()
    seconds = time.perf_counter() - t0
    gui_cpu = time.thread_time() - cpu0
    process_cpu = time.process_time() - process0
    timer.stop()
    result = widget.result
    steps = sum(e["steps"] for e in result.history)
    gaps = list(np.diff([t0, *ticks]) * 1000.0)
    # Where the three longest gaps were: in Start's own call, around an epoch end
    # (plot and progress bar updates), or elsewhere.
    where = []
    for i in np.argsort(gaps)[::-1][:3]:
        end, begin = ticks[i], ticks[i] - gaps[i] / 1000.0
        if begin <= started and end >= t0:
            place = "Start"
        elif any(begin - 0.005 <= t <= end + 0.005 for t in epoch_ends):
            place = "epoch end"
        else:
            place = f"other (at {begin - t0:.2f} s)"
        where.append(f"{gaps[i]:.0f} ms {place}")
    print(f"  start() took {1000 * (started - t0):.0f} ms; longest gaps: {', '.join(where)}")
    return seconds, steps, gaps, gui_cpu, process_cpu


def spinner_cost(percent: int, seconds: float = 4.0) -> float:
    """CPU seconds per second the process spends with a progress bar open and idle."""
    from napari.utils import progress
    from qtpy.QtCore import QEventLoop, QTimer

    from napari_unet.gui._animations import restore_animations, slow_animations

    settle = QEventLoop()  # let the window paint first: a hidden window costs nothing
    QTimer.singleShot(1000, settle.quit)
    settle.exec()
    bar = progress(total=10, desc="idle")
    changed = slow_animations(percent)
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    cpu0 = time.process_time()
    loop.exec()
    cost = (time.process_time() - cpu0) / seconds
    restore_animations(changed)
    bar.close()
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="append a Markdown table here")
    parser.add_argument(
        "--spinner-speed",
        type=int,
        default=None,
        help="speed (percent) of napari's activity animation during training; default: the "
        "widget's own setting (100 = napari's, i.e. without the widget's slow-down)",
    )
    args = parser.parse_args()

    import napari

    from napari_unet.gui import finetune_widget
    from napari_unet.gui.finetune_widget import FineTuneWidget
    from napari_unet.gui.session import TrainingPair, get_session

    load = os.getloadavg()[0]  # other processes share the two cores
    if args.spinner_speed is not None:
        finetune_widget.SPINNER_SPEED_PERCENT = args.spinner_speed
    images, masks = training_data()
    model = load_model("default")
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)  # the size the demo opens at
    viewer.open_sample("napari-unet", "nuclei")
    session = get_session(viewer)
    session.device = "cpu"
    session.training_dir = Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
        session.training_set.append(TrainingPair(f"crop{i}", image, mask))
    widget = FineTuneWidget(viewer)
    widget.repredict_check.setChecked(False)  # time the training only
    viewer.window.add_dock_widget(widget, name="Fine-tune")

    idle = {p: spinner_cost(p) for p in (100, finetune_widget.SPINNER_SPEED_PERCENT)}
    print(
        "idle with a napari progress bar open: "
        + ", ".join(f"animation at {p} %: {c:.2f} CPU s/s" for p, c in idle.items()),
        flush=True,
    )
    # Warm-up of both paths (allocator, oneDNN kernels, first paint), not counted:
    # the first run in a fresh process was up to 10x slower here, whichever path.
    run_sync(model, images, masks, 1)
    session.set_model(model, "default")
    run_worker(viewer, widget, 1)
    runs = []
    for r in range(args.repeats):
        sync_s, sync_steps, sync_cpu = run_sync(model, images, masks, args.epochs)
        session.set_model(model, "default")
        worker_s, worker_steps, gaps, gui_cpu, worker_cpu = run_worker(viewer, widget, args.epochs)
        assert sync_steps == worker_steps, (sync_steps, worker_steps)
        run = {
            "sync_s": sync_s,
            "worker_s": worker_s,
            "steps": sync_steps,
            "gap_max": max(gaps),
            "gap_p99": float(np.percentile(gaps, 99)),
            "gaps": gaps,
            "gui_cpu": gui_cpu,
            "sync_cpu": sync_cpu,
            "worker_cpu": worker_cpu,
        }
        runs.append(run)
        print(
            f"run {r + 1}: sync {sync_s:.2f} s, worker {worker_s:.2f} s ({sync_steps} steps), "
            f"worker speed {100 * sync_s / worker_s:.1f} % of sync, longest event-loop gap "
            f"{run['gap_max']:.1f} ms, CPU sync {sync_cpu:.1f} s / worker {worker_cpu:.1f} s "
            f"(GUI thread {gui_cpu:.2f} s)",
            flush=True,
        )
    viewer.close()
    text = report(runs, args.epochs, finetune_widget.SPINNER_SPEED_PERCENT, load)
    print(text)
    if args.out is not None:
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")


def report(runs: list[dict], epochs: int, spinner: int, load: float) -> str:
    def med(key):
        return statistics.median(r[key] for r in runs)

    all_gaps = [g for r in runs for g in r["gaps"]]
    steps = runs[0]["steps"]
    lines = [
        f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch "
        f"threads, torch {torch.__version__}; default model, two 256x256 crops, {epochs} "
        f"epochs x {steps // epochs} steps (batch 4, 128x128 patches); Xvfb with Mesa's "
        f"software OpenGL; napari's activity animation at {spinner} % speed during training; "
        f"1-minute load average at the start {load:.1f}.",
        "",
        "| run | sync (s) | worker (s) | worker speed / sync | longest event-loop gap (ms) "
        "| 99th pct gap (ms) | CPU sync / worker (s) | GUI-thread CPU (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(runs, 1):
        lines.append(
            f"| {i} | {r['sync_s']:.2f} | {r['worker_s']:.2f} "
            f"| {100 * r['sync_s'] / r['worker_s']:.1f} % | {r['gap_max']:.1f} "
            f"| {r['gap_p99']:.1f} | {r['sync_cpu']:.1f} / {r['worker_cpu']:.1f} "
            f"| {r['gui_cpu']:.2f} |"
        )
    lines.append(
        f"| median | {med('sync_s'):.2f} | {med('worker_s'):.2f} "
        f"| {100 * med('sync_s') / med('worker_s'):.1f} % | {max(all_gaps):.1f} (max) "
        f"| {float(np.percentile(all_gaps, 99)):.1f} | {med('sync_cpu'):.1f} / "
        f"{med('worker_cpu'):.1f} | {med('gui_cpu'):.2f} |"
    )
    lines.append(
        f"\nSteps per second: sync {steps / med('sync_s'):.2f}, worker "
        f"{steps / med('worker_s'):.2f}. Event-loop ticks more than 100 ms apart: "
        f"{sum(g > 100 for g in all_gaps)} of {len(all_gaps)}."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
