"""Segment widget: prediction in a worker, live threshold, corrected masks kept."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_unet.core.model import build_model, save_model
from napari_unet.gui.segment_widget import SegmentWidget
from napari_unet.gui.session import get_session

pytestmark = pytest.mark.gui


@pytest.fixture
def tiny_model_path(tmp_path):
    model = build_model(base_width=4, depth=2)
    model.threshold = 0.5
    return save_model(model.eval(), tmp_path / "tiny.pt")


def blobs(shape=(64, 64), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    image = rng.normal(20, 5, shape[-2:]).astype(np.float32)
    for cy, cx in [(16, 16), (40, 44), (20, 48)]:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] += 100
    return image


def make_widget(viewer, model_path):
    widget = SegmentWidget(viewer)
    assert widget.model_choice.load_file(model_path)
    widget.device_combo.setCurrentIndex(widget.device_combo.findData("cpu"))
    return widget


def run_and_wait(qtbot, widget):
    worker = widget.run()
    assert worker is not None
    # The widget drops its worker when it has finished: no signal to miss.
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    return worker


def test_run_adds_probability_and_mask_layers(make_napari_viewer, qtbot, tiny_model_path):
    viewer = make_napari_viewer()
    viewer.add_image(blobs(), name="cells")
    widget = make_widget(viewer, tiny_model_path)
    assert widget.image_combo.currentText() == "cells"
    assert not widget.cancel_button.isEnabled()

    widget.run()
    assert not widget.run_button.isEnabled() and widget.cancel_button.isEnabled()
    # The widget drops its worker when it has finished: no signal to miss.
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()

    prob_layer = viewer.layers["cells probability"]
    mask_layer = viewer.layers["cells mask"]
    assert isinstance(prob_layer, Image) and isinstance(mask_layer, Labels)
    # Both were added hidden, for their first paint to come in a turn of its own.
    assert prob_layer.visible and mask_layer.visible
    mask_layer.mode = "paint"  # the brush's outline, hidden while the layer was added, is back
    assert mask_layer._overlays["brush_stroke"].visible
    assert prob_layer.data.shape == (64, 64) and prob_layer.data.dtype == np.float32
    assert tuple(prob_layer.contrast_limits) == (0.0, 1.0)
    record = get_session(viewer).predictions["cells mask"]
    assert record.image_layer == "cells" and record.prob is prob_layer.data
    # The probability map is not offered as an image to segment.
    assert widget.image_combo.findText("cells probability") < 0
    t = widget.threshold_slider.value()
    np.testing.assert_array_equal(mask_layer.data, (record.prob >= t).astype(np.uint8))


def test_threshold_rewrites_the_same_layer_in_place(make_napari_viewer, qtbot, tiny_model_path):
    viewer = make_napari_viewer()
    viewer.add_image(blobs(), name="cells")
    widget = make_widget(viewer, tiny_model_path)
    run_and_wait(qtbot, widget)
    session = get_session(viewer)
    mask_layer = viewer.layers["cells mask"]
    buffer = mask_layer.data
    n_layers = len(viewer.layers)
    prob = session.predictions["cells mask"].prob
    thresholds: list[float] = []
    session.threshold_changed.connect(thresholds.append)

    t = float(np.quantile(prob, 0.3))
    widget.threshold_slider.setValue(t)
    qtbot.waitUntil(lambda: widget.pending_updates == 0, timeout=2_000)
    t = widget.threshold_slider.value()
    assert viewer.layers["cells mask"] is mask_layer
    assert mask_layer.data is buffer  # written in place, no new array
    assert len(viewer.layers) == n_layers
    np.testing.assert_array_equal(mask_layer.data, prob >= np.float32(t))
    assert 0 < mask_layer.data.sum() < mask_layer.data.size
    assert thresholds and thresholds[-1] == pytest.approx(t)


def test_drag_is_coalesced_to_one_update(make_napari_viewer, qtbot, tiny_model_path):
    viewer = make_napari_viewer()
    viewer.add_image(blobs(), name="cells")
    widget = make_widget(viewer, tiny_model_path)
    run_and_wait(qtbot, widget)
    before = widget.updates_applied
    for value in np.linspace(0.1, 0.9, 50):
        widget.threshold_slider.setValue(float(value))
        assert widget.pending_updates <= 1
    qtbot.waitUntil(lambda: widget.pending_updates == 0, timeout=2_000)
    assert widget.updates_applied == before + 1
    prob = get_session(viewer).predictions["cells mask"].prob
    expected = prob >= np.float32(widget.threshold_slider.value())
    np.testing.assert_array_equal(viewer.layers["cells mask"].data, expected)


def test_options_separate_labels_min_size_and_fill(make_napari_viewer, qtbot, tiny_model_path):
    from napari_unet.core.postprocess import label_objects, mask_from_proba

    viewer = make_napari_viewer()
    viewer.add_image(blobs(), name="cells")
    widget = make_widget(viewer, tiny_model_path)
    run_and_wait(qtbot, widget)
    prob = get_session(viewer).predictions["cells mask"].prob
    widget.threshold_slider.setValue(float(np.quantile(prob, 0.6)))
    widget.min_size_spin.setValue(5)
    widget.fill_holes_check.setChecked(True)
    widget.separate_check.setChecked(True)
    qtbot.waitUntil(lambda: widget.pending_updates == 0, timeout=2_000)
    t = widget.threshold_slider.value()
    expected = label_objects(mask_from_proba(prob, t, min_size=5, fill_holes=True))
    layer = viewer.layers["cells mask"]
    np.testing.assert_array_equal(layer.data, expected)
    assert layer.data.max() == expected.max() >= 1
    assert len([ly for ly in viewer.layers if isinstance(ly, Labels)]) == 1

    widget.separate_check.setChecked(False)
    qtbot.waitUntil(lambda: widget.pending_updates == 0, timeout=2_000)
    np.testing.assert_array_equal(
        layer.data, mask_from_proba(prob, t, min_size=5, fill_holes=True)
    )


def test_separate_labels_of_a_two_output_model_follow_the_slider(
    make_napari_viewer, qtbot, tmp_path
):
    from napari_unet.core.instances import instances_from_maps

    model = build_model(base_width=4, depth=2, out_channels=2)
    path = save_model(model.eval(), tmp_path / "two.pt")
    viewer = make_napari_viewer()
    viewer.add_image(blobs(), name="cells")
    widget = make_widget(viewer, path)
    widget.separate_check.setChecked(True)
    run_and_wait(qtbot, widget)
    record = get_session(viewer).predictions["cells mask"]
    assert record.boundary is not None and record.boundary.shape == record.prob.shape
    # The worker split the objects once, at the model's threshold ...
    assert record.objects is not None and record.objects.shape == record.prob.shape
    layer = viewer.layers["cells mask"]
    np.testing.assert_array_equal(
        layer.data, instances_from_maps(record.prob, record.boundary, model.threshold)
    )
    # ... and the slider follows that split onto each threshold's mask.
    for q in (0.3, 0.6):
        widget.threshold_slider.setValue(float(np.quantile(record.prob, q)))
        qtbot.waitUntil(lambda: widget.pending_updates == 0, timeout=2_000)
        t = widget.threshold_slider.value()
        expected = instances_from_maps(record.prob, record.boundary, t, split=record.objects)
        np.testing.assert_array_equal(layer.data, expected)
        assert not np.any((layer.data > 0) & (record.prob < t))  # within the mask
        assert expected.max() >= 1


def test_corrected_mask_is_never_overwritten(make_napari_viewer, qtbot, tiny_model_path, messages):
    viewer = make_napari_viewer()
    viewer.add_image(blobs(), name="cells")
    widget = make_widget(viewer, tiny_model_path)
    run_and_wait(qtbot, widget)
    session = get_session(viewer)
    corrected = viewer.layers["cells mask"]
    # A brush stroke with napari's own tool: it goes through the paint history.
    corrected.paint((5, 5), 7)
    assert session.predictions["cells mask"].corrected
    snapshot = corrected.data.copy()

    widget.threshold_slider.setValue(0.05)
    qtbot.waitUntil(lambda: widget.pending_updates == 0, timeout=2_000)
    np.testing.assert_array_equal(corrected.data, snapshot)
    assert "cells mask [2]" in viewer.layers
    fresh = viewer.layers["cells mask [2]"]
    prob = session.predictions["cells mask [2]"].prob
    np.testing.assert_array_equal(fresh.data, prob >= np.float32(widget.threshold_slider.value()))
    assert any("holds corrections" in m for m in messages)

    # An edit that bypasses the paint history is caught by content, and Run
    # again writes yet another layer.
    fresh.data[0, 0] = 3
    run_and_wait(qtbot, widget)
    np.testing.assert_array_equal(corrected.data, snapshot)
    assert fresh.data[0, 0] == 3
    assert "cells mask [3]" in viewer.layers
    assert session.predictions["cells mask [2]"].corrected


def test_run_again_reuses_an_uncorrected_mask(make_napari_viewer, qtbot, tiny_model_path):
    viewer = make_napari_viewer()
    viewer.add_image(blobs(), name="cells")
    widget = make_widget(viewer, tiny_model_path)
    run_and_wait(qtbot, widget)
    layer = viewer.layers["cells mask"]
    n_layers = len(viewer.layers)
    run_and_wait(qtbot, widget)
    assert viewer.layers["cells mask"] is layer
    assert len(viewer.layers) == n_layers
    # Deleting the mask layer frees its cached probabilities.
    viewer.layers.remove(layer)
    assert "cells mask" not in get_session(viewer).predictions


def test_stack_is_predicted_slice_by_slice(make_napari_viewer, qtbot, tiny_model_path):
    viewer = make_napari_viewer()
    stack = np.stack([blobs(seed=s) for s in range(3)])
    viewer.add_image(stack, name="stack")
    widget = make_widget(viewer, tiny_model_path)
    run_and_wait(qtbot, widget)
    prob = viewer.layers["stack probability"].data
    mask = viewer.layers["stack mask"]
    assert prob.shape == (3, 64, 64) and mask.data.shape == (3, 64, 64)
    widget.threshold_slider.setValue(float(np.quantile(prob, 0.5)))
    qtbot.waitUntil(lambda: widget.pending_updates == 0, timeout=2_000)
    np.testing.assert_array_equal(mask.data, prob >= np.float32(widget.threshold_slider.value()))


def test_rgb_image_gets_a_note(make_napari_viewer, qtbot, tiny_model_path, messages):
    viewer = make_napari_viewer()
    rgb = np.repeat(blobs()[..., None], 3, axis=-1).clip(0, 255).astype(np.uint8)
    viewer.add_image(rgb, name="colour", rgb=True)
    widget = make_widget(viewer, tiny_model_path)
    run_and_wait(qtbot, widget)
    assert any("RGB" in m and "grey" in m for m in messages)
    assert viewer.layers["colour mask"].data.shape == (64, 64)


def test_no_image_and_bad_model_file_are_clear_errors(make_napari_viewer, tmp_path, messages):
    viewer = make_napari_viewer()
    widget = SegmentWidget(viewer)
    assert widget.run() is None
    assert any("no image layer" in m for m in messages)
    bogus = tmp_path / "not_a_model.pt"
    bogus.write_bytes(b"hello")
    assert not widget.model_choice.load_file(bogus)
    assert any("Segment:" in m and "not_a_model.pt" in m for m in messages)
    assert len(viewer.layers) == 0


def test_cancel_stops_without_layers(make_napari_viewer, qtbot, tiny_model_path):
    viewer = make_napari_viewer()
    viewer.add_image(np.stack([blobs(seed=s) for s in range(40)]), name="long")
    widget = make_widget(viewer, tiny_model_path)
    widget.tile_spin.setValue(64)
    widget.run()
    widget.cancel()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert "long mask" not in viewer.layers
    assert widget.run_button.isEnabled()
    assert not get_session(viewer).busy


def test_tile_size_stays_seamless(make_napari_viewer, qtbot, tmp_path, messages):
    from napari_unet.core.inference import MIN_TILE_SIZE

    viewer = make_napari_viewer()
    # Depth 5: receptive radius 219 px, so even the spin box minimum is raised.
    deep = save_model(build_model(base_width=2, depth=5).eval(), tmp_path / "deep.pt")
    widget = make_widget(viewer, deep)
    widget.tile_spin.setValue(64)
    assert widget.tile_spin.value() == widget.tile_spin.minimum() == MIN_TILE_SIZE
    viewer.add_image(blobs((40, 500)), name="strip")
    run_and_wait(qtbot, widget)
    assert any(f"{MIN_TILE_SIZE} px raised to 896 px" in m for m in messages)
    assert viewer.layers["strip mask"].data.shape == (40, 500)


def test_session_model_entry_follows_model_changed(make_napari_viewer, tiny_model_path):
    from napari_unet.core.model import load_model

    viewer = make_napari_viewer()
    widget = SegmentWidget(viewer)
    session = get_session(viewer)
    tuned = load_model(tiny_model_path)
    session.set_model(tuned, "fine-tuned 1")
    assert widget.model_choice.combo.currentText() == "session model: fine-tuned 1"
    assert widget.model_choice.model() is tuned
    # Choosing the default to compare keeps the fine-tuned entry available.
    assert widget.model_choice.load_file(tiny_model_path)
    assert session.model is not tuned or widget.model_choice.model() is not tuned
    index = widget.model_choice.combo.findData("session")
    widget.model_choice.combo.setCurrentIndex(index)
    assert widget.model_choice.model() is tuned and session.model is tuned


def test_threshold_from_session_moves_the_slider(make_napari_viewer, qtbot, tiny_model_path):
    viewer = make_napari_viewer()
    viewer.add_image(blobs(), name="cells")
    widget = make_widget(viewer, tiny_model_path)
    run_and_wait(qtbot, widget)
    get_session(viewer).set_threshold(0.37)
    assert widget.threshold_slider.value() == pytest.approx(0.37)
    qtbot.waitUntil(lambda: widget.pending_updates == 0, timeout=2_000)
    prob = get_session(viewer).predictions["cells mask"].prob
    np.testing.assert_array_equal(viewer.layers["cells mask"].data, prob >= np.float32(0.37))


def test_docked_widgets_share_the_session_without_private_access(
    make_napari_viewer, qtbot, tiny_model_path, recwarn
):
    """Docked from the plugin menu, napari hands each widget a proxy of the viewer."""
    viewer = make_napari_viewer()
    viewer.add_image(blobs(), name="cells")
    _, segment = viewer.window.add_plugin_dock_widget("napari-unet", "Segment")
    _, correct = viewer.window.add_plugin_dock_widget("napari-unet", "Correct masks")
    assert segment.session is correct.session is get_session(viewer)
    assert segment.model_choice.load_file(tiny_model_path)
    segment.device_combo.setCurrentIndex(segment.device_combo.findData("cpu"))
    run_and_wait(qtbot, segment)
    segment.threshold_slider.setValue(0.3)
    qtbot.waitUntil(lambda: segment.pending_updates == 0, timeout=2_000)
    correct.mask_combo.set_layer("cells mask")
    correct.fill_holes()
    correct.undo()
    private = [w for w in recwarn if "Private attribute" in str(w.message)]
    assert not private, [str(w.message) for w in private]


def test_slow_mask_options_run_in_a_worker_and_end_on_the_last_value(
    make_napari_viewer, qtbot, tiny_model_path, monkeypatch
):
    from napari_unet.core.instances import instances_from_maps
    from napari_unet.gui import _mask_jobs

    # A 128x128 image stands in for a large one: the limit is lowered.
    monkeypatch.setattr(_mask_jobs, "WORKER_MIN_PIXELS", 1_000)
    viewer = make_napari_viewer()
    viewer.add_image(blobs((128, 128)), name="cells")
    widget = make_widget(viewer, tiny_model_path)
    run_and_wait(qtbot, widget)
    record = get_session(viewer).predictions["cells mask"]
    layer = viewer.layers["cells mask"]

    def expected(t):
        return instances_from_maps(record.prob, record.boundary, t, min_size=5, fill_holes=True)

    widget.min_size_spin.setValue(5)
    widget.fill_holes_check.setChecked(True)
    widget.separate_check.setChecked(True)
    qtbot.waitUntil(lambda: widget.pending_updates == 0, timeout=5_000)
    np.testing.assert_array_equal(layer.data, expected(widget.threshold_slider.value()))

    # One slider move: when the event loop turns, the mask is only asked for;
    # the layer is unchanged until the worker's result comes back.
    before = layer.data.copy()
    t = float(np.quantile(record.prob, 0.7))
    widget.threshold_slider.setValue(t)
    widget._timer.stop()
    widget._apply_pending()  # what the timer does
    assert widget._jobs.running and widget.pending_updates == 1
    np.testing.assert_array_equal(layer.data, before)
    qtbot.waitUntil(lambda: widget.pending_updates == 0, timeout=5_000)
    np.testing.assert_array_equal(layer.data, expected(widget.threshold_slider.value()))

    # A drag faster than the worker: one computing, one waiting (the latest
    # value replaces the waiting one), and the last value wins.
    applied = widget.updates_applied
    values = np.linspace(0.2, 0.8, 30)
    for value in values:
        widget.threshold_slider.setValue(float(value))
        widget._timer.stop()
        widget._apply_pending()  # no event-loop turn: the first is still computing
        assert widget.pending_updates <= 2
    assert widget.pending_updates == 2
    qtbot.waitUntil(lambda: widget.pending_updates == 0, timeout=10_000)
    assert widget.updates_applied - applied == 2
    assert widget.threshold_slider.value() == pytest.approx(values[-1])
    np.testing.assert_array_equal(layer.data, expected(widget.threshold_slider.value()))
    assert viewer.layers["cells mask"] is layer

    # The plain threshold stays synchronous, whatever the size.
    widget.min_size_spin.setValue(0)
    widget.fill_holes_check.setChecked(False)
    widget.separate_check.setChecked(False)
    widget._timer.stop()
    widget._apply_pending()
    assert not widget._jobs.running
    np.testing.assert_array_equal(layer.data, record.prob >= np.float32(values[-1]))


def test_worker_masks_never_overwrite_a_corrected_mask(
    make_napari_viewer, qtbot, tiny_model_path, monkeypatch, messages
):
    from napari_unet.gui import _mask_jobs

    monkeypatch.setattr(_mask_jobs, "WORKER_MIN_PIXELS", 1_000)
    viewer = make_napari_viewer()
    viewer.add_image(blobs(), name="cells")
    widget = make_widget(viewer, tiny_model_path)
    run_and_wait(qtbot, widget)
    corrected = viewer.layers["cells mask"]
    corrected.paint((5, 5), 7)
    snapshot = corrected.data.copy()
    widget.fill_holes_check.setChecked(True)
    qtbot.waitUntil(lambda: widget.pending_updates == 0, timeout=5_000)
    np.testing.assert_array_equal(corrected.data, snapshot)
    assert any("holds corrections" in m for m in messages)
    from napari_unet.core.postprocess import mask_from_proba

    prob = get_session(viewer).predictions["cells mask [2]"].prob
    t = widget.threshold_slider.value()
    np.testing.assert_array_equal(
        viewer.layers["cells mask [2]"].data, mask_from_proba(prob, t, fill_holes=True)
    )


def test_first_run_loads_the_default_model_in_the_worker(make_napari_viewer, qtbot):
    import sys
    import threading

    opened: list[str] = []
    watching = [True]

    def audit(event, args):
        # Python's audit hook sees every file open, in whichever thread.
        if watching[0] and event == "open" and str(args[0]).endswith("default.pt"):
            opened.append(threading.current_thread().name)

    sys.addaudithook(audit)  # cannot be removed; switched off below
    try:
        viewer = make_napari_viewer()
        viewer.add_image(blobs(), name="cells")
        widget = SegmentWidget(viewer)
        widget.device_combo.setCurrentIndex(widget.device_combo.findData("cpu"))
        session = get_session(viewer)
        assert session.model is None
        worker = widget.run()
        assert worker is not None
        # run() returned without loading: the worker loads the model.
        assert session.model is None
        assert "loading the model" in widget.status.text()
        # The widget drops its worker when it has finished: no signal to miss.
        qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
        assert opened and threading.main_thread().name not in opened
        assert session.model is not None and session.model_label == "default"
        assert widget.model_choice.combo.currentText() == "default (shipped)"
        assert widget.threshold_slider.value() == pytest.approx(session.model.threshold, abs=1e-3)
        assert "cells mask" in viewer.layers
        # The second Run reuses the loaded model.
        count = len(opened)
        run_and_wait(qtbot, widget)
        assert len(opened) == count
    finally:
        watching[0] = False


def test_progress_bar_and_per_slice_tile_counter(make_napari_viewer, qtbot, tiny_model_path):
    viewer = make_napari_viewer()
    # Each 64x1000 slice takes several 432-px tiles.
    viewer.add_image(np.stack([blobs((64, 1000), seed=s) for s in range(2)]), name="strip")
    widget = make_widget(viewer, tiny_model_path)
    widget.tile_spin.setValue(432)
    seen = []
    worker = widget.run()
    assert widget.progress_bar.isVisibleTo(widget)

    def record(event):
        # Connected after the widget's own handler: sees what it made of the event.
        seen.append(
            (
                event,
                widget.status.text(),
                widget.progress_bar.value(),
                widget.progress_bar.maximum(),
            )
        )

    worker.yielded.connect(record)
    # The widget drops its worker when it has finished: no signal to miss.
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    per_slice = seen[-1][0].total // 2
    assert per_slice > 1
    last_of = {}
    for event, text, value, maximum in seen:
        assert value == event.step and maximum == event.total  # the bar counts the stack
        assert text.startswith("Predicting 'strip': slice ")
        last_of[text.split(",")[0]] = text
    assert last_of["Predicting 'strip': slice 1/2"].endswith(f"tile {per_slice}/{per_slice}")
    assert last_of["Predicting 'strip': slice 2/2"].endswith(f"tile {per_slice}/{per_slice}")
    assert not widget.progress_bar.isVisibleTo(widget)


def test_result_layers_are_made_in_separate_event_loop_turns(
    make_napari_viewer, qtbot, tiny_model_path
):
    # napari's add of a large layer blocks the window for about 0.1 s; the
    # probability and the mask layer are made in two turns, with the event
    # loop running in between, and the run ends only when both exist.
    from qtpy.QtCore import QTimer

    viewer = make_napari_viewer()
    viewer.add_image(blobs(), name="cells")
    widget = make_widget(viewer, tiny_model_path)
    turns: list[None] = []
    ticker = QTimer()
    ticker.setInterval(0)
    ticker.timeout.connect(lambda: turns.append(None))
    made: dict[str, tuple[int, bool]] = {}

    def on_inserted(event):
        made[event.value.name] = (len(turns), widget.worker is not None)
        if event.value.name == "cells probability":
            widget.threshold_slider.setValue(0.9)  # moved while the layers are made

    viewer.layers.events.inserted.connect(on_inserted)
    ticker.start()
    run_and_wait(qtbot, widget)
    ticker.stop()
    prob_turn, prob_running = made["cells probability"]
    mask_turn, mask_running = made["cells mask"]
    assert mask_turn > prob_turn
    assert prob_running and mask_running
    # The mask ends at the slider's last value, not the one the display began with.
    qtbot.waitUntil(lambda: widget.pending_updates == 0, timeout=2_000)
    prob = viewer.layers["cells probability"].data
    np.testing.assert_array_equal(viewer.layers["cells mask"].data > 0, prob >= 0.9)
