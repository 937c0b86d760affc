"""How long importing torch in a background thread blocks the main thread.

Segment imports what a prediction needs in a background thread when it is built
(``napari_unet.gui._segment_run.prefetch_prediction``), torch among it, so that a
first Run does not import on the main thread.  Python's interpreter lock is held
for parts of an import, so the main thread still waits: here a plain loop that
sleeps 5 ms records the longest gaps while the thread imports torch and the
project's checkpoint code.  ``--read-files`` first reads torch's shared libraries
(file reads let the lock go), to tell the disk's part from the rest.

    sync; echo 3 > /proc/sys/vm/drop_caches   # for a cold start (root)
    .venv/bin/python benchmarks/bench_import_gap.py [--read-files]
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
    args = parser.parse_args()

    def work() -> None:
        if args.read_files:
            read_torch_libraries()
        importlib.import_module("torch")
        importlib.import_module("napari_unet.core.checkpoint")

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
        f"import in a background thread: {time.perf_counter() - start:.2f} s; "
        f"longest main-thread gaps {', '.join(f'{g:.0f}' for g in gaps[-4:])} ms"
    )


if __name__ == "__main__":
    main()
