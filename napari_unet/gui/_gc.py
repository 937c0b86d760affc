"""Python's full garbage collections kept short in a napari session.

Python's cyclic garbage collector scans every tracked object in a full
(generation 2) collection, with the interpreter lock held, so the window
freezes for it whichever thread started it.  With napari, torch and
scikit-image loaded a session tracks about 445,000 objects and one full
collection takes 233-292 ms on a 2-core CPU; Python starts one by itself
every so often, for instance during a series of Runs
(``benchmarks/bench_gc.py``).  Nearly all of those objects are the start's:
modules, classes, napari's widgets, which live as long as the process.

:func:`keep_collections_short` moves them to the permanent generation
(:func:`gc.freeze`), so that later full collections scan only what the
session made since (13-30 ms); :func:`freeze_after` does it again once
Segment's background imports have ended, which run with automatic collections
held off (:func:`collections_paused`).  Frozen objects are never freed by
the collector, and napari's layers hold reference cycles, so a layer that was
already open then would keep its data after it is deleted: deleting such a
layer unfreezes, collects once (the full-length pass, once) and freezes again.
"""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from qtpy.QtCore import QTimer

_viewers: weakref.WeakSet[Any] = weakref.WeakSet()
_frozen_layers: weakref.WeakSet[Any] = weakref.WeakSet()
_state = {"frozen": False, "release_due": False}
_timers: set[Any] = set()


def keep_collections_short(viewer: Any) -> None:
    """Freeze the objects of the start once per process; watch ``viewer``'s layers.

    Called on the main thread when a viewer's session is made
    (:func:`napari_unet.gui.session.get_session`), before the plugin's widgets
    are built.  Every viewer passed here has its layers watched: deleting a
    layer that was open at a freeze releases it.
    """
    if viewer not in _viewers:
        _viewers.add(viewer)
        viewer.layers.events.removed.connect(_on_removed)
    if not _state["frozen"]:
        _state["frozen"] = True
        _freeze()
    else:
        _frozen_layers.update(viewer.layers)


def freeze_after(thread: threading.Thread) -> None:
    """Freeze again, on the main thread, once ``thread`` has ended.

    For the background imports (:func:`napari_unet.gui._segment_run.prefetch_prediction`):
    what they load, and the widgets built meanwhile, live as long as the
    process too.
    """
    timer = QTimer()
    timer.setInterval(200)

    def check() -> None:
        if not thread.is_alive():
            timer.stop()
            _timers.discard(timer)
            if _state["frozen"]:
                _freeze()

    timer.timeout.connect(check)
    _timers.add(timer)
    timer.start()


@contextmanager
def collections_paused() -> Iterator[None]:
    """Hold automatic collections off during a burst of imports in a background thread.

    The collector's passes during Segment's background imports were their
    longest blocks of the main thread: 60-160 ms each, scanning what the
    imports had made so far (``benchmarks/bench_import_gap.py``).  Paused, what
    the burst made is frozen at its end without a scan, where the start was
    frozen (:func:`keep_collections_short`); the little garbage it leaves
    (about 8,000 objects for Segment's imports) stays for the process.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _state["frozen"]:
            gc.freeze()
            for viewer in list(_viewers):
                _frozen_layers.update(list(viewer.layers))
        if enabled:
            gc.enable()


def frozen_layers() -> list[Any]:
    """Return the layers open at the last freeze that are still alive."""
    return list(_frozen_layers)


def _freeze() -> None:
    gc.collect(1)  # the young generations: the start's short-lived garbage
    gc.freeze()
    for viewer in list(_viewers):
        _frozen_layers.update(viewer.layers)


def _on_removed(event: Any) -> None:
    layer = getattr(event, "value", None)
    if layer in _frozen_layers and not _state["release_due"]:
        _state["release_due"] = True
        # After napari has dropped its own references to the layer.
        QTimer.singleShot(0, release_frozen)


def release_frozen() -> None:
    """Unfreeze, collect everything once, and freeze what is left again."""
    _state["release_due"] = False
    _frozen_layers.clear()
    gc.unfreeze()
    gc.collect()
    _freeze()
