"""What napari itself costs to show a large prediction: the floor under every GUI gap.

A real viewer (1400x900 window) adds, repaints and replaces a probability Image
layer and a Labels layer of SIZE x SIZE pixels, with nothing of this plugin
involved.  Each step is timed twice: the call itself, then the first
``processEvents`` after it (where vispy uploads the texture and paints).  The
same steps a prediction's display takes cannot be shorter than these.

Run on a virtual display::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_napari_layers.py
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import napari
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    app = napari.qt.get_qapp()
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    # The first layer of each kind pays for imports and shader builds; warm them up.
    viewer.add_image(np.zeros((64, 64), np.float32), name="warm image")
    viewer.add_labels(np.zeros((64, 64), np.uint8), name="warm labels")

    def settle(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.002)

    times: dict[str, list[tuple[float, float]]] = {}

    def step(name: str, action: Callable[..., Any], *args: Any) -> Any:
        t0 = time.perf_counter()
        result = action(*args)
        t1 = time.perf_counter()
        app.processEvents()
        t2 = time.perf_counter()
        times.setdefault(name, []).append(((t1 - t0) * 1e3, (t2 - t1) * 1e3))
        settle(0.5)
        return result

    settle(1.0)
    rng = np.random.default_rng(0)
    n = args.size
    for _ in range(args.repeats):
        prob = rng.random((n, n), dtype=np.float32)
        mask = (prob > 0.5).astype(np.uint8)
        image = step("add the probability Image layer", viewer.add_image, prob)
        labels = step("add the mask Labels layer", viewer.add_labels, mask)
        step("replace the Image layer's data", setattr, image, "data", 1.0 - prob)
        step("replace the Labels layer's data", setattr, labels, "data", 1 - mask)
        step("remove both layers", viewer.layers.clear)
        viewer.add_image(np.zeros((64, 64), np.float32), name="warm image")

    print(f"napari {napari.__version__}, {n}x{n}, {args.repeats} repeats (ms; median [max])")
    print(f"{'step':36s} {'call':>14s} {'paint after':>14s}")
    for name, rows in times.items():
        call, paint = np.array(rows).T
        print(
            f"{name:36s} {np.median(call):7.0f} [{call.max():4.0f}] "
            f"{np.median(paint):7.0f} [{paint.max():4.0f}]"
        )
    viewer.close()


if __name__ == "__main__":
    main()
