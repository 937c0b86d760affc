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
session made since (13-30 ms); Segment's background imports run with automatic
collections held off and freeze what they made at their end
(:func:`collections_paused`).  Frozen objects are never freed by
the collector, and napari's layers hold reference cycles, so a layer that was
already open then would keep its data after it is deleted: deleting such a
layer unfreezes, collects once (the full-length pass, once) and freezes again.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from qtpy.QtCore import QTimer

_viewers: weakref.WeakSet[Any] = weakref.WeakSet()
_frozen_layers: weakref.WeakSet[Any] = weakref.WeakSet()
_state = {"frozen": False, "release_due": False}


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
            _freeze(collect=False)  # a scan now would be the long hold avoided
        if enabled:
            gc.enable()


def frozen_layers() -> list[Any]:
    """Return the layers open at the last freeze that are still alive."""
    return list(_frozen_layers)


def _freeze(collect: bool = True) -> None:
    if collect:
        gc.collect(1)  # the young generations: the start's short-lived garbage
    gc.freeze()
    for viewer in list(_viewers):
        _frozen_layers.update(list(viewer.layers))


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
