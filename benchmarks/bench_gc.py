"""How long Python's full garbage collections freeze a napari U-Net session.

Python's cyclic garbage collector scans every tracked object in a full
(generation 2) collection, with the interpreter lock held, so whichever thread
starts one, the window freezes for it.  A session holds napari, torch and
scikit-image: hundreds of thousands of objects.  The plugin's session, made
with its first widget in a viewer, moves the objects of the start to the
permanent generation (``gc.freeze``, in
``napari_unet.gui._gc.keep_collections_short``), and again once Segment's
background imports end (``collections_paused``); ``--no-freeze`` leaves them in.

A real viewer docks the napari U-Net panel, Segment predicts a 2048x2048 image
with the shipped model in its worker, and the threshold slider then moves
``--changes`` times at 20 Hz with "Show objects as separate labels" on, while a
5 ms QTimer records the longest event-loop gap.  Reported: the objects Python
tracks, the time of one full collection (``gc.collect()``), and every full
collection Python ran by itself while the panel was built, during the
prediction, the slider moves and ``--runs`` more Runs on a 512x512 image.

Run on a virtual display::

    OMP_NUM_THREADS=1 xvfb-run -a -s "-screen 0 1600x1000x24" \\
        .venv/bin/python benchmarks/bench_gc.py [--no-freeze]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import napari
import numpy as np
from qtpy.QtCore import QEventLoop, QTimer
from qtpy.QtWidgets import QApplication
from sample_images import big_image

from napari_unet.gui import _segment_run
from napari_unet.gui import session as session_module


class FullCollections:
    """Records the duration of every generation-2 collection Python runs by itself."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.durations.append((time.perf_counter() - self._start) * 1e3)

    def take(self) -> list[float]:
        out, self.durations = self.durations, []
        return out


def describe(name: str, durations: list[float]) -> str:
    if not durations:
        return f"{name}: no full collection"
    return (
        f"{name}: {len(durations)} full collections, longest {max(durations):.1f} ms, "
        f"total {sum(durations):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-freeze", action="store_true", help="no gc.freeze by the session")
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--runs", type=int, default=12, help="Runs on the 512x512 sample")
    args = parser.parse_args()
    if args.no_freeze:
        session_module.keep_collections_short = lambda viewer: None
    from napari_unet.gui.panel import UNetPanel

    app = QApplication.instance() or napari.qt.get_qapp()
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.add_image(big_image(), name="nuclei")
    collections = FullCollections()
    panel = UNetPanel(viewer)
    viewer.window.add_dock_widget(panel, name="napari U-Net")
    segment = panel.steps["segment"]
    segment.device_combo.setCurrentIndex(segment.device_combo.findData("cpu"))

    def settle(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.002)

    settle(1.0)
    _segment_run.prefetch_prediction().join()
    startup = collections.take()
    segment.run()
    while segment.worker is not None:
        app.processEvents()
        time.sleep(0.002)
    settle(0.5)
    predicting = collections.take()
    assert "nuclei mask" in viewer.layers

    segment.separate_check.setChecked(True)
    while segment.pending_updates:
        app.processEvents()
        time.sleep(0.002)
    collections.take()

    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1e3)
        last[0] = now

    clock = QTimer()
    clock.setInterval(5)
    clock.timeout.connect(tick)
    values = iter(np.tile(np.linspace(0.3, 0.7, 20), args.changes // 20 + 1)[: args.changes])
    ticker = QTimer()
    ticker.setInterval(50)
    loop = QEventLoop()

    def move() -> None:
        value = next(values, None)
        if value is not None:
            segment.threshold_slider.setValue(float(value))
        elif segment.pending_updates == 0:
            ticker.stop()
            QTimer.singleShot(200, loop.quit)

    ticker.timeout.connect(move)
    last[0] = time.perf_counter()
    clock.start()
    ticker.start()
    loop.exec_()
    clock.stop()
    sliding = collections.take()
    slide_gap = max(gaps)

    # A session goes on: more Runs, each adding a probability and a mask layer.
    viewer.add_image(big_image(1024)[:512, :512], name="sample")
    settle(0.3)
    gaps.clear()
    last[0] = time.perf_counter()  # the script's own layer add above is not a Run's
    clock.start()
    for _ in range(args.runs):
        segment.image_combo.set_layer("sample")
        segment.run()
        while segment.worker is not None:
            app.processEvents()
            time.sleep(0.002)
        settle(0.3)
    clock.stop()
    running = collections.take()
    run_gap = max(gaps)

    tracked = len(gc.get_objects())
    frozen = gc.get_freeze_count()
    full = []
    for _ in range(3):
        t0 = time.perf_counter()
        gc.collect()
        full.append((time.perf_counter() - t0) * 1e3)
    mode = "without gc.freeze" if args.no_freeze else "with the session's gc.freeze"
    print(f"{mode}: {tracked:,} objects tracked, {frozen:,} frozen")
    print(f"one full collection (gc.collect()): median {statistics.median(full):.1f} ms")
    print(describe("start (docking, background imports)", startup))
    print(describe("prediction and its display", predicting))
    print(describe(f"{args.changes} slider changes at 20 Hz", sliding))
    print(f"longest event-loop gap while the slider moved: {slide_gap:.1f} ms")
    print(describe(f"{args.runs} more Runs on a 512x512 image", running))
    print(f"longest event-loop gap during those Runs: {run_gap:.1f} ms")
    viewer.close()


if __name__ == "__main__":
    main()
