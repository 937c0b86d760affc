"""Is the Qt event loop ever blocked while Segment predicts in its worker?

A QTimer with a 10 ms interval records when it fires; the longest gap between
two firings while the prediction runs is how long the window could not react.
The same timer is first measured for a few seconds with nothing running (the
baseline resolution on this machine).  Prediction: the shipped default model on
a 2048x2048 image (the nuclei sample mirrored), started from the Segment
widget exactly as the Run button does, in a real viewer.

Run on a virtual display::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_event_loop_predict.py

``--size 4096`` predicts a 4096x4096 image instead (the target's size);
``--panel`` docks the whole "napari U-Net" panel and runs its Segment step.
``--cold`` is a new user's first Run: nothing of torch's model code loaded
beforehand, the worker loads the default model itself, and the widget's
imports in the background (``prefetch_prediction``, a second after it is shown)
fall in the first seconds after docking;
``--no-prefetch`` leaves those imports to the worker, as before they existed;
``--no-freeze`` keeps the start's objects in Python's full garbage collections
(``bench_gc.py``);
``--steps`` also prints how long each main-thread step of the result's display
took (:class:`~napari_unet.gui._turns.Turns`, one step per event-loop turn).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import napari
import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication
from sample_images import big_image

from napari_unet.gui import _segment_run
from napari_unet.gui import session as session_module
from napari_unet.gui.segment_widget import SegmentWidget
from napari_unet.gui.session import get_session


def gaps_ms(ticks: list[float]) -> np.ndarray:
    return np.diff(np.asarray(ticks)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    parser.add_argument("--size", type=int, default=2048, help="image edge in pixels")
    parser.add_argument("--panel", action="store_true", help="dock the whole panel, not Segment")
    parser.add_argument("--cold", action="store_true", help="the worker loads the model")
    parser.add_argument("--no-prefetch", action="store_true", help="no imports before the Run")
    parser.add_argument("--no-freeze", action="store_true", help="no gc.freeze by the session")
    parser.add_argument("--steps", action="store_true", help="time each step of the display")
    args = parser.parse_args()
    steps_ms: list[float] = []
    if args.steps:
        from napari_unet.gui import _turns

        step = _turns.Turns._step

        def timed_step(self) -> None:
            t0 = time.perf_counter()
            step(self)
            steps_ms.append((time.perf_counter() - t0) * 1e3)

        _turns.Turns._step = timed_step
    if args.no_freeze:
        session_module.keep_collections_short = lambda viewer: None
    if args.no_prefetch:
        _segment_run._prefetch = threading.Thread()  # counts as started: nothing is prefetched

    app = QApplication.instance() or napari.qt.get_qapp()
    viewer = napari.Viewer(show=True)
    viewer.add_image(big_image(args.size), name="nuclei")
    # napari restores the last session's window size: fix it, as bench_gc.py does.
    viewer.window._qt_window.resize(1400, 900)
    # Building and docking run on the main thread, as napari's Plugins menu
    # does them: the window is blocked for all of it.
    built = time.perf_counter()
    if args.panel:
        from napari_unet.gui.panel import UNetPanel

        panel = UNetPanel(viewer)
        viewer.window.add_dock_widget(panel, name="napari U-Net")
        widget = panel.steps["segment"]
    else:
        widget = SegmentWidget(viewer)
        viewer.window.add_dock_widget(widget, name="Segment")
    built = (time.perf_counter() - built) * 1e3
    if not args.cold:
        from napari_unet.core.checkpoint import load_model

        get_session(viewer).set_model(load_model("default"), "default")
    widget.device_combo.setCurrentIndex(widget.device_combo.findData("cpu"))

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))

    # The first 2 s after docking: the window's first paints, and Segment's
    # background imports (compare with --no-prefetch); reported, not idle.
    timer.start()
    end = time.perf_counter() + 2.0
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)
    docked = gaps_ms(ticks)
    for k in np.argsort(docked)[::-1][:3]:
        print(f"  gap {docked[k]:6.1f} ms at {ticks[k] - ticks[0]:5.2f} s after docking")
    ticks.clear()
    end = time.perf_counter() + args.idle_seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)
    idle = gaps_ms(ticks)

    ticks.clear()
    start = time.perf_counter()
    marks: dict[str, float] = {}
    worker = widget.run()

    def on_yield(event) -> None:
        # The last batch of tiles is done (a busy report, 0 of 0, is the model loading).
        if event.total > 0 and event.step == event.total:
            marks.setdefault("result", time.perf_counter())

    worker.yielded.connect(on_yield)
    while widget.worker is not None:
        app.processEvents()
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    # Keep ticking a little: the gap that the result's display causes ends
    # only at the next tick, which may come after the worker is dropped.
    end = time.perf_counter() + 0.5
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    busy = gaps_ms(ticks)
    assert "nuclei mask" in viewer.layers

    # Where the longest gaps were: while the worker computed, or while the
    # main thread showed the result (adding two layers of the image's size).
    result_at = marks.get("result", float("inf")) - start
    # A gap belongs to the result display when it ends after the last batch was
    # reported: the tick before it may come just before the report.
    ends = np.asarray(ticks[1:]) - start
    for k in np.argsort(busy)[::-1][:5]:
        at = ticks[k] - start
        phase = "showing result" if ends[k] >= result_at else "worker predicting"
        print(f"  gap {busy[k]:6.1f} ms starting at {at:6.2f} s ({phase})")
    during = busy[ends < result_at]

    if args.steps:
        print("display steps: " + ", ".join(f"{t:.1f}" for t in steps_ms) + " ms")
    print(f"building and docking the widget: {built:.1f} ms")
    for name, gaps in (("2 s after docking", docked), ("idle", idle), ("during prediction", busy)):
        print(
            f"{name:18s}: {len(gaps) + 1:5d} ticks, gap median {statistics.median(gaps):5.1f} ms, "
            f"p99 {np.percentile(gaps, 99):6.1f} ms, max {gaps.max():6.1f} ms"
        )
    print(f"prediction (default model, {args.size}x{args.size}, cpu) took {elapsed:.1f} s")
    print(f"longest gap while the worker predicted: {during.max():.1f} ms (target < 100 ms)")
    print(f"longest gap overall, result display included: {busy.max():.1f} ms")
    viewer.close()


if __name__ == "__main__":
    main()
