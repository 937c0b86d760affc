"""Full garbage collections kept short, without keeping a deleted layer's data alive."""

from __future__ import annotations

import gc
import threading
import weakref

import numpy as np
import pytest

from napari_unet.gui import _gc
from napari_unet.gui.segment_widget import SegmentWidget

pytestmark = pytest.mark.gui


def test_segment_freezes_the_start_and_a_deleted_layer_still_frees_its_data(
    make_napari_viewer, qtbot
):
    viewer = make_napari_viewer()
    data = np.zeros((256, 256), np.float32)
    freed = weakref.ref(data)
    layer = viewer.add_image(data, name="opened before the panel")
    del data
    widget = SegmentWidget(viewer)
    qtbot.addWidget(widget)
    # As if the panel's freeze came now (in this test process it may have come
    # with an earlier test's viewer): the open layer is frozen and watched.
    _gc.release_frozen()
    assert len(gc.get_objects()) < gc.get_freeze_count() // 10  # full passes scan few
    assert layer in _gc.frozen_layers()
    gc.collect()
    assert freed() is not None  # frozen: no collection would free it by itself

    viewer.layers.remove(layer)
    del layer
    qtbot.waitUntil(lambda: not _gc._state["release_due"], timeout=10_000)
    gc.collect()
    assert freed() is None
    assert not _gc.frozen_layers()
    garbage: list = []
    garbage.append(garbage)  # what the session makes later is still collected
    del garbage
    assert gc.collect() >= 1


def test_a_layer_made_after_the_freeze_is_not_watched(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    qtbot.addWidget(SegmentWidget(viewer))
    _gc.release_frozen()
    later = viewer.add_labels(np.zeros((32, 32), np.uint8), name="made later")
    assert later not in _gc.frozen_layers()
    viewer.layers.remove(later)
    assert not _gc._state["release_due"]  # nothing to release: no full-length pass


def test_a_burst_of_background_imports_runs_without_collections_and_is_frozen_after(
    make_napari_viewer, qtbot
):
    viewer = make_napari_viewer()
    qtbot.addWidget(SegmentWidget(viewer))
    _gc.release_frozen()
    layer = viewer.add_image(np.zeros((8, 8), np.float32), name="open during the burst")
    assert gc.isenabled()
    seen: dict = {}

    def burst() -> None:
        with _gc.collections_paused():
            seen["enabled"] = gc.isenabled()
            seen["before"] = gc.get_freeze_count()
            seen["kept"] = [{"n": i} for i in range(5000)]

    thread = threading.Thread(target=burst)
    thread.start()
    thread.join()
    assert seen["enabled"] is False  # no pass of the collector while it ran
    assert gc.isenabled()  # and on again after
    assert gc.get_freeze_count() >= seen["before"] + 5000  # frozen without a scan
    assert layer in _gc.frozen_layers()  # so a delete still frees its data


def test_paused_collections_stay_off_if_they_were_off_before():
    gc.disable()
    try:
        with _gc.collections_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
