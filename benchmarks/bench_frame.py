"""What one napari frame costs on this machine, whatever the layers hold.

A real viewer shows a 64x64 Labels layer; the camera's zoom is nudged and the
next event-loop pass, which repaints the canvas and composes it into the
window, is timed, in a 1400x900 window and an 800x600 one.  The
figure is the floor under every event-loop gap the other GUI benchmarks
measure: any change that redraws the canvas costs at least one frame.

Run on a virtual display::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_frame.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_unet.gui._layers import viewer_camera


def frames_ms(viewer, app, repeats: int) -> list[float]:
    """Time ``repeats`` redraws, each after a small zoom change."""
    out = []
    camera = viewer_camera(viewer)
    for k in range(repeats):
        camera.zoom = camera.zoom * (1.01 if k % 2 else 1 / 1.01)
        t0 = time.perf_counter()
        app.processEvents()
        out.append((time.perf_counter() - t0) * 1e3)
        settle(app, 0.2)
    return out


def settle(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.add_labels(np.zeros((64, 64), np.uint8), name="mask")
    window = viewer.window._qt_window
    for width, height in ((1400, 900), (800, 600)):
        window.resize(width, height)
        settle(app, 1.0)
        size = window.size()
        times = frames_ms(viewer, app, args.repeats)
        print(
            f"window {size.width()}x{size.height()}: one frame median "
            f"{statistics.median(times):.1f} ms, max {max(times):.1f} ms ({args.repeats} frames)"
        )
    viewer.close()


if __name__ == "__main__":
    main()
