"""How long Segment's background imports block the main thread.

Segment imports what a prediction needs in a background thread a second after
it is first shown (``napari_unet.gui._segment_run.prefetch_prediction``): torch,
scipy's modules, pandas and the rest, so that a first Run does not import on the
main thread.  Python's interpreter lock is held for parts of an import, so the
main thread can still wait: here a plain loop that sleeps 5 ms records the
longest gaps while the thread imports.

As in a napari session, the start's objects are first frozen out of the
garbage collector (``napari_unet.gui._gc.keep_collections_short``, with a
napari viewer model).  The thread then runs Segment's imports as they are: torch's
main library loaded with the lock released
(``napari_unet.core.preload.preload_torch_library``) and automatic collections
held off (``napari_unet.gui._gc.collections_paused``).  ``--plain`` imports the
same modules with neither.  ``--read-files`` first reads torch's shared
libraries (file reads let the lock go), to tell the disk's part from the rest.

    sync; echo 3 > /proc/sys/vm/drop_caches   # for a cold start (root)
    .venv/bin/python benchmarks/bench_import_gap.py [--plain] [--read-files]
"""

from __future__ import annotations

import argparse
import glob
import importlib
import importlib.util
import os
import threading
import time


def read_torch_libraries() -> None:
    """Read torch's shared libraries once, largest first, into the file cache."""
    spec = importlib.util.find_spec("torch")
    lib = os.path.join(os.path.dirname(spec.origin), "lib")
    for path in sorted(glob.glob(os.path.join(lib, "*.so*")), key=os.path.getsize, reverse=True):
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--read-files", action="store_true", help="read the libraries first")
    parser.add_argument("--plain", action="store_true", help="no preload, collections on")
    args = parser.parse_args()
    from napari.components import ViewerModel

    from napari_unet.gui import _gc, _segment_run

    _gc.keep_collections_short(ViewerModel())

    def plain() -> None:
        for module in _segment_run.PREDICTION_MODULES:
            importlib.import_module(module)
        _segment_run.warm_up_labels_layer()

    def work() -> None:
        if args.read_files:
            read_torch_libraries()
        if args.plain:
            plain()
        else:
            _segment_run._import_for_prediction()

    thread = threading.Thread(target=work)
    gaps: list[float] = []
    start = last = time.perf_counter()
    thread.start()
    while thread.is_alive():
        time.sleep(0.005)
        now = time.perf_counter()
        gaps.append((now - last) * 1e3)
        last = now
    gaps.sort()
    print(
        f"{'plain' if args.plain else 'as Segment runs them'}: imports in a background "
        f"thread {time.perf_counter() - start:.2f} s; "
        f"longest main-thread gaps {', '.join(f'{g:.0f}' for g in gaps[-4:])} ms"
    )


if __name__ == "__main__":
    main()
