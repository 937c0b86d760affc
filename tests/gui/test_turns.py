"""Work on the main thread spread over event-loop turns, and the first Labels layer's warm-up."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QObject
from qtpy.QtWidgets import QVBoxLayout, QWidget

from napari_unet.gui._layers import add_hidden_labels, show_added
from napari_unet.gui._segment_run import warm_up_labels_layer
from napari_unet.gui._turns import HOLD_PAINT, Turns

pytestmark = pytest.mark.gui


def test_turns_run_one_step_per_event_loop_turn(qtbot):
    owner = QObject()
    turns = Turns(owner)
    steps: list[int] = []
    results: list[object] = []

    def work():
        for k in range(3):
            steps.append(k)
            yield
        return "done"

    turns.start(work(), results.append)
    assert steps == [0] and turns.busy  # the first step at once, the rest later
    with pytest.raises(RuntimeError, match="already"):
        turns.start(work(), results.append)
    qtbot.waitUntil(lambda: not turns.busy, timeout=2_000)
    assert steps == [0, 1, 2] and results == ["done"]


def test_a_failing_step_still_ends_the_run(qtbot):
    owner = QObject()
    turns = Turns(owner)
    results: list[object] = []

    def work():
        yield
        raise ValueError("bad step")

    turns.start(work(), results.append)
    # The second step raises in the timer's slot: napari's handler gets the
    # error, and the caller still hears that the run is over.
    with qtbot.captureExceptions() as errors:
        qtbot.waitUntil(lambda: not turns.busy, timeout=2_000)
    assert results == [None]
    assert [type(e[1]) for e in errors] == [ValueError]


def test_warm_up_fills_vispys_dash_patterns():
    from vispy.visuals.line.dash_atlas import _make_pattern

    _make_pattern.cache_clear()
    warm_up_labels_layer()
    # napari's Labels polygon tool draws with 13 dash patterns; all are cached now.
    assert _make_pattern.cache_info().currsize == 13


def test_then_waits_for_the_running_generator(qtbot):
    owner = QObject()
    turns = Turns(owner)
    order: list[str] = []

    def work():
        order.append("step 1")
        yield
        order.append("step 2")

    turns.then(lambda: order.append("idle: at once"))
    turns.start(work(), lambda _: order.append("done"))
    turns.then(lambda: order.append("after"))
    assert order == ["idle: at once", "step 1"]
    qtbot.waitUntil(lambda: not turns.busy, timeout=2_000)
    assert order == ["idle: at once", "step 1", "step 2", "done", "after"]


def test_a_labels_layer_added_hidden_gets_each_tools_visuals_only_when_its_mode_is_chosen(
    make_napari_viewer,
):
    viewer = make_napari_viewer()
    layer = add_hidden_labels(viewer, np.zeros((32, 32), np.uint8), name="mask", scale=(2, 2))
    canvas = viewer.window._qt_viewer.canvas
    polygon, brush = (layer._overlays[key] for key in ("polygon", "brush_stroke"))

    def built() -> set:
        return {polygon, brush} & set(canvas._layer_overlay_to_visual[layer])

    assert layer in viewer.layers and not layer.visible and tuple(layer.scale) == (2, 2)
    # napari builds an overlay's visual once it is visible: not yet, so the add was cheaper.
    assert not built()
    show_added(layer)
    assert layer.visible and not built()  # no tool is on yet: the show was cheaper too
    layer.mode = "paint"
    assert brush.visible and built() == {brush}
    layer.mode = "polygon"
    assert polygon.visible and built() == {polygon, brush}
    layer.mode = "pan_zoom"
    assert polygon.visible and brush.visible  # napari switches them with ``enabled`` again
    assert not polygon.enabled and not brush.enabled
    show_added(layer)  # a second call changes nothing
    assert layer.visible and built() == {polygon, brush}


def test_a_step_that_holds_the_paint_leaves_the_window_unpainted_until_the_next_step(qtbot):
    window = QWidget()
    owner = QWidget()
    QVBoxLayout(window).addWidget(owner)
    qtbot.addWidget(window)
    window.show()
    turns = Turns(owner)
    seen: list[bool] = []

    def work():
        yield HOLD_PAINT  # as after adding a hidden layer
        seen.append(window.updatesEnabled())
        yield  # a step to show: painted as usual
        seen.append(window.updatesEnabled())
        yield HOLD_PAINT
        raise ValueError("a step that fails")

    turns.start(work())
    assert not window.updatesEnabled()  # the owner's window, not just the owner
    with qtbot.captureExceptions() as errors:
        qtbot.waitUntil(lambda: not turns.busy, timeout=2_000)
    assert seen == [True, True]
    assert window.updatesEnabled()  # released when the generator failed, too
    assert [type(e[1]) for e in errors] == [ValueError]


def test_holding_the_paint_needs_a_widget_owner(qtbot):
    turns = Turns(QObject())
    turns.start(iter([HOLD_PAINT]))
    qtbot.waitUntil(lambda: not turns.busy, timeout=2_000)  # nothing to hold, no error


def test_the_window_paints_again_if_the_owner_goes_while_it_is_held(qtbot):
    window = QWidget()
    owner = QWidget(window)
    qtbot.addWidget(window)
    window.show()
    turns = Turns(owner)

    def work():
        yield HOLD_PAINT
        yield

    turns.start(work())
    assert not window.updatesEnabled()
    owner.deleteLater()  # with it the timer of the next step
    qtbot.waitUntil(window.updatesEnabled, timeout=3_000)
