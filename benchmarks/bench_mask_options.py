"""Event-loop gaps while the threshold slider moves with min size, fill holes and separate labels.

A real viewer shows a 4096x4096 probability map (synthetic nuclei and a rim
map, so no network runs) through Segment's own prediction path; min object
size 50, fill holes and "Show objects as separate labels" are on.  The slider
then gets 30 value changes at 20 Hz while a 5 ms QTimer measures the longest
gap between two of its ticks (the longest the window was frozen).  Finally it
checks that the mask shown equals the core's mask for the last value.

Target: longest gap <= 100 ms.  Run on a virtual display::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_mask_options.py
"""

from __future__ import annotations

import argparse
import time

import napari
import numpy as np
from qtpy.QtCore import QEventLoop, QTimer
from qtpy.QtWidgets import QApplication
from scipy import ndimage

from napari_unet.core.events import run_to_completion
from napari_unet.core.inference import Prediction
from napari_unet.core.instances import with_objects
from napari_unet.gui.predictions import showing_prediction
from napari_unet.gui.segment_widget import SegmentWidget
from napari_unet.gui.session import get_session


def synthetic_maps(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Blob probabilities (touching nuclei, small specks, holes) and a rim map."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros((size, size), np.float32)
    n = size * size // 900
    seeds[rng.integers(0, size, n), rng.integers(0, size, n)] = 1.0
    prob = ndimage.gaussian_filter(seeds, 6.0)
    prob /= prob.max() * 0.25
    prob += rng.normal(0.0, 0.08, prob.shape).astype(np.float32)
    np.clip(prob, 0.0, 1.0, out=prob)
    grad = ndimage.gaussian_gradient_magnitude(prob, 2.0)
    rim = np.clip(grad / grad.max() * 3.0, 0.0, 1.0).astype(np.float32)
    return prob.astype(np.float32), rim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--hz", type=float, default=20.0)
    args = parser.parse_args()

    app = QApplication.instance() or napari.qt.get_qapp()
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    t0 = time.perf_counter()
    prob, rim = synthetic_maps(args.size)
    print(f"synthetic maps {args.size}x{args.size}: {time.perf_counter() - t0:.1f} s")
    viewer.add_image(prob, name="nuclei")
    # As Segment's worker does: the objects are split once at the model's threshold.
    t0 = time.perf_counter()
    maps = with_objects(Prediction(prob, rim), 0.5)
    print(f"objects split once (in the worker in Segment): {time.perf_counter() - t0:.2f} s")
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    session = get_session(viewer)
    shown = run_to_completion(
        showing_prediction(viewer, session, "nuclei", maps, widget.mask_settings(), {}, "bench")
    )
    layer = shown.mask_layer
    record = shown.record

    def settle(condition) -> None:
        while not condition():
            app.processEvents()
            time.sleep(0.002)

    widget.min_size_spin.setValue(50)
    widget.fill_holes_check.setChecked(True)
    widget.separate_check.setChecked(True)
    t0 = time.perf_counter()
    settle(lambda: widget.pending_updates == 0)
    elapsed = time.perf_counter() - t0
    print(f"options on (min size 50, fill holes, separate labels): {elapsed:.2f} s")

    gaps: list[float] = []
    last = [time.perf_counter()]
    clock = QTimer()
    clock.setInterval(5)

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    clock.timeout.connect(tick)
    values = iter(np.linspace(0.3, 0.7, args.changes))
    most_pending = [0]
    sent = [0]
    ticker = QTimer()
    ticker.setInterval(int(round(1000 / args.hz)))
    loop = QEventLoop()

    def move() -> None:
        value = next(values, None)
        if value is not None:
            widget.threshold_slider.setValue(float(value))
            sent[0] += 1
        most_pending[0] = max(most_pending[0], widget.pending_updates)
        if value is None and widget.pending_updates == 0:
            ticker.stop()
            QTimer.singleShot(200, loop.quit)  # a few more clock ticks after the last write

    ticker.timeout.connect(move)
    applied = widget.updates_applied
    last[0] = time.perf_counter()
    clock.start()
    ticker.start()
    start = time.perf_counter()
    loop.exec_()
    clock.stop()
    total = time.perf_counter() - start

    final = widget.threshold_slider.value()
    expected = record.render(widget.mask_settings(final))
    ok = np.array_equal(layer.data, expected)
    print(
        f"{sent[0]} slider changes at {args.hz:g} Hz in {total:.2f} s -> "
        f"{widget.updates_applied - applied} mask rewrites, max pending {most_pending[0]}"
    )
    gaps_ms = np.array(gaps) * 1e3
    print(
        f"event-loop gap (5 ms timer): longest {gaps_ms.max():.1f} ms, "
        f"p99 {np.percentile(gaps_ms, 99):.1f} ms, median {np.median(gaps_ms):.1f} ms "
        "(target: longest <= 100 ms)"
    )
    print(f"final mask matches the last value ({final:.3f}) and options: {ok}")
    viewer.close()


if __name__ == "__main__":
    main()
